"""SSRF guard for merchant-supplied URLs (webhook `notify_url`s): no loopback, private, link-local, unspecified,
multicast or reserved addresses unless the network is allow-listed (`TOMATO_WEBHOOK_ALLOWED_NETWORKS`).

Two checks, because a name may resolve anywhere:

* `check_literal(url, allowed)` at order/refund creation: a URL whose host *is* an address (any spelling the
  resolver accepts: `127.1`, `2130706433`, `0x7f.0.0.1`, `[::ffff:127.0.0.1]`) or a `localhost` name is refused
  with `422 INVALID_REQUEST` naming `notify_url`. Other names are left to delivery time.
* `resolve_and_check(host, allowed)` at delivery time: resolves the name once and refuses when ANY address is
  disallowed. `PinnedBackend` (an httpcore network backend) calls it inside `connect_tcp` and connects to the
  address it just checked, so a second DNS answer (rebinding) can never be the one connected to. The URL keeps
  its host name, so TLS SNI, certificate checks and the Host header are unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from tomato.core.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Allowed = str | Iterable[IPNetwork]

_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: internal, yet not `is_private`


class AddressNotAllowed(Exception):
    """A merchant URL resolved to an address the SSRF guard refuses."""


@functools.lru_cache(maxsize=32)
def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"127.0.0.0/8, ::1/128"` → networks; a bare address is a /32 or /128."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip())


def _networks(allowed: Allowed) -> tuple[IPNetwork, ...]:
    return parse_networks(allowed) if isinstance(allowed, str) else tuple(allowed)


def is_disallowed(address: IPAddress, allowed: Allowed = ()) -> bool:
    """True for loopback/private/link-local/unspecified/multicast/reserved addresses outside `allowed`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == n.version and address in n for n in _networks(allowed)):
        return False
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or (address.version == 4 and address in _SHARED_SPACE)
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host string denotes by itself (no DNS), in any form `getaddrinfo` would accept."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host.lower()):
        try:  # legacy inet_aton spellings: 127.1, 2130706433, 0x7f000001, 017700000001
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_literal(url: str, allowed_networks: Allowed) -> None:
    """Raises `InvalidRequest` (field `notify_url`) for a URL that names a refused address or `localhost`.

    Names other than localhost are not resolved here (DNS can change); delivery re-checks after resolving.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # a malformed port raises ValueError
    except ValueError as exc:
        raise InvalidRequest.field("notify_url", "is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidRequest.field("notify_url", "must be an http(s) URL with a host")
    address = literal_address(host)
    if address is None and (host == "localhost" or host.endswith(".localhost")):
        address = ipaddress.ip_address("127.0.0.1")
    if address is not None and is_disallowed(address, allowed_networks):
        raise InvalidRequest.field(
            "notify_url", "resolves to a loopback, private or link-local address that is not allow-listed"
        )


async def resolve_and_check(host: str, allowed: Allowed, port: int = 443) -> list[str]:
    """Resolves `host` once; returns its addresses (resolver order) or raises `AddressNotAllowed` if ANY of
    them is refused (a mixed answer must not slip through on the connection attempt order)."""
    literal = literal_address(host)
    if literal is not None:
        candidates: list[IPAddress] = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        candidates = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in candidates:
                candidates.append(address)
    if not candidates:
        raise httpcore.ConnectError(f"{host} resolved to no address")
    refused = [str(a) for a in candidates if is_disallowed(a, allowed)]
    if refused:
        raise AddressNotAllowed(f"{host} resolves to {', '.join(refused)}, which is not allow-listed")
    return [str(a) for a in candidates]


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks in `connect_tcp`, then connects to the checked address itself (no second lookup)."""

    def __init__(self, allowed: Allowed, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._allowed = _networks(allowed)
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await resolve_and_check(host, self._allowed, port):
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed("unix sockets are never a merchant endpoint")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through `PinnedBackend`; never uses proxies from the
    environment (a proxy would do its own resolving)."""

    def __init__(
        self, allowed: Allowed, *, max_connections: int = 8, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(trust_env=False)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # httpx exposes no network-backend option, so the pool it built is replaced by an equivalent one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(allowed),
        )
