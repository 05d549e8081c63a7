"""Issue 3 acceptance 1, black-box: a client written from API.md alone against `tomato dev`."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient


async def _pay_and_watch(stack: DevStack, client: MerchantClient, method: str) -> None:
    r = await client.create_order(pay_method=method, return_url="https://shop.example/back")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "PAYING" and order["channel"] == "alipay"
    async with httpx.AsyncClient(base_url=stack.creds["sandbox_url"]) as sandbox:
        scan = await sandbox.post("/sandbox/scan", json={"content": order["pay_data"]["value"], "result": "paid"})
    assert scan.status_code == 200, scan.text
    started = time.monotonic()
    while True:
        got = (await client.request("GET", f"/v1/pay/orders/{order['order_no']}")).json()
        if got["status"] == "SUCCEEDED":
            break
        assert time.monotonic() - started < 2.0, f"not SUCCEEDED within 2 s: {got['status']}"
        await asyncio.sleep(0.05)
    assert got["channel_trade_no"] == scan.json()["channel_trade_no"] and got["paid_at"]
    count = await stack.scalar(
        "SELECT count(*) FROM outbox_events WHERE aggregate_id = $1 AND event_type = 'pay.succeeded'",
        order["order_no"],
    )
    assert count == 1


@pytest.mark.parametrize("method", ["ALIPAY_QR", "ALIPAY_WAP", "ALIPAY_PC"])
async def test_hmac_app_pays_every_alipay_method(dev_stack: DevStack, method: str) -> None:
    async with httpx.AsyncClient(base_url=dev_stack.creds["base_url"]) as http:
        client = MerchantClient(http, dev_stack.creds["app_id"], secret=dev_stack.creds["app_secret"])
        await _pay_and_watch(dev_stack, client, method)


async def test_rsa_app_pays_and_verifies_with_the_platform_key(dev_stack: DevStack) -> None:
    rsa = dev_stack.creds["rsa_app"]
    async with httpx.AsyncClient(base_url=dev_stack.creds["base_url"]) as http:
        client = MerchantClient(
            http, rsa["app_id"], private_key_pem=rsa["private_key_pem"],
            platform_public_key_pem=rsa["platform_public_key_pem"],
        )  # fmt: skip
        key = await client.request("GET", "/v1/platform-key")
        assert key.json()["public_key_pem"] == rsa["platform_public_key_pem"]
        await _pay_and_watch(dev_stack, client, "ALIPAY_QR")


async def test_readiness_names_the_backends(dev_stack: DevStack) -> None:
    async with httpx.AsyncClient(base_url=dev_stack.creds["base_url"]) as http:
        ready = (await http.get("/readyz")).json()
    embedded = "TOMATO_DATABASE_URL" not in dev_stack.env
    assert ready["status"] == "ready"
    assert ready["checks"]["database"]["backend"] == ("sqlite" if embedded else "postgresql")
    assert ready["checks"]["cache"]["backend"] == ("memory" if embedded else "redis")
    assert ready["checks"]["bus"]["backend"] == ("in-process" if embedded else "rabbitmq")
