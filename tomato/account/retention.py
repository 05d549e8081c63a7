"""What the ledger tells the outbox's retention: how far it has read (core.outbox_retention keeps every row above).

The booking consumer reads the outbox by position after its cursor; a row it has not passed must stay, or that
event would never be booked. Before the consumer first ran there is no cursor: 0, so nothing numbered goes.
"""

from __future__ import annotations

from sqlalchemy import select

from tomato.account.consumer import CURSOR
from tomato.account.models import BookingCursor
from tomato.core.db import Database


async def booked_upto(db: Database) -> int:
    """The booking consumer's cursor: every outbox position at or below it is booked (or passed over)."""
    async with db.engine.connect() as conn:
        found = (await conn.execute(select(BookingCursor.position).where(BookingCursor.name == CURSOR))).scalar()
    return int(found or 0)
