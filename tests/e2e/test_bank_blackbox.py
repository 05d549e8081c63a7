"""docs/api.md, black-box, for the bank: a BANK_WEB order is payable by `order_no` as soon as create answers.

Nobody posts the `form_html` (as in the black-box tests outside this repo): the platform's create must already have
registered the trade at the bank simulator.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient


async def test_bank_web_paid_by_order_no_without_posting_the_form(dev_stack: DevStack) -> None:
    async with httpx.AsyncClient(base_url=dev_stack.creds["base_url"]) as http:
        client = MerchantClient(http, dev_stack.creds["app_id"], secret=dev_stack.creds["app_secret"])
        r = await client.create_order(pay_method="BANK_WEB", return_url="https://shop.example/back")
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["status"] == "PAYING" and order["channel"] == "bank"
        assert order["pay_data"]["type"] == "form_html" and "<form" in order["pay_data"]["value"]

        async with httpx.AsyncClient(base_url=dev_stack.creds["sandbox_url"]) as sandbox:
            scan = await sandbox.post("/sandbox/scan", json={"order_no": order["order_no"], "result": "paid"})
        assert scan.status_code == 200, scan.text
        assert (scan.json()["channel"], scan.json()["status"]) == ("bank", "PAID")

        started = time.monotonic()
        while True:
            got = (await client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
            if got["status"] == "SUCCEEDED":
                break
            assert time.monotonic() - started < 2.0, f"not SUCCEEDED within 2 s: {got['status']}"
            await asyncio.sleep(0.05)  # polling the API, as a merchant would; not a synchronisation sleep
    assert got["channel"] == "bank" and got["paid_at"]
    assert got["channel_trade_no"] == scan.json()["channel_trade_no"]
    count = await dev_stack.scalar(
        "SELECT count(*) FROM outbox_events WHERE aggregate_id = $1 AND event_type = 'pay.succeeded'",
        order["order_no"],
    )
    assert count == 1
