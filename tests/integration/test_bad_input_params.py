"""Issue 16: a control character in a query or path parameter of `/v1` or `/admin` is a 422 naming the parameter,
never a 500 (PostgreSQL cannot hold NUL in text, so `?out_trade_no=%00` reached the database and failed there).

One check covers every signed and admin route, so the cases below span the routers: a new route gets it too."""

from __future__ import annotations

import pytest

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin

CONTROL = ["%00", "a%00b", "%0A", "%1F", "%7F", "%C2%85"]  # NUL, LF, US, DEL, NEL (U+0085, a C1 control)


def assert_422_naming(status: int, body: dict[str, object], name: str, what: str) -> None:
    assert status == 422, (what, body)
    error = body["error"]
    assert isinstance(error, dict) and error["code"] == "INVALID_REQUEST", (what, body)
    assert [d["field"] for d in error["details"]] == [name], (what, body)


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("/v1/pay/orders?out_trade_no={}", "out_trade_no"),
        ("/v1/refunds?out_refund_no={}", "out_refund_no"),
        ("/v1/pay/orders/{}", "order_no"),
        ("/v1/refunds/{}", "refund_no"),
        ("/v1/events?cursor={}", "cursor"),
    ],
)
async def test_signed_routes_refuse_control_characters_in_params(pay: PayStack, template: str, name: str) -> None:
    for bad in CONTROL:
        path = template.format(bad)
        r = await pay.client.request("GET", path)  # the answer is signed (the client verifies it)
        assert_422_naming(r.status_code, r.json(), name, path)


async def test_signed_close_refuses_a_control_character_in_the_order_number(pay: PayStack) -> None:
    r = await pay.client.request("POST", "/v1/pay/orders/P1%00/close", {})
    assert_422_naming(r.status_code, r.json(), "order_no", "close")


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("/admin/deliveries?mch_no={}", "mch_no"),
        ("/admin/deliveries?status={}", "status"),
        ("/admin/deliveries?event_id={}", "event_id"),
        ("/admin/merchants/{}", "mch_no"),
        ("/admin/apps/{}", "app_id"),
        ("/admin/channel-accounts/{}", "account_id"),
        ("/admin/deliveries/{}", "delivery_id"),
        ("/admin/merchants?cursor={}", "cursor"),
    ],
)
async def test_admin_routes_refuse_control_characters_in_params(pay: PayStack, template: str, name: str) -> None:
    for bad in CONTROL:
        path = template.format(bad)
        r = await pay.http.get(path, headers=admin())
        assert_422_naming(r.status_code, r.json(), name, path)


async def test_the_token_still_answers_before_the_parameters(pay: PayStack) -> None:
    r = await pay.http.get("/admin/merchants/%00")
    assert r.status_code == 401, r.text


async def test_ordinary_values_still_pass(pay: PayStack) -> None:
    r = await pay.client.request("GET", "/v1/pay/orders?out_trade_no=nope")
    assert r.status_code == 404, r.text
    r = await pay.http.get("/admin/deliveries?mch_no=M%C3%A9", headers=admin())  # non-ASCII but printable
    assert r.status_code == 200, r.text
