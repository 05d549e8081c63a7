"""Settlement: moving what is due from a merchant's pending balance to available, one journal per merchant and run.

A run for business date D settles, for each merchant m with money pending, the lines on `merchant_pending:m` that no
batch has settled yet and that are eligible on D:

- a line that lowered pending (a refund, a split) — at once, whatever its date;
- a line that raised it (a payment, a split return) — once `due_date(line's business date, m's cycle, calendar) <= D`.

X = Σ eligible, as the merchant reads it. X > 0: one unit of work books the journal (source `settlement`,
`f"{m}:{D}"`, leg `settle:<batch id>`: pending +X guarded, available −X), the batch row, and one item per settled
line (keyed by the line: a line settles once). X <= 0: nothing moves, the lines wait for a later date. Since every
line not yet due raised pending, pending − X >= 0: the guard only trips when a refund slipped in, and the merchant
is then settled again from what the database now holds.

One merchant settles in one transaction at a time: its balance rows are locked first (PostgreSQL; SQLite holds the
write lock from BEGIN), and the item keys refuse a twin run, in this process or another — the twin finds nothing
left to settle. A rerun of a date moves only what was booked (or became due) since the last run: usually nothing,
a new batch for a payment booked after the earlier run.

The daily job (`run_due`, under a database lease in the scheduler) runs every date from the last completed one up to
today's business date, so missed days are caught up at start; `POST /admin/settlements/run` calls `run` for the
date finance names.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError, IntegrityError

from tomato.account import accounts as acct
from tomato.account import settlement_repository as repo
from tomato.account.calendar import WorkCalendar, business_date_at, due_date, parse_date
from tomato.account.errors import InsufficientBalance
from tomato.account.ledger import EntryRequest, Line, post, retryable
from tomato.account.models import SettlementBatch
from tomato.account.settlement_schemas import (
    CalendarDayView,
    CalendarView,
    SettlementBatchView,
    SettlementRunResult,
)
from tomato.core.clock import Clock
from tomato.core.db import Database
from tomato.core.errors import InvalidRequest
from tomato.core.ids import Snowflake
from tomato.merchant.schemas import DEFAULT_SETTLE_CYCLE
from tomato.merchant.service import MerchantService

log = logging.getLogger(__name__)

ATTEMPTS = 5
MAX_CALENDAR_SPAN_DAYS = 366


def batch_view(b: SettlementBatch) -> SettlementBatchView:
    return SettlementBatchView(
        id=f"SB{b.id}",
        mch_no=b.mch_no,
        date=b.date,
        amount=b.amount,
        line_count=b.line_count,
        journal_id=b.journal_id,
        created_at=b.created_at,
    )


class SettlementService:
    def __init__(
        self, db: Database, ids: Snowflake, clock: Clock, merchants: MerchantService, *, business_tz: str
    ) -> None:
        self._db = db
        self._ids = ids
        self._clock = clock
        self._merchants = merchants
        self._tz = ZoneInfo(business_tz)

    def today(self) -> date:
        return business_date_at(self._clock.now(), self._tz)

    # --- runs -----------------------------------------------------------------------------------------------

    async def run(self, day: date) -> SettlementRunResult:
        """Settles everything due on or before `day` for every merchant and records the date as completed;
        answers what THIS run moved (a rerun: 0 / 0)."""
        async with self._db.uow() as uow:
            mch_nos = await repo.merchants_with_pending(uow.session)
            calendar = WorkCalendar(await repo.calendar_overrides(uow.session))
        cycles = await self._merchants.settle_cycles(mch_nos)
        count = amount = 0
        failed: list[Exception] = []
        for mch_no in mch_nos:
            try:
                n, x = await self.settle_merchant(mch_no, day, cycles.get(mch_no, DEFAULT_SETTLE_CYCLE), calendar)
            except Exception as exc:  # one merchant's failure does not hold up the others; LeaseLost stops all
                log.exception("settlement %s %s failed; the date is not marked completed", mch_no, day)
                failed.append(exc)
                continue
            count += n
            amount += x
        if failed:
            raise failed[0]
        async with self._db.uow() as uow:
            await repo.record_run(uow.session, day.isoformat(), self._clock.now())
            await uow.commit()
        if count:
            log.info("settlement %s: %d lines, %d fen moved to available", day, count, amount)
        return SettlementRunResult(date=day.isoformat(), settled_count=count, settled_amount=amount)

    async def run_due(self) -> int:
        """The daily job: every date after the last completed run (or today's alone, the first time) up to today's
        business date, today included on every round. Returns the number of lines settled."""
        today = self.today()
        async with self._db.uow() as uow:
            last = await repo.last_completed_run(uow.session, today.isoformat())
        day = today if last is None else min(parse_date(last) + timedelta(days=1), today)
        settled = 0
        while day <= today:
            settled += (await self.run(day)).settled_count
            day += timedelta(days=1)
        return settled

    async def settle_merchant(self, mch_no: str, day: date, cycle: str, calendar: WorkCalendar) -> tuple[int, int]:
        """(lines settled, fen moved) for one merchant and date; (0, 0) when nothing is eligible. Deadlocks,
        serialization failures, a refund that raced the guard and a twin that won the item keys are retried on what
        the database then holds (bounded)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._settle_once(mch_no, day, cycle, calendar)
            except (InsufficientBalance, IntegrityError) as exc:
                if attempt == ATTEMPTS:
                    raise
                log.info("settlement %s %s: %s; trying again", mch_no, day, type(exc).__name__)
            except DBAPIError as exc:
                if attempt == ATTEMPTS or not retryable(exc):
                    raise
            await asyncio.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    async def _settle_once(self, mch_no: str, day: date, cycle: str, calendar: WorkCalendar) -> tuple[int, int]:
        pending, available = acct.merchant_pending(mch_no), acct.merchant_available(mch_no)
        key = day.isoformat()
        async with self._db.uow() as uow:
            s = uow.session
            await repo.lock_accounts(s, sorted([pending, available]))
            due_by_date: dict[str, bool] = {}
            eligible: list[repo.PendingLine] = []
            for line in await repo.unsettled_lines(s, pending):
                if line.amount > 0:  # lowered pending: a refund settles at once
                    eligible.append(line)
                    continue
                if line.business_date not in due_by_date:
                    due_by_date[line.business_date] = due_date(parse_date(line.business_date), cycle, calendar) <= day
                if due_by_date[line.business_date]:
                    eligible.append(line)
            x = -sum(line.amount for line in eligible)  # as the merchant reads pending
            if x <= 0:
                return 0, 0
            now = self._clock.now()
            batch_id = self._ids.next_int()
            posted = await post(
                s,
                self._ids,
                now,
                EntryRequest(
                    source_type="settlement",
                    source_id=f"{mch_no}:{key}",
                    leg=f"settle:{batch_id}",
                    kind="settlement",
                    lines=(Line(pending, x, guard=True), Line(available, -x)),
                    business_date=key,
                    mch_no=mch_no,
                    amount=x,
                    fee=0,
                ),
            )
            batch = SettlementBatch(
                id=batch_id,
                mch_no=mch_no,
                date=key,
                amount=x,
                line_count=len(eligible),
                journal_id=posted.journal_id,
                created_at=now,
            )
            await repo.add_batch(s, batch, [line.id for line in eligible])
            await uow.commit()
        return len(eligible), x

    # --- reads ----------------------------------------------------------------------------------------------

    async def list_batches(
        self, day: date | None, mch_no: str | None, before_id: int | None, limit: int
    ) -> list[SettlementBatchView]:
        async with self._db.uow() as uow:
            rows = await repo.list_batches(uow.session, day.isoformat() if day else None, mch_no, before_id, limit)
            return [batch_view(b) for b in rows]

    # --- the holiday calendar -------------------------------------------------------------------------------

    async def calendar(self, start: date | None, end: date | None) -> CalendarView:
        """Every day of [start, end] (default: today and the 30 days after), at most 366 days."""
        start = start or self.today()
        if end is None:
            end = start + timedelta(days=30) if start <= date.max - timedelta(days=30) else date.max
        if end < start:
            raise InvalidRequest.field("to", "must not be before from")
        span = (end - start).days + 1
        if span > MAX_CALENDAR_SPAN_DAYS:
            raise InvalidRequest.field("to", f"at most {MAX_CALENDAR_SPAN_DAYS} days from `from`")
        async with self._db.uow() as uow:
            overrides = await repo.calendar_overrides(uow.session, start, end)
        cal = WorkCalendar(overrides)
        return CalendarView(data=[_day_view(start + timedelta(days=n), cal) for n in range(span)])

    async def set_calendar_day(self, day: date, working: bool | None) -> CalendarDayView:
        """`working` true/false overrides the default for `day`; None removes the override."""
        async with self._db.uow() as uow:
            if working is None:
                await repo.delete_calendar_day(uow.session, day.isoformat())
            else:
                await repo.set_calendar_day(uow.session, day.isoformat(), working, self._clock.now())
            await uow.commit()
        return _day_view(day, WorkCalendar({} if working is None else {day: working}))


def _day_view(day: date, cal: WorkCalendar) -> CalendarDayView:
    return CalendarDayView(
        date=day.isoformat(), working=cal.is_working(day), weekend=day.weekday() >= 5, override=day in cal.overrides
    )
