"""Issue 15 item 17: `GET /admin/routing-rules` pages like every list (limit 1–100, opaque cursor, 422 naming the
parameter), and following its cursors never repeats nor skips a rule while rules keep being added."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin

# (query, field named in the 422): YzE6eA is "c1:x", a cursor of no rule this list could have issued
BAD_PAGING = [("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("cursor=%%%", "cursor"),
              ("cursor=YzE6eA", "cursor"), ("cursor=eDE6MTpSUjE", "cursor")]  # fmt: skip


async def _add_rule(pay: PayStack, rank: int) -> str:
    body = {"rank": rank, "pay_methods": ["ALIPAY_QR"],
            "candidates": [{"channel_account_id": pay.accounts["alipay"], "priority": 1, "weight": 1}]}  # fmt: skip
    r = await pay.http.post("/admin/routing-rules", json=body, headers=admin())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _page(pay: PayStack, **params: Any) -> dict[str, Any]:
    r = await pay.http.get("/admin/routing-rules", params=params, headers=admin())
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_routing_rules_page_by_cursor_without_repeats_or_skips(pay: PayStack) -> None:
    seeded = [r["id"] for r in (await _page(pay, limit=100))["data"]]
    mine = [await _add_rule(pay, rank) for rank in (5, 5, 7, 3, 7, 5, 1)]
    existing = set(seeded + mine)

    listed: list[dict[str, Any]] = []
    page = await _page(pay, limit=2)
    assert len(page["data"]) == 2 and page["next_cursor"] is not None
    while True:
        listed += page["data"]
        # new rules of every rank keep arriving while the list is followed: nothing already there is skipped
        await _add_rule(pay, 6)
        if page["next_cursor"] is None:
            break
        page = await _page(pay, limit=2, cursor=page["next_cursor"])
    ids = [r["id"] for r in listed]
    assert len(ids) == len(set(ids))  # never repeats
    assert existing <= set(ids)  # never skips one that existed when the first page was read
    keys = [(-r["rank"], r["id"]) for r in listed]
    assert keys == sorted(keys)  # highest rank first, the order in which routing consults them

    default = await _page(pay)
    assert len(default["data"]) == 20 or default["next_cursor"] is None


@pytest.mark.parametrize(("query", "field"), BAD_PAGING)
async def test_bad_paging_parameters_are_422_naming_the_parameter(pay: PayStack, query: str, field: str) -> None:
    r = await pay.http.get(f"/admin/routing-rules?{query}", headers=admin())
    assert r.status_code == 422, (query, r.text)
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and error["details"][0]["field"] == field
