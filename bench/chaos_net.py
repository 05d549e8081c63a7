"""Loopback TCP proxies for the chaos run: the processes reach PostgreSQL, Redis, RabbitMQ and each other through
them, so an outage is a proxy that stops listening and drops its connections — the shared services keep running.

`Proxy.cut()` closes the listener and resets every open connection (to the clients the service is gone);
`restore()` listens again on the same port. With several targets a proxy is a round-robin balancer that skips a
target it cannot reach (the load balancer in front of the `tomato serve` processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools


class Proxy:
    def __init__(self, targets: list[tuple[str, int]], port: int = 0) -> None:
        self.targets = targets
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._next = itertools.count()

    @property
    def up(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def cut(self) -> None:
        """Refuses new connections and resets the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def restore(self) -> None:
        if self._server is None:
            await self.start()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        start = next(self._next)
        for i in range(len(self.targets)):  # round robin; a target that refuses is skipped (its process is down)
            host, port = self.targets[(start + i) % len(self.targets)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            except (OSError, TimeoutError):
                continue
        return None

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._server is None:
            client_w.transport.abort()
            return
        upstream = await self._connect()
        if upstream is None or self._server is None:
            if upstream is not None:
                upstream[1].transport.abort()
            client_w.transport.abort()
            return
        server_r, server_w = upstream
        self._writers.update((client_w, server_w))
        try:
            await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
        finally:
            for w in (client_w, server_w):
                self._writers.discard(w)
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
