"""Issue 6 acceptance 4: the SSRF guard — literal addresses at creation, resolved addresses at delivery, and the
address checked is the address connected to (through the webhook sender's aiohttp connector)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from yarl import URL

from tomato.core.errors import InvalidRequest
from tomato.core.netguard import (
    AddressNotAllowed,
    CheckedResolver,
    HostNotFound,
    check_host,
    check_literal,
    embedded_ipv4,
    is_disallowed,
    literal_address,
    normalise_host,
    resolve_and_check,
)
from tomato.notice.sender import WebhookSender

REFUSED = [
    "http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://[::1]/hook", "http://127.1/", "http://2130706433/",
    "http://0x7f000001/", "http://017700000001/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://169.254.169.254/latest/meta-data", "http://0.0.0.0:8080/", "http://192.168.1.10/", "http://172.16.0.1/",
    "http://100.64.0.1/", "http://[fe80::1]/", "http://[fc00::1]/", "http://224.0.0.1/", "http://localhost:9000/x",
    "http://api.localhost/", "https://user:pw@10.1.2.3:8443/x", "http://[::]/",
]  # fmt: skip
# Issue 16: hosts that normalise (IDNA/UTS #46, then the address parser) to a refused address, and IPv6 addresses
# that carry a refused IPv4 address (6to4, Teredo, NAT64, IPv4-compatible), plus hosts that are no host at all.
NORMALISED_REFUSED = [
    "http://１２７．０．０．１/hook", "http://①②⑦.⓪.⓪.①/hook", "http://127。0。0。1/hook", "http://127．0｡0。1/",
    "http://127.0.0.1./hook", "http://0x7f.1./", "http://①⑥⑨.②⑤④.①⑥⑨.②⑤④/latest/meta-data",
    "http://１０．０．０．１:8080/", "http://ｌｏｃａｌｈｏｓｔ/", "http://localhost./", "http://LOCALHOST/",
    "http://[2002:a9fe:a9fe::]/", "http://[2002:7f00:1::1]/", "http://[2002:c0a8:101::]/", "http://[2002:0a00:1::]/",
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b:1::a00:1]/", "http://[::7f00:1]/", "http://[::a9fe:a9fe]/", "http://1.2.3.4.5/",
    "http://%31%32%37.0.0.1/",
]  # fmt: skip
ACCEPTED = ["https://shop.example.com/hooks", "http://8.8.8.8/x", "https://[2606:4700::1111]/x", "http://1.1.1.1:81/"]


@pytest.mark.parametrize("url", REFUSED)
def test_literal_private_addresses_are_refused_naming_notify_url(url: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        check_literal(url, "")
    assert err.value.status == 422 and err.value.details == [
        {"field": "notify_url", "issue": err.value.details[0]["issue"]}
    ]


@pytest.mark.parametrize("url", NORMALISED_REFUSED)
def test_hosts_normalising_to_refused_addresses_are_refused_at_creation(url: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        check_literal(url, "")
    assert err.value.status == 422 and [d["field"] for d in err.value.details or []] == ["notify_url"]


@pytest.mark.parametrize("url", REFUSED + NORMALISED_REFUSED + ACCEPTED + ["https://münchen.example/x"])
def test_creation_and_delivery_decide_alike(url: str) -> None:
    """One rule behind both: the host the sender parses out of a URL is refused at delivery iff creation refused
    the URL."""
    try:
        check_literal(url, "")
        refused_at_creation = False
    except InvalidRequest:
        refused_at_creation = True
    try:
        check_host(URL(url).raw_host or "", "")
        refused_at_delivery = False
    except AddressNotAllowed:
        refused_at_delivery = True
    assert refused_at_creation == refused_at_delivery == (url not in ACCEPTED and "münchen" not in url)


def test_hosts_are_normalised_as_the_resolver_sees_them() -> None:
    assert normalise_host("１２７．０．０．１") == "127.0.0.1"
    assert normalise_host("①②⑦。⓪。⓪。①") == "127.0.0.1"
    assert normalise_host("Shop.Example.COM.") == "shop.example.com"
    assert normalise_host("[2002:A9FE:A9FE::]") == "2002:a9fe:a9fe::"
    assert normalise_host("münchen.example") == "xn--mnchen-3ya.example"
    for bad in ("127.0.0.1\x00", "a b", "%31.0.0.1", "evil\u202e.example"):
        with pytest.raises(ValueError):
            normalise_host(bad)
    assert str(literal_address("１２７．１")) == "127.0.0.1" and str(literal_address("127.0.0.1.")) == "127.0.0.1"


def test_the_ipv4_address_inside_an_ipv6_address() -> None:
    def inner(text: str) -> str | None:
        address = literal_address(text)
        assert isinstance(address, ipaddress.IPv6Address)
        found = embedded_ipv4(address)
        return None if found is None else str(found)

    assert inner("::ffff:10.0.0.1") == "10.0.0.1"  # IPv4-mapped
    assert inner("::7f00:1") == "127.0.0.1"  # IPv4-compatible
    assert inner("2002:a9fe:a9fe::1") == "169.254.169.254"  # 6to4
    assert inner("2001:0:4136:e378:8000:63bf:f5ff:fffe") == "10.0.0.1"  # Teredo: the client, stored inverted
    assert inner("64:ff9b::c0a8:101") == "192.168.1.1"  # NAT64
    assert inner("::1") is None and inner("::") is None and inner("2606:4700::1111") is None


def test_an_embedded_address_must_be_allowed_itself() -> None:
    dev = "127.0.0.0/8,::1/128"
    assert not is_disallowed(ipaddress.ip_address("::1"), dev)  # ::1 is loopback, not IPv4-compatible 0.0.0.1
    assert not is_disallowed(ipaddress.ip_address("::ffff:127.0.0.1"), dev)
    assert is_disallowed(ipaddress.ip_address("2002:a9fe:a9fe::"), dev)
    assert is_disallowed(ipaddress.ip_address("64:ff9b::7f00:1"), "127.0.0.0/8")  # the NAT64 prefix is not allowed


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_addresses_and_names_pass_at_creation(url: str) -> None:
    check_literal(url, "")


def test_allow_listed_networks_pass() -> None:
    check_literal("http://127.0.0.1:8000/hook", "127.0.0.0/8,::1/128")
    check_literal("http://[::1]:8000/hook", "127.0.0.0/8,::1/128")
    check_literal("http://localhost:8000/hook", "127.0.0.0/8")
    check_literal("http://10.0.0.1/", "10.0.0.0/24")
    with pytest.raises(InvalidRequest):
        check_literal("http://10.0.1.1/", "10.0.0.0/24")
    with pytest.raises(InvalidRequest):
        check_literal("http://[::ffff:10.0.1.1]/", "10.0.0.0/24")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///nohost", "notaurl", "http://h:99999/"])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        check_literal(url, "")


def test_literal_address_spellings() -> None:
    assert str(literal_address("127.1")) == "127.0.0.1"
    assert str(literal_address("0x7f.1")) == "127.0.0.1"
    assert literal_address("example.com") is None and literal_address("cafe") is None


# --- delivery time: resolve once, refuse if any answer is private, connect to what was checked ----------------


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """A fake resolver: name → addresses; records every lookup."""
    table: dict[str, list[str]] = {}
    calls: list[str] = []
    table["__calls__"] = calls

    async def getaddrinfo(self: Any, host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        out = []
        for ip in table[host]:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            out.append((family, socket.SOCK_STREAM, 6, "", (ip, port)))
        return out

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    yield table


async def test_a_name_resolving_to_a_private_address_is_refused(dns: dict[str, list[str]]) -> None:
    dns["intranet.example"] = ["10.0.0.7"]
    dns["mixed.example"] = ["93.184.216.34", "127.0.0.1"]
    dns["public.example"] = ["93.184.216.34", "2606:2800:220:1::1"]
    with pytest.raises(AddressNotAllowed):
        await resolve_and_check("intranet.example", "")
    with pytest.raises(AddressNotAllowed):
        await resolve_and_check("mixed.example", "")  # any refused answer refuses the name
    assert await resolve_and_check("public.example", "") == ["93.184.216.34", "2606:2800:220:1::1"]
    assert await resolve_and_check("intranet.example", "10.0.0.0/8") == ["10.0.0.7"]
    with pytest.raises(HostNotFound):
        await resolve_and_check("nowhere.example", "")


@pytest.fixture
async def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a socket is connected to (the event loop call under aiohttp's connector)."""
    seen: list[str] = []
    loop_type = type(asyncio.get_running_loop())
    real = loop_type.sock_connect

    async def sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
        seen.append(str(address[0]))
        await real(self, sock, address)

    monkeypatch.setattr(loop_type, "sock_connect", sock_connect)
    return seen


@pytest.fixture
async def local_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], heads
    server.close()


async def test_the_resolver_answers_only_with_checked_addresses(dns: dict[str, list[str]]) -> None:
    dns["merchant.test"] = ["127.0.0.1", "::1"]
    dns["mixed.test"] = ["93.184.216.34", "10.0.0.1"]
    answer = await CheckedResolver("127.0.0.0/8,::1/128").resolve("merchant.test", 8443)
    assert [(a["host"], a["port"], a["family"], a["hostname"]) for a in answer] == [
        ("127.0.0.1", 8443, socket.AF_INET, "merchant.test"), ("::1", 8443, socket.AF_INET6, "merchant.test")
    ]  # fmt: skip
    with pytest.raises(AddressNotAllowed):
        await CheckedResolver("").resolve("mixed.test", 443)


async def test_the_connection_goes_to_the_checked_address_with_the_host_header_kept(
    dns: dict[str, list[str]], connects: list[str], local_server: tuple[int, list[bytes]]
) -> None:
    port, heads = local_server
    dns["merchant.test"] = ["127.0.0.1"]
    sender = WebhookSender("127.0.0.0/8")
    outcome = await sender.post(f"http://merchant.test:{port}/hook", b"{}", {})
    dns["merchant.test"] = ["10.0.0.1"]  # rebinding: the next lookup would answer a refused address
    again = await sender.post(f"http://merchant.test:{port}/hook", b"{}", {})  # the server closed: new connection
    await sender.aclose()
    assert outcome.http_status == 204 and outcome.succeeded
    assert connects == ["127.0.0.1", "127.0.0.1"]  # the checked address, never the name (no second lookup)
    assert dns["__calls__"] == ["merchant.test"]  # the second connection reused the checked, cached answer
    assert again.succeeded and all(f"Host: merchant.test:{port}".encode() in h for h in heads)


async def test_dns_rebinding_to_a_private_address_never_connects(
    dns: dict[str, list[str]], connects: list[str]
) -> None:
    dns["rebind.test"] = ["10.0.0.1"]
    dns["mixed.test"] = ["93.184.216.34", "127.0.0.1"]
    sender = WebhookSender("")
    outcomes = [await sender.post(f"http://{host}/hook", b"{}", {}) for host in ("rebind.test", "mixed.test")]
    await sender.aclose()
    assert [o.error_class for o in outcomes] == ["AddressNotAllowed"] * 2
    assert connects == []


async def test_loopback_literals_and_names_never_connect(dns: dict[str, list[str]], connects: list[str]) -> None:
    dns["localhost"] = ["127.0.0.1", "::1"]
    sender = WebhookSender("")
    urls = ("http://127.0.0.1:1/x", "http://[::1]:1/x", "http://localhost:1/x", "http://10.0.0.1:1/x", "http://127.1:1/x",
            "http://0x7f000001:1/x", "http://[::ffff:7f00:1]:1/x", "http://169.254.169.254/x")  # fmt: skip
    outcomes = [await sender.post(url, b"{}", {}) for url in urls]
    await sender.aclose()
    assert [o.error_class for o in outcomes] == ["AddressNotAllowed"] * len(urls)
    assert connects == []


async def test_normalised_and_embedded_addresses_never_connect(dns: dict[str, list[str]], connects: list[str]) -> None:
    dns["six.test"] = ["2002:a9fe:a9fe::"]  # a name whose AAAA answer is 6to4 of the metadata address
    sender = WebhookSender("")
    urls = ("http://１２７．０．０．１:1/x", "http://127.0.0.1.:1/x", "http://[2002:7f00:1::]:1/x",
            "http://[64:ff9b::a9fe:a9fe]/x", "http://six.test/x")  # fmt: skip
    outcomes = [await sender.post(url, b"{}", {}) for url in urls]
    await sender.aclose()
    assert [o.error_class for o in outcomes] == ["AddressNotAllowed"] * len(urls)
    assert connects == []


def test_check_host_refuses_literals_and_leaves_names_to_the_resolver() -> None:
    for host in ("127.0.0.1", "2130706433", "0x7f.1", "::ffff:127.0.0.1", "[fe80::1]", "1.2.3.4.5", "1:2:3",
                 "localhost", "127.0.0.1.", "１２７．０．０．１", "2002:a9fe:a9fe::", "127.0.0.1\x00"):  # fmt: skip
        with pytest.raises(AddressNotAllowed):
            check_host(host, "")
    for host in ("8.8.8.8", "shop.example.com", "2606:4700::1111"):
        check_host(host, "")  # names are checked when resolved
    check_host("127.0.0.1", "127.0.0.0/8")
    check_host("localhost", "127.0.0.0/8")  # then resolved, and every answer checked
