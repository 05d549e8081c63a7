"""Retention in the notice context: attempts of finished deliveries go after a while; deliveries stay.

A delivery row is small and keeps the final state (status, attempts made, last status and error, when it
finished) and doubles as the dedupe entry of its event, so it is kept. Its attempts (each with up to 1 KiB of the
merchant's response) are what grows: those of a delivery finished (SUCCEEDED or FAILED) before the cutoff, and
made before it, are deleted. Attempts of a delivery still PENDING stay, however old.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, exists, true

from tomato.core.db import Database
from tomato.core.outbox import OutboxEvent
from tomato.core.retention import Walk, purge
from tomato.notice.models import Delivery, DeliveryAttempt
from tomato.notice.repository import FAILED, PENDING, SUCCEEDED

_A = cast(Table, DeliveryAttempt.__table__)


def events_still_needed() -> ColumnElement[bool]:
    """An outbox row a delivery still to be made will POST (its payload is read at each attempt): kept by the
    outbox's retention however old (core.outbox_retention)."""
    return exists().where(Delivery.event_id == OutboxEvent.id, Delivery.status == PENDING)


async def purge_attempts(db: Database, *, before: datetime, batch: int = 5000) -> int:
    """Deletes the attempts made before `before` of deliveries that finished before it; returns how many."""
    finished = exists().where(
        Delivery.id == DeliveryAttempt.delivery_id,
        Delivery.status.in_((SUCCEEDED, FAILED)),
        Delivery.finished_at < before,
    )
    # attempt ids are snowflakes: time-ordered, the primary key
    walk = Walk(_A, DeliveryAttempt.id, DeliveryAttempt.started_at, true(), finished)
    return await purge(db, walk, before, batch=batch)
