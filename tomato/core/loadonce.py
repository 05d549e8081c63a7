"""Per-process snapshots with a TTL that are loaded once at a time: concurrent misses share the load in flight.

Without it every request that arrives while a snapshot reloads starts a reload of its own: under load (32 requests
in flight, a reload of a few ms behind them) one expiry costs dozens of identical reads, which is where the app and
routing snapshots' cost went (bench/query.py). `drop`/`clear` invalidate at once, as the plain dicts did: a load
already in flight then neither serves later callers nor fills the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LoadOnce(Generic[K, V]):
    def __init__(self, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._generation = 0  # bumped by every invalidation

    async def get(self, key: K, load: Callable[[], Awaitable[V]], *, fresh: bool = False) -> V:
        """The cached value while younger than the TTL, else the load in flight for `key`, else a new load.
        `fresh`: a load of its own (it fills the cache too), never a cached or shared value."""
        if not fresh:
            hit = self._values.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            task = self._loading.get(key)
            if task is None:
                task = self._loading[key] = self._start(key, load)
        else:
            task = self._start(key, load)
        # shielded: a caller cancelled while waiting leaves the load to finish for the others
        return await asyncio.shield(task)

    def _start(self, key: K, load: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        generation = self._generation

        async def run() -> V:
            value = await load()
            if self._generation == generation:
                self._values[key] = (time.monotonic() + self._ttl, value)
            return value

        task = asyncio.get_running_loop().create_task(run())

        def done(t: asyncio.Task[V]) -> None:
            if self._loading.get(key) is t:
                del self._loading[key]
            if not t.cancelled():
                t.exception()  # retrieved: every waiter got it already, or nobody is left to

        task.add_done_callback(done)
        return task

    def drop(self, key: K) -> None:
        self._generation += 1
        self._values.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._values.clear()
        self._loading.clear()
