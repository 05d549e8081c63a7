"""Commit-order positions for outbox events: what `GET /v1/events` pages by.

An event's `seq` (its id) is taken before its transaction commits, so a later-numbered event can commit first, and
a cursor over `seq` would page past the earlier one for good. Instead, committed rows without a position get the
next positions here, one numbering step at a time across every process (PostgreSQL: a transaction-scoped advisory
lock; SQLite: its write lock, which every transaction takes at BEGIN). A step sees only rows committed before it
and numbers them above every position of the steps before it, which all committed before it began. So the
positions a reader can see are always 1..P without a gap a later commit could fill, and a cursor over positions
never passes a row that is still to come. Readers list positioned rows only.

The relay runs a step every round, before and apart from publishing, so events become listable while the broker
is down; the commit-to-listable delay is the relay's wake-up (notify) or poll interval.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tomato.core.db import Database
from tomato.core.outbox import OutboxEvent

NUMBERING_LOCK = 0x746F6D61746F5053  # pg_advisory_xact_lock key: one numbering step at a time
_T = cast(Table, OutboxEvent.__table__)

# PostgreSQL: the lock, and plans that walk `ix_outbox_unpositioned` as a plain index scan (see core.relay on
# dead index entries and bitmap scans), in one round trip
_LOCK_AND_PLAN = select(
    func.pg_advisory_xact_lock(NUMBERING_LOCK),
    func.set_config("enable_bitmapscan", "off", True),
    func.set_config("plan_cache_mode", "force_custom_plan", True),
)


@functools.lru_cache(maxsize=8)
def _numbering(dialect: str, limit: int) -> Any:
    """One UPDATE: the oldest `limit` unpositioned rows (by seq) get max(position) + 1, + 2, … (built once per
    dialect and limit: building it is most of a step's Python cost, and the compiled form is cached by the same key)"""
    pending = _T.alias("pending")
    oldest = select(pending.c.id, pending.c.seq).where(pending.c.position.is_(None)).order_by(pending.c.seq)
    oldest = oldest.limit(limit)
    if dialect == "postgresql":  # rows a relay holds while it publishes are numbered next step, not waited for
        oldest = oldest.with_for_update(skip_locked=True)
    unnumbered = oldest.subquery("unnumbered")
    numbered_before = _T.alias("numbered_before")
    top = select(func.coalesce(func.max(numbered_before.c.position), 0)).scalar_subquery()
    numbered = select(
        unnumbered.c.id, (top + func.row_number().over(order_by=unnumbered.c.seq)).label("position")
    ).subquery("numbered")
    return update(_T).where(_T.c.id == numbered.c.id).values(position=numbered.c.position)


async def assign_positions(db: Database, limit: int = 1000) -> int:
    """One numbering step in its own short transaction; returns how many rows got a position."""
    async with db.engine.connect() as conn, conn.begin():
        return await _step(conn, db.dialect, limit)


async def _step(conn: AsyncConnection, dialect: str, limit: int) -> int:
    if dialect == "postgresql":
        await conn.execute(_LOCK_AND_PLAN)  # a statement of its own: the next one's snapshot is taken after the lock
    result = await conn.execute(_numbering(dialect, limit))
    return int(result.rowcount)
