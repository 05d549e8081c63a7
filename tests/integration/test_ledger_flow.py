"""The ledger end to end: pay's own events, booked by the background loop the worker and `tomato dev` run, show in
the merchant's balance and pass `tomato ledger check`."""

from __future__ import annotations

import asyncio
from typing import Any

from tomato.account.check import check_ledger
from tomato.runtime.loops import BackgroundLoops


async def balance(pay: Any) -> dict[str, Any]:
    r = await pay.client.request("GET", "/v1/balance")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_balance(pay: Any, pending: int, available: int = 0) -> None:
    want = {"currency": "CNY", "pending": pending, "available": available, "mode": "direct",
            "service_provider": {"collected": 0, "fee_receivable": 0}}  # fmt: skip
    async with asyncio.timeout(20):
        while await balance(pay) != want:
            await asyncio.sleep(0.05)


async def wait_status(pay: Any, path: str, status: str) -> None:
    async with asyncio.timeout(20):
        while (await pay.client.request("GET", path)).json()["status"] != status:
            await asyncio.sleep(0.02)


async def test_a_paid_and_partly_refunded_order_reaches_the_balance_through_the_booking_loop(pay) -> None:  # type: ignore[no-untyped-def]
    loops = BackgroundLoops()
    loops.start_booking(pay.c)
    try:
        order = (await pay.client.create_order(pay_method="ALIPAY_QR", amount=100_000)).json()
        await pay.scan(order_no=order["order_no"], result="paid")
        await wait_status(pay, f"/v1/pay/orders/{order['order_no']}", "SUCCEEDED")
        await wait_balance(pay, 99_400)  # the demo plan: 0.60 %
        r = await pay.client.request(
            "POST", "/v1/refunds", {"order_no": order["order_no"], "out_refund_no": "rf-1", "amount": 30_000}
        )
        assert r.status_code == 201, r.text
        await wait_status(pay, f"/v1/refunds/{r.json()['refund_no']}", "SUCCEEDED")
        await wait_balance(pay, 99_400 - 29_820)
    finally:
        await loops.shutdown()
    listed = (await pay.client.request("GET", "/v1/balance/transactions")).json()["data"]
    assert [(t["type"], t["amount"], t["fee"], t["net"], t["order_no"]) for t in listed] == [
        ("refund", -30_000, -180, -29_820, order["order_no"]),
        ("payment", 100_000, 600, 99_400, order["order_no"]),
    ]
    report = await check_ledger(pay.c.db, pay.c.pay.succeeded_orders, pay.clock.now())
    assert report.ok and report.warnings == [], report
