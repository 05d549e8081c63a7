"""Issue 3: the pay-order lifecycle end to end on the Alipay protocol (in-process simulator)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def events_of(pay, order_no: str, event_type: str) -> int:  # type: ignore[no-untyped-def]
    async with pay.c.db.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM outbox_events WHERE aggregate_id = :o AND event_type = :t"),
                    {"o": order_no, "t": event_type},
                )
            ).scalar_one()
        )


async def test_qr_order_is_paid_once(pay) -> None:
    r = await pay.client.create_order(pay_method="ALIPAY_QR")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "PAYING" and order["channel"] == "alipay"
    assert order["pay_data"]["type"] == "qr_code"
    scan = await pay.scan(content=order["pay_data"]["value"], result="paid")
    assert scan.status_code == 200, scan.text

    async def paid() -> bool:
        got = await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")
        return got.json()["status"] == "SUCCEEDED"

    await wait_for(paid)
    got = (await pay.client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
    assert got["channel_trade_no"] == scan.json()["channel_trade_no"] and got["paid_at"]
    assert await events_of(pay, order["order_no"], "pay.succeeded") == 1
