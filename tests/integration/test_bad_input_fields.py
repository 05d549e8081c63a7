"""Issue 16: body fields outside their documented range are a 422 naming the field, never a 500.

Integers past what a BIGINT holds (refund amounts, routing-rule bounds, daily limits), `null` for a field an app
always has (`PATCH /admin/apps/{id}`), and resend dates a number or outside the calendar once in UTC."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin
from tests.integration.test_refunds import paid_order

BEYOND = [2**63, 2**64, 10**30]  # one past the largest BIGINT, past 64 bits, far past


def assert_422_naming(r: httpx.Response, *fields: str) -> None:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and error["request_id"], r.text
    assert sorted(d["field"] for d in error["details"]) == sorted(fields), r.text


# --- integers beyond 64 bits -----------------------------------------------------------------------------------


async def test_a_refund_amount_beyond_64_bits_is_422_naming_amount(pay: PayStack) -> None:
    order = await paid_order(pay)
    for i, amount in enumerate(BEYOND):
        body = {"order_no": order["order_no"], "out_refund_no": f"RF{i}", "amount": amount}
        assert_422_naming(await pay.client.request("POST", "/v1/refunds", body), "amount")
    for i, amount in enumerate(BEYOND):
        assert_422_naming(await pay.client.create_order(amount=amount, out_trade_no=f"BIG{i}"), "amount")
    ok = await pay.client.request("POST", "/v1/refunds", {"order_no": order["order_no"], "out_refund_no": "RFok",
                                                          "amount": order["amount"]})  # fmt: skip
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("field", ["min_amount", "max_amount"])
async def test_routing_rule_bounds_beyond_64_bits_are_422(pay: PayStack, field: str) -> None:
    for value in BEYOND:
        body = {"pay_methods": ["ALIPAY_QR"], field: value,
                "candidates": [{"channel_account_id": pay.accounts["alipay"]}]}  # fmt: skip
        assert_422_naming(await pay.http.post("/admin/routing-rules", json=body, headers=admin()), field)
    body = {
        "pay_methods": ["ALIPAY_QR"],
        field: 2**63 - 1,
        "candidates": [{"channel_account_id": pay.accounts["alipay"]}],
    }
    created = await pay.http.post("/admin/routing-rules", json=body, headers=admin())
    assert created.status_code == 201 and created.json()[field] == 2**63 - 1, created.text


async def test_a_daily_limit_beyond_64_bits_is_422(pay: PayStack) -> None:
    path = f"/admin/channel-accounts/{pay.accounts['alipay']}"
    before = (await pay.http.get(path, headers=admin())).json()
    for value in BEYOND:
        assert_422_naming(await pay.http.patch(path, json={"daily_limit": value}, headers=admin()), "daily_limit")
        body = {"channel": "alipay", "name": "big", "config": {}, "daily_limit": value}
        assert_422_naming(await pay.http.post("/admin/channel-accounts", json=body, headers=admin()), "daily_limit")
    assert (await pay.http.get(path, headers=admin())).json() == before
    top = await pay.http.patch(path, json={"daily_limit": 2**63 - 1}, headers=admin())
    assert top.status_code == 200 and top.json()["daily_limit"] == 2**63 - 1, top.text


# --- null for a field an app always has --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["name", "amount_limit", "pay_methods"])
async def test_patching_an_app_field_to_null_is_422_and_changes_nothing(pay: PayStack, field: str) -> None:
    path = f"/admin/apps/{pay.client.app_id}"
    before = (await pay.http.get(path, headers=admin())).json()
    assert_422_naming(await pay.http.patch(path, json={field: None}, headers=admin()), field)
    assert (await pay.http.get(path, headers=admin())).json() == before
    assert (await pay.client.create_order()).status_code == 201  # the app still takes orders


async def test_an_app_notify_url_null_removes_it(pay: PayStack) -> None:
    path = f"/admin/apps/{pay.client.app_id}"
    r = await pay.http.patch(path, json={"notify_url": "https://merchant.example/hook"}, headers=admin())
    assert r.status_code == 200 and r.json()["notify_url"] == "https://merchant.example/hook", r.text
    r = await pay.http.patch(path, json={"notify_url": None}, headers=admin())
    assert r.status_code == 200 and r.json()["notify_url"] is None, r.text
    assert r.json()["pay_methods"] and r.json()["name"]


# --- resend dates ------------------------------------------------------------------------------------------------

RESEND_BAD: list[tuple[dict[str, Any], list[str]]] = [
    ({"from": "0001-01-01T00:00:00+01:00", "to": "2026-01-01T00:00:00Z"}, ["from"]),  # year 0 in UTC
    ({"from": "2026-01-01T00:00:00Z", "to": "9999-12-31T23:59:59-01:00"}, ["to"]),  # year 10000 in UTC
    ({"from": 0, "to": 1_700_000_000}, ["from", "to"]),  # numbers were read as Unix seconds
    ({"from": "1700000000", "to": "2026-01-01T00:00:00Z"}, ["from"]),
    ({"from": 1.5, "to": True}, ["from", "to"]),
    ({"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"}, ["from"]),  # no time zone
    ({"from": "2026-01-01", "to": "2026-01-02T00:00:00Z"}, ["from"]),
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-02T08:00:00+08:00"}, ["to"]),  # the same instant
]


async def test_resend_dates_outside_the_calendar_or_not_dates_are_422(pay: PayStack) -> None:
    mch_no = (await pay.http.get(f"/admin/apps/{pay.client.app_id}", headers=admin())).json()["mch_no"]
    for window, fields in RESEND_BAD:
        r = await pay.http.post("/admin/deliveries/resend", json={"mch_no": mch_no, **window}, headers=admin())
        assert_422_naming(r, *fields)


async def test_resend_accepts_the_whole_calendar(pay: PayStack) -> None:
    mch_no = (await pay.http.get(f"/admin/apps/{pay.client.app_id}", headers=admin())).json()["mch_no"]
    for window in ({"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59.999999Z"},
                   {"from": "0001-01-01T08:00:00+08:00", "to": "9999-12-31T15:59:59-08:00"}):  # fmt: skip
        r = await pay.http.post("/admin/deliveries/resend", json={"mch_no": mch_no, **window}, headers=admin())
        assert r.status_code == 200 and r.json() == {"resent": 0}, r.text
