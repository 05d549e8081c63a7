"""Issue 17 acceptance 1, black-box against `tomato dev`: a paid order of 100,000 fen shows as pending 99,400 in
`GET /v1/balance` within 2 s; `POST /admin/settlements/run` for a date it is due by makes it available; a 30,000
refund takes 29,820 back (docs/finance.md); a 50,000 payout ends SUCCEEDED with available reduced by it; and
`tomato ledger check` passes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import date, timedelta

import httpx

from tests.e2e.conftest import DevStack
from tests.fixtures.merchant_client import MerchantClient

ACCOUNT = {"name": "张三", "number": "6216261000000000018", "bank": "ICBC"}


async def _balance(client: MerchantClient) -> dict[str, int]:
    r = await client.request("GET", "/v1/balance")
    assert r.status_code == 200, r.text
    return {"pending": r.json()["pending"], "available": r.json()["available"]}


async def _until(client: MerchantClient, path: str, status: str) -> float:
    started = time.monotonic()
    while (got := (await client.request("GET", path)).json()["status"]) != status:
        assert got in ("PAYING", "PENDING", status), f"{path} became {got}"
        assert time.monotonic() - started < 10.0, f"{path} not {status} within 10 s"
        await asyncio.sleep(0.02)
    return time.monotonic()


async def _balance_within_2s(client: MerchantClient, want: dict[str, int], since: float, what: str) -> None:
    while (got := await _balance(client)) != want:
        assert time.monotonic() - since < 2.0, f"balance {got}, want {want} within 2 s of the {what}"
        await asyncio.sleep(0.05)


def _ledger_check(stack: DevStack) -> subprocess.CompletedProcess[str]:
    env = dict(stack.env)
    env.setdefault("TOMATO_DATABASE_URL", "sqlite+aiosqlite:///./.tomato/dev.db")
    return subprocess.run([sys.executable, "-m", "tomato.cli", "ledger", "check"], cwd=stack.cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


async def test_pay_settle_refund_payout_and_the_ledger_checks(dev_stack: DevStack) -> None:
    creds = dev_stack.creds
    finance = {"Authorization": f"Bearer {creds['admin_tokens']['finance']}"}
    async with (
        httpx.AsyncClient(base_url=creds["base_url"], timeout=10) as http,
        httpx.AsyncClient(base_url=creds["sandbox_url"]) as sandbox,
    ):
        client = MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
        before = await _balance(client)
        order = (await client.create_order(pay_method="ALIPAY_QR", amount=100_000)).json()
        assert (await sandbox.post("/sandbox/scan", json={"order_no": order["order_no"], "result": "paid"})).is_success
        paid = await _until(client, f"/v1/pay/orders/{order['order_no']}", "SUCCEEDED")
        want = {"pending": before["pending"] + 99_400, "available": before["available"]}
        await _balance_within_2s(client, want, paid, "payment")

        later = (date.today() + timedelta(days=10)).isoformat()  # due by then under T+1 whatever the holidays
        r = await http.post("/admin/settlements/run", json={"date": later}, headers=finance)
        assert r.status_code == 200, r.text
        want = {"pending": 0, "available": want["available"] + want["pending"]}
        assert await _balance(client) == want

        r = await client.request("POST", "/v1/refunds",
                                 {"order_no": order["order_no"], "out_refund_no": "L1", "amount": 30_000})  # fmt: skip
        assert r.status_code == 201, r.text
        refunded = await _until(client, f"/v1/refunds/{r.json()['refund_no']}", "SUCCEEDED")
        want["available"] -= 29_820  # settled already: the refund (less its 180 fee share) comes from available
        await _balance_within_2s(client, want, refunded, "refund")

        r = await client.request("POST", "/v1/payouts", {"out_payout_no": f"L{time.time_ns()}", "amount": 50_000,
                                                          "bank_account": ACCOUNT})  # fmt: skip
        assert r.status_code == 201, r.text
        await _until(client, f"/v1/payouts/{r.json()['payout_no']}", "SUCCEEDED")
        want["available"] -= 50_000
        assert await _balance(client) == want
        listed = (await client.request("GET", "/v1/balance/transactions?limit=4")).json()["data"]
        assert [(t["type"], t["amount"], t["net"]) for t in listed] == [
            ("payout", -50_000, -50_000), ("refund", -30_000, -29_820), ("settlement", 99_400 + before["pending"],
            99_400 + before["pending"]), ("payment", 100_000, 99_400)]  # fmt: skip
    done = await asyncio.to_thread(_ledger_check, dev_stack)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "ok", done.stdout + done.stderr
