"""AMQP frames written in one event-loop turn go to the socket as one write.

aiormq's writer task hands every frame (a publish's method, header and body; an ack) to the socket by itself: one
`send` system call each, the largest single cost of the outbox relay (16 % of its process's CPU in the webhook bench)
and a share of the broker's, which reads one TCP segment per frame. `CoalescingTransportFactory` opens the same TCP
connection (through aiormq's own `TransportFactory` seam) with a writer that gathers the turn's frames and sends them
together just after it, so the order on the wire is unchanged and nothing waits more than that one turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
from aiormq.connection import TCPTransportFactory, TransportFactory
from yarl import URL


class CoalescingWriter:
    """A `StreamWriter` whose writes are buffered until the end of the current loop turn, or until it is closed
    (which sends what is buffered first)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Sends what this turn wrote, in order, as one write (dropped once the connection is closing)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        """The socket's own back-pressure only: aiormq drains after every publish, and sending the buffer here would
        write one frame at a time again. What is buffered goes out at the end of the turn (at most aiormq's queue of
        ten frames), and a publisher waits for the broker's confirm, not for this."""
        await self._writer.drain()

    def write_eof(self) -> None:
        self.flush()
        self._writer.write_eof()

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, transport, wait_closed, can_write_eof, …
        return getattr(self._writer, name)


class CoalescingTransportFactory(TransportFactory):
    """aiormq's plain TCP connection (TLS URLs keep aiormq's own factory) with a `CoalescingWriter`."""

    async def create(self, url: URL, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await TCPTransportFactory().create(url, **kwargs)
        return reader, CoalescingWriter(writer)  # type: ignore[return-value]  # the StreamWriter calls aiormq makes


def coalesce_writes(connection: aio_pika.Connection) -> None:
    """Makes an aio-pika connection (robust or not; before `connect`) open its sockets with coalesced writes; an
    `amqps://` URL is left to aiormq's TLS factory."""
    if URL(str(connection.url)).scheme == "amqp":
        connection.kwargs["transport_factory"] = CoalescingTransportFactory()
