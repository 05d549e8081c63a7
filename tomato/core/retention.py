"""Purging rows past their keeping time in short statements, so tables stay bounded and no purge holds locks long.

A purge walks its table in the order of a time-ordered, indexed key (a snowflake id, a commit-order position), a
chunk of at most `batch` keys at a time, and deletes what the chunk holds that is older than the cutoff and may go,
by one statement in a unit of work of its own (fenced by the job's lease: a purge whose lease was taken over stops
before its next delete). Rows that must stay are passed over, so they never stall the walk. The walk ends at the
first chunk without a row older than the cutoff: the key follows time, so what comes after is younger still.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select

from tomato.core.clock import as_utc
from tomato.core.db import Database


@dataclass(frozen=True)
class Walk:
    """What one purge looks at: `scope` rows of `table`, in `key` order, aged by `age`; `may_go` says which of
    those older than the cutoff are no longer needed."""

    table: Table
    key: Any  # a column: unique, indexed (with `scope`), increasing with time
    age: Any  # a timestamp column
    scope: ColumnElement[bool]
    may_go: ColumnElement[bool]
    leading: tuple[Any, ...] = ()  # columns of the index before `key`, constant within `scope`: ordering by them
    # too makes the planner walk that index (it cannot know the rows in scope cluster at one end of the other)


async def purge(db: Database, walk: Walk, cutoff: datetime, *, batch: int, upto: int | None = None) -> int:
    """Deletes the rows of `walk` older than `cutoff` that may go (and whose key is ≤ `upto`, when given), one
    chunk of at most `batch` keys per statement; returns how many rows it deleted."""
    if batch < 1:
        raise ValueError("batch must be positive")
    deleted, after = 0, None
    while True:
        async with db.uow() as uow:
            chunk = select(walk.key, walk.age).where(walk.scope)
            if after is not None:
                chunk = chunk.where(walk.key > after)
            if upto is not None:
                chunk = chunk.where(walk.key <= upto)
            rows = (await uow.session.execute(chunk.order_by(*walk.leading, walk.key).limit(batch))).all()
            if not rows or all(as_utc(row[1]) >= cutoff for row in rows):
                return deleted
            last = rows[-1][0]
            within = walk.key <= last if after is None else (walk.key > after) & (walk.key <= last)
            stmt = delete(walk.table).where(walk.scope, within, walk.age < cutoff, walk.may_go)
            result = await uow.session.execute(stmt.execution_options(synchronize_session=False))
            await uow.commit()
        deleted += int(getattr(result, "rowcount", 0) or 0)
        if len(rows) < batch:
            return deleted
        after = last
