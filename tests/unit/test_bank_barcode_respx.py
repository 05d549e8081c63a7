"""BankAdapter barcode pay against respx: the result mapping of the consume, its follow-up query and the 冲正.

The bank's answers are signed with the hand-written ACP signer of `test_bank_adapter_respx`, not with the adapter's
signing module. What the simulator cannot easily produce is here: in-process answers, refusals of a reversal,
lost answers, a lost follow-up query, bad signatures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit import test_bank_adapter_respx as base
from tests.unit.test_bank_adapter_respx import BACK, CREATED, NOW, OK, QUERY, answer, config, sent
from tomato.channel.adapters.bank import BankAdapter, parse_config
from tomato.channel.http import guarded_client
from tomato.channel.protocol import CreateRequest, ErrorClass, ResultStatus, TradeRef
from tomato.core.clock import FrozenClock

keys = base.keys
mock = base.mock
CODE = "6212345678901234567"
ORDER = "B20240101001"
ACCEPTED = {**OK, "txnType": "01", "txnSubType": "06", "bizType": "000000", "orderId": ORDER, "queryId": "Q1"}
QUERIED = {**OK, "txnType": "00", "orderId": ORDER, "txnTime": "20240101095500", "queryId": "Q1", "txnAmt": "800"}


@pytest.fixture
async def adapter(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[BankAdapter]:
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        yield BankAdapter(parse_config(config(keys)), http, clock=FrozenClock(NOW))


def pay_request(**extra: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "order_no": ORDER,
        "amount": 800,
        "subject": "便利店",
        "pay_method": "BARCODE",
        "notify_url": "https://pay.test/callbacks/bank/ca1",
        "expire_at": NOW,
        "created_at": CREATED,
        "auth_code": CODE,
    }
    return CreateRequest(**(fields | extra))


REF = TradeRef(ORDER, created_at=CREATED, pay_method="BARCODE")


def signed(fields: dict[str, str], keys: dict[str, rsa.RSAPrivateKey]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: answer(fields, keys["bank"])


@pytest.mark.parametrize(
    ("orig", "status", "error", "code"),
    [
        ("00", ResultStatus.SUCCESS, ErrorClass.NONE, "00"),
        ("05", ResultStatus.WAITING, ErrorClass.NONE, "05"),
        ("64", ResultStatus.FAIL, ErrorClass.REJECTED, "64"),
    ],
)
async def test_the_follow_up_query_decides_the_create(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    orig: str,
    status: ResultStatus,
    error: ErrorClass,
    code: str,
) -> None:
    consume = mock.post(BACK).mock(side_effect=signed(ACCEPTED, keys))
    query = mock.post(QUERY).mock(
        side_effect=signed({**QUERIED, "origRespCode": orig, "traceTime": "0101095503"}, keys)
    )
    result = await adapter.create(pay_request())
    assert (result.status, result.error, result.code, result.channel_trade_no) == (status, error, code, "Q1")
    assert consume.call_count == query.call_count == 1
    assert sent(query.calls[0].request)["txnTime"] == "20240101095500"  # the consume's txnTime, not the clock's
    if status is ResultStatus.SUCCESS:
        assert result.amount == 800 and result.paid_at is not None and result.paid_at.second == 3


async def test_an_accepted_consume_whose_query_is_lost_is_waiting(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    mock.post(BACK).mock(side_effect=signed(ACCEPTED, keys))
    mock.post(QUERY).mock(side_effect=httpx.ReadTimeout("lost"))
    result = await adapter.create(pay_request())
    assert (result.status, result.channel_trade_no, result.amount) == (ResultStatus.WAITING, "Q1", 800)


@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        ("03", ResultStatus.UNKNOWN, ErrorClass.SERVER),
        ("61", ResultStatus.FAIL, ErrorClass.REJECTED),
        ("timeout", ResultStatus.UNKNOWN, ErrorClass.TIMEOUT),
        ("500", ResultStatus.UNKNOWN, ErrorClass.SERVER),
        ("forged", ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE),
    ],
)
async def test_the_consume_answer_alone(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    reply: str,
    status: ResultStatus,
    error: ErrorClass,
) -> None:
    route = mock.post(BACK)
    if reply == "timeout":
        route.mock(side_effect=httpx.ReadTimeout("slow"))
    elif reply == "500":
        route.mock(return_value=httpx.Response(500))
    elif reply == "forged":
        route.mock(side_effect=lambda request: answer(ACCEPTED, keys["other"]))
    else:
        route.mock(side_effect=signed({**ACCEPTED, "respCode": reply}, keys))
    query = mock.post(QUERY)
    result = await adapter.create(pay_request())
    assert (result.status, result.error) == (status, error), result
    assert query.call_count == 0  # only an accepted consume is asked after


@pytest.mark.parametrize("code", [None, "", "62abc", "1" * 21, "６２１"])
async def test_a_code_that_is_no_code_is_refused_before_sending(
    adapter: BankAdapter, mock: respx.MockRouter, code: str | None
) -> None:
    route = mock.post(BACK)
    result = await adapter.create(pay_request(auth_code=code))
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "INVALID_AUTH_CODE")
    assert route.call_count == 0


@pytest.mark.parametrize(
    ("reply", "status", "error"),
    [
        ("00", ResultStatus.SUCCESS, ErrorClass.NONE),
        ("34", ResultStatus.SUCCESS, ErrorClass.NONE),
        ("05", ResultStatus.WAITING, ErrorClass.NONE),
        ("04", ResultStatus.WAITING, ErrorClass.NONE),
        ("35", ResultStatus.FAIL, ErrorClass.REJECTED),
        ("timeout", ResultStatus.UNKNOWN, ErrorClass.TIMEOUT),
    ],
)
async def test_the_reversal_mapping(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    reply: str,
    status: ResultStatus,
    error: ErrorClass,
) -> None:
    route = mock.post(BACK)
    if reply == "timeout":
        route.mock(side_effect=httpx.ReadTimeout("slow"))
    else:
        fields = {**OK, "txnType": "99", "orderId": ORDER, "origQryId": "Q1", "respCode": reply}
        route.mock(side_effect=signed(fields, keys))
    result = await adapter.cancel(REF)
    assert (result.status, result.error) == (status, error), result
    if reply != "timeout":
        assert result.code == reply
        assert (sent(route.calls[0].request)["txnType"], sent(route.calls[0].request)["txnSubType"]) == ("99", "01")


async def test_a_reversal_needs_the_original_txn_time(adapter: BankAdapter, mock: respx.MockRouter) -> None:
    route = mock.post(BACK)
    result = await adapter.cancel(TradeRef(ORDER, pay_method="BARCODE"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)
    assert route.call_count == 0
