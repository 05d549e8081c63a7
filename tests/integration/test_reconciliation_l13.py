"""reliability scenario L13: 1,000 synthetic statement rows with 5 % injected faults of every kind — missing on either
side, amount, fee, status, a repeated row, a cross-day pair — are all classified exactly with no false positive,
and re-running the date writes no new adjustment. Orders are written straight into pay's table (the run reads them
through pay's read model), the statement comes from a test source."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, text

from tests.conftest import truncate_all
from tests.fixtures import stack
from tomato.bootstrap import Container, bootstrap
from tomato.pay.models import PayOrder

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 2)
ACCOUNT = "CA777"
PPM = 3_800


@dataclass(frozen=True)
class Line:
    line_no: int
    kind: str
    channel_trade_no: str
    order_no: str | None
    refund_no: str | None
    amount: int
    fee: int
    status: str
    occurred_at: datetime


class Source:
    def __init__(self) -> None:
        self.days: dict[date, list[Line]] = {}

    async def open(self, channel: str, account_id: str, day: date) -> Iterable[Any]:
        return list(self.days.get(day, []))


def fee(amount: int) -> int:
    return (amount * PPM + 500_000) // 1_000_000


def moment(day: date, seconds: int) -> datetime:
    return (datetime(day.year, day.month, day.day, tzinfo=TZ) + timedelta(seconds=seconds)).astimezone(UTC)


def order_row(order_no: str, amount: int, paid_at: datetime) -> dict[str, Any]:
    return {
        "order_no": order_no, "app_id": "A1", "mch_no": "M1", "out_trade_no": order_no, "request_hash": "0" * 64,
        "status": "SUCCEEDED", "paid_after_close": False, "amount": amount, "currency": "CNY", "subject": "s",
        "pay_method": "ALIPAY_QR", "channel": "alipay", "channel_account_id": ACCOUNT,
        "channel_trade_no": f"T{order_no}", "metadata_json": "{}", "refunded_amount": 0, "refund_status": "NONE",
        "refund_reserved": 0, "refund_count": 0, "expire_at": paid_at + timedelta(hours=1), "paid_at": paid_at,
        "query_count": 0, "close_failures": 0, "version": 2, "created_at": paid_at, "updated_at": paid_at,
        "fee_ppm": 6_000, "fee": 0, "refund_fee_rule": "none", "channel_cost_ppm": PPM, "channel_cost": fee(amount),
        "fee_returned_total": 0,
    }  # fmt: skip


@pytest.fixture
async def c(db_url: str, tmp_path: Path) -> AsyncIterator[Container]:
    container = await bootstrap(stack.test_settings(db_url, tmp_path))
    try:
        yield container
    finally:
        if container.db.dialect == "postgresql":
            await truncate_all(container.db)
        await container.aclose()


async def test_a_thousand_rows_with_five_percent_faults_are_classified_exactly(c: Container) -> None:
    rng = random.Random(18)
    now = datetime.now(UTC)
    async with c.db.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO channel_accounts (id, channel, name, status, config_ciphertext, cost_ppm, created_at, "
                 "updated_at) VALUES (:id, 'alipay', 'l13', 'ACTIVE', 'x', :ppm, :t, :t)"),
            {"id": ACCOUNT, "ppm": PPM, "t": now},
        )  # fmt: skip
    orders: list[tuple[str, int, datetime]] = []
    for i in range(1_000):  # clear of both midnights: 01:00–23:00
        orders.append((f"P{100_000 + i}", rng.randint(1, 2_000_000), moment(DAY, 3_600 + i * 79)))
    lines = [Line(i + 1, "PAYMENT", f"T{o}", o, None, a, fee(a), "SUCCESS", t) for i, (o, a, t) in enumerate(orders)]
    # 5 %: ten of each fault on distinct rows
    victims = rng.sample(range(1_000), 60)
    kinds = ["MISSING_CHANNEL", "MISSING_LOCAL", "AMOUNT_MISMATCH", "FEE_MISMATCH", "STATUS_MISMATCH", "DUPLICATE"]
    expected: set[tuple[str, str]] = set()
    dropped_local: set[int] = set()
    extra: list[Line] = []
    for n, i in enumerate(victims):
        kind = kinds[n // 10]
        line = lines[i]
        assert line.order_no is not None
        expected.add((kind, line.order_no))
        if kind == "MISSING_CHANNEL":
            lines[i] = replace(line, status="DROP")
        elif kind == "MISSING_LOCAL":
            dropped_local.add(i)
        elif kind == "AMOUNT_MISMATCH":
            lines[i] = replace(line, amount=line.amount + 1)
        elif kind == "FEE_MISMATCH":
            lines[i] = replace(line, fee=line.fee + 1)
        elif kind == "STATUS_MISMATCH":
            lines[i] = replace(line, status="REFUND")
        else:
            extra.append(replace(line, line_no=5_000 + n))
    statement = [ln for ln in lines if ln.status != "DROP"] + extra
    # a cross-day pair: ours at 23:59:50 on DAY, the channel's at 00:00:10 the next day — no fault
    statement_next = [Line(1, "PAYMENT", "TPX", "PX", None, 4_321, fee(4_321), "SUCCESS", moment(DAY, 86_410))]
    rows = [order_row(o, a, t) for i, (o, a, t) in enumerate(orders) if i not in dropped_local]
    rows.append(order_row("PX", 4_321, moment(DAY, 86_390)))
    async with c.db.engine.begin() as conn:
        await conn.execute(insert(PayOrder.__table__), rows)
    source = Source()
    source.days[DAY] = statement
    source.days[DAY + timedelta(days=1)] = statement_next
    c.reconciliation.source = source
    c.reconciliation.deps.suspense_minutes = 10

    batch = await c.reconciliation.run(ACCOUNT, DAY)
    found = await c.reconciliation.list_discrepancies(None, 100, {"batch_id": batch.id})
    assert {(d.type, d.order_no) for d in found} == expected  # every fault, nothing else
    assert len(found) == 60 and batch.counts["SUSPENSE"] == 1
    assert batch.counts["matched"] == 1_000 - 50  # the duplicated rows' first lines match
    nxt = await c.reconciliation.run(ACCOUNT, DAY + timedelta(days=1))
    assert (nxt.status, nxt.counts["matched"], nxt.discrepancies) == ("MATCHED", 1, 0)

    for d in found[:20]:
        await c.reconciliation.resolve(d.id, "ACCEPT_CHANNEL", "per the statement", "finance:test")
    again = await c.reconciliation.run(ACCOUNT, DAY)
    assert again.id == batch.id and again.discrepancies == 60
    after = await c.reconciliation.list_discrepancies(None, 100, {"batch_id": batch.id})
    assert sum(d.status == "RESOLVED" for d in after) == 20
    async with c.db.engine.connect() as conn:
        facts = (await conn.execute(text("SELECT facts FROM outbox_events WHERE event_type = "
                                         "'reconciliation.adjustment'"))).scalars().all()  # fmt: skip
    assert len(facts) == len({json.loads(f)["discrepancy_id"] for f in facts}) <= 20  # none twice
