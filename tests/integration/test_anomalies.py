"""Issue 15: money finance must act on is an anomaly row and an internal `pay.anomaly` event, once per
(order, kind, channel trade), and never a webhook or an item of `GET /v1/events`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.fixtures.notice_harness import Harness, notice_harness
from tests.fixtures.pay_stack import PayStack
from tomato.channel.protocol import ChannelNotify, ResultStatus
from tomato.core.positions import assign_positions
from tomato.pay.events import INTERNAL_EVENTS, PAY_ANOMALY
from tomato.pay.service import Outcome


def payment(order_no: str, trade_no: str, amount: int = 1234, status: ResultStatus = ResultStatus.SUCCESS) -> Any:
    return ChannelNotify(kind="payment", status=status, order_no=order_no, amount=amount, channel_trade_no=trade_no)


async def anomaly_events(pay: PayStack) -> list[dict[str, Any]]:
    async with pay.c.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload, app_id FROM outbox_events WHERE event_type = :t ORDER BY seq"), {"t": PAY_ANOMALY}
        )
        return [{**json.loads(r.payload)["data"], "outbox_app_id": r.app_id} for r in rows]


async def anomaly_rows(pay: PayStack) -> list[Any]:
    async with pay.c.db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT order_no, kind, channel_account_id, channel_trade_no FROM pay_anomalies ORDER BY created_at")
        )
        return list(rows)


async def test_money_on_a_final_order_is_one_internal_event_per_trade(pay: PayStack) -> None:
    account = pay.accounts["alipay"]
    await pay.faults(channel="alipay", drop_notify=True)
    paid = (await pay.client.create_order()).json()
    assert await pay.c.pay.apply_notify(account, payment(paid["order_no"], "T-FIRST")) is Outcome.APPLIED
    # paid again under another channel trade: the cash is real, the order cannot take it
    second = payment(paid["order_no"], "T-SECOND")
    assert await pay.c.pay.apply_notify(account, second) is Outcome.APPLIED
    assert await pay.c.pay.apply_notify(account, second) is Outcome.UNCHANGED  # the channel's retry: once only
    failed = (await pay.client.create_order()).json()
    fail = payment(failed["order_no"], "T-FAILED", status=ResultStatus.FAIL)
    assert await pay.c.pay.apply_notify(account, fail) is Outcome.APPLIED
    late = payment(failed["order_no"], "T-LATE")
    assert await pay.c.pay.apply_notify(account, late) is Outcome.APPLIED
    assert await pay.c.pay.apply_notify(account, late) is Outcome.UNCHANGED

    rows = await anomaly_rows(pay)
    assert [(r.order_no, r.kind, r.channel_account_id, r.channel_trade_no) for r in rows] == [
        (paid["order_no"], "second_payment", account, "T-SECOND"),
        (failed["order_no"], "paid_after_failed", account, "T-LATE"),
    ]
    events = await anomaly_events(pay)
    assert [(e["order_no"], e["kind"], e["channel"], e["channel_account_id"], e["channel_trade_no"], e["amount"])
            for e in events] == [
        (paid["order_no"], "second_payment", "alipay", account, "T-SECOND", 1234),
        (failed["order_no"], "paid_after_failed", "alipay", account, "T-LATE", 1234),
    ]  # fmt: skip
    assert all(e["app_id"] == pay.client.app_id and e["mch_no"] and e["anomaly_id"] for e in events)
    # not for merchants: the events feed lists the order events only (once numbered, as the relay does each round)
    await assign_positions(pay.c.db)
    listed = (await pay.client.request("GET", "/v1/events?limit=100")).json()["data"]
    assert sorted(e["type"] for e in listed) == ["pay.failed", "pay.succeeded"]


@pytest.fixture
async def hooks(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with notice_harness(db_url, tmp_path) as h:
        yield h


async def test_internal_events_are_never_delivered_nor_listed(hooks: Harness) -> None:
    assert PAY_ANOMALY in INTERNAL_EVENTS
    (internal,) = await hooks.emit(1, event_type=PAY_ANOMALY)
    (merchant_facing,) = await hooks.emit(1)
    (delivered,) = await hooks.wait_status("SUCCEEDED", 1)
    assert delivered.event_id == merchant_facing
    await hooks.runtime.consumer.process([internal])  # handed to the consumer again: still nothing to deliver
    assert [d.event_id for d in await hooks.deliveries()] == [merchant_facing]
    assert [r.event_id for r in hooks.receiver.received] == [merchant_facing]
    listed = (await hooks.client.request("GET", "/v1/events")).json()["data"]
    assert [e["id"] for e in listed] == [merchant_facing]
