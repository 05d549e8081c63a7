"""Retention of the outbox (`outbox_events`): the rows that nobody needs any more go, in short batches.

The outbox is also each app's event history (`GET /v1/events` lists it), so it has two windows:
- a row that belongs to no app (an internal event: reconciliation, settlement) goes `internal_before`;
- a row of an app (its feed, its webhooks) goes `events_before`, normally much later.

Whatever its age, a row stays while it is still needed:
- not yet published (the relay selects `published_at IS NULL`), or not yet numbered (no `position`);
- not yet read by the ledger: its position is above `booked_upto`, the booking consumer's cursor;
- the highest position of the table: the next numbering step (core.positions) counts from max(position), so
  deleting the top row would hand its position out again, behind the ledger's cursor, and that event would never
  be booked;
- `still_needed` says so (the notice context: a delivery still to be made POSTs the row's payload).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, func, not_, select, true

from tomato.core.db import Database
from tomato.core.outbox import OutboxEvent
from tomato.core.retention import Walk, purge

_T = cast(Table, OutboxEvent.__table__)


@dataclass(frozen=True)
class OutboxPurged:
    internal: int
    events: int


async def purge_outbox(
    db: Database,
    *,
    internal_before: datetime,
    events_before: datetime,
    booked_upto: int,
    still_needed: ColumnElement[bool] | None = None,
    batch: int = 5000,
) -> OutboxPurged:
    """Deletes the outbox rows past their window that nothing needs (see the module docstring)."""
    async with db.engine.connect() as conn:
        top = (await conn.execute(select(func.max(OutboxEvent.position)))).scalar_one_or_none()
    upto = min(booked_upto, int(top or 0) - 1)
    if upto < 1:
        return OutboxPurged(0, 0)
    published = OutboxEvent.published_at.is_not(None)
    # walks the app-less rows by `ix_outbox_app_position` (app_id NULL, position), the others by `ix_outbox_position`
    internal = Walk(
        _T, OutboxEvent.position, OutboxEvent.created_at, OutboxEvent.app_id.is_(None), published,
        leading=(OutboxEvent.app_id,),
    )  # fmt: skip
    kept = true() if still_needed is None else not_(still_needed)
    events = Walk(_T, OutboxEvent.position, OutboxEvent.created_at, OutboxEvent.app_id.is_not(None), published & kept)
    return OutboxPurged(
        internal=await purge(db, internal, internal_before, batch=batch, upto=upto),
        events=await purge(db, events, events_before, batch=batch, upto=upto),
    )
