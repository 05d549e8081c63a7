"""Issue 15 item 20: `PATCH /admin/channel-accounts/{id}` refuses `"name": null` with a 422 naming `name` (it was a
500 from the NOT NULL column); `daily_limit: null` still means no limit."""

from __future__ import annotations

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin


async def test_a_null_name_is_422_naming_it_and_changes_nothing(pay: PayStack) -> None:
    account_id = pay.accounts["alipay"]
    path = f"/admin/channel-accounts/{account_id}"
    before = (await pay.http.get(path, headers=admin())).json()
    r = await pay.http.patch(path, json={"name": None}, headers=admin())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and [d["field"] for d in error["details"]] == ["name"]
    assert (await pay.http.get(path, headers=admin())).json() == before

    renamed = await pay.http.patch(path, json={"name": "Alipay main", "daily_limit": 5000}, headers=admin())
    assert renamed.status_code == 200 and renamed.json()["name"] == "Alipay main"
    unlimited = await pay.http.patch(path, json={"daily_limit": None}, headers=admin())
    assert unlimited.status_code == 200, unlimited.text
    assert unlimited.json()["daily_limit"] is None and unlimited.json()["name"] == "Alipay main"
