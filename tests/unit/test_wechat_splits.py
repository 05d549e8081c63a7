"""WeChat profit sharing answers against hand-built bodies: every state and receiver result lands in the right
result (a split is all or nothing), answers for another split are never believed, and the sensitive-field
encryption is the RSA-OAEP the platform's private key reads."""

from __future__ import annotations

from typing import Any

import pytest

from tomato.channel.adapters.wechat import signing
from tomato.channel.adapters.wechat.splits import order_result, return_result, split_notify
from tomato.channel.protocol import ChannelResult, ErrorClass, ResultStatus
from tomato.core.crypto import generate_rsa_key


def order(state: str, *results: tuple[str, int] | tuple[str, int, str], account: str = "1900000777") -> dict[str, Any]:
    receivers = []
    for item in results:
        node: dict[str, Any] = {"type": "MERCHANT_ID", "account": account, "amount": item[1], "result": item[0]}
        if len(item) == 3:
            node["fail_reason"] = item[2]
        receivers.append(node)
    return {"transaction_id": "4200", "out_order_no": "S1", "order_id": "3008", "state": state, "receivers": receivers}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (order("PROCESSING", ("PENDING", 100), ("PENDING", 50)), ResultStatus.WAITING, "PROCESSING"),
        (order("FINISHED", ("SUCCESS", 100), ("PENDING", 50)), ResultStatus.WAITING, "FINISHED"),
        (order("FINISHED", ("SUCCESS", 100), ("SUCCESS", 50)), ResultStatus.SUCCESS, "FINISHED"),
        (
            order("FINISHED", ("SUCCESS", 100), ("CLOSED", 50, "ACCOUNT_ABNORMAL")),
            ResultStatus.FAIL,
            "ACCOUNT_ABNORMAL",
        ),
        (order("FINISHED", ("CLOSED", 100)), ResultStatus.FAIL, "CLOSED"),
    ],
)
def test_order_states_and_receiver_results(body: dict[str, Any], status: ResultStatus, code: str) -> None:
    result = order_result(body, "S1")
    assert (result.status, result.error, result.code, result.channel_trade_no) == (
        status,
        ErrorClass.NONE,
        code,
        "4200",
    )
    assert result.amount == sum(r["amount"] for r in body["receivers"])


@pytest.mark.parametrize(
    "body",
    [
        None,
        {**order("FINISHED", ("SUCCESS", 1)), "out_order_no": "OTHER"},  # another split's answer
        order("DONE", ("SUCCESS", 1)),  # unknown state
        order("FINISHED", ("PAID", 1)),  # unknown receiver result
        {**order("FINISHED"), "receivers": [{"result": "SUCCESS", "amount": 1.5}]},  # fractional fen
        {**order("FINISHED"), "receivers": None},
    ],
)
def test_unreadable_or_foreign_order_answers_are_unknown(body: Any) -> None:
    result = order_result(body, "S1")
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


def test_the_release_entry_for_the_merchant_is_not_counted_as_split() -> None:
    body = order("FINISHED", ("SUCCESS", 300))
    body["receivers"].append({"type": "MERCHANT_ID", "account": "1900000109", "amount": 700, "result": "SUCCESS"})
    assert order_result(body, "S1", own="1900000109").amount == 300
    assert order_result(body, "S1").amount == 1000  # finish: what was released counts


def test_a_refusal_passes_through_unchanged() -> None:
    refusal = ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code="INVALID_REQUEST")
    assert order_result(refusal, "S1") is refusal and return_result(refusal, "R1") is refusal


@pytest.mark.parametrize(
    ("result", "status", "code"),
    [
        ({"result": "SUCCESS"}, ResultStatus.SUCCESS, "SUCCESS"),
        ({"result": "PROCESSING"}, ResultStatus.WAITING, "PROCESSING"),
        ({"result": "FAILED", "fail_reason": "BALANCE_NOT_ENOUGH"}, ResultStatus.FAIL, "BALANCE_NOT_ENOUGH"),
    ],
)
def test_return_results(result: dict[str, str], status: ResultStatus, code: str) -> None:
    body = {"out_return_no": "R1", "return_id": "3008R", "amount": 500, **result}
    mapped = return_result(body, "R1")
    assert (mapped.status, mapped.code, mapped.amount, mapped.channel_refund_no) == (status, code, 500, "3008R")


def test_a_return_answer_for_another_return_or_an_unknown_result_is_unknown() -> None:
    assert return_result({"out_return_no": "R2", "result": "SUCCESS"}, "R1").status is ResultStatus.UNKNOWN
    assert return_result({"out_return_no": "R1", "result": "DONE"}, "R1").status is ResultStatus.UNKNOWN


def test_split_notify_success_asks_for_a_query_and_closed_fails() -> None:
    data = {
        "mchid": "1900000109",
        "transaction_id": "4200",
        "out_order_no": "S1",
        "receiver": {"type": "MERCHANT_ID", "account": "1900000777", "amount": 300, "description": "佣金"},
    }
    ok = split_notify("PROFITSHARING.SUCCESS", data, {"event_type": "PROFITSHARING.SUCCESS"}, None)
    assert (ok.kind, ok.status, ok.split_no, ok.channel_trade_no, ok.amount) == (
        "split",
        ResultStatus.WAITING,
        "S1",
        "4200",
        300,
    )
    closed = split_notify("PROFITSHARING.CLOSED", data, {}, "1900000201")
    assert (closed.status, closed.sub_merchant) == (ResultStatus.FAIL, "1900000201") and closed.failure_reason
    with pytest.raises(ValueError):
        split_notify("PROFITSHARING.SUCCESS", {**data, "out_order_no": ""}, {}, None)
    with pytest.raises(ValueError):
        split_notify("PROFITSHARING.SUCCESS", {**data, "receiver": None}, {}, None)


def test_sensitive_fields_are_oaep_for_the_platform_key_only() -> None:
    platform, other = generate_rsa_key(), generate_rsa_key()
    sealed = signing.encrypt_sensitive(platform.public_key(), "番茄科技有限公司")
    assert sealed != signing.encrypt_sensitive(platform.public_key(), "番茄科技有限公司")  # randomized padding
    assert signing.decrypt_sensitive(platform, sealed) == "番茄科技有限公司"
    with pytest.raises(ValueError):
        signing.decrypt_sensitive(other, sealed)
    with pytest.raises(ValueError):
        signing.decrypt_sensitive(platform, "not base64!")
