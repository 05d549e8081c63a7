"""The retention job: each context purges its own tables (docs/operations.md, "Retention"); this orders the calls.

The ledger's cursor is read before the outbox is purged: it only moves forward, so a row at or below it stays
booked. Time comes from the container's clock, so tests can move it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tomato.account.retention import booked_upto
from tomato.bootstrap import Container
from tomato.core.outbox_retention import purge_outbox
from tomato.notice.retention import events_still_needed, purge_attempts

log = logging.getLogger(__name__)


async def run_retention(c: Container) -> int:
    """One round: old outbox rows, then old webhook attempts; returns how many rows went."""
    s, now = c.settings, c.clock.now()
    outbox = await purge_outbox(
        c.db,
        internal_before=now - timedelta(days=s.retention_outbox_days),
        events_before=now - timedelta(days=s.retention_event_days),
        booked_upto=await booked_upto(c.db),
        still_needed=events_still_needed(),
        batch=s.retention_batch,
    )
    before = now - timedelta(days=s.retention_attempt_days)
    attempts = await purge_attempts(c.db, before=before, batch=s.retention_batch)
    if outbox.internal or outbox.events or attempts:
        log.info(
            "retention: deleted %d internal outbox rows, %d app events, %d webhook attempts",
            outbox.internal, outbox.events, attempts,
        )  # fmt: skip
    return outbox.internal + outbox.events + attempts
