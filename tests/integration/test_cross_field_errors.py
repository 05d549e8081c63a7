"""Issue 15 item 19: a rule that ties two fields together names the field to fix in the 422, never `body`."""

from __future__ import annotations

from typing import Any

from tests.fixtures.pay_stack import PayStack

EXACTLY_ONE = "give exactly one of order_no and out_trade_no"


def _details(r: Any) -> list[dict[str, str]]:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and error["request_id"]
    return error["details"]  # type: ignore[no-any-return]


async def test_a_pay_method_missing_what_it_needs_names_that_field(pay: PayStack) -> None:
    h5 = _details(await pay.client.create_order(pay_method="WECHAT_H5"))
    assert [d["field"] for d in h5] == ["client_ip"] and "WECHAT_H5" in h5[0]["issue"]
    jsapi = _details(await pay.client.create_order(pay_method="WECHAT_JSAPI"))
    assert [d["field"] for d in jsapi] == ["payer.openid"] and "WECHAT_JSAPI" in jsapi[0]["issue"]
    empty_payer = _details(await pay.client.create_order(pay_method="WECHAT_JSAPI", payer={}))
    assert [d["field"] for d in empty_payer] == ["payer.openid"]
    # the same fields given: accepted (the rule is what failed above, nothing else)
    ok = await pay.client.create_order(pay_method="WECHAT_H5", client_ip="203.0.113.9")
    assert ok.status_code == 201, ok.text


async def test_a_refund_naming_both_or_neither_order_reference_names_both_fields(pay: PayStack) -> None:
    neither = _details(await pay.client.request("POST", "/v1/refunds", {"out_refund_no": "x-1", "amount": 1}))
    both = _details(
        await pay.client.request(
            "POST", "/v1/refunds", {"order_no": "P1", "out_trade_no": "A1", "out_refund_no": "x-1", "amount": 1}
        )
    )
    for details, why in ((neither, "neither was given"), (both, "both were given")):
        assert [d["field"] for d in details] == ["order_no", "out_trade_no"]
        assert all(d["issue"] == f"{EXACTLY_ONE}; {why}" for d in details)
