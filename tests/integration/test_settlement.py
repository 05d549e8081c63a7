"""Settlement on SQLite and PostgreSQL: what is due moves from pending to available as one journal per merchant and
date — T+1 across a weekend and a holiday, D+0, T+N, refunds netted at once, reruns moving nothing new — and the
daily job catching up the dates it missed, with business dates in the business zone."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from tests.fixtures.ledger import payment_entry, refund_entry
from tomato.account import accounts as acct
from tomato.account.ledger import balances, post_committed
from tomato.account.models import Balance, Journal, SettlementBatch, SettlementItem, SettlementRun
from tomato.account.models import Line as LineRow
from tomato.account.settlement import SettlementService
from tomato.bootstrap import Container
from tomato.core.clock import FrozenClock, SystemClock, utcnow
from tomato.core.db import fenced
from tomato.core.leases import HeldLease, JobLease, LeaseLost, try_acquire
from tomato.merchant.schemas import MerchantCreate, SettleCycleUpdate
from tomato.runtime.scheduler import JOBS, JobRunner

CLOCK = SystemClock()
FRI, SAT, SUN, MON, TUE, WED = (date(2026, 12, d) for d in (4, 5, 6, 7, 8, 9))


async def merchant(c: Container, cycle: str = "T+1") -> str:
    mch_no = (await c.merchants.create_merchant(MerchantCreate(name="Tea House"))).mch_no
    if cycle != "T+1":
        await c.merchants.set_settle_cycle(mch_no, SettleCycleUpdate(cycle=cycle))
    return mch_no


async def pay(c: Container, mch_no: str, amount: int, day: date, order_no: str | None = None) -> str:
    fee = amount * 6 // 1000
    entry = payment_entry(mch_no, amount, fee, amount * 38 // 10_000, order_no=order_no, business_date=day.isoformat())
    await post_committed(c.db, c.ids, CLOCK, entry)
    return entry.source_id


async def refund(c: Container, mch_no: str, amount: int, fee_returned: int, order_no: str, day: date) -> None:
    entry = refund_entry(mch_no, amount, fee_returned, order_no=order_no, business_date=day.isoformat())
    await post_committed(c.db, c.ids, CLOCK, entry)


async def merchant_balances(c: Container, mch_no: str) -> tuple[int, int]:
    async with c.db.uow() as uow:
        got = await balances(uow.session, [acct.merchant_pending(mch_no), acct.merchant_available(mch_no)])
    return got[acct.merchant_pending(mch_no)], got[acct.merchant_available(mch_no)]


async def settlement_journals(c: Container, mch_no: str) -> list[tuple[str, int | None, int | None, str]]:
    async with c.db.uow() as uow:
        rows = await uow.session.execute(
            select(Journal.source_id, Journal.amount, Journal.fee, Journal.kind)
            .where(Journal.source_type == "settlement", Journal.mch_no == mch_no)
            .order_by(Journal.seq)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def total_balance(c: Container) -> int:
    async with c.db.uow() as uow:
        return int((await uow.session.execute(select(func.coalesce(func.sum(Balance.balance), 0)))).scalar_one())


async def test_t1_waits_for_the_next_working_day_across_a_weekend_and_a_holiday(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    m = await merchant(c)
    await c.settlement.set_calendar_day(MON, False)  # a public holiday
    await pay(c, m, 100_000, FRI)  # pending 99,400
    for day in (FRI, SAT, SUN, MON):
        result = await c.settlement.run(day)
        assert (result.settled_count, result.settled_amount) == (0, 0), day
    assert await merchant_balances(c, m) == (99_400, 0)
    result = await c.settlement.run(TUE)
    assert (result.date, result.settled_count, result.settled_amount) == ("2026-12-08", 1, 99_400)
    assert await merchant_balances(c, m) == (0, 99_400)
    assert await settlement_journals(c, m) == [(f"{m}:2026-12-08", 99_400, 0, "settlement")]
    assert await total_balance(c) == 0


async def test_d0_settles_on_the_business_date_and_tn_after_n_working_days(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    same_day, three_days = await merchant(c, "D+0"), await merchant(c, "T+3")
    await pay(c, same_day, 10_000, SAT)
    await pay(c, three_days, 20_000, FRI)
    first = await c.settlement.run(SAT)
    assert (first.settled_count, first.settled_amount) == (1, 9_940)
    assert await merchant_balances(c, same_day) == (0, 9_940)
    for day in (SUN, MON, TUE):
        assert (await c.settlement.run(day)).settled_count == 0
    assert await merchant_balances(c, three_days) == (19_880, 0)
    assert (await c.settlement.run(WED)).settled_amount == 19_880
    assert await merchant_balances(c, three_days) == (0, 19_880)


async def test_a_refund_before_settlement_is_netted_at_once(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    m = await merchant(c)
    paid = await pay(c, m, 100_000, FRI)  # pending 99,400
    await refund(c, m, 30_000, 180, paid, SAT)  # pending 69,580
    result = await c.settlement.run(MON)
    assert (result.settled_count, result.settled_amount) == (2, 69_580)
    assert await merchant_balances(c, m) == (0, 69_580)
    assert await total_balance(c) == 0


async def test_a_refund_of_a_payment_not_yet_due_moves_nothing_until_the_payment_is_due(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    m = await merchant(c)
    await pay(c, m, 50_000, FRI)  # due Monday: pending 49,700
    paid = await pay(c, m, 100_000, MON)  # due Tuesday: pending 149,100
    await refund(c, m, 100_000, 600, paid, MON)  # full refund of Monday's payment: pending 49,700
    # Monday: Friday's payment (49,700) and the refund (−99,400) are eligible: X < 0, nothing moves
    assert (await c.settlement.run(MON)).settled_count == 0
    assert await merchant_balances(c, m) == (49_700, 0)
    # Tuesday: everything nets to what was left
    result = await c.settlement.run(TUE)
    assert (result.settled_count, result.settled_amount) == (3, 49_700)
    assert await merchant_balances(c, m) == (0, 49_700)


async def test_a_rerun_settles_nothing_new_and_a_line_booked_after_the_run_settles_on_the_next_run(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    m = await merchant(c)
    await pay(c, m, 10_000, FRI)
    assert (await c.settlement.run(MON)).settled_amount == 9_940
    again = await c.settlement.run(MON)
    assert (again.settled_count, again.settled_amount) == (0, 0)
    await pay(c, m, 20_000, FRI)  # booked after Monday's run, due by Monday
    later = await c.settlement.run(MON)
    assert (later.settled_count, later.settled_amount) == (1, 19_880)  # the first line is not settled twice
    assert (await c.settlement.run(TUE)).settled_count == 0
    assert await merchant_balances(c, m) == (0, 29_820)
    assert len(await settlement_journals(c, m)) == 2
    async with c.db.uow() as uow:
        s = uow.session
        batches = (await s.execute(select(SettlementBatch.date, SettlementBatch.line_count))).all()
        items = (await s.execute(select(func.count()).select_from(SettlementItem))).scalar_one()
        settled_lines = (
            await s.execute(
                select(func.count())
                .select_from(LineRow)
                .join(SettlementItem, SettlementItem.line_id == LineRow.id)
                .where(LineRow.account == acct.merchant_pending(m))
            )
        ).scalar_one()
        runs = (await s.execute(select(SettlementRun.date, SettlementRun.settled_amount))).all()
    assert sorted(batches) == [("2026-12-07", 1), ("2026-12-07", 1)]
    assert items == settled_lines == 2
    assert sorted(runs) == [("2026-12-07", 29_820), ("2026-12-08", 0)]


async def test_merchants_settle_on_their_own_cycles_in_one_run(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    fast, slow, default = await merchant(c, "D+0"), await merchant(c, "T+2"), await merchant(c)
    for m in (fast, slow, default):
        await pay(c, m, 10_000, MON)
    result = await c.settlement.run(TUE)
    assert (result.settled_count, result.settled_amount) == (2, 2 * 9_940)
    assert [await merchant_balances(c, m) for m in (fast, slow, default)] == [(0, 9_940), (9_940, 0), (0, 9_940)]


async def test_the_daily_job_catches_up_every_missed_date_from_the_last_completed_run(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    m = await merchant(c)
    clock = FrozenClock(datetime(2026, 12, 3, 16, 0, 0, tzinfo=UTC))  # Fri 00:00 in Shanghai, Thu in UTC
    job = SettlementService(c.db, c.ids, clock, c.merchants, business_tz="Asia/Shanghai")
    assert job.today() == FRI
    await job.run_due()  # the first run ever: today only
    await pay(c, m, 10_000, FRI)
    await pay(c, m, 20_000, MON)
    clock.advance(datetime(2026, 12, 8, 17, 0, tzinfo=UTC) - clock.now())  # Wed 01:00 in Shanghai
    assert job.today() == WED
    assert await job.run_due() == 2  # Sat … Wed, each its own date
    async with c.db.uow() as uow:
        runs = sorted((await uow.session.scalars(select(SettlementRun.date))).all())
    assert runs == ["2026-12-04", "2026-12-05", "2026-12-06", "2026-12-07", "2026-12-08", "2026-12-09"]
    assert await settlement_journals(c, m) == [
        (f"{m}:2026-12-07", 9_940, 0, "settlement"),
        (f"{m}:2026-12-08", 19_880, 0, "settlement"),
    ]
    assert await job.run_due() == 0  # today again: nothing new


async def test_business_dates_follow_the_business_zone_not_utc(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    fri_last = FrozenClock(datetime(2026, 12, 4, 15, 59, 59, tzinfo=UTC))
    sat_first = FrozenClock(datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC))
    assert SettlementService(c.db, c.ids, fri_last, c.merchants, business_tz="Asia/Shanghai").today() == FRI
    assert SettlementService(c.db, c.ids, sat_first, c.merchants, business_tz="Asia/Shanghai").today() == SAT
    assert SettlementService(c.db, c.ids, sat_first, c.merchants, business_tz="UTC").today() == FRI


async def test_a_run_whose_lease_went_to_another_runner_writes_nothing(stack) -> None:  # type: ignore[no-untyped-def]
    """reliability scenario L9: the stale runner's settlement is refused by fencing at its commit."""
    c, _ = stack
    m = await merchant(c)
    await pay(c, m, 10_000, FRI)
    ttl = timedelta(seconds=30)
    fencing = await try_acquire(c.db, "job:account.settlement", "stale-runner", ttl)
    assert fencing == 1
    async with c.db.uow() as uow:  # the lease expires and another scheduler takes it over
        await uow.session.execute(
            update(JobLease).where(JobLease.name == "job:account.settlement").values(expires_at=utcnow())
        )
        await uow.commit()
    assert await try_acquire(c.db, "job:account.settlement", "new-runner", ttl) == 2
    stale = HeldLease(c.db, "job:account.settlement", "stale-runner", fencing, ttl)
    with fenced(stale), pytest.raises(LeaseLost):
        await c.settlement.run(MON)
    assert await merchant_balances(c, m) == (9_940, 0)
    assert await settlement_journals(c, m) == []
    async with c.db.uow() as uow:
        assert (await uow.session.execute(select(func.count()).select_from(SettlementBatch))).scalar_one() == 0
    assert (await c.settlement.run(MON)).settled_amount == 9_940  # the runner that holds the lease settles it


async def test_one_merchant_failing_does_not_hold_up_the_others_and_the_date_stays_open(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    broken, fine = await merchant(c), await merchant(c)
    async with c.db.uow() as uow:  # a cycle no code path writes: settling this merchant raises
        await uow.session.execute(text("UPDATE merchants SET settle_cycle = 'weekly' WHERE mch_no = :m"), {"m": broken})
        await uow.commit()
    for m in (broken, fine):
        await pay(c, m, 10_000, FRI)
    with pytest.raises(ValueError):
        await c.settlement.run(MON)
    assert await merchant_balances(c, fine) == (0, 9_940)
    assert await merchant_balances(c, broken) == (9_940, 0)
    async with c.db.uow() as uow:
        assert (await uow.session.scalars(select(SettlementRun.date))).all() == []  # not completed: retried
    await c.merchants.set_settle_cycle(broken, SettleCycleUpdate(cycle="T+1"))
    result = await c.settlement.run(MON)
    assert (result.settled_count, result.settled_amount) == (1, 9_940)
    async with c.db.uow() as uow:
        assert (await uow.session.scalars(select(SettlementRun.date))).all() == ["2026-12-07"]


async def test_the_scheduler_runs_the_settlement_job_as_soon_as_it_starts(stack) -> None:  # type: ignore[no-untyped-def]
    c, _ = stack
    m = await merchant(c, "D+0")
    await pay(c, m, 10_000, c.settlement.today())
    [job] = [j for j in JOBS if j.name == "account.settlement"]
    assert job.at_start and job.every_s == 60.0
    runner = JobRunner(c, jobs=[job])
    runner.start()  # the next interval is a minute away: only the start-up run can settle within the wait
    try:
        async with asyncio.timeout(30):
            while (await merchant_balances(c, m))[1] == 0:
                await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    assert await merchant_balances(c, m) == (0, 9_940)
