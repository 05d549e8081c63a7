"""The ledger's read side: the merchant's balance, balance transactions and statements; finance's views."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fixtures.booking import consumer, drain, paid_facts, refund_facts, write_event
from tests.fixtures.stack import admin
from tomato.account import accounts as acct
from tomato.account.ledger import EntryRequest, Line, post_committed
from tomato.core.clock import SystemClock

CLOCK = SystemClock()


def field_of(r: httpx.Response) -> tuple[int, str, str]:
    err = r.json()["error"]
    return r.status_code, err["code"], (err.get("details") or [{}])[0].get("field", "")


async def entry(pay: Any, source: str, leg: str, kind: str, lines: tuple[Line, ...], **view: Any) -> None:
    await post_committed(pay.c.db, pay.c.ids, CLOCK, EntryRequest(
        source_type=source.split(":")[0], source_id=source.split(":")[1], leg=leg, kind=kind, lines=lines,
        business_date="2026-12-06", **view,
    ))  # fmt: skip


async def book_history(pay: Any) -> str:
    """A payment of 100,000 and one of 20,000, a 30,000 refund of the first, a settlement of 50,000, a payout of
    10,000 paid and one of 5,000 voided, and an anomaly — as booking, settlement and payouts write them."""
    mch = (await pay.c.merchants.get_app(pay.client.app_id)).mch_no
    db, ids = pay.c.db, pay.c.ids
    first = paid_facts(mch, 100_000, order_no="P1")
    await write_event(db, ids, "pay.succeeded", first)
    await write_event(db, ids, "pay.succeeded", paid_facts(mch, 20_000, order_no="P2"))
    await write_event(db, ids, "refund.succeeded", refund_facts(first, 30_000, refund_no="R1"))
    await write_event(db, ids, "pay.anomaly", {"anomaly_id": "AN1", "kind": "second_payment", "mch_no": mch,
                                               "order_no": "P1", "channel_account_id": "CA1", "amount": 700,
                                               "business_date": "2026-12-06"}, "AN1")  # fmt: skip
    await drain(consumer(db, ids))
    pending, available, transit = acct.merchant_pending(mch), acct.merchant_available(mch), acct.payout_in_transit(mch)
    await entry(
        pay,
        f"settlement:{mch}:2026-12-07",
        "settle",
        "settlement",
        (Line(pending, 50_000, guard=True), Line(available, -50_000)),
        mch_no=mch,
        amount=50_000,
        fee=0,
    )
    for payout_no, amount in (("W1", 10_000), ("W2", 5_000)):
        await entry(
            pay,
            f"payout:{payout_no}",
            "hold",
            "payout",
            (Line(available, amount, guard=True), Line(transit, -amount)),
            mch_no=mch,
            payout_no=payout_no,
            amount=-amount,
            fee=0,
        )
    await entry(
        pay,
        "payout:W1",
        "post",
        "payout_post",
        (Line(transit, 10_000), Line(acct.BANK, -10_000)),
        mch_no=mch,
        payout_no="W1",
    )
    await entry(pay, "payout:W2", "void", "payout", (Line(transit, 5_000), Line(available, -5_000)),
                mch_no=mch, payout_no="W2", amount=5_000, fee=0)  # fmt: skip
    return mch


EXPECTED = [  # newest first: (type, amount, fee, net, order_no, refund_no, payout_no)
    ("payout", 5_000, 0, 5_000, None, None, "W2"),
    ("payout", -5_000, 0, -5_000, None, None, "W2"),
    ("payout", -10_000, 0, -10_000, None, None, "W1"),
    ("settlement", 50_000, 0, 50_000, None, None, None),
    ("refund", -30_000, -180, -29_820, "P1", "R1", None),
    ("payment", 20_000, 120, 19_880, "P2", None, None),
    ("payment", 100_000, 600, 99_400, "P1", None, None),
]


async def test_balance_and_transactions_page_newest_first_without_internal_entries(pay) -> None:  # type: ignore[no-untyped-def]
    await book_history(pay)
    r = await pay.client.request("GET", "/v1/balance")
    # pending 99,400 + 19,880 − 29,820 − 50,000; available 50,000 − 10,000 (paid) − 5,000 + 5,000 (voided)
    assert r.status_code == 200 and r.json() == {"currency": "CNY", "pending": 39_460, "available": 40_000,
                                                 "mode": "direct",
                                                 "service_provider": {"collected": 0, "fee_receivable": 0}}  # fmt: skip
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        path = "/v1/balance/transactions?limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = await pay.client.request("GET", path)
        assert r.status_code == 200, r.text
        seen += r.json()["data"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    got = [(t["type"], t["amount"], t["fee"], t["net"], t["order_no"], t["refund_no"], t["payout_no"]) for t in seen]
    assert got == EXPECTED
    assert all(t["id"].startswith("J") and t["created_at"].endswith("Z") for t in seen)
    default = (await pay.client.request("GET", "/v1/balance/transactions")).json()
    assert len(default["data"]) == 7 and default["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("cursor=!!", "cursor"),
     ("cursor=YzE6eA", "cursor"), ("cursor=YzE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "cursor")],
)  # fmt: skip
async def test_bad_paging_is_a_422_naming_it(pay, query: str, field: str) -> None:  # type: ignore[no-untyped-def]
    r = await pay.client.request("GET", f"/v1/balance/transactions?{query}")
    assert field_of(r) == (422, "INVALID_REQUEST", field)


async def test_a_statement_lists_the_rows_of_its_business_date_as_csv(pay) -> None:  # type: ignore[no-untyped-def]
    await book_history(pay)
    today = datetime.now(ZoneInfo(pay.c.settings.business_timezone)).date().isoformat()
    r = await pay.client.request("GET", f"/v1/statements/{today}")
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["created_at", "type", "order_no", "refund_no", "payout_no", "amount", "fee", "net"]
    body = [tuple(row[1:]) for row in rows[1:]]
    assert body == [
        (t, o or "", rf or "", w or "", str(a), str(f), str(n)) for t, a, f, n, o, rf, w in reversed(EXPECTED)
    ]
    assert all(row[0].endswith("Z") for row in rows[1:])
    empty = await pay.client.request("GET", "/v1/statements/2020-01-01")
    assert empty.status_code == 200 and empty.text == "created_at,type,order_no,refund_no,payout_no,amount,fee,net\n"


@pytest.mark.parametrize("day", ["2026-13-01", "2026-02-30", "20261201", "x", "２０２６-01-01"])
async def test_a_malformed_statement_date_is_a_422_naming_date(pay, day: str) -> None:  # type: ignore[no-untyped-def]
    r = await pay.client.request("GET", f"/v1/statements/{quote(day)}")
    assert field_of(r) == (422, "INVALID_REQUEST", "date")


ADMIN_PATHS = ["/admin/ledger/balances", "/admin/ledger/entries", "/admin/ledger/trial-balance",
               "/admin/ledger/journals/J1"]  # fmt: skip


@pytest.mark.parametrize("path", ADMIN_PATHS)
async def test_ledger_admin_is_for_finance(pay, path: str) -> None:  # type: ignore[no-untyped-def]
    assert (await pay.http.get(path)).status_code == 401
    assert (await pay.http.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await pay.http.get(path, headers=admin("operator"))).status_code == 403
    assert (await pay.http.get(path, headers=admin("finance"))).status_code in (200, 404)


async def test_finance_reads_balances_entries_journals_and_the_trial_balance(pay) -> None:  # type: ignore[no-untyped-def]
    mch = await book_history(pay)
    fin = admin("finance")
    r = await pay.http.get(f"/admin/ledger/balances?owner={mch}", headers=fin)
    got = {b["account"]: (b["account_type"], b["owner"], b["balance"], b["raw"]) for b in r.json()["data"]}
    assert got == {
        f"merchant_available:{mch}": ("merchant_available", mch, 40_000, -40_000),
        f"merchant_pending:{mch}": ("merchant_pending", mch, 39_460, -39_460),
        f"payout_in_transit:{mch}": ("payout_in_transit", mch, 0, 0),
    }
    accounts, cursor = [], None
    while True:
        r = await pay.http.get("/admin/ledger/balances?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=fin)
        accounts += [b["account"] for b in r.json()["data"]]
        if (cursor := r.json()["next_cursor"]) is None:
            break
    assert accounts == sorted(accounts) and len(accounts) == len(set(accounts)) == 8
    r = await pay.http.get("/admin/ledger/balances?account_type=platform_fee_income", headers=fin)
    assert [(b["account"], b["balance"]) for b in r.json()["data"]] == [("platform_fee_income", 540)]

    r = await pay.http.get(f"/admin/ledger/entries?account=merchant_pending:{mch}&date=2026-12-06", headers=fin)
    journals = r.json()["data"]
    assert [j["kind"] for j in journals] == ["settlement", "refund", "payment", "payment"]
    assert all(sum(line["amount"] for line in j["lines"]) == 0 for j in journals)
    one = await pay.http.get(f"/admin/ledger/journals/{journals[1]['id']}", headers=fin)
    assert one.status_code == 200 and one.json() == journals[1]
    assert {line["account"]: line["amount"] for line in one.json()["lines"]} == {
        f"merchant_pending:{mch}": 29_820, "platform_fee_income": 180, "channel_receivable:CA1": -29_886,
        "channel_fee_expense:CA1": -114,
    }  # fmt: skip
    r = await pay.http.get("/admin/ledger/entries?limit=4", headers=fin)
    assert len(r.json()["data"]) == 4 and r.json()["next_cursor"]
    r2 = await pay.http.get(f"/admin/ledger/entries?limit=100&cursor={r.json()['next_cursor']}", headers=fin)
    assert len(r2.json()["data"]) == 5 and r2.json()["next_cursor"] is None  # 9 journals in all

    r = await pay.http.get("/admin/ledger/trial-balance", headers=fin)
    tb = r.json()
    assert (tb["total_raw"], tb["balanced"]) == (0, True)
    by_type = {t["account_type"]: (t["normal_balance"], t["raw"]) for t in tb["types"]}
    assert by_type["merchant_pending"] == (39_460, -39_460)
    assert by_type["suspense"] == (700, -700) and by_type["bank"] == (-10_000, -10_000)
    assert sum(raw for _, raw in by_type.values()) == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [("/balances?account_type=nope", "account_type"), ("/balances?owner=a%20b", "owner"),
     ("/balances?cursor=!!", "cursor"), ("/entries?date=2026-02-30", "date"), ("/entries?account=X", "account"),
     ("/entries?limit=0", "limit"), ("/entries?cursor=YzE6eA", "cursor")],
)  # fmt: skip
async def test_bad_finance_queries_are_a_422_naming_them(pay, query: str, field: str) -> None:  # type: ignore[no-untyped-def]
    r = await pay.http.get(f"/admin/ledger{query}", headers=admin("finance"))
    assert field_of(r) == (422, "INVALID_REQUEST", field)


async def test_an_unknown_journal_is_a_404(pay) -> None:  # type: ignore[no-untyped-def]
    r = await pay.http.get("/admin/ledger/journals/J999", headers=admin("finance"))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "JOURNAL_NOT_FOUND")
