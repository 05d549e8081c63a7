"""The pooled asyncpg connection itself, for hot statements that SQLAlchemy's per-statement machinery would cost
several times the driver's own CPU (create's and query's `WriteBatch`/`fetch_row`, the notify path, the webhook
worker's claims and records). PostgreSQL only.

The connection stays the pool's (checked out and returned by SQLAlchemy); one statement is atomic without
BEGIN/COMMIT. A connection that broke under the statement is invalidated (never returned to the pool) and reported
as SQLAlchemy reports a dead connection (`DBAPIError` with `connection_invalidated`): whether the statement landed
is then unknown, as for any lost commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from tomato.core.lane import lane_of


@asynccontextmanager
async def raw_connection(engine: AsyncEngine, what: str) -> AsyncIterator[Any]:
    """The asyncpg connection of a pooled connection; `what` names the work in errors. One of the engine's lane
    (core.lane: a list pop, no checkout) when one is free, else checked out of the pool directly
    (`engine.raw_connection()`: about 27 µs CPU, where `engine.connect()` costs 65 µs for a Connection object and
    its events we do not use) and returned to it, reset as ever, when the block ends."""
    lane = lane_of(engine)
    lent = await lane.borrow() if lane is not None else None
    if lent is not None and lane is not None:
        raw = lent.raw

        async def invalidate(exc: BaseException) -> None:
            await lent.conn.invalidate()

        async def end(clean: bool) -> None:  # anything but a clean end goes back through the pool's own reset
            if not (clean and lane.give_back(lent)):
                await lane.release(lent)
    else:
        fairy = await engine.raw_connection()
        raw = fairy.driver_connection
        assert raw is not None

        async def invalidate(exc: BaseException) -> None:
            await greenlet_spawn(fairy.invalidate, exc)

        async def end(clean: bool) -> None:
            await greenlet_spawn(fairy.close)

    clean = False
    try:
        yield raw
        clean = True
    except asyncpg.IntegrityConstraintViolationError as exc:
        clean = not raw.is_in_transaction()  # the statement failed; the connection is fine once out of it
        raise IntegrityError(what, None, exc) from exc
    except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError) as exc:
        lost = raw.is_closed() or not isinstance(exc, asyncpg.InterfaceError)
        await invalidate(exc)  # a broken connection must not go back to the pool
        if lost:
            raise DBAPIError(what, None, exc, hide_parameters=True, connection_invalidated=True) from exc
        raise
    finally:
        await end(clean)


async def pg_statement(
    engine: AsyncEngine, sql: str, args: Sequence[Any], *, fetch: bool
) -> dict[str, Any] | None:
    """One statement straight on a pooled asyncpg connection (one round trip, atomic on its own; the lane's when one
    is free); with `fetch` its first row. Errors as SQLAlchemy raises them: a unique violation as
    `IntegrityError`, a dead connection as `DBAPIError` with `connection_invalidated`."""
    async with raw_connection(engine, sql) as raw:
        if fetch:
            record = await raw.fetchrow(sql, *args)
            return None if record is None else dict(record)
        await raw.execute(sql, *args)
        return None


@asynccontextmanager
async def transaction(raw: Any, setup: str = "") -> AsyncIterator[None]:
    """BEGIN (and `setup`, e.g. a SET LOCAL, in the same round trip) … COMMIT, or ROLLBACK when the block raises:
    the pool never gets a connection back inside a transaction."""
    await raw.execute(f"BEGIN; {setup}" if setup else "BEGIN")
    try:
        yield
    except BaseException:
        await raw.execute("ROLLBACK")
        raise
    await raw.execute("COMMIT")
