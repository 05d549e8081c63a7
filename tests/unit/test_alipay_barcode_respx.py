"""AlipayAdapter barcode pay and cancel against respx: every answer's mapping, signed by hand here (node bytes →
RSA2), independently of the simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.alipay import AlipayAdapter, parse_config
from tomato.channel.http import guarded_client
from tomato.channel.protocol import ChannelResult, CreateRequest, ErrorClass, ResultStatus, SubMerchant, TradeRef
from tomato.core.clock import FrozenClock
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem, rsa_sign_b64

GATEWAY = "https://alipay.test/gateway.do"
APP_ID = "2021000000000001"
NOW = datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)  # 10:00:00 in Beijing
CODE = "287654321098765432"


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"app": generate_rsa_key(), "alipay": generate_rsa_key(), "other": generate_rsa_key()}


def make_config(keys: dict[str, rsa.RSAPrivateKey], mode: str = "direct") -> Any:
    return parse_config({
        "app_id": APP_ID, "private_key_pem": private_key_pem(keys["app"]),
        "alipay_public_key_pem": public_key_pem(keys["alipay"]), "gateway_url": GATEWAY, "mode": mode,
    })  # fmt: skip


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as client:
        yield client


@pytest.fixture
def adapter(keys: dict[str, rsa.RSAPrivateKey], http: httpx.AsyncClient) -> AlipayAdapter:
    return AlipayAdapter(make_config(keys), http, clock=FrozenClock(NOW))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


def signed(method: str, node: dict[str, Any], key: rsa.RSAPrivateKey) -> httpx.Response:
    node_json = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
    body = f'{{"{method.replace(".", "_")}_response":{node_json},"sign":"{rsa_sign_b64(key, node_json.encode())}"}}'
    return httpx.Response(200, content=body.encode(), headers={"Content-Type": "application/json"})


def params(request: httpx.Request) -> dict[str, str]:
    query = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
    return {**query, **dict(parse_qsl(request.content.decode(), keep_blank_values=True))}


def pay_req(**extra: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "order_no": "B100", "amount": 1234, "subject": "收银台", "pay_method": "BARCODE",
        "notify_url": "https://platform.test/cb", "expire_at": NOW + timedelta(minutes=5), "auth_code": CODE,
    }  # fmt: skip
    return CreateRequest(**{**fields, **extra})


PAID = {
    "code": "10000", "msg": "Success", "trade_no": "2024010122001400000000000001", "out_trade_no": "B100",
    "total_amount": "12.34", "gmt_payment": "2024-01-01 10:00:03", "buyer_logon_id": "a***@x.example",
}  # fmt: skip
FLOWS: dict[str, Callable[[AlipayAdapter], Awaitable[ChannelResult]]] = {
    "pay": lambda a: a.create(pay_req()),
    "cancel": lambda a: a.cancel(TradeRef("B100", pay_method="BARCODE")),
}


async def test_pay_sends_a_signed_bar_code_pay_and_reads_the_payment(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    route = mock.post(GATEWAY).mock(return_value=signed("alipay.trade.pay", PAID, keys["alipay"]))
    result = await adapter.create(pay_req(body="two items"))
    assert (result.status, result.amount, result.channel_trade_no) == (ResultStatus.SUCCESS, 1234, PAID["trade_no"])
    assert result.paid_at == datetime(2024, 1, 1, 2, 0, 3, tzinfo=UTC)
    sent = params(route.calls.last.request)
    assert (sent["method"], sent["notify_url"], sent["timestamp"]) == (
        "alipay.trade.pay", "https://platform.test/cb", "2024-01-01 10:00:00",
    )  # fmt: skip
    biz = json.loads(sent["biz_content"])
    assert (biz["scene"], biz["auth_code"], biz["product_code"], biz["total_amount"], biz["body"]) == (
        "bar_code", CODE, "FACE_TO_FACE_PAYMENT", "12.34", "two items",
    )  # fmt: skip


async def test_10003_is_waiting_with_the_trade(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    node = {**PAID, "code": "10003", "msg": " order success pay inprocess", "gmt_payment": None}
    mock.post(GATEWAY).mock(return_value=signed("alipay.trade.pay", node, keys["alipay"]))
    result = await adapter.create(pay_req())
    assert (result.status, result.code, result.message) == (
        ResultStatus.WAITING, "10003", "order success pay inprocess",
    )  # fmt: skip
    assert (result.channel_trade_no, result.amount, result.paid_at) == (PAID["trade_no"], 1234, None)


@pytest.mark.parametrize(
    "sub_code", ["ACQ.PAYMENT_AUTH_CODE_INVALID", "ACQ.BUYER_BALANCE_NOT_ENOUGH", "ACQ.TRADE_HAS_CLOSE"]
)
async def test_refusals_are_fail_rejected_with_the_sub_code(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], sub_code: str
) -> None:
    node = {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": "refused"}
    mock.post(GATEWAY).mock(return_value=signed("alipay.trade.pay", node, keys["alipay"]))
    result = await adapter.create(pay_req())
    assert (result.status, result.error, result.code, result.message) == (
        ResultStatus.FAIL, ErrorClass.REJECTED, sub_code, "refused",
    )  # fmt: skip


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    "node",
    [
        {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"},
        {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "busy"},
    ],
)
async def test_system_errors_are_unknown(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str, node: Any
) -> None:
    mock.post(GATEWAY).mock(side_effect=lambda req: signed(params(req)["method"], node, keys["alipay"]))
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


@pytest.mark.parametrize("flow", FLOWS)
async def test_bad_signature_and_timeouts_are_unknown(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str
) -> None:
    mock.post(GATEWAY).mock(side_effect=lambda req: signed(params(req)["method"], PAID, keys["other"]))
    forged = await FLOWS[flow](adapter)
    assert (forged.status, forged.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)
    mock.post(GATEWAY).mock(side_effect=httpx.ReadTimeout("slow"))
    timed_out = await FLOWS[flow](adapter)
    assert (timed_out.status, timed_out.error) == (ResultStatus.UNKNOWN, ErrorClass.TIMEOUT)


@pytest.mark.parametrize(
    ("change", "why"),
    [({"total_amount": None}, "without trade_no/total_amount"), ({"gmt_payment": "yesterday"}, "trade.pay")],
)
async def test_an_unreadable_paid_answer_is_unknown_never_fail(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], change: Any, why: str
) -> None:
    node = {k: v for k, v in {**PAID, **change}.items() if v is not None}
    mock.post(GATEWAY).mock(return_value=signed("alipay.trade.pay", node, keys["alipay"]))
    result = await adapter.create(pay_req())
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)
    assert result.message is not None and why in result.message


async def test_a_resent_pay_of_a_paid_trade_is_unknown(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    node = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_HAS_SUCCESS", "sub_msg": "paid"}
    mock.post(GATEWAY).mock(return_value=signed("alipay.trade.pay", node, keys["alipay"]))
    result = await adapter.create(pay_req())
    assert (result.status, result.code) == (ResultStatus.UNKNOWN, "ACQ.TRADE_HAS_SUCCESS")


async def test_pay_without_a_code_or_in_isv_mode_without_a_sub_merchant_sends_nothing(
    keys: dict[str, rsa.RSAPrivateKey], http: httpx.AsyncClient, mock: respx.MockRouter
) -> None:
    route = mock.post(GATEWAY)
    direct = AlipayAdapter(make_config(keys), http)
    no_code = await direct.create(pay_req(auth_code=None))
    assert (no_code.status, no_code.error, no_code.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "AUTH_CODE_REQUIRED",
    )
    isv = AlipayAdapter(make_config(keys, "isv"), http)
    no_sub = await isv.create(pay_req())
    assert (no_sub.status, no_sub.code) == (ResultStatus.FAIL, "SUB_MERCHANT_REQUIRED")
    assert not route.called


async def test_isv_pay_and_cancel_carry_the_token_outside_biz_content(
    keys: dict[str, rsa.RSAPrivateKey], http: httpx.AsyncClient, mock: respx.MockRouter
) -> None:
    route = mock.post(GATEWAY).mock(side_effect=lambda req: signed(params(req)["method"], PAID, keys["alipay"]))
    sub = SubMerchant(app_auth_token="202401BBtoken0000000000000000000000X01", auth_app_id="2021000000000301")
    isv = AlipayAdapter(make_config(keys, "isv"), http)
    assert (await isv.create(pay_req(sub=sub))).status is ResultStatus.SUCCESS
    assert (await isv.cancel(TradeRef("B100", sub=sub))).status is ResultStatus.SUCCESS
    for call in route.calls:
        sent = params(call.request)
        assert sent["app_auth_token"] == sub.app_auth_token and "app_auth_token" not in sent["biz_content"]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"retry_flag": "N", "action": "close", "trade_no": "T1"}, (ResultStatus.SUCCESS, "close", "T1")),
        ({"retry_flag": "N", "action": "refund", "trade_no": "T1"}, (ResultStatus.SUCCESS, "refund", "T1")),
        ({"retry_flag": "N"}, (ResultStatus.SUCCESS, None, None)),
        ({"retry_flag": "Y"}, (ResultStatus.WAITING, "RETRY", None)),
    ],
)
async def test_cancel_maps_action_and_retry_flag(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], node: Any, expected: Any
) -> None:
    answer = {"code": "10000", "msg": "Success", "out_trade_no": "B100", **node}
    route = mock.post(GATEWAY).mock(return_value=signed("alipay.trade.cancel", answer, keys["alipay"]))
    result = await adapter.cancel(TradeRef("B100", channel_trade_no="T1", pay_method="BARCODE"))
    assert (result.status, result.code, result.channel_trade_no) == expected
    sent = params(route.calls.last.request)
    assert sent["method"] == "alipay.trade.cancel"
    assert json.loads(sent["biz_content"]) == {"out_trade_no": "B100", "trade_no": "T1"}


async def test_cancel_errors_retry_flag_y_wins_and_refusals_are_not_reversed(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    retry = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR", "retry_flag": "Y"}
    mock.post(GATEWAY).mock(return_value=signed("alipay.trade.cancel", retry, keys["alipay"]))
    again = await adapter.cancel(TradeRef("B100"))
    assert (again.status, again.code) == (ResultStatus.WAITING, "RETRY")

    refused = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR", "retry_flag": "N"}
    mock.post(GATEWAY).mock(return_value=signed("alipay.trade.cancel", refused, keys["alipay"]))
    result = await adapter.cancel(TradeRef("B100"))
    assert (result.status, result.error, result.code) == (
        ResultStatus.FAIL, ErrorClass.REJECTED, "ACQ.TRADE_STATUS_ERROR",
    )  # fmt: skip


def test_barcode_is_a_pay_method_of_the_adapter() -> None:
    assert "BARCODE" in AlipayAdapter.pay_methods
