"""Issue 15 item 20: a CASHIER order opened in the Alipay app is paid by scanning its order number — the payer's
client need not follow the redirect, because the trade exists at the channel as soon as the page answers."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from tests.fixtures.pay_stack import PayStack
from tomato.core.outbox import OutboxEvent

ALIPAY_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AlipayClient/10.5.36"


async def _order(pay: PayStack, order_no: str) -> dict[str, Any]:
    return (await pay.client.request("GET", f"/v1/pay/orders/{order_no}")).json()  # type: ignore[no-any-return]


async def test_opening_the_cashier_in_alipay_then_scanning_the_order_number_pays_it(pay: PayStack) -> None:
    created = await pay.client.create_order(pay_method="CASHIER", amount=990)
    assert created.status_code == 201, created.text
    order = created.json()
    page = await pay.http.get(urlsplit(order["pay_data"]["value"]).path, headers={"User-Agent": ALIPAY_UA})
    assert page.status_code == 302, page.text  # handed over to Alipay; this client does not follow

    scan = await pay.scan(order_no=order["order_no"], result="paid")
    assert scan.status_code == 200, scan.text
    assert (scan.json()["channel"], scan.json()["status"]) == ("alipay", "PAID")
    async with asyncio.timeout(10):
        while (got := await _order(pay, order["order_no"]))["status"] != "SUCCEEDED":
            await asyncio.sleep(0.02)  # the simulator's notify is asynchronous: nothing to subscribe to
    assert got["channel"] == "alipay" and got["pay_method"] == "CASHIER"
    assert got["channel_trade_no"] == scan.json()["channel_trade_no"] and got["amount"] == 990
    async with pay.c.db.uow() as uow:
        events = await uow.session.scalar(
            select(func.count()).where(
                OutboxEvent.aggregate_id == order["order_no"], OutboxEvent.event_type == "pay.succeeded"
            )
        )
    assert events == 1
    # a second scan finds the trade paid
    assert (await pay.scan(order_no=order["order_no"], result="paid")).status_code == 409
