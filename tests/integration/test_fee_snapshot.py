"""Issue 17 (fees): the fee snapshot taken when an order is paid, the fee its refunds give back, and the booking
facts pay writes on the outbox row beside `pay.succeeded`, `refund.succeeded` and `pay.anomaly` (SQLite and
PostgreSQL). The pay stack is seeded like `tomato dev`: the demo merchant on 6,000 ppm with the proportional refund
fee, the simulator accounts at a cost of 3,800 ppm."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin
from tests.integration.test_refunds import paid_order, refund
from tomato.channel.protocol import ChannelNotify, ResultStatus
from tomato.core.clock import rfc3339
from tomato.pay.service import Outcome

PAYMENT_FACTS = set(
    "mch_no app_id order_no channel channel_account_id pay_method amount fee fee_ppm refund_fee_rule channel_cost"
    " channel_cost_ppm paid_at business_date service_provider".split()
)
REFUND_FACTS = set(
    "mch_no app_id order_no refund_no channel_account_id amount fee_returned fee_returned_total refunded_total"
    " order_amount order_fee order_channel_cost channel_cost_returned succeeded_at business_date"
    " service_provider".split()
)


def shanghai_date(at: datetime) -> str:
    return at.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()


async def order_row(pay: PayStack, order_no: str) -> Any:
    async with pay.c.db.engine.connect() as conn:
        q = text(
            "SELECT fee_ppm, fee, refund_fee_rule, channel_cost_ppm, channel_cost, fee_returned_total, refunded_amount"
            " FROM pay_orders WHERE order_no = :o"
        )
        return (await conn.execute(q, {"o": order_no})).one()


async def outbox(pay: PayStack, aggregate_id: str, event_type: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(payload, facts) of the one outbox row of `event_type` for `aggregate_id`."""
    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT payload, facts FROM outbox_events WHERE aggregate_id = :a AND event_type = :t")
        row = (await conn.execute(q, {"a": aggregate_id, "t": event_type})).one()
    return json.loads(row.payload), None if row.facts is None else json.loads(row.facts)


async def refund_fee_returned(pay: PayStack, refund_no: str) -> int | None:
    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT fee_returned FROM refunds WHERE refund_no = :r")
        value = (await conn.execute(q, {"r": refund_no})).scalar_one()
    return None if value is None else int(value)


async def new_plan(pay: PayStack, **body: Any) -> str:
    r = await pay.http.post("/admin/fee-plans", json=body, headers=admin())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def put_on_plan(pay: PayStack, plan_id: str | None) -> None:
    mch_no = (await pay.c.merchants.app_auth(pay.client.app_id)).mch_no
    r = await pay.http.post(f"/admin/merchants/{mch_no}/fee-plan", json={"fee_plan_id": plan_id}, headers=admin())
    assert r.status_code == 200 and r.json()["fee_plan_id"] == plan_id, r.text


async def test_a_paid_order_carries_its_fee_snapshot_and_its_event_the_booking_facts(pay: PayStack) -> None:
    order = await paid_order(pay, 100_000)
    row = await order_row(pay, order["order_no"])
    assert (row.fee_ppm, row.fee, row.refund_fee_rule) == (6_000, 600, "proportional")
    assert (row.channel_cost_ppm, row.channel_cost, row.fee_returned_total) == (3_800, 380, 0)

    payload, facts = await outbox(pay, order["order_no"], "pay.succeeded")
    assert facts is not None and set(facts) == PAYMENT_FACTS
    mch_no = (await pay.c.merchants.app_auth(pay.client.app_id)).mch_no
    assert facts == {
        "mch_no": mch_no,
        "app_id": pay.client.app_id,
        "order_no": order["order_no"],
        "channel": "alipay",
        "channel_account_id": pay.accounts["alipay"],
        "pay_method": "ALIPAY_QR",
        "amount": 100_000,
        "fee": 600,
        "fee_ppm": 6_000,
        "refund_fee_rule": "proportional",
        "channel_cost": 380,
        "channel_cost_ppm": 3_800,
        "paid_at": order["paid_at"],
        "business_date": shanghai_date(datetime.fromisoformat(order["paid_at"])),
        "service_provider": False,  # a direct channel account
    }
    # the merchant-facing body is the order object, unchanged: no booking facts in it
    assert payload["data"] == order
    assert not {"fee_ppm", "channel_cost", "channel_cost_ppm", "business_date"} & set(payload["data"])


async def test_two_partial_refunds_return_180_then_420(pay: PayStack) -> None:
    order = await paid_order(pay, 100_000)
    first = await refund(pay, order, 30_000, "fee-1")
    assert first.status_code == 201 and first.json()["status"] == "SUCCEEDED", first.text
    assert await refund_fee_returned(pay, first.json()["refund_no"]) == 180
    assert (await order_row(pay, order["order_no"])).fee_returned_total == 180
    second = await refund(pay, order, 70_000, "fee-2")
    assert second.status_code == 201 and second.json()["status"] == "SUCCEEDED", second.text
    assert await refund_fee_returned(pay, second.json()["refund_no"]) == 420
    row = await order_row(pay, order["order_no"])
    assert (row.fee_returned_total, row.refunded_amount) == (600, 100_000)  # a full refund returns exactly the fee

    payload, facts = await outbox(pay, second.json()["refund_no"], "refund.succeeded")
    assert payload["data"] == second.json()  # the webhook body is the refund object, unchanged
    assert facts is not None and set(facts) == REFUND_FACTS
    succeeded_at = second.json()["succeeded_at"]
    assert facts == {
        "mch_no": (await pay.c.merchants.app_auth(pay.client.app_id)).mch_no,
        "app_id": pay.client.app_id,
        "order_no": order["order_no"],
        "refund_no": second.json()["refund_no"],
        "channel_account_id": pay.accounts["alipay"],
        "amount": 70_000,
        "fee_returned": 420,
        "fee_returned_total": 600,
        "refunded_total": 100_000,
        "order_amount": 100_000,
        "order_fee": 600,
        "order_channel_cost": 380,
        "channel_cost_returned": 266,  # 380 in all after a full refund: 114 went back with the first 30,000
        "succeeded_at": succeeded_at,
        "business_date": shanghai_date(datetime.fromisoformat(succeeded_at)),
        "service_provider": False,
    }
    _, first_facts = await outbox(pay, first.json()["refund_no"], "refund.succeeded")
    assert first_facts is not None
    assert (first_facts["fee_returned"], first_facts["fee_returned_total"], first_facts["refunded_total"]) == (
        180,
        180,
        30_000,
    )
    assert first_facts["channel_cost_returned"] == 114  # docs/finance.md, the ledger's entries: 0.38 % of 30,000


async def test_shares_are_cumulative_so_rounding_never_returns_more_than_the_fee(pay: PayStack) -> None:
    order = await paid_order(pay, 1_000)  # fee 6
    shares = []
    for i in range(4):  # totals after 250, 500, 750, 1,000: 1.5 → 2, 3, 4.5 → 5, 6
        r = await refund(pay, order, 250, f"cum-{i}")
        assert r.status_code == 201 and r.json()["status"] == "SUCCEEDED", r.text
        shares.append(await refund_fee_returned(pay, r.json()["refund_no"]))
    assert shares == [2, 1, 2, 1]
    assert (await order_row(pay, order["order_no"])).fee_returned_total == 6


async def test_a_plan_change_after_payment_does_not_change_a_later_refund(pay: PayStack) -> None:
    before = await paid_order(pay, 100_000)
    await put_on_plan(pay, await new_plan(pay, name="Dear", rates={"ALIPAY_QR": 10_000}, refund_fee="none"))
    r = await refund(pay, before, 30_000, "chg-1")
    assert r.status_code == 201 and r.json()["status"] == "SUCCEEDED", r.text
    assert await refund_fee_returned(pay, r.json()["refund_no"]) == 180  # the snapshot's rule and fee, not the plan's
    assert (await order_row(pay, before["order_no"])).fee == 600

    after = await paid_order(pay, 100_000)  # paid under the new plan
    row = await order_row(pay, after["order_no"])
    assert (row.fee_ppm, row.fee, row.refund_fee_rule) == (10_000, 1_000, "none")
    r = await refund(pay, after, 30_000, "chg-2")
    assert r.status_code == 201, r.text
    assert await refund_fee_returned(pay, r.json()["refund_no"]) == 0  # `none`: the fee is kept


async def test_min_fee_and_a_method_absent_from_the_plan(pay: PayStack) -> None:
    await put_on_plan(pay, await new_plan(pay, name="Min", rates={"ALIPAY_QR": 6_000}, min_fee=50))
    small = await paid_order(pay, 1_000)
    assert (await order_row(pay, small["order_no"])).fee == 50  # 6 fen < the minimum
    await put_on_plan(pay, await new_plan(pay, name="Wechat only", rates={"WECHAT_NATIVE": 6_000}))
    unrated = await paid_order(pay, 100_000)
    row = await order_row(pay, unrated["order_no"])
    assert (row.fee_ppm, row.fee, row.channel_cost) == (0, 0, 380)  # a method absent from the rates: charged 0


async def test_a_merchant_without_a_plan_pays_no_fee(pay: PayStack) -> None:
    await put_on_plan(pay, None)
    order = await paid_order(pay, 100_000)
    row = await order_row(pay, order["order_no"])
    assert (row.fee_ppm, row.fee, row.refund_fee_rule, row.channel_cost) == (0, 0, "none", 380)
    _, facts = await outbox(pay, order["order_no"], "pay.succeeded")
    assert facts is not None and (facts["fee"], facts["channel_cost"]) == (0, 380)
    r = await refund(pay, order, 100_000, "none-1")
    assert r.status_code == 201, r.text
    assert await refund_fee_returned(pay, r.json()["refund_no"]) == 0


async def test_cost_rate_is_read_from_the_account_at_payment_time(pay: PayStack) -> None:
    path = f"/admin/channel-accounts/{pay.accounts['alipay']}"
    r = await pay.http.patch(path, json={"cost_ppm": 5_000}, headers=admin())
    assert r.status_code == 200 and r.json()["cost_ppm"] == 5_000, r.text
    order = await paid_order(pay, 100_000)
    row = await order_row(pay, order["order_no"])
    assert (row.channel_cost_ppm, row.channel_cost) == (5_000, 500)


async def test_a_payment_after_close_is_snapshotted_and_its_anomaly_carries_a_business_date(pay: PayStack) -> None:
    account = pay.accounts["alipay"]
    await pay.faults(channel="alipay", drop_notify=True)
    order = (await pay.client.create_order(amount=100_000)).json()
    closed = await pay.client.request("POST", f"/v1/pay/orders/{order['order_no']}/close", {})
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED", closed.text
    notify = ChannelNotify(
        kind="payment", status=ResultStatus.SUCCESS, order_no=order["order_no"], amount=100_000,
        channel_trade_no="T-LATE",
    )  # fmt: skip
    assert await pay.c.pay.apply_notify(account, notify) is Outcome.APPLIED
    row = await order_row(pay, order["order_no"])
    assert (row.fee, row.channel_cost) == (600, 380)
    _, facts = await outbox(pay, order["order_no"], "pay.succeeded")
    assert facts is not None and (facts["fee"], facts["channel_cost"]) == (600, 380)

    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT payload, facts FROM outbox_events WHERE event_type = 'pay.anomaly'")
        anomaly = (await conn.execute(q)).one()
    data, anomaly_facts = json.loads(anomaly.payload)["data"], json.loads(anomaly.facts)
    assert data["kind"] == "paid_after_close" and "business_date" not in data
    assert anomaly_facts == {**data, "business_date": shanghai_date(pay.clock.now())}
    assert rfc3339(pay.clock.now()) == data["created_at"]


async def test_concurrent_partial_refunds_take_their_shares_one_after_another(pay: PayStack) -> None:
    """Eight refunds of 125 on a 1,000 order (fee 6) at once: whatever the interleaving, each share is the step of
    the cumulative total at its own place (1, 1, 0, 1, 1, 1, 0, 1 in some order), so they sum to the fee."""
    order = await paid_order(pay, 1_000)
    bodies = [{"order_no": order["order_no"], "out_refund_no": f"cc-{i}", "amount": 125} for i in range(8)]
    responses = await asyncio.gather(*(pay.client.request("POST", "/v1/refunds", b) for b in bodies))
    assert all(r.status_code == 201 and r.json()["status"] == "SUCCEEDED" for r in responses), [
        r.text for r in responses
    ]
    shares = [await refund_fee_returned(pay, r.json()["refund_no"]) for r in responses]
    assert sorted(s or 0 for s in shares) == [0, 0, 1, 1, 1, 1, 1, 1]
    assert (await order_row(pay, order["order_no"])).fee_returned_total == 6
    async with pay.c.db.engine.connect() as conn:
        q = text("SELECT facts FROM outbox_events WHERE event_type = 'refund.succeeded'")
        facts = [json.loads(f) for f in (await conn.execute(q)).scalars()]
    # each event's facts are consistent with the order's state right after its own refund
    assert sorted(f["refunded_total"] for f in facts) == [125 * k for k in range(1, 9)]
    assert all(f["fee_returned_total"] == (12 * f["refunded_total"] + 1_000) // 2_000 for f in facts)
