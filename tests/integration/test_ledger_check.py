"""`tomato ledger check`: passes on a whole ledger and names each violation of a corrupted one."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, text, update

from tests.fixtures.booking import consumer, drain, paid_facts, refund_facts, write_event
from tests.fixtures.ledger import fund_available
from tomato.account import accounts as acct
from tomato.account.check import CheckReport, check_ledger
from tomato.account.ledger import EntryRequest, Line, post_committed
from tomato.account.models import Balance, Journal
from tomato.account.models import Line as LineRow
from tomato.core.clock import SystemClock
from tomato.core.crypto import SecretBox
from tomato.core.db import Database
from tomato.core.ids import Snowflake
from tomato.pay.schemas import SucceededOrder

CLOCK = SystemClock()
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def ids() -> Snowflake:
    return Snowflake(13)


def orders_of(*orders: SucceededOrder) -> Any:
    async def source(after: str | None, limit: int) -> list[SucceededOrder]:
        listed = sorted(orders, key=lambda o: o.order_no)
        return [o for o in listed if after is None or o.order_no > after][:limit]

    return source


PAID = [SucceededOrder("P1", 100_000, NOW - timedelta(hours=1)), SucceededOrder("P2", 20_000, NOW)]


async def whole_ledger(db: Database, ids: Snowflake) -> None:
    """Two payments, a refund, a payout held and one posted, an anomaly: a ledger with nothing wrong."""
    first = paid_facts("M1", 100_000, order_no="P1")
    await write_event(db, ids, "pay.succeeded", first)
    await write_event(db, ids, "pay.succeeded", paid_facts("M1", 20_000, order_no="P2"))
    await write_event(db, ids, "refund.succeeded", refund_facts(first, 30_000, refund_no="R1"))
    await drain(consumer(db, ids))
    await fund_available(db, ids, "M1", 50_000)
    for payout_no, amount in (("W1", 10_000), ("W2", 7_000)):
        lines = (Line(acct.merchant_available("M1"), amount, guard=True), Line(acct.payout_in_transit("M1"), -amount))
        await post(db, ids, "payout", payout_no, "hold", "payout", lines)
    await post(db, ids, "payout", "W1", "post", "payout_post",
               (Line(acct.payout_in_transit("M1"), 10_000), Line(acct.BANK, -10_000)))  # fmt: skip


async def post(db: Database, ids: Snowflake, source_type: str, source_id: str, leg: str, kind: str,
               lines: tuple[Line, ...], **view: Any) -> str:  # fmt: skip
    posted = await post_committed(db, ids, CLOCK, EntryRequest(
        source_type=source_type, source_id=source_id, leg=leg, kind=kind, lines=lines, business_date="2026-12-06",
        mch_no="M1", **view))  # fmt: skip
    return posted.journal_id


async def check(db: Database, *orders: SucceededOrder) -> CheckReport:
    return await check_ledger(db, orders_of(*(orders or PAID)), NOW)


async def test_a_whole_ledger_passes(db: Database, ids: Snowflake) -> None:
    await whole_ledger(db, ids)
    report = await check(db)
    assert report.ok, report.violations
    assert report.warnings == []


async def test_an_unbalanced_journal_and_a_balance_off_its_lines_are_named(db: Database, ids: Snowflake) -> None:
    await whole_ledger(db, ids)
    async with db.uow() as uow:
        journal_id = (await uow.session.execute(
            text("SELECT id FROM ledger_journals WHERE source_id = 'P2'"))).scalar_one()  # fmt: skip
        await uow.session.execute(insert(LineRow).values(
            id=ids.next_int(), journal_id=journal_id, account=acct.channel_fee_expense("CA99"), bucket=0, amount=5,
            business_date="2026-12-06", created_at=NOW))  # fmt: skip
        await uow.session.execute(
            update(Balance).where(Balance.account == acct.merchant_pending("M1")).values(balance=Balance.balance - 1)
        )
        await uow.commit()
    report = await check(db)
    assert f"journal {journal_id} does not balance: its lines sum to 5" in report.violations
    assert "balance of channel_fee_expense:CA99 bucket 0 is missing; its lines sum to 5" in report.violations
    assert any(v.startswith("balance of merchant_pending:M1 bucket 0 is -") for v in report.violations)
    assert "trial balance: Σ of all balances is -1, not 0" in report.violations


async def test_a_journal_without_lines_and_lines_without_a_journal_are_named(db: Database, ids: Snowflake) -> None:
    await whole_ledger(db, ids)
    async with db.uow() as uow:
        s = uow.session
        payout_post = (await s.execute(text("SELECT id FROM ledger_journals WHERE leg = 'post'"))).scalar_one()
        hold = (await s.execute(text("SELECT id FROM ledger_journals WHERE source_id = 'W2'"))).scalar_one()
        await s.execute(delete(LineRow).where(LineRow.journal_id == payout_post))
        await s.execute(delete(Journal).where(Journal.id == hold))
        await uow.commit()
    report = await check(db)
    assert f"journal {payout_post} has no lines" in report.violations
    assert f"lines of journal {hold}, which does not exist" in report.violations
    assert any(v.startswith("balance of bank bucket ") and v.endswith(" is -10000, but its lines sum to 0")
               for v in report.violations)  # fmt: skip
    assert "payout_in_transit:M1 is 7000, but payouts held and not yet posted or voided sum to 0" in report.violations


async def test_refunds_beyond_the_payment_are_named(db: Database, ids: Snowflake) -> None:
    await whole_ledger(db, ids)
    await post(db, ids, "refund", "R9", "refund", "refund",
               (Line(acct.merchant_available("M1"), 80_000), Line(acct.channel_receivable("CA1"), -80_000)),
               order_no="P1", refund_no="R9", amount=-80_000, fee=0)  # fmt: skip
    await post(db, ids, "refund", "R10", "refund", "refund",
               (Line(acct.merchant_available("M1"), 5), Line(acct.channel_receivable("CA1"), -5)),
               order_no="P77", refund_no="R10", amount=-5, fee=0)  # fmt: skip
    report = await check(db)
    assert "order P1: refunds 110000 exceed the 100000 paid" in report.violations
    assert "order P77 has refund journals (5) but no payment journal" in report.violations
    assert "merchant_available:M1 is negative: -47005" in report.warnings


async def test_payouts_in_transit_that_match_no_open_hold_are_named(db: Database, ids: Snowflake) -> None:
    await whole_ledger(db, ids)
    await post(db, ids, "adjustment", "A1", "fix", "adjustment",
               (Line(acct.payout_in_transit("M1"), 1_000), Line(acct.SUSPENSE, -1_000)))  # fmt: skip
    report = await check(db)
    assert report.violations == [
        "payout_in_transit:M1 is 6000, but payouts held and not yet posted or voided sum to 7000"
    ]


async def test_payouts_in_transit_are_checked_against_the_pending_payouts(db: Database, ids: Snowflake) -> None:
    await whole_ledger(db, ids)  # W1 posted, W2 (7,000) held

    def pending(by_merchant: dict[str, int]) -> Any:
        async def source() -> dict[str, int]:
            return by_merchant

        return source

    report = await check_ledger(db, orders_of(*PAID), NOW, pending_payouts=pending({"M1": 7_000}))
    assert report.ok, report.violations
    report = await check_ledger(db, orders_of(*PAID), NOW, pending_payouts=pending({"M1": 7_000, "M2": 50}))
    assert report.violations == ["payout_in_transit:M2 is 0, but the merchant's PENDING payouts sum to 50"]
    report = await check_ledger(db, orders_of(*PAID), NOW, pending_payouts=pending({}))
    assert report.violations == ["payout_in_transit:M1 is 7000, but the merchant's PENDING payouts sum to 0"]


async def test_succeeded_orders_without_their_one_payment_journal_are_named(db: Database, ids: Snowflake) -> None:
    await whole_ledger(db, ids)
    report = await check(db, *PAID, SucceededOrder("P3", 500, NOW - timedelta(minutes=5)),
                         SucceededOrder("P4", 500, NOW - timedelta(seconds=5)))  # fmt: skip
    assert report.violations == ["order P3 is SUCCEEDED but has no payment journal"]
    assert report.warnings == ["order P4 SUCCEEDED moments ago and is not booked yet"]
    report = await check(db, PAID[0], SucceededOrder("P2", 20_001, NOW))
    assert report.violations == ["order P2: payment journal of 20000, the order is 20001"]
    report = await check(db, PAID[0])
    assert report.violations == ["order P2 has a payment journal but is not SUCCEEDED"]


async def test_a_source_leg_booked_twice_is_named(db: Database, ids: Snowflake) -> None:
    if db.dialect != "postgresql":
        pytest.skip("the unique key cannot be dropped from a SQLite table; proven on PostgreSQL")
    await whole_ledger(db, ids)
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE ledger_journals DROP CONSTRAINT uq_ledger_journals_source"))
    try:
        async with db.uow() as uow:
            await uow.session.execute(text(
                "INSERT INTO ledger_journals (id, seq, source_type, source_id, leg, lines_hash, kind, mch_no, order_no,"
                " refund_no, payout_no, amount, fee, business_date, created_at) SELECT 'J1', 1, source_type, source_id,"
                " leg, lines_hash, kind, mch_no, order_no, refund_no, payout_no, amount, fee, business_date, created_at"
                " FROM ledger_journals WHERE source_id = 'P2'"))  # fmt: skip
            await uow.commit()
        report = await check(db)
        assert "source order P2 leg payment is booked 2 times" in report.violations
        assert "order P2 has 2 payment journals" in report.violations
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM ledger_journals WHERE id = 'J1'"))
            await conn.execute(text("ALTER TABLE ledger_journals ADD CONSTRAINT uq_ledger_journals_source "
                                    "UNIQUE (source_type, source_id, leg)"))  # fmt: skip


async def test_skipped_and_rejected_events_are_warnings(db: Database, ids: Snowflake) -> None:
    await write_event(db, ids, "pay.succeeded", None, "P5")
    await write_event(db, ids, "pay.succeeded", {"mch_no": "M1"})
    await drain(consumer(db, ids))
    report = await check(db, SucceededOrder("P5", 1, NOW - timedelta(seconds=1)))
    assert sorted(report.warnings) == sorted(["1 events skipped by booking (see ledger_booked_events.note)",
                                              "1 events rejected by booking (see ledger_booked_events.note)",
                                              "order P5 SUCCEEDED moments ago and is not booked yet"])  # fmt: skip
    assert report.ok


async def test_the_check_reads_succeeded_orders_through_pay(pay) -> None:  # type: ignore[no-untyped-def]
    r = await pay.client.create_order(pay_method="ALIPAY_QR", amount=100_000)
    order = r.json()
    await pay.scan(order_no=order["order_no"], result="paid")
    async with asyncio.timeout(10):
        while (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()["status"] != "SUCCEEDED":
            await asyncio.sleep(0.02)
    later = pay.clock.now() + timedelta(minutes=5)
    report = await check_ledger(pay.c.db, pay.c.pay.succeeded_orders, later)
    assert report.violations == [f"order {order['order_no']} is SUCCEEDED but has no payment journal"]
    report = await check_ledger(pay.c.db, pay.c.pay.succeeded_orders, pay.clock.now())
    assert report.ok and report.warnings == [f"order {order['order_no']} SUCCEEDED moments ago and is not booked yet"]
    # pay's own pay.succeeded carries facts once fee plans write them; until then book it from a row written here
    await drain(consumer(pay.c.db, pay.c.ids))
    if (await check_ledger(pay.c.db, pay.c.pay.succeeded_orders, later)).violations:
        mch = (await pay.c.merchants.get_app(pay.client.app_id)).mch_no
        await write_event(pay.c.db, pay.c.ids, "pay.succeeded", paid_facts(mch, 100_000, order_no=order["order_no"]))
        await drain(consumer(pay.c.db, pay.c.ids))
    report = await check_ledger(pay.c.db, pay.c.pay.succeeded_orders, later)
    assert report.ok, report


def run_cli(db_url: str, tmp_path: Path) -> tuple[int, str]:
    import subprocess

    env = {**os.environ, "TOMATO_DATABASE_URL": db_url, "TOMATO_DATA_DIR": str(tmp_path / "data"),
           "TOMATO_SECRET_KEYS": SecretBox.generate_ring("t1")}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "tomato.cli", "ledger", "check"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    return done.returncode, done.stdout


async def test_the_command_exits_0_with_ok_and_1_naming_each_violation(
    db: Database, db_url: str, ids: Snowflake, tmp_path: Path
) -> None:
    await fund_available(db, ids, "M1", 5_000)
    anomaly = {"anomaly_id": "AN1", "kind": "second_payment", "amount": 300, "channel_account_id": "CA1",
               "business_date": "2026-12-06"}  # fmt: skip
    await write_event(db, ids, "pay.anomaly", anomaly, "AN1")
    await drain(consumer(db, ids))
    code, out = await asyncio.to_thread(run_cli, db_url, tmp_path)
    assert (code, out.strip().splitlines()[-1]) == (0, "ok"), out
    async with db.uow() as uow:
        await uow.session.execute(update(Balance).where(Balance.account == acct.SUSPENSE).values(balance=0))
        await uow.commit()
    code, out = await asyncio.to_thread(run_cli, db_url, tmp_path)
    assert code == 1, out
    assert "violation: trial balance: Σ of all balances is -4700, not 0" in out
    assert "violation: balance of suspense bucket" in out
