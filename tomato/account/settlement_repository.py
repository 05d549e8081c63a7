"""Every query of settlement and the holiday calendar. Never commits: the settlement service owns the unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account.accounts import AccountType
from tomato.account.models import (
    Balance,
    CalendarDay,
    Journal,
    Line,
    SettlementBatch,
    SettlementItem,
    SettlementRun,
)


@dataclass(frozen=True)
class PendingLine:
    id: int
    amount: int  # raw: < 0 raised the merchant's pending (a payment), > 0 lowered it (a refund)
    business_date: str


def _insert(s: AsyncSession, table: Any) -> Any:
    dialect = s.bind.dialect.name if s.bind is not None else "sqlite"
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


async def lock_accounts(s: AsyncSession, accounts: Sequence[str]) -> None:
    """PostgreSQL: locks the accounts' balance rows in the ledger's global order (account, bucket), so one merchant
    settles in one transaction at a time and no posting to them (a refund) slips in between reading its lines and
    moving the money. SQLite holds the database's write lock from BEGIN, which does the same."""
    if s.bind is None or s.bind.dialect.name != "postgresql":
        return
    await s.execute(
        select(Balance.account)
        .where(Balance.account.in_(list(accounts)))
        .order_by(Balance.account, Balance.bucket)
        .with_for_update()
    )


async def merchants_with_pending(s: AsyncSession) -> list[str]:
    """Merchants whose pending balance is above zero — the only ones a run can settle anything for: the lines not
    yet due all raise pending, so what is eligible can only be positive when the whole balance is."""
    rows = await s.execute(
        select(Balance.account)
        .where(Balance.account_type == AccountType.MERCHANT_PENDING.value)
        .group_by(Balance.account)
        .having(func.sum(Balance.balance) < 0)  # raw: pending is credit-normal
        .order_by(Balance.account)
    )
    return [account.split(":", 1)[1] for account in rows.scalars()]


async def unsettled_lines(s: AsyncSession, account: str) -> list[PendingLine]:
    """The account's lines no batch has settled yet, settlement journals' own lines left out."""
    rows = await s.execute(
        select(Line.id, Line.amount, Line.business_date)
        .join(Journal, Journal.id == Line.journal_id)
        .where(
            Line.account == account,
            Journal.source_type != "settlement",
            ~exists().where(SettlementItem.line_id == Line.id),
        )
        .order_by(Line.id)
    )
    return [PendingLine(int(r.id), int(r.amount), r.business_date) for r in rows.all()]


async def add_batch(s: AsyncSession, batch: SettlementBatch, line_ids: Sequence[int]) -> None:
    s.add(batch)
    await s.flush()  # the (mch_no, date) key first: a racing twin stops here
    await s.execute(_insert(s, SettlementItem), [{"line_id": i, "batch_id": batch.id} for i in sorted(line_ids)])


async def record_run(s: AsyncSession, day: str, now: datetime) -> SettlementRun:
    """Marks `day` completed, with the totals of all its batches so far."""
    count, amount = (
        await s.execute(
            select(
                func.coalesce(func.sum(SettlementBatch.line_count), 0),
                func.coalesce(func.sum(SettlementBatch.amount), 0),
            ).where(SettlementBatch.date == day)
        )
    ).one()
    stmt = _insert(s, SettlementRun).values(
        date=day, settled_count=int(count), settled_amount=int(amount), completed_at=now
    )
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=["date"],
            set_={
                "settled_count": stmt.excluded.settled_count,
                "settled_amount": stmt.excluded.settled_amount,
                "completed_at": stmt.excluded.completed_at,
            },
        )
    )
    return SettlementRun(date=day, settled_count=int(count), settled_amount=int(amount), completed_at=now)


async def last_completed_run(s: AsyncSession, up_to: str) -> str | None:
    """The latest completed date on or before `up_to` (a run finance made for a future date does not count)."""
    found = await s.execute(select(func.max(SettlementRun.date)).where(SettlementRun.date <= up_to))
    value = found.scalar_one_or_none()
    return str(value) if value is not None else None


async def list_batches(
    s: AsyncSession, day: str | None, mch_no: str | None, before_id: int | None, limit: int
) -> Sequence[SettlementBatch]:
    q = select(SettlementBatch).order_by(SettlementBatch.id.desc()).limit(limit)
    if day is not None:
        q = q.where(SettlementBatch.date == day)
    if mch_no is not None:
        q = q.where(SettlementBatch.mch_no == mch_no)
    if before_id is not None:
        q = q.where(SettlementBatch.id < before_id)
    return (await s.scalars(q)).all()


async def calendar_overrides(s: AsyncSession, start: date | None = None, end: date | None = None) -> dict[date, bool]:
    q = select(CalendarDay.date, CalendarDay.working)
    if start is not None:
        q = q.where(CalendarDay.date >= start.isoformat())
    if end is not None:
        q = q.where(CalendarDay.date <= end.isoformat())
    return {date.fromisoformat(d): bool(w) for d, w in (await s.execute(q)).all()}


async def set_calendar_day(s: AsyncSession, day: str, working: bool, now: datetime) -> None:
    stmt = _insert(s, CalendarDay).values(date=day, working=working, updated_at=now)
    await s.execute(
        stmt.on_conflict_do_update(
            index_elements=["date"], set_={"working": stmt.excluded.working, "updated_at": stmt.excluded.updated_at}
        )
    )


async def delete_calendar_day(s: AsyncSession, day: str) -> None:
    await s.execute(delete(CalendarDay).where(CalendarDay.date == day))
