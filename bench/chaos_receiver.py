"""The merchant's webhook endpoint in the chaos run: records every delivery (event id → the SHA-256 of each body
it came with) and, while `flaky_until` lies ahead, answers 500 to a share of them so the platform has to retry."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time


class Receiver:
    def __init__(self, seed: int, fail_share: float = 0.3) -> None:
        self.bodies: dict[str, set[str]] = {}  # event id → distinct body hashes seen
        self.deliveries = 0
        self.times: list[float] = []  # monotonic time of each delivery answered 200
        self.refused = 0
        self.flaky_until = 0.0
        self.fail_share = fail_share
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def record(self, event_id: str, body: bytes) -> None:
        self.bodies.setdefault(event_id, set()).add(hashlib.sha256(body).hexdigest())
        self.deliveries += 1
        self.times.append(time.monotonic())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, event_id = 0, ""
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    name = key.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"tomato-event-id":
                        event_id = value.strip().decode()
                body = await reader.readexactly(length)
                status = 200
                if time.monotonic() < self.flaky_until and self._rng.random() < self.fail_share:
                    status = 500
                    self.refused += 1
                elif event_id:
                    self.record(event_id, body)
                reason = b"OK" if status == 200 else b"Internal Server Error"
                head_out = b"HTTP/1.1 %d %s\r\nContent-Length: 2\r\n\r\nok" % (status, reason)
                writer.write(head_out)
                await writer.drain()
        writer.transport.abort()
