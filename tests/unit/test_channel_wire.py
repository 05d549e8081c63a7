"""`channel/wire.py` on real loopback sockets: how answers are framed, when a keep-alive connection is reused or
dropped, and the pool's limit — the cases the transport tests (test_channel_http_transport.py) do not reach."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.unit.test_channel_http_transport import read_request, response, serving
from tomato.channel.http import transport_result
from tomato.channel.protocol import ErrorClass
from tomato.channel.wire import Timeouts, WireClient

LIMITS = Timeouts(pool=2.0, connect=2.0, read=2.0)


async def test_chunked_and_close_delimited_answers_are_read_whole() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-the-end",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        answer = answers.pop(0)
        writer.write(answer)
        await writer.drain()
        if b"close" in answer:
            writer.close()
            return
        await read_request(reader)  # the chunked answer left the connection usable: the next request comes here
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()

    client = WireClient()
    async with serving(handler) as base:
        first = await client.request("POST", base + "/a", b"x", [], LIMITS)
        second = await client.request("POST", base + "/b", b"y", [], LIMITS)
    await client.aclose()
    assert (first.status_code, first.content) == (200, b"abcdefg")
    assert (second.status_code, second.content) == (200, b"until-the-end")


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    peers: list[object] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        peers.append(writer.get_extra_info("peername"))
        writer.write(response("200 OK", b"ok"))
        await writer.drain()
        writer.close()  # keep-alive promised, then closed while the client holds it idle

    client = WireClient()
    async with serving(handler) as base:
        await client.request("POST", base + "/", b"1", [], LIMITS)
        for _ in range(100):  # wait until the client has seen the close
            if all(c.closed for o in client._origins.values() for c in o.idle):
                break
            await asyncio.sleep(0.01)
        second = await client.request("POST", base + "/", b"2", [], LIMITS)
    await client.aclose()
    assert second.content == b"ok" and len(set(peers)) == 2


async def test_no_more_connections_than_the_limit_and_a_pool_timeout_is_never_sent() -> None:
    open_now, most, reading = 0, 0, 0
    release, both_busy = asyncio.Event(), asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most, reading
        open_now += 1
        most = max(most, open_now)
        try:
            while True:
                try:
                    await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                reading += 1
                if reading == 2:
                    both_busy.set()
                await release.wait()
                writer.write(response("200 OK", b"ok"))
                await writer.drain()
        finally:
            open_now -= 1
            writer.close()

    client = WireClient(max_connections=2)
    async with serving(handler) as base:
        calls = [asyncio.create_task(client.request("POST", base + "/", b"x", [], LIMITS)) for _ in range(5)]
        await both_busy.wait()  # both connections hold a request the server has not answered
        starved = Timeouts(pool=0.05, connect=2.0, read=2.0)
        with pytest.raises(httpx.PoolTimeout) as caught:
            await client.request("POST", base + "/", b"x", [], starved)
        release.set()
        answers = await asyncio.gather(*calls)
        await client.aclose()
    assert [a.content for a in answers] == [b"ok"] * 5
    assert most == 2
    assert transport_result(caught.value).error is ErrorClass.CONNECT


async def test_a_malformed_answer_is_a_protocol_error_and_the_connection_is_dropped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 abc nonsense\r\n\r\n")
        await writer.drain()

    client = WireClient()
    async with serving(handler) as base:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await client.request("POST", base + "/", b"x", [], LIMITS)
        assert all(not o.idle for o in client._origins.values())
    await client.aclose()
    assert transport_result(caught.value).error is ErrorClass.SERVER


async def test_a_cancelled_exchange_drops_its_connection() -> None:
    got = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        got.set()
        await asyncio.sleep(30)

    client = WireClient()
    async with serving(handler) as base:
        call = asyncio.create_task(client.request("POST", base + "/", b"x", [], LIMITS))
        await got.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert all(not o.idle for o in client._origins.values())  # its late answer could reach the next caller
    await client.aclose()


async def test_headers_with_line_breaks_are_refused_before_anything_is_sent() -> None:
    client = WireClient()
    with pytest.raises(ValueError):
        await client.request("POST", "http://127.0.0.1:9/", b"x", [("X-A", "1\r\nX-B: 2")], LIMITS)
    with pytest.raises(httpx.UnsupportedProtocol):
        await client.request("POST", "ftp://127.0.0.1/", b"x", [], LIMITS)
