"""Issue 5 acceptance 2: concurrent refunds against one order never reserve more than it was paid.

Real rows, real commits, real concurrency: 20 signed API requests in flight at once, each in its own database
session (PostgreSQL re-checks the guarded UPDATE on the locked row; SQLite serialises the writers).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from tests.fixtures.pay_stack import PayStack
from tomato.channel.sandbox import alipay_simulator


async def _paid_order(pay: PayStack, amount: int) -> dict[str, Any]:
    order = (await pay.client.create_order(amount=amount)).json()
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 200
    async with asyncio.timeout(10):
        while True:
            got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
            if got["status"] == "SUCCEEDED":
                return got  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)


async def _sums(pay: PayStack, order_no: str) -> dict[str, int]:
    async with pay.c.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT status, SUM(amount) FROM refunds WHERE order_no = :o GROUP BY status"), {"o": order_no}
            )
        ).all()
    return {str(status): int(total) for status, total in rows}


async def test_twenty_concurrent_refunds_of_thirty_percent(pay: PayStack) -> None:
    amount, share = 10_000, 3_000
    order = await _paid_order(pay, amount)
    bodies = [{"order_no": order["order_no"], "out_refund_no": f"cc-{i}", "amount": share} for i in range(20)]
    responses = await asyncio.gather(*(pay.client.request("POST", "/v1/refunds", b) for b in bodies))

    accepted = [r.json() for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(accepted) == 3  # ⌊100 / 30⌋: exactly what fits, whatever the interleaving
    assert all(r["status"] == "SUCCEEDED" for r in accepted)
    assert all(r.status_code == 409 and r.json()["error"]["code"] == "REFUND_AMOUNT_EXCEEDED" for r in refused)
    assert sum(r["amount"] for r in accepted) <= amount

    sums = await _sums(pay, order["order_no"])
    assert sums == {"SUCCEEDED": 3 * share}  # refused requests left no row behind
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert (got["refunded_amount"], got["refund_status"]) == (3 * share, "PARTIAL")
    trade = alipay_simulator(pay.sandbox).book.find_by_order_no(order["order_no"])
    assert trade is not None and trade.refunded == 3 * share  # the channel was asked for exactly those


async def test_twenty_concurrent_requests_with_one_out_refund_no_make_one_refund(pay: PayStack) -> None:
    order = await _paid_order(pay, 1_000)
    body = {"order_no": order["order_no"], "out_refund_no": "same-1", "amount": 700}
    responses = await asyncio.gather(*(pay.client.request("POST", "/v1/refunds", body) for _ in range(20)))
    assert sorted({r.status_code for r in responses}) in ([200, 201], [201])
    assert [r.status_code for r in responses].count(201) == 1
    assert len({r.json()["refund_no"] for r in responses}) == 1
    assert await _sums(pay, order["order_no"]) == {"SUCCEEDED": 700}
    # the losers' reservations rolled back with their inserts: 300 is still refundable, 301 is not
    over = await pay.client.request("POST", "/v1/refunds", {**body, "out_refund_no": "same-2", "amount": 301})
    assert over.status_code == 409 and over.json()["error"]["code"] == "REFUND_AMOUNT_EXCEEDED"
    rest = await pay.client.request("POST", "/v1/refunds", {**body, "out_refund_no": "same-3", "amount": 300})
    assert rest.status_code == 201 and rest.json()["status"] == "SUCCEEDED"
