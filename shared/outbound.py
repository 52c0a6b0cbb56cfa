"""Safe outbound HTTP for alert deliveries: customer-given URLs, no SSRF.

A customer gives us a URL (a Slack incoming webhook, their own HTTPS webhook) and our worker
POSTs to it. The rules:

- only `https`, only port 443, no user info in the URL;
- the host is resolved on every attempt and EVERY address it resolves to must be public
  (`is_public_address`: the rule is written out below rather than trusting `ipaddress`'s
  `is_global`/`is_private` alone, which disagree on several ranges); embedded IPv4 addresses
  (IPv4-mapped, 6to4, NAT64) are unwrapped and checked too;
- we connect to the address we checked (no second resolution, so no DNS rebinding) and run TLS
  with the original host name for SNI and certificate verification;
- no proxies from the environment (`http.client` reads none), no redirects (a 3xx is a
  failure), short connect and read timeouts plus an overall deadline, a bounded response read.

`CAO_OUTBOUND_ALLOW_LOOPBACK` (settings) additionally allows loopback addresses on any port, for
the local demo and tests; the setting refuses to turn on under Vercel.

Error messages never contain the URL: a Slack webhook URL is itself a secret.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.errors import OutboundError, OutboundRefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2048

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# IPv4 ranges refused whatever `ipaddress` says about them (RFC 6890 special-purpose registry and
# friends). `100.64.0.0/10` (carrier-grade NAT) is neither private nor global to `ipaddress`;
# multicast and 192.88.99.0/24 have been reported as global by some Python versions.
_DENIED_V4: tuple[_V4, ...] = tuple(
    _V4(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata: 169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
    )
)

# IPv6 ranges refused outright. `fec0::/10` (deprecated site-local) is "global" to older Pythons.
_DENIED_V6: tuple[_V6, ...] = tuple(
    _V6(n)
    for n in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible (deprecated)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/32",  # Teredo (the embedded IPv4 is obfuscated; refuse the range)
        "2001:db8::/32",  # documentation
        "2001:10::/28",  # ORCHID
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)

_NAT64 = _V6("64:ff9b::/96")
_LOOPBACK: tuple[_V4 | _V6, ...] = (_V4("127.0.0.0/8"), _V6("::1/128"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: IPAddress) -> bool:
    """Whether we may connect to `address`: global by the explicit rule above, and by Python."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
        if any(address in net for net in _DENIED_V6):
            return False
    elif any(address in net for net in _DENIED_V4):
        return False
    return address.is_global and not address.is_multicast


def is_loopback_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in _LOOPBACK)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver, TCP); a literal is itself."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError("the destination's host name does not resolve") from exc
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Destination:
    """A URL that passed the static checks: its host name and port."""

    host: str
    port: int
    target: str  # path and query, sent in the request line


def parse_destination(url: str, *, allow_loopback: bool = False) -> Destination:
    """Check a URL's shape (https, port 443, no user info); OutboundRefusedError saying why."""
    if len(url) > MAX_URL_LENGTH:
        raise OutboundRefusedError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise OutboundRefusedError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefusedError("the URL is not a valid https:// URL") from exc
    if parts.scheme.lower() != "https":
        raise OutboundRefusedError("the URL must start with https://")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefusedError("the URL must not contain a user name or password")
    host = parts.hostname
    if not host:
        raise OutboundRefusedError("the URL has no host")
    if port is None:
        port = 443
    if port != 443 and not allow_loopback:
        raise OutboundRefusedError("the URL must use the standard HTTPS port 443")
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return Destination(host=host.rstrip("."), port=port, target=target)


def check_addresses(
    destination: Destination, addresses: Sequence[str], *, allow_loopback: bool
) -> list[str]:
    """The addresses to connect to, or OutboundRefusedError when any of them is not allowed."""
    if not addresses:
        raise OutboundError("the destination's host name does not resolve")
    checked: list[str] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0] if "%" in text else text)
        except ValueError as exc:
            raise OutboundRefusedError("the destination resolved to an invalid address") from exc
        if "%" in text:
            raise OutboundRefusedError("the destination resolves to a link-scoped address")
        loopback_ok = allow_loopback and is_loopback_address(address)
        if not loopback_ok and not is_public_address(address):
            raise OutboundRefusedError(
                "the destination resolves to a private or reserved address; "
                "alerts can only be sent to public HTTPS endpoints"
            )
        if destination.port != 443 and not loopback_ok:
            raise OutboundRefusedError("the URL must use the standard HTTPS port 443")
        checked.append(str(address))
    return checked


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: bytes
    elapsed_ms: int


@dataclass(frozen=True)
class OutboundClient:
    """Posts to customer URLs under the rules of this module. Tests inject the resolver and
    an SSL context trusting their own certificate authority."""

    allow_loopback: bool = False
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    deadline: float = 10.0
    max_response_bytes: int = 64 * 1024
    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext = field(default_factory=ssl.create_default_context)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> OutboundResponse:
        """POST `body` to `url`; the response when its status is 2xx, else OutboundError."""
        destination = parse_destination(url, allow_loopback=self.allow_loopback)
        addresses = check_addresses(
            destination,
            self.resolver(destination.host, destination.port),
            allow_loopback=self.allow_loopback,
        )
        started = time.monotonic()
        response = self._send(destination, addresses[0], body, headers, started)
        if 300 <= response.status < 400:
            raise OutboundError(
                f"the receiver answered a redirect ({response.status}); redirects are not followed"
            )
        if not 200 <= response.status < 300:
            raise OutboundError(f"the receiver answered HTTP {response.status}")
        return response

    def _send(
        self,
        destination: Destination,
        address: str,
        body: bytes,
        headers: Mapping[str, str],
        started: float,
    ) -> OutboundResponse:
        try:
            raw = socket.create_connection((address, destination.port), self.connect_timeout)
        except TimeoutError as exc:
            raise OutboundError("the receiver did not accept the connection in time") from exc
        except OSError as exc:
            raise OutboundError("the receiver refused the connection") from exc
        try:
            raw.settimeout(self._remaining(started, self.read_timeout))
            try:
                tls = self.ssl_context.wrap_socket(raw, server_hostname=destination.host)
            except ssl.SSLCertVerificationError as exc:
                raise OutboundError("the receiver's TLS certificate was not accepted") from exc
            except (ssl.SSLError, OSError) as exc:
                raise OutboundError("the TLS handshake with the receiver failed") from exc
            connection = _PinnedConnection(destination.host, destination.port, tls)
            try:
                request_headers = {"Host": destination.host, "Connection": "close", **headers}
                connection.request("POST", destination.target, body=body, headers=request_headers)
                tls.settimeout(self._remaining(started, self.read_timeout))
                response = connection.getresponse()
                data = self._read_bounded(response, tls, started)
            except TimeoutError as exc:
                raise OutboundError("the receiver did not answer in time") from exc
            except (http.client.HTTPException, OSError) as exc:
                raise OutboundError("the receiver's answer was not valid HTTP") from exc
            finally:
                connection.close()
        finally:
            raw.close()
        elapsed = int((time.monotonic() - started) * 1000)
        return OutboundResponse(status=response.status, body=data, elapsed_ms=elapsed)

    def _remaining(self, started: float, cap: float) -> float:
        left = self.deadline - (time.monotonic() - started)
        if left <= 0:
            raise OutboundError("the receiver did not answer in time")
        return min(cap, left)

    def _read_bounded(
        self, response: http.client.HTTPResponse, sock: socket.socket, started: float
    ) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while size <= self.max_response_bytes:
            sock.settimeout(self._remaining(started, self.read_timeout))
            chunk = response.read1(min(16 * 1024, self.max_response_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)[: self.max_response_bytes]


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket we already connected (to the checked address) and
    wrapped in TLS (with the original host name)."""

    def __init__(self, host: str, port: int, sock: socket.socket) -> None:
        super().__init__(host, port)
        self.sock = sock

    def connect(self) -> None:  # the socket is given; never open another one
        raise OutboundError("the connection to the receiver was closed")
