"""Issue 17 (fees): the operator's fee-plan API — create, list, read, assign to a merchant — with its roles and its
refusals of bad input; the channel accounts' cost rate (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin

DEMO = {"name": "Standard 0.60 %", "rates": {"ALIPAY_QR": 6_000, "WECHAT_NATIVE": 6_000}}


def error(r: Any) -> tuple[int, str, list[str]]:
    body = r.json()["error"]
    return r.status_code, body["code"], [d["field"] for d in body.get("details") or []]


async def test_create_read_and_list_fee_plans(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    r = await client.post("/admin/fee-plans", json=DEMO, headers=admin())
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["id"].startswith("FP") and plan["id"][2:].isdigit()
    expected = {**DEMO, "min_fee": 0, "refund_fee": "proportional"}
    assert {k: plan[k] for k in ("name", "rates", "min_fee", "refund_fee")} == expected
    assert plan["created_at"].endswith("Z")
    got = await client.get(f"/admin/fee-plans/{plan['id']}", headers=admin())
    assert got.status_code == 200 and got.json() == plan

    body = {"name": "Flat", "rates": {}, "min_fee": 100, "refund_fee": "none"}
    others = [(await client.post("/admin/fee-plans", json=body, headers=admin())).json() for _ in range(2)]
    assert others[0]["rates"] == {} and others[0]["min_fee"] == 100 and others[0]["refund_fee"] == "none"
    first = await client.get("/admin/fee-plans?limit=2", headers=admin())
    assert first.status_code == 200 and len(first.json()["data"]) == 2 and first.json()["next_cursor"]
    rest = await client.get(f"/admin/fee-plans?limit=2&cursor={first.json()['next_cursor']}", headers=admin())
    assert rest.status_code == 200 and rest.json()["next_cursor"] is None
    listed = [p["id"] for p in first.json()["data"] + rest.json()["data"]]
    assert sorted(listed) == sorted([plan["id"], *(o["id"] for o in others)])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rates": {"ALIPAY_QR": 1}}, "name"),
        ({"name": "x"}, "rates"),
        ({"name": "", "rates": {}}, "name"),
        ({"name": "x", "rates": {"ALIPAY_QR": 1_000_001}}, "rates.ALIPAY_QR"),
        ({"name": "x", "rates": {"ALIPAY_QR": -1}}, "rates.ALIPAY_QR"),
        ({"name": "x", "rates": {"ALIPAY_QR": "6000"}}, "rates.ALIPAY_QR"),
        ({"name": "x", "rates": {"ALIPAY_QR": 6.5}}, "rates.ALIPAY_QR"),
        ({"name": "x", "rates": [6000]}, "rates"),
        ({"name": "x", "rates": {}, "min_fee": -1}, "min_fee"),
        ({"name": "x", "rates": {}, "min_fee": 2**63}, "min_fee"),
        ({"name": "x", "rates": {}, "refund_fee": "half"}, "refund_fee"),
        ({"name": "x\x00", "rates": {}}, "name"),
        ({"name": "x", "rates": {}, "extra": 1}, "extra"),
    ],
)
async def test_bad_plans_are_422_naming_the_field(stack, body: dict[str, Any], field: str) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    r = await client.post("/admin/fee-plans", json=body, headers=admin())
    assert error(r)[:2] == (422, "INVALID_REQUEST"), r.text
    assert field in error(r)[2], r.text
    assert (await client.get("/admin/fee-plans", headers=admin())).json()["data"] == []


async def test_an_unknown_pay_method_is_named(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    r = await client.post("/admin/fee-plans", json={"name": "x", "rates": {"PAYPAL": 10}}, headers=admin())
    assert error(r) == (422, "INVALID_REQUEST", ["rates"]), r.text
    assert "PAYPAL" in r.json()["error"]["message"] and "PAYPAL" in r.json()["error"]["details"][0]["issue"]


async def test_assign_a_plan_to_a_merchant(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    mch_no = (await client.post("/admin/merchants", json={"name": "Tea Ltd"}, headers=admin())).json()["mch_no"]
    assert (await client.get(f"/admin/merchants/{mch_no}", headers=admin())).json()["fee_plan_id"] is None
    plan_id = (await client.post("/admin/fee-plans", json=DEMO, headers=admin())).json()["id"]
    r = await client.post(f"/admin/merchants/{mch_no}/fee-plan", json={"fee_plan_id": plan_id}, headers=admin())
    assert r.status_code == 200 and r.json()["mch_no"] == mch_no and r.json()["fee_plan_id"] == plan_id, r.text
    assert (await client.get(f"/admin/merchants/{mch_no}", headers=admin())).json()["fee_plan_id"] == plan_id
    listed = (await client.get("/admin/merchants", headers=admin())).json()["data"]
    assert [m["fee_plan_id"] for m in listed if m["mch_no"] == mch_no] == [plan_id]

    unknown = await client.post(f"/admin/merchants/{mch_no}/fee-plan", json={"fee_plan_id": "FP1"}, headers=admin())
    assert error(unknown)[:2] == (404, "FEE_PLAN_NOT_FOUND"), unknown.text
    assert (await client.get(f"/admin/merchants/{mch_no}", headers=admin())).json()["fee_plan_id"] == plan_id
    nobody = await client.post("/admin/merchants/M1/fee-plan", json={"fee_plan_id": plan_id}, headers=admin())
    assert error(nobody)[:2] == (404, "MERCHANT_NOT_FOUND"), nobody.text
    missing = await client.post(f"/admin/merchants/{mch_no}/fee-plan", json={}, headers=admin())
    assert error(missing) == (422, "INVALID_REQUEST", ["fee_plan_id"]), missing.text

    off = await client.post(f"/admin/merchants/{mch_no}/fee-plan", json={"fee_plan_id": None}, headers=admin())
    assert off.status_code == 200 and off.json()["fee_plan_id"] is None, off.text


async def test_unknown_and_malformed_plan_ids(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    r = await client.get("/admin/fee-plans/FP123", headers=admin())
    assert error(r)[:2] == (404, "FEE_PLAN_NOT_FOUND"), r.text
    r = await client.get("/admin/fee-plans/%00", headers=admin())
    assert error(r)[:2] == (422, "INVALID_REQUEST"), r.text
    r = await client.get("/admin/fee-plans?cursor=%00", headers=admin())
    assert error(r) == (422, "INVALID_REQUEST", ["cursor"]), r.text
    r = await client.get("/admin/fee-plans?limit=101", headers=admin())
    assert error(r) == (422, "INVALID_REQUEST", ["limit"]), r.text
    r = await client.post("/admin/merchants/M%00/fee-plan", json={"fee_plan_id": "FP1"}, headers=admin())
    assert error(r)[:2] == (422, "INVALID_REQUEST"), r.text


async def test_only_operators_manage_fee_plans(stack) -> None:  # type: ignore[no-untyped-def]
    _, client = stack
    plan_id = (await client.post("/admin/fee-plans", json=DEMO, headers=admin())).json()["id"]
    calls = [
        ("POST", "/admin/fee-plans", DEMO),
        ("GET", "/admin/fee-plans", None),
        ("GET", f"/admin/fee-plans/{plan_id}", None),
        ("POST", "/admin/merchants/M1/fee-plan", {"fee_plan_id": plan_id}),
    ]
    for method, path, body in calls:
        none = await client.request(method, path, json=body)
        assert error(none)[:2] == (401, "UNAUTHENTICATED"), (path, none.text)
        finance = await client.request(method, path, json=body, headers=admin("finance"))
        assert error(finance)[:2] == (403, "FORBIDDEN"), (path, finance.text)
    # the token answers before the body: a finance token with a bad body is still 403
    r = await client.post("/admin/fee-plans", json={"rates": "nope"}, headers=admin("finance"))
    assert r.status_code == 403
    plans = (await client.get("/admin/fee-plans", headers=admin())).json()["data"]
    assert [p["id"] for p in plans] == [plan_id]  # nothing was created by the refused calls


async def test_channel_accounts_carry_a_cost_rate(pay: PayStack) -> None:
    path = f"/admin/channel-accounts/{pay.accounts['wechat']}"
    assert (await pay.http.get(path, headers=admin())).json()["cost_ppm"] == 3_800  # the seeded simulator rate
    listed = (await pay.http.get("/admin/channel-accounts", headers=admin())).json()["data"]
    assert {a["cost_ppm"] for a in listed} == {3_800}
    r = await pay.http.patch(path, json={"cost_ppm": 6_000}, headers=admin())
    assert r.status_code == 200 and r.json()["cost_ppm"] == 6_000, r.text
    for bad in (None, -1, 1_000_001, "5", 1.5):
        r = await pay.http.patch(path, json={"cost_ppm": bad}, headers=admin())
        assert error(r) == (422, "INVALID_REQUEST", ["cost_ppm"]), (bad, r.text)
    r = await pay.http.patch(path, json={"name": "WeChat main"}, headers=admin())
    assert r.json()["cost_ppm"] == 6_000  # omitted: unchanged
    r = await pay.http.patch(path, json={"cost_ppm": 6_000}, headers=admin("finance"))
    assert r.status_code == 403
