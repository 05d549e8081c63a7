"""The shadow ledger of service-provider payments (issue 21): booked from pay's facts, only the fee, exactly once, with
the per-merchant memo of what the channel paid the merchant, and a `tomato ledger check` that stays ok."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update

from tests.fixtures.booking import consumer, drain, paid_facts, provider, refund_facts, write_event
from tomato.account import accounts as acct
from tomato.account.booking import Event
from tomato.account.check import check_ledger
from tomato.account.ledger import EntryRequest, Line, balances, post_committed
from tomato.account.models import Balance, BookedEvent, Journal, ProviderBalance
from tomato.account.models import Line as LineRow
from tomato.account.service import LedgerService
from tomato.core.clock import SystemClock
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.pay.schemas import SucceededOrder

CLOCK = SystemClock()
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def ids() -> Snowflake:
    return Snowflake(17)


async def read(db: Database, *accounts: str) -> dict[str, int]:
    async with db.uow() as uow:
        return await balances(uow.session, accounts)


async def journals(db: Database) -> list[Journal]:
    async with db.uow() as uow:
        return list((await uow.session.execute(select(Journal).order_by(Journal.seq))).scalars())


async def lines_of(db: Database, journal_id: str) -> dict[str, int]:
    async with db.uow() as uow:
        stmt = select(LineRow.account, LineRow.amount).where(LineRow.journal_id == journal_id)
        rows = await uow.session.execute(stmt)
        return {r.account: r.amount for r in rows.all()}


async def memo(db: Database, mch_no: str) -> tuple[int, int] | None:
    async with db.uow() as uow:
        row = await uow.session.get(ProviderBalance, mch_no)
        return None if row is None else (row.collected, row.payments)


async def balance_rows(db: Database, *accounts: str) -> int:
    async with db.uow() as uow:
        stmt = select(func.count()).select_from(Balance).where(Balance.account.in_(accounts))
        return int((await uow.session.execute(stmt)).scalar_one())


async def total_raw(db: Database) -> int:
    async with db.uow() as uow:
        return int((await uow.session.execute(select(func.coalesce(func.sum(Balance.balance), 0)))).scalar_one())


def orders_of(*orders: SucceededOrder) -> Any:
    async def source(after: str | None, limit: int) -> list[SucceededOrder]:
        listed = sorted(orders, key=lambda o: o.order_no)
        return [o for o in listed if after is None or o.order_no > after][:limit]

    return source


async def test_a_provider_payment_and_partial_refund_book_only_the_fee(db: Database, ids: Snowflake) -> None:
    paid = provider(paid_facts("M1", 100_000, order_no="P1", channel_account_id="CA7"))  # fee 600, cost 380
    await write_event(db, ids, "pay.succeeded", paid)
    await write_event(db, ids, "refund.succeeded", provider(refund_facts(paid, 30_000, refund_no="R1")))  # f = 180
    await drain(consumer(db, ids))

    payment, refund = await journals(db)
    assert (payment.kind, payment.source_type, payment.source_id, payment.leg, payment.amount, payment.fee) == (
        "provider_payment", "order", "P1", "payment", 100_000, 600,
    )  # fmt: skip
    assert (refund.kind, refund.source_type, refund.source_id, refund.order_no, refund.amount, refund.fee) == (
        "provider_refund", "refund", "R1", "P1", -30_000, -180,
    )  # fmt: skip
    assert await lines_of(db, payment.id) == {"merchant_fee_receivable:M1": 600, "platform_fee_income": -600}
    assert await lines_of(db, refund.id) == {"merchant_fee_receivable:M1": -180, "platform_fee_income": 180}
    assert await read(db, acct.merchant_pending("M1"), acct.merchant_available("M1"),
                      acct.merchant_fee_receivable("M1"), acct.PLATFORM_FEE_INCOME, acct.channel_receivable("CA7"),
                      acct.channel_fee_expense("CA7")) == {
        "merchant_pending:M1": 0, "merchant_available:M1": 0, "merchant_fee_receivable:M1": 420,
        "platform_fee_income": 420, "channel_receivable:CA7": 0, "channel_fee_expense:CA7": 0,
    }  # fmt: skip
    # neither the amount nor the channel's cost touched an account: no balance row was even created
    assert await balance_rows(db, acct.merchant_pending("M1"), acct.merchant_available("M1"),
                              acct.channel_receivable("CA7"), acct.channel_fee_expense("CA7")) == 0  # fmt: skip
    assert await memo(db, "M1") == (70_000, 1)
    assert await total_raw(db) == 0

    svc = LedgerService(db)
    view = await svc.balance("M1")
    assert view.model_dump() == {
        "currency": "CNY", "pending": 0, "available": 0, "mode": "service_provider",
        "service_provider": {"collected": 70_000, "fee_receivable": 420},
    }  # fmt: skip
    assert (await svc.balance("M404")).model_dump() == {
        "currency": "CNY", "pending": 0, "available": 0, "mode": "direct",
        "service_provider": {"collected": 0, "fee_receivable": 0},
    }  # fmt: skip
    await write_event(db, ids, "pay.succeeded", paid_facts("M1", 20_000, order_no="P2"))  # a direct one too
    await drain(consumer(db, ids))
    mixed = await svc.balance("M1")
    got = (mixed.mode, mixed.pending, mixed.available, mixed.service_provider.collected)
    assert got == ("mixed", 19_880, 0, 70_000)
    trial = await svc.trial_balance()
    assert trial.balanced and "merchant_fee_receivable" in [r.account_type for r in trial.types]


async def test_facts_without_the_key_book_a_direct_payment(db: Database, ids: Snowflake) -> None:
    """Facts written before the key existed (and `false`) are direct payments, as before."""
    await write_event(db, ids, "pay.succeeded", paid_facts("M2", 10_000, order_no="P1"))
    await write_event(db, ids, "pay.succeeded", {**paid_facts("M2", 10_000, order_no="P2"), "service_provider": False})
    await drain(consumer(db, ids))
    assert [j.kind for j in await journals(db)] == ["payment", "payment"]
    assert (await read(db, acct.merchant_pending("M2")))["merchant_pending:M2"] == 2 * 9_940
    assert await memo(db, "M2") is None
    assert (await LedgerService(db).balance("M2")).mode == "direct"


async def test_a_provider_flag_that_is_not_a_boolean_is_rejected(db: Database, ids: Snowflake) -> None:
    event = await write_event(db, ids, "pay.succeeded", {**paid_facts("M3", 10_000), "service_provider": "true"})
    await drain(consumer(db, ids))
    async with db.uow() as uow:
        row = await uow.session.get_one(BookedEvent, event.id)
    assert row.outcome == "rejected" and "service_provider" in (row.note or "")
    assert await journals(db) == [] and await memo(db, "M3") is None


async def test_booking_twice_books_once_and_moves_the_memo_once(db: Database, ids: Snowflake) -> None:
    paid = provider(paid_facts("M4", 50_000, order_no="P1"))
    row = await write_event(db, ids, "pay.succeeded", paid)
    event = Event(row.id, row.event_type, row.aggregate_id, None, row.facts)
    if db.dialect == "postgresql":  # the same event handed over ten times at once
        results = await asyncio.gather(*(consumer(db, ids).book_one(event) for _ in range(10)))
        assert sorted(x.outcome for x in results) == ["booked"] + ["seen"] * 9
    else:
        assert (await consumer(db, ids).book_one(event)).outcome == "booked"
        assert (await consumer(db, ids).book_one(event)).outcome == "seen"
    # the same payment announced again under another event id: the source key answers "duplicate"
    again = await write_event(db, ids, "pay.succeeded", paid)
    refund = provider(refund_facts(paid, 10_000, refund_no="R1"))
    await write_event(db, ids, "refund.succeeded", refund)
    await write_event(db, ids, "refund.succeeded", refund)
    await drain(consumer(db, ids))
    assert [j.source_id for j in await journals(db)] == ["P1", "R1"]
    async with db.uow() as uow:
        assert (await uow.session.get_one(BookedEvent, again.id)).outcome == "duplicate"
    assert await memo(db, "M4") == (40_000, 1)
    assert (await read(db, acct.merchant_fee_receivable("M4")))["merchant_fee_receivable:M4"] == 300 - 60
    assert await total_raw(db) == 0


async def test_one_payment_under_several_event_ids_at_once_moves_the_memo_once(db: Database, ids: Snowflake) -> None:
    """Twins that pass the journal lookup together meet on the journal's source key: one books, the others replay
    it — and a replay must not move the memo again."""
    if db.dialect != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL; SQLite serialises writers")
    for facts in (paid_facts("M8", 50_000, order_no="P1"), paid_facts("M8", 70, ppm=0, order_no="P2")):
        facts = provider(facts)
        rows = [await write_event(db, ids, "pay.succeeded", facts) for _ in range(6)]
        events = [Event(r.id, r.event_type, r.aggregate_id, None, r.facts) for r in rows]
        results = await asyncio.gather(*(consumer(db, ids).book_one(e) for e in events))
        assert sorted(x.outcome for x in results) == ["booked"] + ["duplicate"] * 5
    assert await memo(db, "M8") == (50_070, 2)
    assert (await read(db, acct.merchant_fee_receivable("M8")))["merchant_fee_receivable:M8"] == 300


async def test_a_zero_fee_books_a_journal_without_lines(db: Database, ids: Snowflake) -> None:
    """The payment still gets its journal (source key, ledger check) and moves the memo; no account moves."""
    paid = provider(paid_facts("M5", 80, ppm=0, order_no="P1"))  # a fee plan of 0: fee 0, returned fee 0
    assert paid["fee"] == 0
    first = await write_event(db, ids, "pay.succeeded", paid)
    await write_event(db, ids, "pay.succeeded", paid)  # again, under another event id
    await write_event(db, ids, "refund.succeeded", provider(refund_facts(paid, 30, refund_no="R1")))
    await drain(consumer(db, ids))
    payment, refund = await journals(db)
    assert (payment.kind, payment.amount, payment.fee, refund.kind, refund.amount, refund.fee) == (
        "provider_payment", 80, 0, "provider_refund", -30, 0,
    )  # fmt: skip
    assert await lines_of(db, payment.id) == {} and await lines_of(db, refund.id) == {}
    async with db.uow() as uow:
        assert (await uow.session.get_one(BookedEvent, first.id)).outcome == "booked"
    assert await memo(db, "M5") == (50, 1)
    assert await balance_rows(db, acct.merchant_fee_receivable("M5"), acct.merchant_pending("M5")) == 0
    report = await check_ledger(db, orders_of(SucceededOrder("P1", 80, NOW - timedelta(hours=1))), NOW)
    assert report.ok, report.violations
    assert report.warnings == []


async def whole_mixed_ledger(db: Database, ids: Snowflake) -> list[SucceededOrder]:
    """Direct and service-provider payments and refunds of two merchants; returns the SUCCEEDED orders."""
    direct = paid_facts("M6", 100_000, order_no="P1")
    shadow = provider(paid_facts("M6", 60_000, order_no="P2"))
    for facts in (direct, shadow, provider(paid_facts("M7", 90, ppm=0, order_no="P3"))):
        await write_event(db, ids, "pay.succeeded", facts)
    await write_event(db, ids, "refund.succeeded", refund_facts(direct, 30_000, refund_no="R1"))
    await write_event(db, ids, "refund.succeeded", provider(refund_facts(shadow, 60_000, refund_no="R2")))  # in full
    await drain(consumer(db, ids))
    then = NOW - timedelta(hours=1)
    return [SucceededOrder("P1", 100_000, then), SucceededOrder("P2", 60_000, then), SucceededOrder("P3", 90, then)]


async def test_the_ledger_check_is_ok_with_provider_payments(db: Database, ids: Snowflake) -> None:
    orders = await whole_mixed_ledger(db, ids)
    report = await check_ledger(db, orders_of(*orders), NOW)
    assert report.ok, report.violations
    assert report.warnings == []
    assert await memo(db, "M6") == (0, 1)  # refunded in full
    assert (await read(db, acct.merchant_fee_receivable("M6")))["merchant_fee_receivable:M6"] == 0
    assert (await LedgerService(db).trial_balance()).balanced
    # and it still names a SUCCEEDED provider order left unbooked
    missing = [*orders, SucceededOrder("P9", 500, NOW - timedelta(hours=1))]
    report = await check_ledger(db, orders_of(*missing), NOW)
    assert report.violations == ["order P9 is SUCCEEDED but has no payment journal"]


async def test_the_check_names_a_memo_off_its_journals_and_an_order_booked_both_ways(
    db: Database, ids: Snowflake
) -> None:
    orders = await whole_mixed_ledger(db, ids)
    async with db.uow() as uow:
        await uow.session.execute(
            update(ProviderBalance)
            .where(ProviderBalance.mch_no == "M7")
            .values(collected=ProviderBalance.collected + 1)
        )
        await uow.commit()
    # a direct refund of the service-provider order P2
    await post_committed(db, ids, CLOCK, EntryRequest(
        source_type="refund", source_id="R9", leg="refund", kind="refund",
        lines=(Line(acct.merchant_available("M6"), 10), Line(acct.channel_receivable("CA1"), -10)),
        business_date="2026-12-06", mch_no="M6", order_no="P2", refund_no="R9", amount=-10, fee=0,
    ))  # fmt: skip
    report = await check_ledger(db, orders_of(*orders), NOW)
    assert "order P2 has both direct and service-provider journals" in report.violations
    assert "order P2: refunds 60010 exceed the 60000 paid" in report.violations
    assert (
        "provider balance of M7 is collected 91 over 1 payments, but its service-provider journals sum to 90 over 1"
        in report.violations
    )


async def test_a_provider_journal_with_a_fee_but_no_lines_is_named(db: Database, ids: Snowflake) -> None:
    orders = await whole_mixed_ledger(db, ids)
    async with db.uow() as uow:
        s = uow.session
        p2 = (await s.execute(text("SELECT id FROM ledger_journals WHERE source_id = 'P2'"))).scalar_one()
        await s.execute(delete(LineRow).where(LineRow.journal_id == p2))
        await uow.commit()
    report = await check_ledger(db, orders_of(*orders), NOW)
    assert f"journal {p2} has no lines" in report.violations
    # the lineless zero-fee journal of P3 is not named
    assert not any("has no lines" in v and p2 not in v for v in report.violations)
