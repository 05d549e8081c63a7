"""Every query of payouts; never commits. State changes are compare-and-set on `status = 'PENDING'`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account.payouts.models import Payout, PayoutStatus


async def get(s: AsyncSession, payout_no: str) -> Payout | None:
    return await s.get(Payout, payout_no)


async def get_for_app(s: AsyncSession, app_id: str, payout_no: str) -> Payout | None:
    return await s.scalar(select(Payout).where(Payout.payout_no == payout_no, Payout.app_id == app_id))


async def get_for_merchant(s: AsyncSession, mch_no: str, payout_no: str) -> Payout | None:
    return await s.scalar(select(Payout).where(Payout.payout_no == payout_no, Payout.mch_no == mch_no))


async def merchant_page(
    s: AsyncSession, mch_no: str, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Payout]:
    """The merchant's payouts (all its apps) newest first by (created_at, payout_no), strictly after `after`."""
    q = select(Payout).where(Payout.mch_no == mch_no).order_by(Payout.created_at.desc(), Payout.payout_no.desc())
    if after is not None:
        at, no = Payout.created_at, Payout.payout_no
        q = q.where(tuple_(at, no) < tuple_(literal(after[0], at.type), literal(after[1], no.type)))
    return (await s.scalars(q.limit(limit))).all()


async def by_out_payout_no(s: AsyncSession, app_id: str, out_payout_no: str) -> Payout | None:
    return await s.scalar(select(Payout).where(Payout.app_id == app_id, Payout.out_payout_no == out_payout_no))


async def update_pending(s: AsyncSession, payout_no: str, values: dict[str, Any]) -> bool:
    """Changes a PENDING payout (to a final status too); False when it is not PENDING any more."""
    res = await s.execute(
        update(Payout)
        .where(Payout.payout_no == payout_no, Payout.status == PayoutStatus.PENDING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(res.rowcount) == 1  # type: ignore[attr-defined]


async def due_for_query(s: AsyncSession, now: datetime, limit: int) -> Sequence[Payout]:
    q = (
        select(Payout)
        .where(Payout.status == PayoutStatus.PENDING.value, Payout.next_query_at <= now)
        .order_by(Payout.next_query_at)
        .limit(limit)
    )
    return (await s.scalars(q)).all()


async def pending_by_merchant(s: AsyncSession) -> dict[str, int]:
    """Σ amount of PENDING payouts per merchant: what each `payout_in_transit` balance must equal (ledger check)."""
    rows = await s.execute(
        select(Payout.mch_no, func.sum(Payout.amount))
        .where(Payout.status == PayoutStatus.PENDING.value)
        .group_by(Payout.mch_no)
    )
    return {mch_no: int(total) for mch_no, total in rows.all()}
