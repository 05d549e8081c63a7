"""Issue 17 acceptance 1 (the booking part), black-box against `tomato dev`: a paid order of 100,000 fen shows as
pending 99,400 in `GET /v1/balance` within 2 s, a 30,000 refund takes 29,820 back, and `tomato ledger check` passes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient


async def _balance(client: MerchantClient) -> dict[str, int]:
    r = await client.request("GET", "/v1/balance")
    assert r.status_code == 200, r.text
    return {"pending": r.json()["pending"], "available": r.json()["available"]}


async def _until(client: MerchantClient, path: str, status: str) -> float:
    started = time.monotonic()
    while (await client.request("GET", path)).json()["status"] != status:
        assert time.monotonic() - started < 10.0, f"{path} not {status} within 10 s"
        await asyncio.sleep(0.02)
    return time.monotonic()


def _ledger_check(stack: DevStack) -> subprocess.CompletedProcess[str]:
    env = dict(stack.env)
    env.setdefault("TOMATO_DATABASE_URL", "sqlite+aiosqlite:///./.tomato/dev.db")
    return subprocess.run([sys.executable, "-m", "tomato.cli", "ledger", "check"], cwd=stack.cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


async def test_a_paid_order_shows_in_pending_within_2_s_and_the_ledger_checks(dev_stack: DevStack) -> None:
    async with (
        httpx.AsyncClient(base_url=dev_stack.creds["base_url"]) as http,
        httpx.AsyncClient(base_url=dev_stack.creds["sandbox_url"]) as sandbox,
    ):
        client = MerchantClient(http, dev_stack.creds["app_id"], secret=dev_stack.creds["app_secret"])
        before = await _balance(client)
        order = (await client.create_order(pay_method="ALIPAY_QR", amount=100_000)).json()
        assert (await sandbox.post("/sandbox/scan", json={"order_no": order["order_no"], "result": "paid"})).is_success
        paid_seen = await _until(client, f"/v1/pay/orders/{order['order_no']}", "SUCCEEDED")
        want = {"pending": before["pending"] + 99_400, "available": before["available"]}
        while (got := await _balance(client)) != want:
            assert time.monotonic() - paid_seen < 2.0, f"balance {got}, want {want} within 2 s of the payment"
            await asyncio.sleep(0.05)
        r = await client.request("POST", "/v1/refunds",
                                 {"order_no": order["order_no"], "out_refund_no": "L1", "amount": 30_000})  # fmt: skip
        assert r.status_code == 201, r.text
        refunded = await _until(client, f"/v1/refunds/{r.json()['refund_no']}", "SUCCEEDED")
        want["pending"] -= 29_820
        while (got := await _balance(client)) != want:
            assert time.monotonic() - refunded < 2.0, f"balance {got}, want {want} within 2 s of the refund"
            await asyncio.sleep(0.05)
    done = await asyncio.to_thread(_ledger_check, dev_stack)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "ok", done.stdout + done.stderr
