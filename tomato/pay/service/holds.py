"""Giving back the daily-limit room an order's attempts hold, when the order closes unpaid or fails.

Each attempt held its account's room under its own id (`submit`); the channel context releases each hold at most
once, so calling this again, or for an order whose holds are already gone, frees nothing twice. It runs after the
order's own transition committed: a crash in between leaves the room taken until the day ends — never given twice.
"""

from __future__ import annotations

from tomato.pay import repository as repo
from tomato.pay.service.deps import PayDeps


async def release_order_holds(deps: PayDeps, order_no: str) -> None:
    async with deps.db.uow() as uow:
        attempts = await repo.attempts_of(uow.session, order_no)
    await deps.channels.release_daily_limit([a.id for a in attempts])
