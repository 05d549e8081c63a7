"""Profit-sharing splits in the ledger (issue 22): `split.succeeded` / `split.returned` booked from pay's facts,
pending first then available, exactly once per event and per split, the service-provider memo journal, balance
transactions and the statement, and a `tomato ledger check` that stays ok — and names splits that do not add up."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.fixtures.booking import consumer, drain, paid_facts, provider, refund_facts, write_event
from tests.fixtures.splits import return_facts, split_facts
from tomato.account import accounts as acct
from tomato.account import booking
from tomato.account.booking import Event
from tomato.account.calendar import business_date_at
from tomato.account.check import check_ledger
from tomato.account.ledger import EntryRequest, Line, balances, post_committed
from tomato.account.models import Balance, BookedEvent, Journal, ProviderBalance
from tomato.account.models import Line as LineRow
from tomato.account.service import LedgerService, transaction_view
from tomato.core.clock import SystemClock
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.gateway.routers.v1.balance import statement_csv
from tomato.pay.schemas import SucceededOrder

CLOCK = SystemClock()
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
THEN = NOW - timedelta(hours=1)


@pytest.fixture
def ids() -> Snowflake:
    return Snowflake(19)


async def read(db: Database, *accounts: str) -> dict[str, int]:
    async with db.uow() as uow:
        return await balances(uow.session, accounts)


async def journals(db: Database) -> list[Journal]:
    async with db.uow() as uow:
        return list((await uow.session.execute(select(Journal).order_by(Journal.seq))).scalars())


async def lines_of(db: Database, journal_id: str) -> dict[str, int]:
    async with db.uow() as uow:
        rows = await uow.session.execute(
            select(LineRow.account, func.sum(LineRow.amount)).where(LineRow.journal_id == journal_id)
            .group_by(LineRow.account)
        )  # fmt: skip
        return {account: int(amount) for account, amount in rows.all()}


async def outcome(db: Database, event_id: str) -> str:
    async with db.uow() as uow:
        return (await uow.session.get_one(BookedEvent, event_id)).outcome


def orders_of(*orders: SucceededOrder) -> Any:
    async def source(after: str | None, limit: int) -> list[SucceededOrder]:
        listed = sorted(orders, key=lambda o: o.order_no)
        return [o for o in listed if after is None or o.order_no > after][:limit]

    return source


async def settle(db: Database, ids: Snowflake, mch_no: str, amount: int) -> None:
    """What a settlement run books: pending → available (guarded), as account.settlement does."""
    await post_committed(db, ids, CLOCK, EntryRequest(
        source_type="settlement", source_id=f"{mch_no}:2026-12-06", leg=f"settle:{amount}", kind="settlement",
        lines=(Line(acct.merchant_pending(mch_no), amount, guard=True), Line(acct.merchant_available(mch_no), -amount)),
        business_date="2026-12-06", mch_no=mch_no, amount=amount, fee=0,
    ))  # fmt: skip


def merchant(mch_no: str, ca: str = "CA1") -> tuple[str, ...]:
    return acct.merchant_pending(mch_no), acct.merchant_available(mch_no), acct.channel_receivable(ca)


async def test_a_payment_split_return_and_refund_book_from_facts(db: Database, ids: Snowflake) -> None:
    paid = paid_facts("M1", 100_000, order_no="P1", channel_account_id="CA7")  # fee 600, channel cost 380
    split = split_facts(paid, 30_000, split_no="S1")
    back = return_facts(split, 12_000, return_no="B1")
    for event_type, facts in (("pay.succeeded", paid), ("split.succeeded", split), ("split.returned", back),
                              ("refund.succeeded", refund_facts(paid, 12_000, refund_no="R1"))):  # fmt: skip
        await write_event(db, ids, event_type, facts)
    await drain(consumer(db, ids))

    payment, sp, ret, refund = await journals(db)
    assert [(j.kind, j.source_type, j.source_id, j.leg, j.order_no, j.amount, j.fee) for j in (sp, ret)] == [
        ("split", "split", "S1", "split", "P1", -30_000, 0),
        ("split_return", "split", "S1/B1", "return", "P1", 12_000, 0),
    ]
    assert await lines_of(db, sp.id) == {"merchant_pending:M1": 30_000, "channel_receivable:CA7": -30_000}
    assert await lines_of(db, ret.id) == {"merchant_pending:M1": -12_000, "channel_receivable:CA7": 12_000}
    # pending 99_400 − 30_000 + 12_000 − (12_000 − 72 fee returned); the channel owes 99_620 − 30_000 + 12_000 − …
    assert await read(db, *merchant("M1", "CA7")) == {
        "merchant_pending:M1": 99_400 - 30_000 + 12_000 - 11_928, "merchant_available:M1": 0,
        "channel_receivable:CA7": 99_620 - 30_000 + 12_000 - (12_000 - 46),
    }  # fmt: skip

    svc = LedgerService(db)
    listed = [(t.type, t.amount, t.fee, t.net) for t in map(transaction_view, await svc.transactions("M1", None, 10))]
    assert listed == [("refund", -12_000, -72, -11_928), ("split_return", 12_000, 0, 12_000),
                      ("split", -30_000, 0, -30_000), ("payment", 100_000, 600, 99_400)]  # fmt: skip
    report = await check_ledger(db, orders_of(SucceededOrder("P1", 100_000, THEN)), NOW)
    assert report.ok, report.violations
    assert report.warnings == []
    assert (await svc.trial_balance()).balanced


async def test_the_statement_lists_splits_and_sums_to_the_balance_movement(db: Database, ids: Snowflake) -> None:
    paid = paid_facts("M2", 50_000, order_no="P1")
    split = split_facts(paid, 20_000, split_no="S1")
    await write_event(db, ids, "pay.succeeded", paid)
    await write_event(db, ids, "split.succeeded", split)
    await write_event(db, ids, "split.returned", return_facts(split, 5_000, return_no="B1"))
    await drain(consumer(db, ids))

    svc = LedgerService(db)
    today = business_date_at(CLOCK.now(), ZoneInfo("Asia/Shanghai"))
    rows = list(csv.DictReader(io.StringIO(statement_csv(await svc.statement("M2", today)))))
    assert [(r["type"], r["order_no"], r["amount"], r["net"]) for r in rows] == [
        ("payment", "P1", "50000", "49700"), ("split", "P1", "-20000", "-20000"),
        ("split_return", "P1", "5000", "5000"),
    ]  # fmt: skip
    view = await svc.balance("M2")
    assert sum(int(r["net"]) for r in rows) == view.pending + view.available == 49_700 - 15_000


async def test_a_split_pending_cannot_cover_takes_the_rest_from_available(db: Database, ids: Snowflake) -> None:
    paid = paid_facts("M3", 100_000, order_no="P1")
    await write_event(db, ids, "pay.succeeded", paid)
    await drain(consumer(db, ids))
    await settle(db, ids, "M3", 90_000)  # pending 9_400, available 90_000
    await write_event(db, ids, "split.succeeded", split_facts(paid, 30_000, split_no="S1"))
    await drain(consumer(db, ids))
    split = (await journals(db))[-1]
    assert await lines_of(db, split.id) == {
        "merchant_pending:M3": 9_400, "merchant_available:M3": 20_600, "channel_receivable:CA1": -30_000,
    }  # fmt: skip
    assert await read(db, *merchant("M3")) == {
        "merchant_pending:M3": 0, "merchant_available:M3": 69_400, "channel_receivable:CA1": 99_620 - 30_000,
    }  # fmt: skip
    report = await check_ledger(db, orders_of(SucceededOrder("P1", 100_000, THEN)), NOW)
    assert report.ok and report.warnings == [], (report.violations, report.warnings)


async def test_a_pending_lowered_after_it_was_read_is_read_again(
    db: Database, ids: Snowflake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split's pending line is guarded: booked from a stale read it is refused, and the consumer books the
    event again from a fresh read instead of taking pending below zero."""
    paid = paid_facts("M4", 100_000, order_no="P1")
    await write_event(db, ids, "pay.succeeded", paid)
    await drain(consumer(db, ids))
    await settle(db, ids, "M4", 99_000)  # pending 400
    reads: list[int] = []
    real = booking._pending_of

    async def stale_once(session: Any, mch_no: str) -> int:
        got = await real(session, mch_no)
        reads.append(got)
        return got + 99_000 if len(reads) == 1 else got  # the first read: pending before the settlement

    monkeypatch.setattr(booking, "_pending_of", stale_once)
    event = await write_event(db, ids, "split.succeeded", split_facts(paid, 5_000, split_no="S1"))
    await drain(consumer(db, ids))
    assert reads == [400, 400] and await outcome(db, event.id) == "booked"
    assert await read(db, *merchant("M4")) == {
        "merchant_pending:M4": 0, "merchant_available:M4": 99_000 - 4_600, "channel_receivable:CA1": 99_620 - 5_000,
    }  # fmt: skip


async def test_a_split_and_its_return_book_once_under_twin_event_ids(db: Database, ids: Snowflake) -> None:
    paid = paid_facts("M5", 100_000, order_no="P1")
    split = split_facts(paid, 30_000, split_no="S1")
    back = return_facts(split, 10_000, return_no="B1")
    await write_event(db, ids, "pay.succeeded", paid)
    first = await write_event(db, ids, "split.succeeded", split)
    twin = await write_event(db, ids, "split.succeeded", split)
    returned = await write_event(db, ids, "split.returned", back)
    returned_twin = await write_event(db, ids, "split.returned", back)
    other = await write_event(db, ids, "split.returned", return_facts(split, 10_000, return_no="B2"))
    await drain(consumer(db, ids))
    assert [await outcome(db, e.id) for e in (first, twin, returned, returned_twin, other)] == [
        "booked", "duplicate", "booked", "duplicate", "booked",
    ]  # fmt: skip
    # the same event handed over again: the inbox has it
    event = Event(first.id, first.event_type, first.aggregate_id, None, first.facts)
    assert (await consumer(db, ids).book_one(event)).outcome == "seen"
    assert [j.source_id for j in await journals(db)] == ["P1", "S1", "S1/B1", "S1/B2"]
    assert (await read(db, acct.merchant_pending("M5")))["merchant_pending:M5"] == 99_400 - 30_000 + 20_000


async def test_concurrent_twins_and_splits_book_once_on_postgresql(db: Database, ids: Snowflake) -> None:
    """Twins meet on the inbox row or the journal's source key; splits of one merchant meet on its guarded
    pending row — none books twice and pending never goes below zero."""
    if db.dialect != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL; SQLite serialises writers")
    paid = paid_facts("M6", 100_000, order_no="P1")
    await write_event(db, ids, "pay.succeeded", paid)
    await drain(consumer(db, ids))
    split = split_facts(paid, 30_000, split_no="S1")
    rows = [await write_event(db, ids, "split.succeeded", split) for _ in range(6)]
    events = [Event(r.id, r.event_type, r.aggregate_id, None, r.facts) for r in rows]
    results = await asyncio.gather(*(consumer(db, ids).book_one(e) for e in events))
    assert sorted(x.outcome for x in results) == ["booked"] + ["duplicate"] * 5
    same = await asyncio.gather(*(consumer(db, ids).book_one(events[0]) for _ in range(8)))
    assert {x.outcome for x in same} == {"seen"}
    # eight different splits of 10_000 at once: 69_400 pending covers six whole, the rest comes from available
    rows = [await write_event(db, ids, "split.succeeded", split_facts(paid, 10_000, split_no=f"T{i}"))
            for i in range(8)]  # fmt: skip
    events = [Event(r.id, r.event_type, r.aggregate_id, None, r.facts) for r in rows]
    results = await asyncio.gather(*(consumer(db, ids).book_one(e) for e in events))
    assert [x.outcome for x in results] == ["booked"] * 8
    assert await read(db, *merchant("M6")) == {
        "merchant_pending:M6": 0, "merchant_available:M6": -(110_000 - 99_400),
        "channel_receivable:CA1": 99_620 - 110_000,
    }  # fmt: skip
    report = await check_ledger(db, orders_of(SucceededOrder("P1", 100_000, THEN)), NOW)
    assert report.violations == ["order P1: splits 110000 net of returns exceed the 100000 paid"]
    assert report.warnings == ["merchant_available:M6 is negative: -10600"]


async def test_a_service_provider_split_books_a_memo_journal_once(db: Database, ids: Snowflake) -> None:
    paid = provider(paid_facts("M7", 100_000, order_no="P1"))
    split = split_facts(paid, 30_000, split_no="S1")
    assert split["service_provider"] is True
    await write_event(db, ids, "pay.succeeded", paid)
    first = await write_event(db, ids, "split.succeeded", split)
    twin = await write_event(db, ids, "split.succeeded", split)
    await write_event(db, ids, "split.returned", return_facts(split, 30_000, return_no="B1"))
    await drain(consumer(db, ids))
    assert (await outcome(db, first.id), await outcome(db, twin.id)) == ("booked", "duplicate")
    payment, sp, ret = await journals(db)
    assert [(j.kind, j.source_id, j.leg, j.amount, j.fee) for j in (sp, ret)] == [
        ("provider_split", "S1", "split", -30_000, 0), ("provider_split_return", "S1/B1", "return", 30_000, 0),
    ]  # fmt: skip
    assert await lines_of(db, sp.id) == {} and await lines_of(db, ret.id) == {}
    async with db.uow() as uow:
        moved = await uow.session.execute(select(func.count()).select_from(Balance).where(
            Balance.account.in_(merchant("M7"))))  # fmt: skip
        assert moved.scalar_one() == 0  # nothing passed through the platform
        assert (await uow.session.get_one(ProviderBalance, "M7")).collected == 100_000
    svc = LedgerService(db)
    assert [j.kind for j in await svc.transactions("M7", None, 10)] == []  # shadow journals are not listed
    report = await check_ledger(db, orders_of(SucceededOrder("P1", 100_000, THEN)), NOW)
    assert report.ok, report.violations
    assert report.warnings == []


async def test_the_check_names_splits_that_do_not_add_up(db: Database, ids: Snowflake) -> None:
    paid = paid_facts("M8", 100_000, order_no="P1")
    split = split_facts(paid, 1_000, split_no="S1")
    await write_event(db, ids, "pay.succeeded", paid)
    await write_event(db, ids, "split.succeeded", split)
    await write_event(db, ids, "split.returned", return_facts(split, 1_500, return_no="B1"))  # more than it took
    orphan = split_facts(paid, 100, split_no="S2")
    await write_event(db, ids, "split.returned", return_facts(orphan, 100, return_no="B2"))  # its split never booked
    await write_event(db, ids, "split.succeeded", split_facts(paid_facts("M8", 10, order_no="P9"), 10, split_no="S3"))
    await drain(consumer(db, ids))
    report = await check_ledger(db, orders_of(SucceededOrder("P1", 100_000, THEN)), NOW)
    assert report.violations == [
        "split S1: returns 1500 exceed the 1000 split",
        "split S2 has returns (100) but no split journal",
        "order P9 has split journals but no payment journal",
    ]
