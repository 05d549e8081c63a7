"""Issue 18 acceptance 1, black-box against `tomato dev`: after a day of payments and refunds on all three channels,
a reconciliation run of that date is MATCHED on every channel account the stack has."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient

PAY_METHODS = {"ALIPAY_QR": {}, "WECHAT_NATIVE": {}, "BANK_WEB": {"return_url": "https://shop.example/back"}}


async def _until(client: MerchantClient, path: str, status: str) -> None:
    started = time.monotonic()
    while (got := (await client.request("GET", path)).json()["status"]) != status:
        assert got in ("PAYING", "PENDING", status), f"{path} became {got}"
        assert time.monotonic() - started < 20.0, f"{path} not {status} within 20 s"
        await asyncio.sleep(0.05)


async def test_a_day_of_payments_and_refunds_reconciles_matched_on_every_account(dev_stack: DevStack) -> None:
    creds = dev_stack.creds
    finance = {"Authorization": f"Bearer {creds['admin_tokens']['finance']}"}
    operator = {"Authorization": f"Bearer {creds['admin_tokens']['operator']}"}
    async with (
        httpx.AsyncClient(base_url=creds["base_url"], timeout=30) as http,
        httpx.AsyncClient(base_url=creds["sandbox_url"], timeout=30) as sandbox,
    ):
        client = MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
        for n, (method, extra) in enumerate(PAY_METHODS.items()):
            for amount in (100_000, 1_234 + n, 99_999):
                order = (await client.create_order(pay_method=method, amount=amount, **extra)).json()
                scan = await sandbox.post("/sandbox/scan", json={"order_no": order["order_no"], "result": "paid"})
                assert scan.status_code == 200, scan.text
                await _until(client, f"/v1/pay/orders/{order['order_no']}", "SUCCEEDED")
                if amount == 100_000:  # one partial and one full refund per channel
                    for out_refund_no, refund in ((f"{method}-p", 30_000), (f"{method}-f", 70_000)):
                        body = {"order_no": order["order_no"], "out_refund_no": out_refund_no, "amount": refund}
                        r = await client.request("POST", "/v1/refunds", body)
                        assert r.status_code == 201, r.text
                        await _until(client, f"/v1/refunds/{r.json()['refund_no']}", "SUCCEEDED")
        accounts = (await http.get("/admin/channel-accounts?limit=100", headers=operator)).json()["data"]
        day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        seen = set()
        for account in accounts:
            r = await http.post(
                "/admin/reconciliation/run", json={"channel_account_id": account["id"], "date": day}, headers=finance
            )
            assert r.status_code == 200, r.text
            batch = r.json()
            assert (batch["status"], batch["discrepancies"]) == ("MATCHED", 0), batch
            assert batch["counts"]["channel_rows"] == batch["counts"]["local_rows"] == batch["counts"]["matched"]
            if batch["counts"]["matched"]:
                seen.add(account["channel"])
    assert seen == {"alipay", "wechat", "bank"}  # every channel had rows, and all of them matched
