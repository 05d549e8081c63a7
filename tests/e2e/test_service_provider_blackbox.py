"""Issue 21 acceptance 1 and 3, black-box against `tomato dev`: on the seeded Alipay ISV and WeChat Pay partner
accounts, a paid order, a partial refund and a close end to end (the simulators refuse any request without the
sub-merchant's fields); removing the merchant's identity stops new orders there while its open and paid orders are
still closed, refunded and reconciled."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient

METHOD_OF = {"alipay": "ALIPAY_QR", "wechat": "WECHAT_NATIVE"}


async def _until(client: MerchantClient, path: str, status: str) -> dict[str, Any]:
    started = time.monotonic()
    while (got := (await client.request("GET", path)).json())["status"] != status:
        assert got["status"] in ("PAYING", "PENDING", status), f"{path} became {got['status']}"
        assert time.monotonic() - started < 20.0, f"{path} not {status} within 20 s"
        await asyncio.sleep(0.05)
    return got


async def test_provider_accounts_pay_refund_close_and_stop_taking_orders_without_an_identity(
    dev_stack: DevStack,
) -> None:
    creds = dev_stack.creds
    operator = {"Authorization": f"Bearer {creds['admin_tokens']['operator']}"}
    finance = {"Authorization": f"Bearer {creds['admin_tokens']['finance']}"}
    providers: dict[str, str] = creds["service_provider_accounts"]
    async with (
        httpx.AsyncClient(base_url=creds["base_url"], timeout=30) as http,
        httpx.AsyncClient(base_url=creds["sandbox_url"], timeout=30) as sandbox,
    ):
        client = MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
        accounts = {a["id"]: a for a in (await http.get("/admin/channel-accounts", headers=operator)).json()["data"]}
        assert {accounts[providers["alipay"]]["mode"], accounts[providers["wechat"]]["mode"]} == {"isv", "partner"}
        identities = (await http.get(f"/admin/merchants/{creds['mch_no']}/channel-identities", headers=operator)).json()
        identity_of = {i["channel_account_id"]: i for i in identities["data"] if i["status"] == "ACTIVE"}
        assert set(identity_of) == set(providers.values())

        for channel, account_id in providers.items():
            method = METHOD_OF[channel]
            rule = {
                "rank": 10,
                "pay_methods": [method],
                "app_id": creds["app_id"],
                "candidates": [{"channel_account_id": account_id, "priority": 1}],
            }
            created_rule = await http.post("/admin/routing-rules", json=rule, headers=operator)
            assert created_rule.status_code == 201, created_rule.text
            try:
                await _one_provider(client, http, sandbox, operator, method, account_id, identity_of[account_id]["id"])
            finally:
                await http.delete(f"/admin/routing-rules/{created_rule.json()['id']}", headers=operator)

        day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        for account_id in providers.values():
            run = await http.post(
                "/admin/reconciliation/run", json={"channel_account_id": account_id, "date": day}, headers=finance
            )
            assert run.status_code == 200, run.text
            batch = run.json()
            assert (batch["status"], batch["discrepancies"]) == ("MATCHED", 0), batch
            assert batch["counts"]["matched"] >= 3  # two payments and a refund, after the identity was disabled


async def _one_provider(
    client: MerchantClient,
    http: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
    operator: dict[str, str],
    method: str,
    account_id: str,
    identity_id: str,
) -> None:
    paid = (await client.create_order(pay_method=method, amount=10_000)).json()
    assert paid["status"] == "PAYING", paid
    scan = await sandbox.post("/sandbox/scan", json={"order_no": paid["order_no"], "result": "paid"})
    assert scan.status_code == 200, scan.text
    await _until(client, f"/v1/pay/orders/{paid['order_no']}", "SUCCEEDED")
    closed = await client.request("POST", f"/v1/pay/orders/{(await _order(client, method))['order_no']}/close", {})
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED", closed.text

    # the identity goes: no new order reaches the provider, its open and paid orders are still followed up
    still_open = await _order(client, method)
    other_paid = await _order(client, method)
    assert (await sandbox.post("/sandbox/scan", json={"order_no": other_paid["order_no"], "result": "paid"})).is_success
    await _until(client, f"/v1/pay/orders/{other_paid['order_no']}", "SUCCEEDED")
    off = await http.post(f"/admin/channel-identities/{identity_id}/disable", headers=operator)
    assert off.status_code == 200 and off.json()["status"] == "DISABLED"
    refused = await client.create_order(pay_method=method)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "NO_CHANNEL_AVAILABLE", refused.text

    body = {"order_no": paid["order_no"], "out_refund_no": f"{paid['order_no']}-r", "amount": 3_000}
    refund = await client.request("POST", "/v1/refunds", body)
    assert refund.status_code == 201, refund.text
    await _until(client, f"/v1/refunds/{refund.json()['refund_no']}", "SUCCEEDED")
    order = (await client.request("GET", f"/v1/pay/orders/{paid['order_no']}")).json()
    assert order["refunded_amount"] == 3_000
    closed = await client.request("POST", f"/v1/pay/orders/{still_open['order_no']}/close", {})
    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED", closed.text
    assert (await http.get(f"/admin/channel-accounts/{account_id}", headers=operator)).json()["status"] == "ACTIVE"


async def _order(client: MerchantClient, method: str) -> dict[str, Any]:
    r = await client.create_order(pay_method=method, amount=2_000)
    assert r.status_code == 201 and r.json()["status"] == "PAYING", r.text
    return dict(r.json())
