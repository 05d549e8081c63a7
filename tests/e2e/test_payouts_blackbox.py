"""Issue 17 acceptance 1 (payout part), black-box against `tomato dev`: a payout of 50,000 fen ends SUCCEEDED within
10 s with available reduced by it; under `reject_payouts` it ends FAILED and the amount is back.

The merchant is funded by a ledger adjustment written to the stack's own database (settlement, the API way to make
money available, is not part of this test).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.e2e.conftest import DevStack
from tests.fixtures.ledger import fund_available, merchant_balances
from tests.fixtures.merchant_client import MerchantClient
from tomato.core.db import Database, create_engine
from tomato.core.ids import MAX_WORKER, Snowflake

ACCOUNT = {"name": "张三", "number": "6216261000000000018", "bank": "ICBC"}


def _database(stack: DevStack) -> Database:
    url = stack.env.get("TOMATO_DATABASE_URL") or f"sqlite+aiosqlite:///{stack.cwd / '.tomato' / 'dev.db'}"
    return Database(create_engine(url, pool_size=2))


async def _final(client: MerchantClient, payout_no: str) -> dict[str, Any]:
    async with asyncio.timeout(10):  # docs/api.md: paid out within 10 s under tomato dev
        while True:
            got = (await client.request("GET", f"/v1/payouts/{payout_no}")).json()
            if got["status"] != "PENDING":
                return got  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)


async def test_payout_succeeds_then_a_rejected_one_returns_the_amount(dev_stack: DevStack) -> None:
    creds = dev_stack.creds
    db = _database(dev_stack)
    try:
        await fund_available(db, Snowflake(MAX_WORKER), creds["mch_no"], 100_000)
        async with httpx.AsyncClient(base_url=creds["base_url"], timeout=10) as http:
            client = MerchantClient(http, creds["app_id"], secret=creds["app_secret"])
            out = f"E2E-{time.time_ns()}"
            r = await client.request("POST", "/v1/payouts", {"out_payout_no": out, "amount": 50_000,
                                                            "bank_account": ACCOUNT})  # fmt: skip
            assert r.status_code == 201, r.text
            done = await _final(client, r.json()["payout_no"])
            assert (done["status"], done["failure_reason"]) == ("SUCCEEDED", None)
            assert (await merchant_balances(db, creds["mch_no"]))["available"] == 50_000

            faults = await http.post(
                f"{creds['sandbox_url']}/sandbox/faults", json={"channel": "bank", "reject_payouts": True}
            )
            assert faults.status_code == 200
            try:
                r = await client.request("POST", "/v1/payouts", {"out_payout_no": out + "-R", "amount": 20_000,
                                                                "bank_account": ACCOUNT})  # fmt: skip
                assert r.status_code == 201, r.text
                failed = await _final(client, r.json()["payout_no"])
                assert failed["status"] == "FAILED" and failed["failure_reason"]
                assert await merchant_balances(db, creds["mch_no"]) == {"available": 50_000, "in_transit": 0}
            finally:
                await http.delete(f"{creds['sandbox_url']}/sandbox/faults")
            async with asyncio.timeout(10):  # the feed lists an event once the relay has numbered it (its poll)
                while True:
                    listed = (await client.request("GET", "/v1/events?limit=100")).json()["data"]
                    types = [e["type"] for e in listed]
                    if types.count("payout.failed") == 1:
                        break
                    await asyncio.sleep(0.1)
            assert types.count("payout.succeeded") == 1 and types.count("payout.failed") == 1
    finally:
        await db.dispose()
