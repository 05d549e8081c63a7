"""core.amqp_writes: the AMQP frames written in one loop turn reach the socket as one write, in order, a drain
between them does not split them, and a close sends what is buffered first."""

from __future__ import annotations

import asyncio

from tomato.core.amqp_writes import CoalescingWriter


async def _pair() -> tuple[asyncio.StreamWriter, list[bytes], asyncio.Server]:
    """A real loopback connection; what the server side reads, chunk by chunk as the socket delivers it."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.append(chunk)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    return writer, received, server


class _Counting:
    """Counts the writes the coalescing writer makes on the real StreamWriter."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.inner, self.writes = writer, 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.inner.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def _until(condition: object) -> None:
    async with asyncio.timeout(5):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.001)  # polling the socket's far end


async def test_frames_of_one_turn_go_out_as_one_write_in_order() -> None:
    writer, received, server = await _pair()
    counting = _Counting(writer)
    coalescing = CoalescingWriter(counting)  # type: ignore[arg-type]
    try:
        for n in range(50):
            coalescing.write(b"frame%02d;" % n)
        assert counting.writes == 0  # nothing leaves before the turn ends
        await asyncio.sleep(0)
        assert counting.writes == 1
        expected = b"".join(b"frame%02d;" % n for n in range(50))
        await _until(lambda: b"".join(received) == expected)
        coalescing.write(b"next")
        await asyncio.sleep(0)
        assert counting.writes == 2
        await _until(lambda: b"".join(received) == expected + b"next")
    finally:
        coalescing.close()
        server.close()
        await server.wait_closed()


async def test_a_drain_between_frames_keeps_them_together_and_close_sends_what_is_buffered() -> None:
    writer, received, server = await _pair()
    counting = _Counting(writer)
    coalescing = CoalescingWriter(counting)  # type: ignore[arg-type]
    try:
        coalescing.write(b"a")
        await coalescing.drain()  # aiormq drains after every publish: the frames still leave together
        coalescing.write(b"b")
        await asyncio.sleep(0)
        assert counting.writes == 1
        coalescing.write(b"c")
        coalescing.close()  # a Close frame written just before closing still goes out
        await coalescing.wait_closed()
        await _until(lambda: b"".join(received) == b"abc")
        coalescing.write(b"late")
        await asyncio.sleep(0)  # written after the close: dropped, no error
        assert b"".join(received) == b"abc"
    finally:
        server.close()
        await server.wait_closed()
