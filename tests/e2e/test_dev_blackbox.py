"""Issues 3 and 4 acceptance 1, black-box: a client written from the docs alone against `tomato dev`, every method."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient

CHANNEL_METHODS = {
    "ALIPAY_QR": ("alipay", "qr_code"),
    "ALIPAY_WAP": ("alipay", "redirect_url"),
    "ALIPAY_PC": ("alipay", "redirect_url"),
    "WECHAT_NATIVE": ("wechat", "qr_code"),
    "WECHAT_JSAPI": ("wechat", "jsapi"),
    "WECHAT_H5": ("wechat", "redirect_url"),
    "BANK_WEB": ("bank", "form_html"),
}
EXTRA = {"WECHAT_JSAPI": {"payer": {"openid": "oSandboxPayer0001"}}, "WECHAT_H5": {"client_ip": "203.0.113.9"}}


def _scan_body(order: dict) -> dict:  # type: ignore[type-arg]
    """Scan the code the payer would see; BANK_WEB (an HTML form) and JSAPI are found by order number."""
    value = order["pay_data"]["value"]
    if order["pay_data"]["type"] in ("qr_code", "redirect_url"):
        return {"content": value, "result": "paid"}
    if order["pay_data"]["type"] == "jsapi":
        return {"content": value["package"], "result": "paid"}
    return {"order_no": order["order_no"], "result": "paid"}


async def _pay_and_watch(stack: DevStack, client: MerchantClient, method: str) -> None:
    r = await client.create_order(pay_method=method, return_url="https://shop.example/back", **EXTRA.get(method, {}))
    assert r.status_code == 201, r.text
    order = r.json()
    channel, data_type = CHANNEL_METHODS[method]
    assert order["status"] == "PAYING" and order["channel"] == channel
    assert order["pay_data"]["type"] == data_type
    async with httpx.AsyncClient(base_url=stack.creds["sandbox_url"]) as sandbox:
        scan = await sandbox.post("/sandbox/scan", json=_scan_body(order))
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


@pytest.mark.parametrize("method", list(CHANNEL_METHODS))
async def test_hmac_app_pays_every_method(dev_stack: DevStack, method: str) -> None:
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
