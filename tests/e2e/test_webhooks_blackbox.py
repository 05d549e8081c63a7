"""Issue 6 acceptance 1, black-box: `tomato dev --notify-url` and a local receiver. The receiver gets pay.succeeded
within 2 s of `/sandbox/scan`, and the signature verifies with code written from docs/api.md alone
(`tests/fixtures/webhook_receiver.verify_webhook`); `GET /v1/events` lists the same body."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import DevStack, running_dev
from tests.fixtures.merchant_client import MerchantClient
from tests.fixtures.webhook_receiver import Received, ThreadedReceiver, verify_webhook


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadedReceiver]:
    r = ThreadedReceiver()
    yield r
    r.close()


@pytest.fixture(params=["embedded", "services"], scope="module")
def hooked_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, receiver: ThreadedReceiver
) -> Iterator[DevStack]:
    """`tomato dev --notify-url <receiver>` on the embedded backends, and on PostgreSQL + Redis + RabbitMQ."""
    cwd = tmp_path_factory.mktemp(f"hooks-{request.param}")
    with running_dev(request.param, cwd, ["--notify-url", receiver.url]) as stack:
        yield stack


async def _pay_and_receive(stack: DevStack, receiver: ThreadedReceiver, client: MerchantClient) -> Received:
    r = await client.create_order(pay_method="ALIPAY_QR")
    assert r.status_code == 201, r.text
    order_no = r.json()["order_no"]
    async with httpx.AsyncClient(base_url=stack.creds["sandbox_url"]) as sandbox:
        scan = await sandbox.post("/sandbox/scan", json={"content": r.json()["pay_data"]["value"], "result": "paid"})
        scanned = time.monotonic()
    assert scan.status_code == 200, scan.text

    def arrived(got: list[Received]) -> bool:
        return any(json.loads(g.body)["data"]["order_no"] == order_no for g in got)

    got = receiver.wait_until(arrived, timeout_s=10)
    hook = next(g for g in got if json.loads(g.body)["data"]["order_no"] == order_no)
    assert hook.mono - scanned <= 2.0, f"pay.succeeded arrived {hook.mono - scanned:.2f}s after the scan"
    body = json.loads(hook.body)
    assert body["type"] == "pay.succeeded" and body["data"]["status"] == "SUCCEEDED"
    assert hook.headers["tomato-event-id"] == body["id"] and body["id"].startswith("E")
    feed = await client.request("GET", "/v1/events?limit=100")
    assert feed.status_code == 200, feed.text
    assert body in feed.json()["data"]  # the merchant's catch-up feed carries the identical event
    return hook


async def test_hmac_app_receives_a_verifiable_pay_succeeded(hooked_stack: DevStack, receiver: ThreadedReceiver) -> None:
    creds = hooked_stack.creds
    async with httpx.AsyncClient(base_url=creds["base_url"]) as http:
        hook = await _pay_and_receive(
            hooked_stack, receiver, MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
        )
    assert hook.headers["tomato-signature"].startswith("HMAC-SHA256 ")
    assert verify_webhook(hook, secret=creds["app_secret"])
    assert not verify_webhook(hook, secret=creds["app_secret"] + "x")


async def test_rsa_app_webhook_verifies_with_the_platform_key(
    hooked_stack: DevStack, receiver: ThreadedReceiver
) -> None:
    rsa = hooked_stack.creds["rsa_app"]
    async with httpx.AsyncClient(base_url=hooked_stack.creds["base_url"]) as http:
        client = MerchantClient(http, rsa["app_id"], private_key_pem=rsa["private_key_pem"],
                                platform_public_key_pem=rsa["platform_public_key_pem"])  # fmt: skip
        hook = await _pay_and_receive(hooked_stack, receiver, client)
    assert hook.headers["tomato-signature"].startswith("RSA-SHA256 ")
    assert verify_webhook(hook, platform_public_key_pem=rsa["platform_public_key_pem"])
