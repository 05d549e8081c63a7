"""Issue 16: bad text and webhook URLs are a 422 naming the field, on SQLite and PostgreSQL (which cannot store NUL
in text), and nothing is written.

* `notify_url`s whose host normalises (IDNA, then the address parser) to a loopback/private/link-local address, or
  is an IPv6 address carrying one (6to4, NAT64), are refused on orders, refunds and apps (create and update);
* NUL, control characters and bidi overrides are refused in names, subjects, reasons, metadata and URLs.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin

NORMALISED_PRIVATE = [
    "http://１２７．０．０．１/hook",
    "http://①⑥⑨.②⑤④.①⑥⑨.②⑤④/latest/meta-data",
    "http://10。0。0。1/hook",
    "http://127.0.0.1./hook",
    "http://[2002:a9fe:a9fe::]/hook",
    "http://ｌｏｃａｌｈｏｓｔ:8080/",
]


def _fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    return [d["field"] for d in error["details"]]


async def _count(pay: PayStack, table: str) -> int:
    async with pay.c.db.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


@pytest.mark.parametrize("url", NORMALISED_PRIVATE)
async def test_notify_urls_normalising_to_private_addresses_are_refused_everywhere(pay: PayStack, url: str) -> None:
    assert _fields(await pay.client.create_order(notify_url=url)) == ["notify_url"]
    refund = {"order_no": "P1", "out_refund_no": "R-1", "amount": 1, "notify_url": url}
    assert _fields(await pay.client.request("POST", "/v1/refunds", refund)) == ["notify_url"]
    app_path = f"/admin/apps/{pay.client.app_id}"
    assert _fields(await pay.http.patch(app_path, json={"notify_url": url}, headers=admin())) == ["notify_url"]
    mch_no = (await pay.http.get(app_path, headers=admin())).json()["mch_no"]
    created = await pay.http.post(f"/admin/merchants/{mch_no}/apps", json={"notify_url": url}, headers=admin())
    assert _fields(created) == ["notify_url"]
    assert (await _count(pay, "pay_orders"), await _count(pay, "refunds")) == (0, 0)
    assert (await pay.http.get(app_path, headers=admin())).json()["notify_url"] is None


@pytest.mark.parametrize("bad", ["\x00", "\x1b", "\u202e"], ids=["NUL", "ESC", "RLO"])
async def test_control_characters_in_merchant_text_are_422_naming_the_field(pay: PayStack, bad: str) -> None:
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"subject": f"Coffee{bad}"}, ["subject"]),
        ({"body": f"two{bad}shots"}, ["body"]),
        ({"metadata": {"table": f"7{bad}"}}, ["metadata.table"]),
        ({"notify_url": f"https://shop.example.com/{bad}hook"}, ["notify_url"]),
        ({"return_url": f"https://shop.example.com/{bad}back"}, ["return_url"]),
    ]
    for fields, named in cases:
        assert _fields(await pay.client.create_order(**fields)) == named
    refund = {"order_no": "P1", "out_refund_no": "R-1", "amount": 1, "reason": f"broken{bad}"}
    assert _fields(await pay.client.request("POST", "/v1/refunds", refund)) == ["reason"]
    assert await _count(pay, "pay_orders") == 0
    ok = await pay.client.create_order(subject="咖啡 ☕ — 2×", metadata={"备注": "第1杯"})
    assert ok.status_code == 201 and ok.json()["subject"] == "咖啡 ☕ — 2×"


@pytest.mark.parametrize("bad", ["\x00", "\n", "\u2066"], ids=["NUL", "LF", "LRI"])
async def test_control_characters_in_operator_names_are_422_naming_the_field(pay: PayStack, bad: str) -> None:
    name = f"ACME{bad}Ltd"
    merchants = await _count(pay, "merchants")
    assert _fields(await pay.http.post("/admin/merchants", json={"name": name}, headers=admin())) == ["name"]
    app_path = f"/admin/apps/{pay.client.app_id}"
    assert _fields(await pay.http.patch(app_path, json={"name": name}, headers=admin())) == ["name"]
    account_path = f"/admin/channel-accounts/{pay.accounts['alipay']}"
    before = (await pay.http.get(account_path, headers=admin())).json()
    assert _fields(await pay.http.patch(account_path, json={"name": name}, headers=admin())) == ["name"]
    assert (await pay.http.get(account_path, headers=admin())).json() == before
    assert await _count(pay, "merchants") == merchants
