"""Issue 16: identifiers, names and URLs refuse NUL, the other control characters and bidi overrides, each with an
error located at the field (the gateway turns the location into the 422's `details[].field`)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tomato.channel.schemas import Candidate, ChannelAccountCreate, ChannelAccountUpdate, RoutingRuleCreate
from tomato.merchant.schemas import AppCreate, AppUpdate, MerchantCreate
from tomato.notice.schemas import ResendRange
from tomato.pay.schemas import PayOrderCreate, RefundCreate

ORDER = {"out_trade_no": "A-1", "amount": 100, "subject": "Coffee", "pay_method": "ALIPAY_QR"}
REFUND = {"order_no": "P1", "out_refund_no": "R-1", "amount": 1}
RULE = {"pay_methods": ["ALIPAY_QR"], "candidates": [{"channel_account_id": "C1"}]}
RESEND = {"mch_no": "M1", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}
ACCOUNT = {"channel": "alipay", "name": "main", "config": {}}

BAD = ["\x00", "\x07", "\x1b[31m", "\n", "\t", "\x7f", "\x85", "\u202a", "\u202e", "\u2066", "\u2069"]

# (model, valid body, field to spoil, where the error is reported)
FIELDS: list[tuple[type[BaseModel], dict[str, Any], str, tuple[Any, ...]]] = [
    (PayOrderCreate, ORDER, "subject", ("subject",)),
    (PayOrderCreate, ORDER, "body", ("body",)),
    (PayOrderCreate, ORDER, "notify_url", ("notify_url",)),
    (PayOrderCreate, ORDER, "return_url", ("return_url",)),
    (PayOrderCreate, ORDER, "out_trade_no", ("out_trade_no",)),
    (RefundCreate, REFUND, "reason", ("reason",)),
    (RefundCreate, REFUND, "notify_url", ("notify_url",)),
    (RefundCreate, REFUND, "out_refund_no", ("out_refund_no",)),
    (MerchantCreate, {}, "name", ("name",)),
    (AppCreate, {}, "name", ("name",)),
    (AppCreate, {}, "notify_url", ("notify_url",)),
    (AppUpdate, {}, "name", ("name",)),
    (AppUpdate, {}, "notify_url", ("notify_url",)),
    (ChannelAccountCreate, ACCOUNT, "name", ("name",)),
    (ChannelAccountCreate, ACCOUNT, "mch_no", ("mch_no",)),
    (ChannelAccountUpdate, {}, "name", ("name",)),
    (RoutingRuleCreate, RULE, "app_id", ("app_id",)),
    (ResendRange, RESEND, "mch_no", ("mch_no",)),
]


def _spoiled(body: dict[str, Any], field: str, bad: str) -> dict[str, Any]:
    good = "https://shop.example.com/hook" if field.endswith("_url") else "Ab1"
    return {**body, field: good[:10] + bad + good[10:]}


@pytest.mark.parametrize(("model", "body", "field", "loc"), FIELDS, ids=lambda v: getattr(v, "__name__", None))
@pytest.mark.parametrize("bad", BAD, ids=lambda c: f"U+{ord(c[0]):04X}")
def test_control_and_bidi_characters_are_refused_at_the_field(
    model: type[BaseModel], body: dict[str, Any], field: str, loc: tuple[Any, ...], bad: str
) -> None:
    with pytest.raises(ValidationError) as err:
        model.model_validate(_spoiled(body, field, bad))
    assert [e["loc"] for e in err.value.errors()] == [loc]


def test_nested_identifiers_and_metadata_are_refused_where_they_are() -> None:
    with pytest.raises(ValidationError) as err:
        PayOrderCreate.model_validate({**ORDER, "metadata": {"ok": "fine", "tag": "a\u202eb"}})
    assert [e["loc"] for e in err.value.errors()] == [("metadata", "tag")]
    with pytest.raises(ValidationError) as err:
        PayOrderCreate.model_validate({**ORDER, "metadata": {"k\x00": "v"}})
    assert [e["loc"][0] for e in err.value.errors()] == ["metadata"]
    with pytest.raises(ValidationError) as err:
        PayOrderCreate.model_validate({**ORDER, "pay_method": "WECHAT_JSAPI", "payer": {"openid": "o\x00"}})
    assert [e["loc"] for e in err.value.errors()] == [("payer", "openid")]
    with pytest.raises(ValidationError) as err:
        Candidate.model_validate({"channel_account_id": "C\x001"})
    assert [e["loc"] for e in err.value.errors()] == [("channel_account_id",)]


def test_ordinary_text_is_kept_as_it_is() -> None:
    order = PayOrderCreate.model_validate(
        {
            **ORDER,
            "subject": "咖啡 ☕ Café — 2×",
            "body": "اشتراك شهري (monthly)",
            "metadata": {"备注": "第1杯"},
            "notify_url": "https://商店.example/回调?a=1",
        }  # fmt: skip
    )
    assert order.subject == "咖啡 ☕ Café — 2×" and order.metadata == {"备注": "第1杯"}
    assert MerchantCreate.model_validate({"name": "ACME\u200dLtd"}).name == "ACME\u200dLtd"  # a joiner is no override
