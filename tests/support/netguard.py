"""A guard that fails any test which tries to reach a non-loopback address.

Installed for the whole session from conftest: Python sockets (boto3, httpx, urllib, the
simulated AWS) may connect only to 127.0.0.0/8, ::1 or Unix sockets. libpq (psycopg) does not
use Python sockets, so the database URLs are checked separately (`assert_loopback_url`).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from psycopg.conninfo import conninfo_to_dict


class NetworkAccessError(AssertionError):
    """A test tried to reach a non-loopback address."""


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback_host(host: Any) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return str(host).endswith(".localhost")


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback_host(host):
        raise NetworkAccessError(f"test tried to reach non-loopback address {host!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, bytes):
        host = host.decode()
    if not _is_loopback_host(host):
        raise NetworkAccessError(f"test tried to resolve non-loopback host {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


def assert_loopback_url(url: str) -> None:
    params = conninfo_to_dict(url)
    for host in str(params.get("host", "")).split(","):
        if host and not host.startswith("/") and not _is_loopback_host(host):
            raise NetworkAccessError(f"test database host {host!r} is not loopback")
