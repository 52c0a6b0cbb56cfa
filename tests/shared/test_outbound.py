"""Safe outbound HTTP: every refused address class, pinned addresses, real TLS on loopback."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.errors import ConfigError, OutboundError, OutboundRefusedError
from shared.outbound import OutboundClient, is_public_address, parse_destination
from shared.settings import Settings

HOST = "receiver.test"


# --- the address rule, one class at a time ---------------------------------------------------

REFUSED = [
    "0.0.0.0",
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",  # carrier-grade NAT: neither private nor global to ipaddress
    "100.127.255.254",
    "127.0.0.1",
    "127.255.0.1",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.10",
    "192.88.99.1",  # 6to4 relay anycast
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.7",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::127.0.0.1",  # IPv4-compatible
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:0a00:0001::",  # 6to4 of 10.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "100::1",
    "2001::1",  # Teredo
    "2001:db8::1",
    "2001:10::1",
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",  # site-local: global to some Pythons
    "ff02::1",
    "ff0e::1",
]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
]


@pytest.mark.parametrize("text", REFUSED)
def test_each_non_global_address_class_is_refused(text: str) -> None:
    assert not is_public_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", ALLOWED)
def test_public_addresses_and_their_embedded_forms_are_allowed(text: str) -> None:
    assert is_public_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", REFUSED)
def test_a_name_resolving_to_a_refused_address_is_refused_before_any_connection(
    text: str,
) -> None:
    client = OutboundClient(resolver=lambda host, port: [text])
    with pytest.raises(OutboundRefusedError, match="private or reserved"):
        client.post(f"https://{HOST}/hook", b"{}", {})


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    client = OutboundClient(resolver=lambda host, port: ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(OutboundRefusedError):
        client.post(f"https://{HOST}/hook", b"{}", {})


def test_a_literal_private_address_in_the_url_is_refused() -> None:
    client = OutboundClient()  # the system resolver returns a literal as is
    for url in (
        "https://169.254.169.254/latest",
        "https://[::ffff:127.0.0.1]/",
        "https://[fec0::1]/",
    ):
        with pytest.raises(OutboundRefusedError):
            client.post(url, b"{}", {})


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/x", "https://"),
        ("ftp://hooks.example.com/x", "https://"),
        ("https://hooks.example.com:8443/x", "port 443"),
        ("https://hooks.example.com:80/x", "port 443"),
        ("https://user:pw@hooks.example.com/x", "user name"),
        ("https:///x", "no host"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com:99999/", "valid"),
        ("https://hooks.example.com/" + "a" * 2100, "longer"),
    ],
)
def test_bad_urls_are_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(OutboundRefusedError, match=why) as caught:
        parse_destination(url)
    assert "hooks.example.com" not in caught.value.message


def test_a_non_443_port_is_refused_for_a_public_address_even_when_loopback_is_allowed() -> None:
    client = OutboundClient(allow_loopback=True, resolver=lambda host, port: ["93.184.216.34"])
    with pytest.raises(OutboundRefusedError, match="port 443"):
        client.post(f"https://{HOST}:8443/hook", b"{}", {})


def test_the_loopback_setting_refuses_to_turn_on_under_vercel() -> None:
    assert Settings({}).outbound_allows_loopback is False
    assert Settings({"CAO_OUTBOUND_ALLOW_LOOPBACK": "1"}).outbound_allows_loopback is True
    with pytest.raises(ConfigError, match="Vercel"):
        _ = Settings({"CAO_OUTBOUND_ALLOW_LOOPBACK": "1", "VERCEL": "1"}).outbound_allows_loopback
    with pytest.raises(ConfigError):
        _ = Settings({"CAO_OUTBOUND_ALLOW_LOOPBACK": "maybe"}).outbound_allows_loopback


def test_without_the_setting_loopback_is_refused() -> None:
    client = OutboundClient(resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(OutboundRefusedError):
        client.post(f"https://{HOST}/hook", b"{}", {})


# --- a real HTTPS receiver on loopback --------------------------------------------------------


@dataclass
class Authority:
    ca_pem: bytes
    cert_file: str
    key_file: str


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _make_authority(tmp: str, *, hosts: list[str]) -> Authority:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file = f"{tmp}/cert.pem"
    key_file = f"{tmp}/key.pem"
    with open(cert_file, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return Authority(ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file)


class _Handler(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]]
    mode = "ok"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.received.append((self.path, dict(self.headers), body))
        if self.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "https://169.254.169.254/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.mode == "slow":
            time.sleep(2)
        payload = b"x" * 200_000 if self.mode == "big" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Receiver:
    port: int
    authority: Authority
    handler: type[_Handler]

    def client(self, **kwargs: object) -> OutboundClient:
        context = ssl.create_default_context(cadata=self.authority.ca_pem.decode())
        options: dict[str, object] = {
            "allow_loopback": True,
            "resolver": lambda host, port: ["127.0.0.1"],
            "ssl_context": context,
        }
        options.update(kwargs)
        return OutboundClient(**options)  # type: ignore[arg-type]

    def url(self, host: str = HOST) -> str:
        return f"https://{host}:{self.port}/hook?x=1"


@pytest.fixture
def receiver(tmp_path: object) -> Iterator[Receiver]:
    authority = _make_authority(str(tmp_path), hosts=[HOST])
    handler = type("Handler", (_Handler,), {"received": [], "mode": "ok"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority.cert_file, authority.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(server.server_address[1], authority, handler)
    finally:
        server.shutdown()
        server.server_close()


def test_a_post_reaches_the_receiver_over_verified_tls(receiver: Receiver) -> None:
    response = receiver.client().post(
        receiver.url(), b'{"a":1}', {"Content-Type": "application/json"}
    )
    assert response.status == 200
    assert response.body == b"ok"
    [(path, headers, body)] = receiver.handler.received
    assert path == "/hook?x=1"
    assert body == b'{"a":1}'
    assert headers["Host"] == HOST


def test_a_certificate_for_another_host_name_is_refused(receiver: Receiver) -> None:
    with pytest.raises(OutboundError, match="certificate"):
        receiver.client().post(receiver.url("other.test"), b"{}", {})
    assert receiver.handler.received == []


def test_an_untrusted_certificate_is_refused(receiver: Receiver) -> None:
    client = receiver.client(ssl_context=ssl.create_default_context())
    with pytest.raises(OutboundError, match="certificate"):
        client.post(receiver.url(), b"{}", {})
    assert receiver.handler.received == []


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.handler.mode = "redirect"
    with pytest.raises(OutboundError, match="redirect"):
        receiver.client().post(receiver.url(), b"{}", {})
    assert len(receiver.handler.received) == 1


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.handler.mode = "slow"
    started = time.monotonic()
    with pytest.raises(OutboundError, match="in time"):
        receiver.client(read_timeout=0.5).post(receiver.url(), b"{}", {})
    assert time.monotonic() - started < 1.8


def test_the_response_read_is_bounded(receiver: Receiver) -> None:
    receiver.handler.mode = "big"
    response = receiver.client(max_response_bytes=1000).post(receiver.url(), b"{}", {})
    assert len(response.body) == 1000


def test_the_address_checked_is_the_address_used_and_each_attempt_resolves_again(
    receiver: Receiver,
) -> None:
    answers = [["127.0.0.1"], ["10.0.0.1"]]
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    client = receiver.client(resolver=rebinding)
    assert client.post(receiver.url(), b"{}", {}).status == 200
    assert calls == [HOST]  # resolved once: the connection used the checked address
    with pytest.raises(OutboundRefusedError):
        client.post(receiver.url(), b"{}", {})  # the next attempt resolves again and is refused
    assert calls == [HOST, HOST]
    assert len(receiver.handler.received) == 1


def test_proxies_from_the_environment_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.9.9.9:3128")
    assert receiver.client().post(receiver.url(), b"{}", {}).status == 200


def test_a_refused_connection_is_a_delivery_failure_without_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = OutboundClient(allow_loopback=True, resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(OutboundError) as caught:
        client.post(f"https://{HOST}:{port}/secret-token", b"{}", {})
    assert "secret-token" not in caught.value.message
