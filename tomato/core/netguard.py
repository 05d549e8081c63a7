"""SSRF guard for merchant-supplied URLs (webhook `notify_url`s): no loopback, private, link-local, unspecified,
multicast or reserved addresses unless the network is allow-listed (`TOMATO_WEBHOOK_ALLOWED_NETWORKS`).

Two checks, because a name may resolve anywhere:

* `check_literal(url, allowed)` at order/refund creation: a URL whose host *is* an address (any spelling the
  resolver accepts: `127.1`, `2130706433`, `0x7f.0.0.1`, `[::ffff:127.0.0.1]`) or a `localhost` name is refused
  with `422 INVALID_REQUEST` naming `notify_url`. Other names are left to delivery time.
* At delivery time (`notice.sender`, on aiohttp) the address that was checked is the address connected to:
  - names go through `CheckedResolver`, the connector's resolver: `resolve_and_check` resolves the name once,
    refuses it when ANY address is disallowed, and hands the connector only the checked addresses, which it
    connects to as they are (no second lookup, so a rebinding DNS answer can never be the one connected to);
  - aiohttp never asks its resolver about a host that looks like an address literal, so the sender calls
    `check_host` on every URL's host first: a disallowed literal in any spelling, or something that looks like an
    address but is none, is refused before any connection.
  The URL keeps its host name, so TLS SNI, certificate checks and the Host header are unchanged. No proxy from
  the environment is ever used (a proxy would do its own resolving).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from tomato.core.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Allowed = str | Iterable[IPNetwork]

_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: internal, yet not `is_private`


class AddressNotAllowed(Exception):
    """A merchant URL resolved to an address the SSRF guard refuses."""


class HostNotFound(OSError):
    """A merchant URL's host name did not resolve (an OSError, so HTTP clients report it as a connect failure)."""


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


def check_host(host: str, allowed: Allowed) -> None:
    """Delivery-time check of a URL host that a connection layer may connect to without resolving it.

    Raises `AddressNotAllowed` for an address literal (any spelling) that is refused, and for a host that looks
    like an address (a colon, or only digits and dots) without being one; returns for names, which are left to
    `resolve_and_check` in the resolver, and for allowed literals.
    """
    address = literal_address(host)
    if address is None:
        bare = host.strip("[]")
        if ":" in bare or bare.replace(".", "").isdigit():
            raise AddressNotAllowed(f"{host} is not a valid address")
        return
    if is_disallowed(address, allowed):
        raise AddressNotAllowed(f"{host} is {address}, which is not allow-listed")


async def resolve_and_check(host: str, allowed: Allowed, port: int = 443, family: int = socket.AF_UNSPEC) -> list[str]:
    """Resolves `host` once; returns its addresses (resolver order) or raises `AddressNotAllowed` if ANY of
    them is refused (a mixed answer must not slip through on the connection attempt order), `HostNotFound` if
    it does not resolve."""
    literal = literal_address(host)
    if literal is not None:
        candidates: list[IPAddress] = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise HostNotFound(f"cannot resolve {host}: {exc}") from exc
        candidates = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in candidates:
                candidates.append(address)
    if not candidates:
        raise HostNotFound(f"{host} resolved to no address")
    refused = [str(a) for a in candidates if is_disallowed(a, allowed)]
    if refused:
        raise AddressNotAllowed(f"{host} resolves to {', '.join(refused)}, which is not allow-listed")
    return [str(a) for a in candidates]


class CheckedResolver(AbstractResolver):
    """aiohttp resolver that answers only with addresses `resolve_and_check` accepted (see the module docstring).

    The connector connects to the returned addresses as they are and may cache them for its DNS TTL; what it
    caches was checked against the same allow-list, so a cached answer is still a checked one.
    """

    def __init__(self, allowed: Allowed) -> None:
        self._allowed = _networks(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_and_check(host, self._allowed, port, family)
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _result(hostname: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV  # the connector must not look anything up again
    return ResolveResult(
        hostname=hostname, host=address, port=port, family=family, proto=socket.IPPROTO_TCP, flags=flags
    )
