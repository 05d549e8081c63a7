"""Reading the ledger: a merchant's balance and balance transactions, statements, and finance's views.

The merchant sees journals of the kinds payment, refund, settlement, payout, adjustment, split and split_return
booked for its merchant number (`mch_no` on the journal), newest first. Internal kinds (payout_post, anomaly, …) are
not listed, nor are the shadow journals of service-provider payments (provider_payment, provider_refund,
provider_split, provider_split_return): balance transactions and the daily statement list movements of the
platform-held balance (pending, available), which those payments never move, so a statement's rows still sum to the
day's movement of pending + available. A voided payout is booked with kind "payout" and a positive amount, so it
lists as a `payout` that returns the money ("payout_void" is read the same way). Everything here only reads; nothing
opens a write transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.account import accounts as acct
from tomato.account.consumer import CURSOR as BOOKING_CURSOR
from tomato.account.errors import JournalNotFound
from tomato.account.ledger import balances
from tomato.account.models import Balance, BookingCursor, Journal, Line, ProviderBalance
from tomato.account.schemas import (
    AccountBalance,
    BalanceMode,
    BalanceTransaction,
    BalanceView,
    JournalView,
    LedgerLineView,
    ServiceProviderBalance,
    TrialBalance,
    TrialBalanceRow,
)
from tomato.core.db import Database
from tomato.core.outbox import OutboxEvent

# journal kind → the merchant's balance-transaction type
MERCHANT_TYPES = {
    "payment": "payment",
    "refund": "refund",
    "settlement": "settlement",
    "payout": "payout",
    "payout_void": "payout",
    "adjustment": "adjustment",
    "split": "split",  # amount negative: part of a payment paid to profit-sharing receivers
    "split_return": "split_return",
}


def transaction_view(j: Journal) -> BalanceTransaction:
    amount, fee = j.amount or 0, j.fee or 0
    return BalanceTransaction(
        id=j.id,
        type=MERCHANT_TYPES[j.kind],
        amount=amount,
        fee=fee,
        net=amount - fee,
        order_no=j.order_no,
        refund_no=j.refund_no,
        payout_no=j.payout_no,
        created_at=j.created_at,
    )


def business_day_bounds(day: date, tz_name: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a business date in the business time zone."""
    tz = ZoneInfo(tz_name)
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


class LedgerService:
    def __init__(self, db: Database, business_timezone: str = "Asia/Shanghai") -> None:
        self._db = db
        self._tz = business_timezone

    # --- the merchant's view -------------------------------------------------------------------------------

    async def balance(self, mch_no: str) -> BalanceView:
        """`pending`/`available`: platform-held money only. The mode and the service-provider figures come from the
        memo `provider_balances` (account.booking_provider); "direct" (or "mixed") is read off the merchant's
        pending/available balance rows, which a direct payment creates (they stay, at 0, once paid out) — one
        primary-key read each, where scanning the merchant's journals for a direct one would grow with them."""
        pending, available = acct.merchant_pending(mch_no), acct.merchant_available(mch_no)
        receivable = acct.merchant_fee_receivable(mch_no)
        async with self._db.uow() as uow:
            s = uow.session
            got = await balances(s, [pending, available, receivable])
            memo = (
                await s.execute(select(ProviderBalance).where(ProviderBalance.mch_no == mch_no))
            ).scalar_one_or_none()
            direct = (
                await s.execute(select(Balance.account).where(Balance.account.in_([pending, available])).limit(1))
            ).first() is not None
        provider = memo is not None and memo.payments > 0
        mode: BalanceMode = "mixed" if direct and provider else "service_provider" if provider else "direct"
        return BalanceView(
            pending=got[pending],
            available=got[available],
            mode=mode,
            service_provider=ServiceProviderBalance(
                collected=0 if memo is None else memo.collected, fee_receivable=got[receivable]
            ),
        )

    async def transactions(self, mch_no: str, before_seq: int | None, limit: int) -> list[Journal]:
        """Newest first; `limit` rows (ask for one more to know whether a next page exists)."""
        stmt = (
            select(Journal)
            .where(Journal.mch_no == mch_no, Journal.kind.in_(list(MERCHANT_TYPES)))
            .order_by(Journal.seq.desc())
            .limit(limit)
        )
        if before_seq is not None:
            stmt = stmt.where(Journal.seq < before_seq)
        async with self._db.uow() as uow:
            return list((await uow.session.execute(stmt)).scalars())

    async def statement(self, mch_no: str, day: date) -> list[BalanceTransaction]:
        """The balance transactions created on business date `day`, oldest first."""
        start, end = business_day_bounds(day, self._tz)
        stmt = (
            select(Journal)
            .where(
                Journal.mch_no == mch_no,
                Journal.kind.in_(list(MERCHANT_TYPES)),
                Journal.created_at >= start,
                Journal.created_at < end,
            )
            .order_by(Journal.seq)
        )
        async with self._db.uow() as uow:
            return [transaction_view(j) for j in (await uow.session.execute(stmt)).scalars()]

    # --- finance -------------------------------------------------------------------------------------------

    async def account_balances(
        self, account_type: str | None, owner: str | None, after: str | None, limit: int
    ) -> list[AccountBalance]:
        """Σ over buckets per account, ordered by account code; `limit` rows from after `after`."""
        stmt = select(Balance.account, Balance.account_type, func.sum(Balance.balance).label("raw")).group_by(
            Balance.account, Balance.account_type
        )
        if account_type is not None:
            stmt = stmt.where(Balance.account_type == account_type)
        if owner is not None:
            stmt = stmt.where(Balance.account.like(f"%:{_escape_like(owner)}", escape="\\"))
        if after is not None:
            stmt = stmt.where(Balance.account > after)
        stmt = stmt.order_by(Balance.account).limit(limit)
        async with self._db.uow() as uow:
            rows = (await uow.session.execute(stmt)).all()
        return [
            AccountBalance(
                account=r.account,
                account_type=r.account_type,
                owner=acct.owner(r.account),
                balance=acct.normal_balance(r.account, int(r.raw)),
                raw=int(r.raw),
            )
            for r in rows
        ]

    async def entries(
        self, account: str | None, business_date: str | None, before_seq: int | None, limit: int
    ) -> list[JournalView]:
        """Journals with their lines, newest first: those with a line on `account` and/or of `business_date`."""
        stmt = select(Journal).order_by(Journal.seq.desc()).limit(limit)
        if account is not None:
            on_account = select(Line.journal_id).where(Line.account == account)
            if business_date is not None:
                on_account = on_account.where(Line.business_date == business_date)
            stmt = stmt.where(Journal.id.in_(on_account))
        if business_date is not None:
            stmt = stmt.where(Journal.business_date == business_date)
        if before_seq is not None:
            stmt = stmt.where(Journal.seq < before_seq)
        async with self._db.uow() as uow:
            journals = list((await uow.session.execute(stmt)).scalars())
            return await self._with_lines(uow.session, journals)

    async def journal(self, journal_id: str) -> JournalView:
        async with self._db.uow() as uow:
            found = (await uow.session.execute(select(Journal).where(Journal.id == journal_id))).scalar_one_or_none()
            if found is None:
                raise JournalNotFound(f"no journal {journal_id}")
            return (await self._with_lines(uow.session, [found]))[0]

    async def _with_lines(self, session: AsyncSession, journals: Sequence[Journal]) -> list[JournalView]:
        by_journal: dict[str, list[LedgerLineView]] = {j.id: [] for j in journals}
        if journals:
            rows = await session.execute(
                select(Line.journal_id, Line.account, Line.bucket, Line.amount)
                .where(Line.journal_id.in_(list(by_journal)))
                .order_by(Line.id)
            )
            for r in rows.all():
                by_journal[r.journal_id].append(LedgerLineView(account=r.account, bucket=r.bucket, amount=r.amount))
        return [
            JournalView(
                id=j.id,
                source_type=j.source_type,
                source_id=j.source_id,
                leg=j.leg,
                kind=j.kind,
                mch_no=j.mch_no,
                order_no=j.order_no,
                refund_no=j.refund_no,
                payout_no=j.payout_no,
                amount=j.amount,
                fee=j.fee,
                business_date=j.business_date,
                created_at=j.created_at,
                lines=by_journal[j.id],
            )
            for j in journals
        ]

    async def booking_lag(self) -> int:
        """Outbox events committed and numbered but not yet read by the booking consumer (positions after its
        cursor; core.positions numbers them without gaps), for `/metrics`. 0 before anything was written."""
        async with self._db.engine.connect() as conn:
            last = (await conn.execute(select(func.max(OutboxEvent.position)))).scalar_one_or_none()
            cursor = (
                await conn.execute(select(BookingCursor.position).where(BookingCursor.name == BOOKING_CURSOR))
            ).scalar_one_or_none()
        return max(0, int(last or 0) - int(cursor or 0))

    async def trial_balance(self) -> TrialBalance:
        """Per account type: Σ normal balance and Σ raw; the grand total raw is 0 when every journal balanced."""
        async with self._db.uow() as uow:
            rows = (
                await uow.session.execute(
                    select(Balance.account, func.sum(Balance.balance).label("raw")).group_by(Balance.account)
                )
            ).all()
        per_type: dict[str, TrialBalanceRow] = {}
        for r in rows:
            kind = acct.account_type(r.account).value
            row = per_type.setdefault(kind, TrialBalanceRow(account_type=kind, accounts=0, normal_balance=0, raw=0))
            row.accounts += 1
            row.raw += int(r.raw)
            row.normal_balance += acct.normal_balance(r.account, int(r.raw))
        total = sum(r.raw for r in per_type.values())
        order = [t.value for t in acct.AccountType]
        types = sorted(per_type.values(), key=lambda r: order.index(r.account_type))
        return TrialBalance(types=types, total_raw=total, balanced=total == 0)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
