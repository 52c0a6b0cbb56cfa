"""The network guard: tests may reach loopback only."""

from __future__ import annotations

import socket

import pytest

from tests.support.netguard import NetworkAccessError, assert_loopback_url


@pytest.mark.parametrize("address", [("203.0.113.7", 443), ("10.0.0.1", 5432), ("8.8.8.8", 53)])
def test_connecting_to_a_non_loopback_address_fails(address: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(NetworkAccessError):
        s.connect(address)


def test_resolving_a_public_name_fails() -> None:
    with pytest.raises(NetworkAccessError):
        socket.getaddrinfo("sts.amazonaws.com", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_a_database_url_pointing_off_the_machine_is_refused() -> None:
    with pytest.raises(NetworkAccessError):
        assert_loopback_url("postgresql://u@db.example.com/x")
    assert_loopback_url("postgresql://u@127.0.0.1:5432/x")
    assert_loopback_url("host=/tmp/socketdir dbname=x")
