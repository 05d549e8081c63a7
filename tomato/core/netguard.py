"""SSRF guard for merchant-supplied URLs (webhook `notify_url`s): no loopback, private, link-local, unspecified,
multicast or reserved addresses unless the network is allow-listed (`TOMATO_WEBHOOK_ALLOWED_NETWORKS`).

One rule, `host_refusal(host, allowed)`, decides for a URL host at creation and at delivery alike. It first
normalises the host the way the HTTP client and the resolver will see it (`normalise_host`: IDNA with the UTS #46
mapping, so full-width or circled digits and ideographic full stops become ASCII; lower case; one trailing dot
dropped), then reads it as an address in any spelling the resolver accepts (`literal_address`: `127.1`,
`2130706433`, `0x7f.0.0.1`, `[::ffff:127.0.0.1]`), and checks an IPv6 address together with the IPv4 address it
embeds (`embedded_ipv4`: IPv4-mapped and -compatible, 6to4, Teredo, NAT64).

* `check_literal(url, allowed)` at order/refund/app creation: a URL whose host is a refused address (or a
  `localhost` name, or something that looks like an address without being one) is refused with
  `422 INVALID_REQUEST` naming `notify_url`. The URL is parsed as the webhook sender parses it (yarl). Other names
  are left to delivery time.
* At delivery time (`notice.sender`, on aiohttp) the address that was checked is the address connected to:
  - names go through `CheckedResolver`, the connector's resolver: `resolve_and_check` resolves the name once,
    refuses it when ANY address is disallowed, and hands the connector only the checked addresses, which it
    connects to as they are (no second lookup, so a rebinding DNS answer can never be the one connected to);
  - aiohttp never asks its resolver about a host that looks like an address literal, so the sender calls
    `check_host` (the same `host_refusal`) on every URL's host first.
  The URL keeps its host name, so TLS SNI, certificate checks and the Host header are unchanged. No proxy from
  the environment is ever used (a proxy would do its own resolving).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable

import idna
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from tomato.core.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Allowed = str | Iterable[IPNetwork]

_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: internal, yet not `is_private`
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use translation: internal by definition
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses (::a.b.c.d)
_NAME = re.compile(r"[a-z0-9_.-]+")  # what a host name is made of once IDNA-encoded
_LEGACY_V4 = re.compile(r"[0-9a-fx.]+")  # inet_aton's spellings: 127.1, 2130706433, 0x7f000001, 017700000001
_LOOKS_NUMERIC = re.compile(r"[0-9.]+")


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


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, which is where its packets end up: IPv4-mapped and -compatible,
    6to4 (2002::/16), Teredo (2001::/32, the client's address, stored inverted) and NAT64 (64:ff9b::/96)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):  # :: and ::1 are not IPv4-compatible
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _internal(address: IPAddress) -> bool:
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or (address.version == 4 and address in _SHARED_SPACE)
        or (address.version == 6 and address in _LOCAL_NAT64)
    )


def is_disallowed(address: IPAddress, allowed: Allowed = ()) -> bool:
    """True when the address, or the IPv4 address it embeds, is loopback/private/link-local/unspecified/
    multicast/reserved and outside `allowed` (both must be allowed when both are internal). An IPv4-mapped address
    is that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    views: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)) is not None:
        views.append(inner)
    networks = _networks(allowed)
    return any(_internal(view) and not any(view.version == n.version and view in n for n in networks) for view in views)


def normalise_host(host: str) -> str:
    """The host as the HTTP client hands it to the resolver: brackets dropped, IDNA-encoded with the UTS #46
    mapping (full-width and circled digits, ideographic full stops → ASCII; as yarl does, with the standard
    library's IDNA 2003 codec as the fallback), lower case, one trailing dot dropped (`127.0.0.1.` is 127.0.0.1).

    Raises ValueError for a host that IDNA cannot encode or that holds anything but name or address characters.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise ValueError(f"{host!r} is not a valid host name") from exc
    host = host.lower()
    if ":" in host:  # an IPv6 literal (its zone may hold other characters; the address parser judges it)
        return host
    if len(host) > 1 and host.endswith("."):
        host = host[:-1]
    if not _NAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a valid host name")
    return host


def literal_address(host: str) -> IPAddress | None:
    """The address a host string denotes by itself (no DNS), after `normalise_host`, in any form `getaddrinfo`
    would accept; None for a name (or for a host that is not valid at all)."""
    try:
        host = normalise_host(host)
    except ValueError:
        return None
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_V4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def host_refusal(host: str, allowed: Allowed) -> str | None:
    """Why a URL host must not be a webhook target, or None when it may be: the one check behind creation
    (`check_literal`) and delivery (`check_host`).

    Refused: a host that is not valid; an address literal (any spelling, after normalisation) that is refused;
    something that looks like an address without being one (a colon, or only digits and dots); a `localhost`
    name while loopback is not allowed. Other names pass here and are checked when resolved.
    """
    try:
        name = normalise_host(host)
    except ValueError:
        return "is not a valid host name"
    address = literal_address(name)
    if address is None:
        if ":" in name or _LOOKS_NUMERIC.fullmatch(name):
            return "is not a valid address"
        if name != "localhost" and not name.endswith(".localhost"):
            return None
        address = ipaddress.IPv4Address("127.0.0.1")  # RFC 6761: always loopback
    if is_disallowed(address, allowed):
        return f"is {address}, a loopback, private or link-local address that is not allow-listed"
    return None


def check_literal(url: str, allowed_networks: Allowed, field: str = "notify_url") -> None:
    """Raises `InvalidRequest` naming `field` for a URL that is not http(s) with a host, or whose host
    `host_refusal` refuses. Names other than localhost are not resolved here (DNS can change); delivery re-checks
    after resolving."""
    try:
        parsed = URL(url)
        _ = parsed.port  # a malformed port raises ValueError
    except (ValueError, TypeError) as exc:
        raise InvalidRequest.field(field, "is not a valid URL") from exc
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise InvalidRequest.field(field, "must be an http(s) URL with a host")
    why = host_refusal(parsed.raw_host, allowed_networks)
    if why is not None:
        raise InvalidRequest.field(field, f"host {why}")


def check_host(host: str, allowed: Allowed) -> None:
    """Delivery-time check of a URL host that a connection layer may connect to without resolving it.

    Raises `AddressNotAllowed` for what `host_refusal` refuses; returns for names, which are left to
    `resolve_and_check` in the resolver, and for allowed literals.
    """
    why = host_refusal(host, allowed)
    if why is not None:
        raise AddressNotAllowed(f"{host} {why}")


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
