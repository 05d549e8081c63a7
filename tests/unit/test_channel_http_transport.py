"""The production channel transport (`wire.py` under httpx) against real loopback sockets: what reaches the wire,
what comes back, and which httpx error each failure becomes — the adapters' "not sent" vs "unknown" hinges on it."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from tomato.channel.http import WireTransport, guarded_client, transport_result
from tomato.channel.protocol import ErrorClass, ResultStatus
from tomato.core.errors import HttpInsideTransaction

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0], headers, body


def response(status: str, body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_request_and_response_cross_the_wire_unchanged() -> None:
    seen: list[tuple[str, dict[str, str], bytes, object]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                line, headers, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append((line, headers, body, writer.get_extra_info("peername")))
            writer.write(response("201 Created", b'{"ok":true}', "X-Trace: a\r\nX-Trace: b\r\n"))
            await writer.drain()
        writer.close()

    async with serving(handler) as base, guarded_client(2.0) as client:
        first = await client.post(base + "/gateway.do?charset=utf-8&x=%E4%B8%AD", content=b"a=1&b=%20",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        second = await client.get(base + "/v3/pay/transactions/out-trade-no/P1?mchid=1",
                                  headers={"Authorization": "WECHATPAY2-SHA256-RSA2048 x"})
    assert first.status_code == 201 and first.json() == {"ok": True}
    assert first.headers.get_list("x-trace") == ["a", "b"]
    line, headers, body, peer = seen[0]
    assert line == "POST /gateway.do?charset=utf-8&x=%E4%B8%AD HTTP/1.1"  # the query string is not re-quoted
    assert body == b"a=1&b=%20" and headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["host"] == base.removeprefix("http://")
    line2, headers2, body2, peer2 = seen[1]
    assert line2 == "GET /v3/pay/transactions/out-trade-no/P1?mchid=1 HTTP/1.1" and body2 == b""
    assert headers2["authorization"] == "WECHATPAY2-SHA256-RSA2048 x"
    assert second.status_code == 201
    assert peer2 == peer  # the keep-alive connection was reused


async def test_compressed_bodies_are_decoded_once() -> None:
    payload = json.dumps({"alipay_trade_precreate_response": {"code": "10000"}}).encode()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response("200 OK", gzip.compress(payload), "Content-Encoding: gzip\r\n"))
        await writer.drain()
        writer.close()

    async with serving(handler) as base, guarded_client(2.0) as client:
        r = await client.post(base + "/", content=b"x")
    assert r.content == payload


async def test_refused_connection_is_a_connect_error_never_sent() -> None:
    async with serving(lambda r, w: asyncio.sleep(0)) as base:
        pass  # the port is closed again: nothing listens there now
    async with guarded_client(2.0) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.post(base + "/", content=b"x")
    assert transport_result(caught.value).error is ErrorClass.CONNECT


async def test_no_answer_is_a_read_timeout_outcome_unknown() -> None:
    got_request = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        got_request.set()
        await asyncio.sleep(30)

    async with serving(handler) as base, guarded_client(0.3) as client:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await client.post(base + "/", content=b"x")
    assert got_request.is_set()
    result = transport_result(caught.value)
    assert result.status is ResultStatus.UNKNOWN and result.error is ErrorClass.TIMEOUT


async def test_connection_dropped_after_the_request_is_unknown_not_a_connect_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()  # the channel may have acted on it

    async with serving(handler) as base, guarded_client(2.0) as client:
        with pytest.raises(httpx.TransportError) as caught:
            await client.post(base + "/", content=b"x")
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert transport_result(caught.value).error is ErrorClass.SERVER


async def test_guarded_client_defaults_to_the_wire_and_refuses_inside_a_unit_of_work() -> None:
    from tomato.core import db as core_db

    async with guarded_client(1.0) as client:
        assert isinstance(client._transport, WireTransport)
        token = core_db._in_transaction.set(True)
        try:
            with pytest.raises(HttpInsideTransaction):
                await client.get("http://127.0.0.1:9/")
        finally:
            core_db._in_transaction.reset(token)


async def test_send_bytes_puts_the_same_request_on_the_wire_as_httpx_and_decodes_the_answer() -> None:
    from tomato.channel.http import ChannelClient, send_bytes

    seen: list[tuple[str, dict[str, str], bytes]] = []
    payload = b'{"ok":true}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(response("200 OK", gzip.compress(payload), "Content-Encoding: gzip\r\n"))
            await writer.drain()
        writer.close()

    url_tail = "/gateway.do?charset=utf-8&x=%E4%B8%AD"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with serving(handler) as base, guarded_client(2.0) as client:
        assert isinstance(client, ChannelClient) and client.fast is not None
        via_httpx = await client.post(base + url_tail, content=b"a=1&b=%20", headers=form)
        raw = await send_bytes(client, "POST", base + url_tail, b"a=1&b=%20", form)
    assert raw.status_code == 200 and raw.content == payload == via_httpx.content
    (line1, headers1, body1), (line2, headers2, body2) = seen
    assert line1 == line2 == "POST /gateway.do?charset=utf-8&x=%E4%B8%AD HTTP/1.1"
    assert body1 == body2 == b"a=1&b=%20"
    assert headers1 == headers2  # Host, Accept, Accept-Encoding, Connection, User-Agent, Content-*: all the same


async def test_send_bytes_fails_as_httpx_does_and_not_inside_a_unit_of_work() -> None:
    from tomato.channel.http import send_bytes
    from tomato.core import db as core_db

    async with serving(lambda r, w: asyncio.sleep(0)) as base:
        pass
    async with guarded_client(2.0) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await send_bytes(client, "POST", base + "/", b"x", {})
        assert transport_result(caught.value).error is ErrorClass.CONNECT
        token = core_db._in_transaction.set(True)
        try:
            with pytest.raises(HttpInsideTransaction):
                await send_bytes(client, "POST", base + "/", b"x", {})
        finally:
            core_db._in_transaction.reset(token)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with serving(silent) as base, guarded_client(0.3) as client:
        with pytest.raises(httpx.ReadTimeout) as timed_out:
            await send_bytes(client, "POST", base + "/", b"x", {})
    assert transport_result(timed_out.value).error is ErrorClass.TIMEOUT


async def test_a_streamed_body_goes_whole_with_its_length() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(response("200 OK", b"ok"))
        await writer.drain()
        writer.close()

    async def parts() -> AsyncIterator[bytes]:
        yield b"a=1&"
        yield b"b=2"

    async with serving(handler) as base, guarded_client(2.0) as client:
        r = await client.post(base + "/", content=parts())
    assert r.content == b"ok"
    (_, headers, body), = seen
    assert body == b"a=1&b=2" and headers["content-length"] == "7" and "transfer-encoding" not in headers
