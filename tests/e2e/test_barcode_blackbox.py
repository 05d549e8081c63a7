"""Issue 22 acceptance 1 and 2, black-box against `tomato dev`: barcode payments on each channel — a payer who
confirms at once is SUCCEEDED in the create answer, one who confirms after 10 s is SUCCEEDED within the polling
window, one who never confirms is reversed and ends CLOSED, one the channel refuses is FAILED; a malformed or
unknown code is a 422 naming auth_code. Every case runs at once, so a stack takes about one confirmation window."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient

CHANNELS = ("alipay", "wechat", "bank")
CONFIRM_WINDOW_S = 30.0  # TOMATO_BARCODE_CONFIRM_S's default


# The creates wait up to TOMATO_BARCODE_WAIT_S (5 s) while other pooled connections sit idle; the server closes a
# connection idle for 5 s (uvicorn's keep-alive), so a connection reused at that moment reads a close (ReadError).
# The client forgets idle connections first.
SHORT_KEEPALIVE = httpx.Limits(keepalive_expiry=2.0)

async def _until_final(client: MerchantClient, order_no: str, within_s: float) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        order = (await client.request("GET", f"/v1/pay/orders/{order_no}")).json()
        if order["status"] not in ("CREATED", "PAYING"):
            return dict(order)
        assert time.monotonic() - started < within_s, f"{order_no} still {order['status']} after {within_s} s"
        await asyncio.sleep(0.5)


async def _case(
    client: MerchantClient, sandbox: httpx.AsyncClient, channel: str, behaviour: str
) -> tuple[str, str, dict[str, Any]]:
    code = await sandbox.post(
        "/sandbox/barcodes", json={"channel": channel, "behaviour": behaviour, "confirm_after_s": 10}
    )
    assert code.status_code == 200, code.text
    created = await client.create_order(pay_method="BARCODE", auth_code=code.json()["auth_code"], amount=1_500)
    assert created.status_code == 201, created.text
    return channel, behaviour, dict(created.json())


async def test_barcode_payments_on_every_channel(dev_stack: DevStack) -> None:
    creds = dev_stack.creds
    async with (
        httpx.AsyncClient(base_url=creds["base_url"], timeout=30, limits=SHORT_KEEPALIVE) as http,
        httpx.AsyncClient(base_url=creds["sandbox_url"], timeout=30, limits=SHORT_KEEPALIVE) as sandbox,
    ):
        client = MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
        cases = await asyncio.gather(
            *(_case(client, sandbox, ch, b) for ch in CHANNELS for b in ("pay", "confirm_after", "never", "refuse"))
        )
        expected = {"pay": "SUCCEEDED", "confirm_after": "SUCCEEDED", "never": "CLOSED", "refuse": "FAILED"}
        for channel, behaviour, order in cases:
            assert order["channel"] == channel and order["pay_data"] is None, order
            if behaviour in ("pay", "refuse"):  # final in the create answer itself
                assert order["status"] == expected[behaviour], (channel, behaviour, order)
            else:  # the payer is still confirming when the create's wait ends
                assert order["status"] == "PAYING", (channel, behaviour, order)
        finals = await asyncio.gather(
            *(_until_final(client, order["order_no"], CONFIRM_WINDOW_S + 15) for _, _, order in cases)
        )
        for (channel, behaviour, _), final in zip(cases, finals, strict=True):
            assert final["status"] == expected[behaviour], (channel, behaviour, final)


async def test_a_bad_or_unknown_code_is_refused_naming_auth_code(dev_stack: DevStack) -> None:
    creds = dev_stack.creds
    async with httpx.AsyncClient(base_url=creds["base_url"], timeout=30) as http:
        client = MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
        for code in ("", "28abc", "991234567890123456", "6212345678901234567890"):
            r = await client.create_order(pay_method="BARCODE", auth_code=code)
            assert r.status_code == 422, (code, r.text)
            assert [d["field"] for d in r.json()["error"]["details"]] == ["auth_code"], r.text
