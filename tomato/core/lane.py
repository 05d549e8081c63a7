"""A few of the engine's pooled PostgreSQL connections kept checked out for one-statement hot-path work.

A checkout and check-in through SQLAlchemy's async engine costs about 0.05 CPU-ms (three greenlet switches, the
pool's bookkeeping and its reset events) — as much as the asyncpg statement it carries, and more than half the bare
endpoint's whole request. `core.rawpg.raw_connection` (under `WriteBatch`, `fetch_row`, the notify path and the
webhook worker) borrows a connection from here instead: a list pop and push. A use that ends inside a transaction
or not cleanly returns its connection through the pool's reset instead.

The connections stay the pool's: they are checked out through `engine.connect()` once and closed back into it when
the lane is closed (`Database.dispose`), when they are older than the pool's recycle age, or when a use did not
end cleanly (a connection that broke is invalidated first, as before; a cancelled one goes back through the pool's
own reset). When every lane connection is busy the caller takes the ordinary path, so the lane never waits.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

RECYCLE_S = 1800.0  # the engine's pool_recycle (core.db.create_engine)
_lanes: weakref.WeakKeyDictionary[Any, Lane] = weakref.WeakKeyDictionary()


@dataclass
class Lent:
    conn: AsyncConnection
    raw: Any  # the asyncpg connection
    since: float


class Lane:
    def __init__(self, engine: AsyncEngine, size: int) -> None:
        self._engine = engine
        self._size = size
        self._idle: list[Lent] = []
        self._held = 0
        self._closed = False

    async def borrow(self) -> Lent | None:
        """An idle lane connection, a new one while the lane has room, else None (use the ordinary path)."""
        if self._idle:
            return self._idle.pop()
        if self._closed or self._held >= self._size:
            return None
        self._held += 1
        try:
            conn = await self._engine.connect()
            try:
                raw = (await conn.get_raw_connection()).driver_connection
            except BaseException:
                await conn.close()
                raise
        except BaseException:
            self._held -= 1
            raise
        return Lent(conn, raw, time.monotonic())

    def give_back(self, lent: Lent) -> bool:
        """After a clean use: idle again (True), or False when the caller must `release` it (closed lane, old or
        closed connection)."""
        if self._closed or lent.raw.is_closed() or time.monotonic() - lent.since > RECYCLE_S:
            return False
        self._idle.append(lent)
        return True

    async def release(self, lent: Lent) -> None:
        """Back to the pool for good: its reset runs there (a connection that broke was invalidated by its user)."""
        self._held -= 1
        await lent.conn.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for lent in idle:
            await self.release(lent)


def open_lane(engine: AsyncEngine) -> None:
    """Gives a PostgreSQL engine its lane: a quarter of its pool, at most 16 connections (none for a small pool).

    An eighth (5 of the default 40) was too few under create-order load at 32 connections: statements found the
    lane busy and took the ordinary checkout often enough to cost ~3 % of the gateway's CPU (py-spy)."""
    if engine.dialect.name != "postgresql":
        return
    size = min(16, engine.sync_engine.pool.size() // 4)  # type: ignore[attr-defined]
    if size > 0:
        _lanes[engine.sync_engine] = Lane(engine, size)


def lane_of(engine: AsyncEngine) -> Lane | None:
    return _lanes.get(engine.sync_engine)


async def close_lane(engine: AsyncEngine) -> None:
    lane = _lanes.pop(engine.sync_engine, None)
    if lane is not None:
        await lane.close()
