"""Service-provider payments through the APIs (issue 21): the balance shows the mode and the shadow figures; balance
transactions and statements list only platform-held money; payouts and settlement never touch the channel's money."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.fixtures.booking import consumer, drain, paid_facts, provider, refund_facts, write_event
from tests.fixtures.console_client import ConsoleUser
from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin
from tomato.account import accounts as acct
from tomato.account.ledger import balances

ACCOUNT = {"name": "张三", "number": "6216261000000000018", "bank": "Bank of Tests"}


async def mch_no(pay: PayStack) -> str:
    return (await pay.c.merchants.get_app(pay.client.app_id)).mch_no


async def book(pay: PayStack, *events: tuple[str, dict[str, Any]]) -> None:
    for event_type, facts in events:
        await write_event(pay.c.db, pay.c.ids, event_type, facts)
    await drain(consumer(pay.c.db, pay.c.ids))


async def balance(pay: PayStack) -> dict[str, Any]:
    r = await pay.client.request("GET", "/v1/balance")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_the_balance_shows_the_mode_and_the_channels_money_apart(pay: PayStack) -> None:
    mch = await mch_no(pay)
    assert await balance(pay) == {"currency": "CNY", "pending": 0, "available": 0, "mode": "direct",
                                  "service_provider": {"collected": 0, "fee_receivable": 0}}  # fmt: skip
    paid = provider(paid_facts(mch, 100_000, order_no="P1"))
    await book(pay, ("pay.succeeded", paid), ("refund.succeeded", provider(refund_facts(paid, 30_000, refund_no="R1"))))
    want = {"currency": "CNY", "pending": 0, "available": 0, "mode": "service_provider",
            "service_provider": {"collected": 70_000, "fee_receivable": 420}}  # fmt: skip
    assert await balance(pay) == want
    r = await pay.http.get(f"/admin/ledger/merchants/{mch}/balance", headers=admin("finance"))
    assert r.status_code == 200 and r.json() == want
    assert (await pay.http.get(f"/admin/ledger/merchants/{mch}/balance", headers=admin("operator"))).status_code == 403
    assert (await pay.http.get("/admin/ledger/merchants/M%25/balance", headers=admin("finance"))).status_code == 422

    await book(pay, ("pay.succeeded", paid_facts(mch, 20_000, order_no="P2")))  # and a direct payment
    got = await balance(pay)
    assert (got["mode"], got["pending"], got["service_provider"]) == (
        "mixed", 19_880, {"collected": 70_000, "fee_receivable": 420},
    )  # fmt: skip


async def test_transactions_and_the_statement_list_only_platform_held_money(pay: PayStack) -> None:
    mch = await mch_no(pay)
    shadow = provider(paid_facts(mch, 100_000, order_no="P1"))
    direct = paid_facts(mch, 20_000, order_no="P2")
    await book(pay, ("pay.succeeded", shadow), ("pay.succeeded", direct),
               ("refund.succeeded", provider(refund_facts(shadow, 30_000, refund_no="R1"))),
               ("refund.succeeded", refund_facts(direct, 5_000, refund_no="R2")))  # fmt: skip
    r = await pay.client.request("GET", "/v1/balance/transactions")
    assert [(t["type"], t["order_no"], t["refund_no"], t["net"]) for t in r.json()["data"]] == [
        ("refund", "P2", "R2", -4_970), ("payment", "P2", None, 19_880),
    ]  # fmt: skip
    today = datetime.now(ZoneInfo(pay.c.settings.business_timezone)).date().isoformat()
    r = await pay.client.request("GET", f"/v1/statements/{today}")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert r.text.splitlines()[0] == "created_at,type,order_no,refund_no,payout_no,amount,fee,net"
    assert [(row["type"], row["order_no"]) for row in rows] == [("payment", "P2"), ("refund", "P2")]
    got = await balance(pay)
    # the statement sums to the day's movement of the platform-held balance, the service-provider money beside it
    assert sum(int(row["net"]) for row in rows) == got["pending"] + got["available"] == 14_910
    assert got["service_provider"] == {"collected": 70_000, "fee_receivable": 420}


async def test_service_provider_money_is_never_paid_out(pay: PayStack) -> None:
    mch = await mch_no(pay)
    await book(pay, ("pay.succeeded", provider(paid_facts(mch, 100_000, order_no="P1"))))
    r = await pay.client.request("POST", "/v1/payouts",
                                 {"out_payout_no": "WD-1", "amount": 1, "bank_account": dict(ACCOUNT)})  # fmt: skip
    assert (r.status_code, r.json()["error"]["code"]) == (409, "INSUFFICIENT_BALANCE")
    assert (await balance(pay))["available"] == 0


async def test_settlement_settles_nothing_of_service_provider_payments(pay: PayStack) -> None:
    mch = await mch_no(pay)
    friday = "2026-12-04"
    await book(pay, ("pay.succeeded", provider(paid_facts(mch, 100_000, order_no="P1", business_date=friday))),
               ("pay.succeeded", paid_facts(mch, 20_000, order_no="P2", business_date=friday)))  # fmt: skip
    r = await pay.http.post("/admin/settlements/run", json={"date": "2026-12-07"}, headers=admin("finance"))
    assert r.status_code == 200, r.text
    assert r.json() == {"date": "2026-12-07", "settled_count": 1, "settled_amount": 19_880}  # the direct one only
    r = await pay.http.post("/admin/settlements/run", json={"date": "2026-12-08"}, headers=admin("finance"))
    assert r.json() == {"date": "2026-12-08", "settled_count": 0, "settled_amount": 0}
    async with pay.c.db.uow() as uow:
        got = await balances(uow.session, [acct.merchant_pending(mch), acct.merchant_available(mch),
                                           acct.merchant_fee_receivable(mch)])  # fmt: skip
    assert got == {acct.merchant_pending(mch): 0, acct.merchant_available(mch): 19_880,
                   acct.merchant_fee_receivable(mch): 600}  # fmt: skip
    after = await balance(pay)
    assert (after["available"], after["service_provider"]["collected"]) == (19_880, 100_000)


async def test_the_console_ledger_page_shows_a_merchants_mode(pay: PayStack) -> None:
    mch = await mch_no(pay)
    await book(pay, ("pay.succeeded", provider(paid_facts(mch, 100_000, order_no="P1"))))
    u = ConsoleUser(pay.http)
    await u.sign_in("finance")
    page = await u.get(f"/console/ledger?owner={mch}")
    assert page.status_code == 200
    assert re.search(r'<span id="mode" class="status">Service provider</span>', page.text)
    assert f"merchant_fee_receivable:{mch}" in page.text
    unfiltered = await u.get("/console/ledger")
    assert 'id="merchant-balance"' not in unfiltered.text  # no merchant named: no merchant card
