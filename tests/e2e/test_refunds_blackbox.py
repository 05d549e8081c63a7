"""Issue 5 acceptance 1 (and 5), black-box: refunds through docs/api.md alone against `tomato dev`, per channel."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient
from tomato.core.pay_methods import CHANNEL_OF, PayMethod

DEADLINE_S = 15.0  # WeChat and bank refunds finish asynchronously (notify or the platform's own query)


def _client(http: httpx.AsyncClient, stack: DevStack) -> MerchantClient:
    return MerchantClient(http, stack.creds["app_id"], secret=stack.creds["app_secret"])


async def _until(client: MerchantClient, path: str, field: str, wanted: str) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        got = (await client.request("GET", path)).json()
        if got[field] == wanted:
            return got  # type: ignore[no-any-return]
        assert time.monotonic() - started < DEADLINE_S, f"{path}: {field} is {got[field]}, not {wanted}"
        await asyncio.sleep(0.1)


async def _paid_order(stack: DevStack, client: MerchantClient, method: str, amount: int) -> dict[str, Any]:
    extra: dict[str, Any] = {"return_url": "https://shop.example/back"}
    r = await client.create_order(pay_method=method, amount=amount, **extra)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["channel"] == CHANNEL_OF[PayMethod(method)]
    async with httpx.AsyncClient(base_url=stack.creds["sandbox_url"]) as sandbox:
        # the payer scans the QR or submits the bank form: every method here hands out a string to pay with
        scan = await sandbox.post("/sandbox/scan", json={"content": order["pay_data"]["value"], "result": "paid"})
    assert scan.status_code == 200, scan.text
    return await _until(client, f"/v1/pay/orders/{order['order_no']}", "status", "SUCCEEDED")


async def _refund(client: MerchantClient, order: dict[str, Any], amount: int, out_refund_no: str) -> httpx.Response:
    body = {"order_no": order["order_no"], "out_refund_no": out_refund_no, "amount": amount}
    return await client.request("POST", "/v1/refunds", body)


async def _settled(client: MerchantClient, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    refund = response.json()
    assert refund["refund_no"].startswith("R") and refund["status"] in ("PENDING", "SUCCEEDED")
    return await _until(client, f"/v1/refunds/{refund['refund_no']}", "status", "SUCCEEDED")


@pytest.mark.parametrize("method", ["ALIPAY_QR", "WECHAT_NATIVE", "BANK_WEB"])
async def test_refund_part_then_the_rest_then_nothing(dev_stack: DevStack, method: str) -> None:
    amount, tag = 1000, secrets.token_hex(4)
    async with httpx.AsyncClient(base_url=dev_stack.creds["base_url"]) as http:
        client = _client(http, dev_stack)
        order = await _paid_order(dev_stack, client, method, amount)

        part = await _settled(client, await _refund(client, order, 300, f"{tag}-1"))
        partial = (await client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
        assert (partial["refund_status"], partial["refunded_amount"]) == ("PARTIAL", 300)

        rest = await _settled(client, await _refund(client, order, 700, f"{tag}-2"))
        third = await _refund(client, order, 1, f"{tag}-3")
        assert third.status_code == 409 and third.json()["error"]["code"] == "REFUND_AMOUNT_EXCEEDED"

        full = (await client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
        assert (full["refund_status"], full["refunded_amount"]) == ("FULL", amount)
        found = await client.request("GET", f"/v1/refunds?out_refund_no={tag}-2")
        assert found.status_code == 200 and found.json() == rest
    for refund in (part, rest):
        count = await dev_stack.scalar(
            "SELECT count(*) FROM outbox_events WHERE aggregate_id = $1 AND event_type = 'refund.succeeded'",
            refund["refund_no"],
        )
        assert count == 1


async def test_refund_conflicts(dev_stack: DevStack) -> None:
    tag = secrets.token_hex(4)
    async with httpx.AsyncClient(base_url=dev_stack.creds["base_url"]) as http:
        client = _client(http, dev_stack)
        unpaid = (await client.create_order(amount=500)).json()
        r = await _refund(client, unpaid, 100, f"{tag}-u")
        assert r.status_code == 409 and r.json()["error"]["code"] == "ORDER_STATE_CONFLICT"

        order = await _paid_order(dev_stack, client, "ALIPAY_QR", 500)
        first = await _refund(client, order, 100, f"{tag}-c")
        assert first.status_code == 201, first.text
        same = await _refund(client, order, 100, f"{tag}-c")
        assert same.status_code == 200 and same.json()["refund_no"] == first.json()["refund_no"]
        other = await _refund(client, order, 200, f"{tag}-c")
        assert other.status_code == 409 and other.json()["error"]["code"] == "OUT_REFUND_NO_CONFLICT"
        both = await client.request("POST", "/v1/refunds", {"order_no": order["order_no"],
                                                            "out_trade_no": order["out_trade_no"],
                                                            "out_refund_no": f"{tag}-b", "amount": 1})  # fmt: skip
        assert both.status_code == 422 and both.json()["error"]["code"] == "INVALID_REQUEST"
        missing = await client.request("GET", "/v1/refunds/R1")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "REFUND_NOT_FOUND"
