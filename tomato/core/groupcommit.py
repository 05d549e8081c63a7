"""Identical statements from concurrent requests sent to PostgreSQL together: one network write, one wake-up of
one backend and one commit for all of them (group commit).

Under load the create path has several orders' inserts, and several attempt results, in flight at once (at 32
connections about three per worker). Alone, each costs a write and a read on both sides plus a commit, and on a
shared 2-core box those wake-ups are a large part of the order's CPU. Here a statement goes out on the next loop
turn, and the identical statements that arrive while it is in flight go out next as one asyncpg `executemany` /
`fetchmany`: their executions are pipelined before a single Sync, so they are one implicit transaction — all land
or none. Nothing waits for a batch to fill: at low load every statement goes alone, as before.

Each caller keeps its own outcome. A batch PostgreSQL refused (a unique violation, a bad value) was rolled back
whole, and one whose values the driver would not encode was never committed: its statements run again one by one,
so the error reaches only the caller it belongs to. A connection lost under a batch is reported to every caller in
it, as it would have been to each alone (whether the writes landed is then unknown, as for any lost commit). A
caller cancelled before its batch is sent writes nothing.
A statement answering rows must answer at most one per execution, carrying the caller's key column: rows come
back as one list, matched to callers by that key (two calls with the same key never share a batch).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tomato.core.rawpg import pg_statement, raw_connection

Row = dict[str, Any]
MAX_BATCH = 64  # executions per round trip; the rest go in the next one


@dataclass(eq=False)
class _Call:
    args: Sequence[Any]
    key: tuple[str, Any] | None  # (column, value) identifying the caller's row; None: no rows wanted
    outcome: asyncio.Future[Row | None]


@dataclass(eq=False)
class _Queue:
    loop: asyncio.AbstractEventLoop
    waiting: list[_Call] = field(default_factory=list)
    flushing: bool = False


_queues: weakref.WeakKeyDictionary[Any, dict[str, _Queue]] = weakref.WeakKeyDictionary()
_flushes: set[asyncio.Task[None]] = set()  # strong references: a running flush must not be collected


async def group_statement(
    engine: AsyncEngine, sql: str, args: Sequence[Any], *, key: tuple[str, Any] | None = None
) -> Row | None:
    """Run `sql` with `args` (one statement, atomic on its own), possibly in one round trip with identical
    statements of other callers; with `key` answer the row whose `key[0]` column equals `key[1]`, or None.
    Errors as `core.rawpg` raises them."""
    loop = asyncio.get_running_loop()
    queues = _queues.setdefault(engine.sync_engine, {})
    queue = queues.get(sql)
    if queue is None or queue.loop is not loop:
        queue = queues[sql] = _Queue(loop)
    call = _Call(args, key, loop.create_future())
    queue.waiting.append(call)
    if not queue.flushing:
        queue.flushing = True
        task = loop.create_task(_flush(engine, sql, queue))
        _flushes.add(task)
        task.add_done_callback(_flushes.discard)
    return await call.outcome  # a cancel here cancels `outcome`: a call not yet sent is then dropped


def queued(engine: AsyncEngine) -> int:
    """Calls waiting for the round trip in flight to end (not yet sent)."""
    return sum(len(q.waiting) for q in _queues.get(engine.sync_engine, {}).values())


async def _flush(engine: AsyncEngine, sql: str, queue: _Queue) -> None:
    try:
        while queue.waiting:
            batch, queue.waiting = _take(queue.waiting)
            await _send(engine, sql, [c for c in batch if not c.outcome.done()])
    finally:
        queue.flushing = False
        for call in queue.waiting:  # only when the flush itself was cancelled (the loop is closing)
            call.outcome.cancel()
        queue.waiting = []


def _take(waiting: list[_Call]) -> tuple[list[_Call], list[_Call]]:
    """The next batch (distinct keys, at most MAX_BATCH) and what stays for the one after."""
    batch: list[_Call] = []
    rest: list[_Call] = []
    keys: set[Any] = set()
    for call in waiting:
        if len(batch) >= MAX_BATCH or (call.key is not None and call.key[1] in keys):
            rest.append(call)
            continue
        batch.append(call)
        if call.key is not None:
            keys.add(call.key[1])
    return batch, rest


async def _send(engine: AsyncEngine, sql: str, batch: list[_Call]) -> None:
    if len(batch) > 1:
        try:
            rows = await _together(engine, sql, batch)
        except asyncio.CancelledError as exc:
            _fail(batch, exc)
            raise
        except Exception as exc:
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                _fail(batch, exc)  # lost under it, landed or not: every caller hears it, the next batch goes on
                return
            # else refused (by PostgreSQL, or by the driver for one call's values), nothing of it committed:
            # one by one below, so each caller hears only its own error
        else:
            column = batch[0].key[0] if batch[0].key is not None else ""
            by_key = {row[column]: row for row in rows} if column else {}
            for call in batch:
                _succeed(call, by_key.get(call.key[1]) if call.key is not None else None)
            return
    for i, call in enumerate(batch):
        if call.outcome.done():  # cancelled meanwhile: nothing of it was written
            continue
        try:
            row = await pg_statement(engine, sql, call.args, fetch=call.key is not None)
        except asyncio.CancelledError as exc:
            _fail(batch[i:], exc)
            raise
        except Exception as exc:
            _fail([call], exc)
        else:
            _succeed(call, row)


async def _together(engine: AsyncEngine, sql: str, batch: list[_Call]) -> list[Row]:
    async with raw_connection(engine, sql) as raw:
        if batch[0].key is None:
            await raw.executemany(sql, [call.args for call in batch])
            return []
        return [dict(record) for record in await raw.fetchmany(sql, [call.args for call in batch])]


def _succeed(call: _Call, row: Row | None) -> None:
    if not call.outcome.done():
        call.outcome.set_result(row)


def _fail(calls: list[_Call], exc: BaseException) -> None:
    for call in calls:
        if call.outcome.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            call.outcome.cancel()
        else:
            call.outcome.set_exception(exc)
