"""Booking pay's outbox events into the ledger: the journals, exactly once, whatever the consumer goes through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.fixtures.booking import consumer, drain, paid_facts, refund_facts, write_event
from tomato.account import accounts as acct
from tomato.account.booking import Event
from tomato.account.consumer import CURSOR
from tomato.account.ledger import EntryRequest, Line, balances, post_committed
from tomato.account.models import Balance, BookedEvent, BookingCursor, Journal
from tomato.account.models import Line as LineRow
from tomato.core.clock import SystemClock
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.core.outbox import OutboxEvent

CLOCK = SystemClock()


@pytest.fixture
def ids() -> Snowflake:
    return Snowflake(11)


async def read(db: Database, *accounts: str) -> dict[str, int]:
    async with db.uow() as uow:
        return await balances(uow.session, accounts)


async def journals(db: Database, **where: Any) -> list[Journal]:
    async with db.uow() as uow:
        stmt = select(Journal).order_by(Journal.seq)
        for name, value in where.items():
            stmt = stmt.where(getattr(Journal, name) == value)
        return list((await uow.session.execute(stmt)).scalars())


async def outcomes(db: Database) -> dict[str, str]:
    async with db.uow() as uow:
        rows = (await uow.session.execute(select(BookedEvent.event_id, BookedEvent.outcome))).all()
    return {r.event_id: r.outcome for r in rows}


async def total_raw(db: Database) -> int:
    async with db.uow() as uow:
        return int((await uow.session.execute(select(func.coalesce(func.sum(Balance.balance), 0)))).scalar_one())


async def settle(db: Database, ids: Snowflake, mch_no: str, amount: int) -> None:
    """What the settlement job books: pending → available."""
    await post_committed(db, ids, CLOCK, EntryRequest(
        source_type="settlement", source_id=f"{mch_no}:{amount}", leg="settle", kind="settlement",
        lines=(Line(acct.merchant_pending(mch_no), amount, guard=True), Line(acct.merchant_available(mch_no), -amount)),
        business_date="2026-12-07", mch_no=mch_no, amount=amount, fee=0,
    ))  # fmt: skip


async def test_a_paid_order_books_pending_net_of_the_fee(db: Database, ids: Snowflake) -> None:
    facts = paid_facts("M1", 100_000, order_no="P100", channel_account_id="CA7")
    event = await write_event(db, ids, "pay.succeeded", facts)
    c = consumer(db, ids)
    await drain(c)
    assert await read(db, acct.merchant_pending("M1"), acct.PLATFORM_FEE_INCOME, acct.channel_receivable("CA7"),
                      acct.channel_fee_expense("CA7")) == {
        "merchant_pending:M1": 99_400, "platform_fee_income": 600,
        "channel_receivable:CA7": 99_620, "channel_fee_expense:CA7": 380,
    }  # fmt: skip
    [journal] = await journals(db)
    assert (journal.kind, journal.mch_no, journal.order_no, journal.amount, journal.fee) == (
        "payment", "M1", "P100", 100_000, 600,
    )  # fmt: skip
    assert (journal.source_type, journal.source_id, journal.leg, journal.business_date) == (
        "order", "P100", "payment", "2026-12-06",
    )  # fmt: skip
    assert await outcomes(db) == {event.id: "booked"}
    assert c.stats.booked == 1 and c.stats.position == 1  # the first position numbered
    await drain(consumer(db, ids))  # a second consumer (a restart) finds nothing new
    assert len(await journals(db)) == 1


async def test_the_same_event_handed_over_ten_times_at_once_books_once(db: Database, ids: Snowflake) -> None:
    if db.dialect != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL; SQLite serialises writers")
    refund_paid = paid_facts("M2", 100_000, order_no="P200")
    await write_event(db, ids, "pay.succeeded", refund_paid)
    await drain(consumer(db, ids))
    row = await write_event(db, ids, "refund.succeeded", refund_facts(refund_paid, 30_000, refund_no="R200"))
    pay_row = await write_event(db, ids, "pay.succeeded", paid_facts("M2", 5_000, order_no="P201"))
    for r in (row, pay_row):
        event = Event(r.id, r.event_type, r.aggregate_id, None, r.facts)
        results = await asyncio.gather(*(consumer(db, ids).book_one(event) for _ in range(10)))
        assert sorted(x.outcome for x in results) == ["booked"] + ["seen"] * 9
    await drain(consumer(db, ids))  # and the loop reading them later books nothing more
    assert [j.source_id for j in await journals(db)] == ["P200", "R200", "P201"]
    assert (await read(db, acct.merchant_pending("M2")))["merchant_pending:M2"] == 99_400 - 29_820 + 4_970
    assert await total_raw(db) == 0


async def test_a_crash_between_the_entry_and_the_cursor_books_once(db: Database, ids: Snowflake) -> None:
    crashes = 0

    async def crash(where: str, event: Event) -> None:
        nonlocal crashes
        if where == "after_entry" and crashes == 0:
            crashes += 1
            raise RuntimeError("killed between the entry and the cursor move")

    event = await write_event(db, ids, "pay.succeeded", paid_facts("M3", 100_000, order_no="P300"))
    with pytest.raises(RuntimeError):
        await consumer(db, ids, fault=crash).run_once()
    assert await journals(db) == [] and await outcomes(db) == {}  # nothing of the crashed round stayed
    await drain(consumer(db, ids, fault=crash))  # the restarted consumer
    assert [j.source_id for j in await journals(db)] == ["P300"]
    # a consumer whose cursor went back (a cursor committed apart from the entry would) books nothing again
    async with db.uow() as uow:
        await uow.session.execute(update(BookingCursor).where(BookingCursor.name == CURSOR).values(position=0))
        await uow.commit()
    again = consumer(db, ids)
    await drain(again)
    assert [j.source_id for j in await journals(db)] == ["P300"]
    assert again.stats.outcomes == {"seen": 1}
    assert await outcomes(db) == {event.id: "booked"}
    assert (await read(db, acct.merchant_pending("M3")))["merchant_pending:M3"] == 99_400


async def test_a_crash_in_the_middle_of_a_chunk_commits_none_of_it_and_the_restart_books_each_once(
    db: Database, ids: Snowflake
) -> None:
    seen: list[str] = []

    async def crash(where: str, event: Event) -> None:
        seen.append(event.id)
        if len(seen) == 2:
            raise RuntimeError("killed halfway through a chunk")

    for n in range(3):
        await write_event(db, ids, "pay.succeeded", paid_facts("M3", 1_000, order_no=f"P31{n}"))
    with pytest.raises(RuntimeError):
        await consumer(db, ids, fault=crash).run_once()
    assert await journals(db) == [] and await outcomes(db) == {}
    restarted = consumer(db, ids, fault=crash)
    await drain(restarted)
    assert [j.source_id for j in await journals(db)] == ["P310", "P311", "P312"]
    assert restarted.stats.booked == 3
    assert (await read(db, acct.merchant_pending("M3")))["merchant_pending:M3"] == 3 * 994


async def test_refunds_take_pending_first_then_available_and_a_full_refund_returns_the_whole_fee(
    db: Database, ids: Snowflake
) -> None:
    paid = paid_facts("M4", 100_000, order_no="P400", channel_account_id="CA4")
    await write_event(db, ids, "pay.succeeded", paid)
    c = consumer(db, ids)
    await drain(c)
    await settle(db, ids, "M4", 80_000)  # pending 19,400, available 80,000
    await write_event(db, ids, "refund.succeeded", refund_facts(paid, 30_000, refund_no="R401"))
    await drain(c)
    accounts = (acct.merchant_pending("M4"), acct.merchant_available("M4"), acct.PLATFORM_FEE_INCOME,
                acct.channel_receivable("CA4"), acct.channel_fee_expense("CA4"))  # fmt: skip
    # fee share (2·600·30,000 + 100,000) // 200,000 = 180; 29,820 leaves the merchant: 19,400 pending, 10,420 available;
    # the channel gives back 114 of its 380 cost: it refunds 30,000 out of what it owes us less 114
    assert list((await read(db, *accounts)).values()) == [0, 69_580, 420, 99_620 - 29_886, 266]
    refund = (await journals(db, kind="refund"))[0]
    assert (refund.amount, refund.fee, refund.refund_no, refund.order_no) == (-30_000, -180, "R401", "P400")
    async with db.uow() as uow:
        lines = dict((await uow.session.execute(
            select(LineRow.account, LineRow.amount).where(LineRow.journal_id == refund.id))).all())  # fmt: skip
    assert lines == {"merchant_pending:M4": 19_400, "merchant_available:M4": 10_420, "platform_fee_income": 180,
                     "channel_receivable:CA4": -29_886, "channel_fee_expense:CA4": -114}  # fmt: skip
    await write_event(db, ids, "refund.succeeded", refund_facts(paid, 70_000, refunded_before=30_000))
    await drain(c)
    # the whole fee and the whole channel cost went back: nothing is left anywhere
    assert list((await read(db, *accounts)).values()) == [0, 0, 0, 0, 0]
    assert await total_raw(db) == 0


async def test_a_refund_after_the_money_left_takes_available_below_zero(db: Database, ids: Snowflake) -> None:
    paid = paid_facts("M5", 10_000, order_no="P500")
    await write_event(db, ids, "pay.succeeded", paid)
    await drain(consumer(db, ids))
    await settle(db, ids, "M5", 9_940)
    await post_committed(db, ids, CLOCK, EntryRequest(
        source_type="payout", source_id="W500", leg="hold", kind="payout",
        lines=(Line(acct.merchant_available("M5"), 9_940, guard=True), Line(acct.payout_in_transit("M5"), -9_940)),
        business_date="2026-12-07", mch_no="M5", payout_no="W500", amount=-9_940, fee=0,
    ))  # fmt: skip
    await write_event(db, ids, "refund.succeeded", refund_facts(paid, 10_000, refund_no="R500"))
    await drain(consumer(db, ids))
    got = await read(db, acct.merchant_pending("M5"), acct.merchant_available("M5"))
    assert got == {"merchant_pending:M5": 0, "merchant_available:M5": -9_940}  # the channel paid it back already


async def test_anomalies_where_money_moved_go_to_suspense_and_the_rest_are_skipped(
    db: Database, ids: Snowflake
) -> None:
    def anomaly(kind: str, anomaly_id: str, amount: int | None) -> dict[str, Any]:
        return {"anomaly_id": anomaly_id, "kind": kind, "order_no": "P600", "mch_no": "M6", "app_id": "A1",
                "channel": "alipay", "channel_account_id": "CA6", "amount": amount,
                "business_date": "2026-12-06"}  # fmt: skip

    await write_event(db, ids, "pay.anomaly", anomaly("second_payment", "AN1", 5_000), "AN1")
    await write_event(db, ids, "pay.anomaly", anomaly("refund_succeeded_after_failed", "AN2", 1_000), "AN2")
    skipped = await write_event(db, ids, "pay.anomaly", anomaly("paid_after_close", "AN3", 5_000), "AN3")
    no_amount = await write_event(db, ids, "pay.anomaly", anomaly("amount_mismatch", "AN4", None), "AN4")
    c = consumer(db, ids)
    await drain(c)
    assert await read(db, acct.SUSPENSE, acct.channel_receivable("CA6")) == {
        "suspense": 4_000, "channel_receivable:CA6": 4_000,
    }  # fmt: skip
    assert [(j.source_id, j.kind, j.amount) for j in await journals(db)] == [("AN1", "anomaly", 5_000),
                                                                            ("AN2", "anomaly", -1_000)]  # fmt: skip
    got = await outcomes(db)
    assert (got[skipped.id], got[no_amount.id]) == ("skipped", "skipped")
    assert (c.stats.booked, c.stats.skipped) == (2, 2)


async def test_events_without_facts_are_skipped_and_bad_facts_rejected_without_stopping_the_rest(
    db: Database, ids: Snowflake
) -> None:
    old = await write_event(db, ids, "pay.succeeded", None, "P700")
    bad = await write_event(db, ids, "pay.succeeded", {**paid_facts("M7", 1_000), "fee": 2_000})
    await write_event(db, ids, "pay.closed", None, "P701")  # not the ledger's: passed over
    good = await write_event(db, ids, "pay.succeeded", paid_facts("M7", 1_000, order_no="P702"))
    last = await write_event(db, ids, "pay.failed", None, "P703")
    c = consumer(db, ids)
    await drain(c)
    assert await outcomes(db) == {old.id: "skipped", bad.id: "rejected", good.id: "booked"}
    assert (c.stats.skipped, c.stats.rejected, c.stats.booked) == (1, 1, 1)
    assert [j.source_id for j in await journals(db)] == ["P702"]
    async with db.uow() as uow:
        position = (await uow.session.execute(select(BookingCursor.position))).scalar_one()
        last_position = (
            await uow.session.execute(select(OutboxEvent.position).where(OutboxEvent.id == last.id))
        ).scalar_one()
    assert position == last_position  # moved past the trailing event of another type


async def test_values_the_journal_cannot_hold_are_rejected_and_booking_goes_on(db: Database, ids: Snowflake) -> None:
    too_long = await write_event(db, ids, "pay.succeeded", paid_facts("M7", 1_000, order_no="P" * 40))
    anomaly = {"anomaly_id": "AN7", "kind": "second_payment", "order_no": "P" * 40, "amount": 5,
               "channel_account_id": "CA7", "business_date": "2026-12-06"}  # fmt: skip
    odd = await write_event(db, ids, "pay.anomaly", anomaly, "AN7")
    good = await write_event(db, ids, "pay.succeeded", paid_facts("M7", 1_000, order_no="P710"))
    await drain(consumer(db, ids))
    got = await outcomes(db)
    assert (got[too_long.id], got[good.id]) == ("rejected", "booked")
    # PostgreSQL refuses a 40-character order number in a 32-character column: rejected, never a stalled consumer
    assert got[odd.id] == ("rejected" if db.dialect == "postgresql" else "booked")


async def test_a_second_event_for_what_is_already_booked_books_nothing(db: Database, ids: Snowflake) -> None:
    paid = paid_facts("M8", 2_000, order_no="P800")
    first = await write_event(db, ids, "pay.succeeded", paid)
    second = await write_event(db, ids, "pay.succeeded", paid)  # another event id, the same payment
    await drain(consumer(db, ids))
    assert await outcomes(db) == {first.id: "booked", second.id: "duplicate"}
    assert len(await journals(db)) == 1


async def test_one_booking_loop_runs_and_books_what_arrives(db: Database, ids: Snowflake) -> None:
    stop = asyncio.Event()
    a, b = consumer(db, ids, poll_s=0.05), consumer(db, ids, poll_s=0.05)
    tasks = [asyncio.create_task(a.run_forever(stop)), asyncio.create_task(b.run_forever(stop))]
    try:
        for n in range(5):
            await write_event(db, ids, "pay.succeeded", paid_facts("M9", 1_000, order_no=f"P90{n}"))
        async with asyncio.timeout(20):
            while len(await journals(db)) < 5:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert sorted([a.stats.booked, b.stats.booked]) == [0, 5]  # the lease holder booked everything
    assert (await read(db, acct.merchant_pending("M9")))["merchant_pending:M9"] == 5 * 994


async def test_reconciliation_events_are_booked_by_the_same_consumer_once(db: Database, ids: Snowflake) -> None:
    """A matched statement clears the receivable to the bank; an accepted channel figure and a released anomaly
    move suspense; a malformed one is rejected instead of stalling the consumer."""
    await write_event(db, ids, "pay.succeeded", paid_facts("M9", 100_000, order_no="P900", channel_account_id="CA9"))
    await write_event(db, ids, "reconciliation.settled",
                      {"channel_account_id": "CA9", "business_date": "2026-12-06", "net": 99_620},
                      aggregate_id="RB1")  # fmt: skip
    await write_event(db, ids, "reconciliation.adjustment",
                      {"discrepancy_id": "RD1", "channel_account_id": "CA9", "receivable_delta": 1, "fee_delta": 0,
                       "business_date": "2026-12-06", "order_no": "P900", "refund_no": None},
                      aggregate_id="RD1")  # fmt: skip
    await write_event(db, ids, "reconciliation.anomaly_resolved",
                      {"anomaly_id": "AN9", "action": "RELEASE_TO_MERCHANT", "amount": 1, "mch_no": "M9",
                       "channel_account_id": "CA9", "business_date": "2026-12-06", "order_no": "P900"},
                      aggregate_id="AN9")  # fmt: skip
    bad = await write_event(db, ids, "reconciliation.settled", {"business_date": "2026-12-06"}, aggregate_id="RB2")
    for _ in range(2):  # read twice: nothing books again
        await drain(consumer(db, ids))
    assert [(j.source_type, j.leg) for j in await journals(db)] == [
        ("order", "payment"), ("channel_settlement", "settle"), ("adjustment", "reconciliation"),
        ("anomaly", "release_to_merchant"),
    ]  # fmt: skip
    got = await read(db, acct.BANK, acct.channel_receivable("CA9"), acct.SUSPENSE, acct.merchant_available("M9"))
    assert got == {"bank": 99_620, "channel_receivable:CA9": 1, "suspense": 0, "merchant_available:M9": 1}
    assert (await outcomes(db))[bad.id] == "rejected"
    assert await total_raw(db) == 0


async def test_a_worker_killed_by_sigkill_between_its_entry_and_its_commit_books_once_after_restart(
    db: Database, ids: Snowflake
) -> None:
    """Issue 17, acceptance 3: a real process, a real SIGKILL with the entry written and not yet committed."""
    if db.dialect != "postgresql":
        pytest.skip("a killed process's open transaction is rolled back by the server: PostgreSQL")
    import signal
    import sys
    from pathlib import Path

    url = db.engine.url.render_as_string(hide_password=False)
    event = await write_event(db, ids, "pay.succeeded", paid_facts("MK1", 100_000, order_no="PK1"))

    async def worker(mode: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fixtures.booking_worker", url, mode, cwd=Path(__file__).parents[2]
        )
        return await asyncio.wait_for(proc.wait(), timeout=90)

    assert await worker("kill") == -signal.SIGKILL
    assert await journals(db) == [] and await outcomes(db) == {}  # the entry died with its transaction
    assert await worker("run") == 0  # the restart takes the lease over once the killed holder's expires
    assert [j.source_id for j in await journals(db)] == ["PK1"]
    assert await outcomes(db) == {event.id: "booked"}
    assert (await read(db, acct.merchant_pending("MK1")))["merchant_pending:MK1"] == 99_400
