"""The settlement admin API: `POST /admin/settlements/run` and `GET /admin/settlements` (finance), the holiday
calendar (operator or finance) and a merchant's settlement cycle (operator) — roles, bad input, shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.ledger import payment_entry, refund_entry
from tests.fixtures.stack import admin
from tomato.account import accounts as acct
from tomato.account.ledger import balances, post_committed
from tomato.core.clock import SystemClock

CLOCK = SystemClock()


async def new_merchant(client) -> str:  # type: ignore[no-untyped-def]
    r = await client.post("/admin/merchants", json={"name": "Noodle Bar"}, headers=admin())
    assert r.status_code == 201, r.text
    assert r.json()["settle_cycle"] == "T+1"
    return str(r.json()["mch_no"])


async def run(client, day: str, role: str = "finance") -> Any:  # type: ignore[no-untyped-def]
    return await client.post("/admin/settlements/run", json={"date": day}, headers=admin(role))


async def test_run_settles_what_is_due_and_a_rerun_settles_nothing_new(stack) -> None:  # type: ignore[no-untyped-def]
    c, client = stack
    m = await new_merchant(client)
    paid = payment_entry(m, 100_000, 600, 380, business_date="2026-12-04")  # a Friday
    await post_committed(c.db, c.ids, CLOCK, paid)
    await post_committed(c.db, c.ids, CLOCK, refund_entry(m, 30_000, 180, order_no=paid.source_id))
    r = await run(client, "2026-12-06")  # Sunday: the payment is due Monday, the refund is eligible at once
    assert r.status_code == 200, r.text
    assert r.json() == {"date": "2026-12-06", "settled_count": 0, "settled_amount": 0}  # X < 0: nothing moves
    r = await run(client, "2026-12-07")
    assert r.json() == {"date": "2026-12-07", "settled_count": 2, "settled_amount": 69_580}
    assert (await run(client, "2026-12-07")).json() == {"date": "2026-12-07", "settled_count": 0, "settled_amount": 0}
    async with c.db.uow() as uow:
        got = await balances(uow.session, [acct.merchant_pending(m), acct.merchant_available(m)])
    assert got == {acct.merchant_pending(m): 0, acct.merchant_available(m): 69_580}

    r = await client.get("/admin/settlements", params={"date": "2026-12-07"}, headers=admin("finance"))
    assert r.status_code == 200, r.text
    [batch] = r.json()["data"]
    assert r.json()["next_cursor"] is None
    assert batch["id"].startswith("SB") and batch["journal_id"].startswith("J")
    assert {k: batch[k] for k in ("mch_no", "date", "amount", "line_count")} == {
        "mch_no": m,
        "date": "2026-12-07",
        "amount": 69_580,
        "line_count": 2,
    }
    assert batch["created_at"].endswith("Z")
    assert (await client.get("/admin/settlements", params={"date": "2026-12-08"}, headers=admin("finance"))).json()[
        "data"
    ] == []
    assert (await client.get("/admin/settlements", params={"mch_no": "M0"}, headers=admin("finance"))).json()[
        "data"
    ] == []


async def test_batches_page_newest_first_without_repeats(stack) -> None:  # type: ignore[no-untyped-def]
    c, client = stack
    merchants = [await new_merchant(client) for _ in range(3)]
    for m in merchants:
        await post_committed(c.db, c.ids, CLOCK, payment_entry(m, 10_000, 60, 38, business_date="2026-12-01"))
    assert (await run(client, "2026-12-02")).json()["settled_count"] == 3
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/admin/settlements", params=params, headers=admin("finance"))
        assert r.status_code == 200, r.text
        seen += [b["id"] for b in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3 == len(set(seen))
    assert seen == sorted(seen, key=lambda i: int(i[2:]), reverse=True)
    r = await client.get("/admin/settlements", params={"mch_no": merchants[1]}, headers=admin("finance"))
    assert [b["mch_no"] for b in r.json()["data"]] == [merchants[1]]


async def test_settlement_endpoints_need_the_finance_role(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    assert (await client.post("/admin/settlements/run", json={"date": "2026-12-07"})).status_code == 401
    r = await run(client, "2026-12-07", role="operator")
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert (await client.get("/admin/settlements", headers=admin("operator"))).status_code == 403
    assert (await client.get("/admin/settlements")).status_code == 401
    assert (await client.get("/admin/settlements", headers=admin("finance"))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"date": "2026-02-30"},
        {"date": "2026-2-1"},
        {"date": "20261207"},
        {"date": "２０２６-12-07"},
        {"date": 20261207},
        {"date": None},
        {},
        {"date": "2026-12-07", "extra": 1},
    ],
)
async def test_a_malformed_run_date_is_a_422_naming_date(stack, body: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    r = await client.post("/admin/settlements/run", json=body, headers=admin("finance"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "INVALID_REQUEST"
    fields = [d["field"] for d in r.json()["error"]["details"]]
    assert fields == (["extra"] if "extra" in body else ["date"])


async def test_bad_list_filters_are_422_naming_them(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    for params, field in (
        ({"date": "2026-13-01"}, "date"),
        ({"limit": 0}, "limit"),
        ({"cursor": "!!"}, "cursor"),
        ({"mch_no": "M\x00"}, "mch_no"),
    ):
        r = await client.get("/admin/settlements", params=params, headers=admin("finance"))
        assert r.status_code == 422, (params, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == [field]


async def test_the_holiday_calendar_is_set_and_read_by_operators_and_finance(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    r = await client.put("/admin/calendar/2026-12-07", json={"working": False}, headers=admin("operator"))
    assert r.status_code == 200, r.text
    assert r.json() == {"date": "2026-12-07", "working": False, "weekend": False, "override": True}
    r = await client.put("/admin/calendar/2026-12-12", json={"working": True}, headers=admin("finance"))
    assert r.json() == {"date": "2026-12-12", "working": True, "weekend": True, "override": True}
    r = await client.get("/admin/calendar", params={"from": "2026-12-05", "to": "2026-12-13"}, headers=admin())
    assert r.status_code == 200, r.text
    working = {d["date"][-2:]: d["working"] for d in r.json()["data"]}
    assert working == {
        "05": False, "06": False, "07": False, "08": True, "09": True, "10": True, "11": True, "12": True, "13": False,
    }  # fmt: skip
    r = await client.delete("/admin/calendar/2026-12-07", headers=admin())
    assert r.json() == {"date": "2026-12-07", "working": True, "weekend": False, "override": False}
    r = await client.get("/admin/calendar", params={"from": "2026-12-07", "to": "2026-12-07"}, headers=admin())
    assert r.json()["data"] == [{"date": "2026-12-07", "working": True, "weekend": False, "override": False}]
    assert len((await client.get("/admin/calendar", headers=admin("finance"))).json()["data"]) == 31
    r = await client.get("/admin/calendar", params={"from": "9999-12-30"}, headers=admin())  # the last days there are
    assert [d["date"] for d in r.json()["data"]] == ["9999-12-30", "9999-12-31"]
    r = await client.get("/admin/calendar", params={"from": "0001-01-01", "to": "0001-01-01"}, headers=admin())
    assert r.json()["data"] == [{"date": "0001-01-01", "working": True, "weekend": False, "override": False}]


async def test_the_calendar_refuses_bad_input_and_missing_tokens(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    assert (await client.get("/admin/calendar")).status_code == 401
    assert (await client.put("/admin/calendar/2026-12-07", json={"working": False})).status_code == 401
    for path, body, field in (
        ("/admin/calendar/2026-12-32", {"working": False}, "date"),
        ("/admin/calendar/tomorrow", {"working": False}, "date"),
        ("/admin/calendar/2026-12-07", {"working": "no"}, "working"),
        ("/admin/calendar/2026-12-07", {"working": 0}, "working"),
        ("/admin/calendar/2026-12-07", {}, "working"),
    ):
        r = await client.put(path, json=body, headers=admin())
        assert r.status_code == 422, (path, body, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == [field]
    for params, field in (
        ({"from": "2026-12-10", "to": "2026-12-09"}, "to"),
        ({"from": "2026-01-01", "to": "2027-01-02"}, "to"),  # 367 days
        ({"from": "yesterday"}, "from"),
    ):
        r = await client.get("/admin/calendar", params=params, headers=admin())
        assert r.status_code == 422, (params, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == [field]


async def test_operators_set_a_merchants_settlement_cycle(stack) -> None:  # type: ignore[no-untyped-def]
    c, client = stack
    m = await new_merchant(client)
    r = await client.post(f"/admin/merchants/{m}/settlement-cycle", json={"cycle": "T+2"}, headers=admin())
    assert r.status_code == 200, r.text
    assert r.json()["mch_no"] == m and r.json()["settle_cycle"] == "T+2"
    assert (await client.get(f"/admin/merchants/{m}", headers=admin())).json()["settle_cycle"] == "T+2"
    assert await c.merchants.settle_cycles([m, "M0"]) == {m: "T+2"}
    r = await client.post(f"/admin/merchants/{m}/settlement-cycle", json={"cycle": "D+0"}, headers=admin())
    assert r.json()["settle_cycle"] == "D+0"
    for bad in ("T+0", "T+31", "D+1", "T+1\n", "weekly", 1, None):
        r = await client.post(f"/admin/merchants/{m}/settlement-cycle", json={"cycle": bad}, headers=admin())
        assert r.status_code == 422, (bad, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == ["cycle"]
    r = await client.post("/admin/merchants/M0/settlement-cycle", json={"cycle": "T+1"}, headers=admin())
    assert r.status_code == 404 and r.json()["error"]["code"] == "MERCHANT_NOT_FOUND"
    r = await client.post(f"/admin/merchants/{m}/settlement-cycle", json={"cycle": "T+1"}, headers=admin("finance"))
    assert r.status_code == 403


async def test_the_first_and_last_dates_there_are_run_without_error(stack) -> None:  # type: ignore[no-untyped-def]
    c, client = stack
    m = await new_merchant(client)
    await post_committed(c.db, c.ids, CLOCK, payment_entry(m, 10_000, 60, 38, business_date="2026-12-04"))
    assert (await run(client, "0001-01-01")).json() == {"date": "0001-01-01", "settled_count": 0, "settled_amount": 0}
    r = await run(client, "9999-12-31")
    assert r.json() == {"date": "9999-12-31", "settled_count": 1, "settled_amount": 9_940}
