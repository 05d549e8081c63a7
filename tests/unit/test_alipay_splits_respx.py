"""Alipay profit sharing on the wire (respx, answers signed by hand): the fields sent and every answer's mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.alipay import AlipayAdapter, parse_config, splits
from tomato.channel.http import guarded_client
from tomato.channel.protocol import (
    CreateRequest,
    ErrorClass,
    ResultStatus,
    SplitReceiver,
    SplitRef,
    SplitRequest,
    SplitShare,
    SubMerchant,
)
from tomato.core.clock import FrozenClock
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem, rsa_sign_b64

GATEWAY = "https://alipay.test/gateway.do"
APP_ID = "2021000000000001"
NOW = datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)
USER = SplitReceiver("2088102000000201", "MERCHANT")
LOGIN = SplitReceiver("13800000000", "PERSONAL", name="张三")
TOKEN = "202401BB" + "0" * 29 + "X03"
SUB = SubMerchant(app_auth_token=TOKEN, auth_app_id="2021000000000301")


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"app": generate_rsa_key(), "alipay": generate_rsa_key()}


async def make(keys: dict[str, rsa.RSAPrivateKey], mode: str) -> AsyncIterator[AlipayAdapter]:
    config = parse_config({
        "app_id": APP_ID, "private_key_pem": private_key_pem(keys["app"]),
        "alipay_public_key_pem": public_key_pem(keys["alipay"]), "gateway_url": GATEWAY, "mode": mode,
    })  # fmt: skip
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        yield AlipayAdapter(config, http, clock=FrozenClock(NOW))


@pytest.fixture
async def adapter(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[AlipayAdapter]:
    async for value in make(keys, "direct"):
        yield value


@pytest.fixture
async def isv_adapter(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[AlipayAdapter]:
    async for value in make(keys, "isv"):
        yield value


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


def reply_with(keys: dict[str, rsa.RSAPrivateKey], node: dict[str, Any], seen: list[dict[str, str]]) -> Any:
    """A handler that records the request's params and answers `node`, signed as Alipay signs."""

    def reply(request: httpx.Request) -> httpx.Response:
        params = {**dict(parse_qsl(request.url.query.decode())), **dict(parse_qsl(request.content.decode()))}
        seen.append(params)
        key = params["method"].replace(".", "_") + "_response"
        node_json = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
        signature = rsa_sign_b64(keys["alipay"], node_json.encode())
        return httpx.Response(200, content=f'{{"{key}":{node_json},"sign":"{signature}"}}'.encode())

    return reply


def biz(params: dict[str, str]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(params["biz_content"])
    return value


def create(pay_method: str, sharing: bool, **extra: Any) -> CreateRequest:
    return CreateRequest(
        order_no="P1", amount=1000, subject="s", pay_method=pay_method, notify_url="https://pay.test/n",
        expire_at=NOW + timedelta(minutes=30), profit_sharing=sharing, **extra,
    )  # fmt: skip


@pytest.mark.parametrize("sharing", [True, False])
async def test_create_sends_the_royalty_freeze_only_for_a_split_order(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], sharing: bool
) -> None:
    seen: list[dict[str, str]] = []
    mock.post(url__startswith=GATEWAY).mock(side_effect=reply_with(keys, {"code": "10000", "msg": "Success",
        "out_trade_no": "P1", "qr_code": "https://qr.alipay.com/x"}, seen))  # fmt: skip
    assert (await adapter.create(create("ALIPAY_QR", sharing))).status is ResultStatus.SUCCESS
    await adapter.create(create("BARCODE", sharing, auth_code="281234567890123456"))
    expected = {"royalty_freeze": "true"} if sharing else None
    assert [(p["method"], biz(p).get("extend_params")) for p in seen] == [
        ("alipay.trade.precreate", expected), ("alipay.trade.pay", expected),
    ]  # fmt: skip
    page = await adapter.create(create("ALIPAY_PC", sharing))
    assert page.pay_data is not None
    params = dict(parse_qsl(urlsplit(str(page.pay_data.value)).query))
    assert biz(params).get("extend_params") == expected


async def test_bind_and_split_send_alipays_fields_with_the_token(
    isv_adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []
    mock.post(url__startswith=GATEWAY).mock(side_effect=reply_with(keys, {"code": "10000", "msg": "Success",
        "result_code": "SUCCESS", "trade_no": "T1", "settle_no": "SN1"}, seen))  # fmt: skip
    assert (await isv_adapter.bind_receiver(replace_sub(LOGIN))).status is ResultStatus.SUCCESS
    shares = (SplitShare(USER, 1500, "佣金"), SplitShare(LOGIN, 1, "tip"))
    done = await isv_adapter.split(SplitRequest("P1", "S1", "T1", shares, finish=True, sub=SUB))
    assert (done.status, done.amount, done.channel_trade_no) == (ResultStatus.SUCCESS, 1501, "T1")
    await isv_adapter.finish_split(SplitRef("P1", "F1", "T1", SUB))
    assert [p["method"] for p in seen] == [splits.BIND_METHOD, splits.SETTLE_METHOD, splits.SETTLE_METHOD]
    assert all(p["app_auth_token"] == TOKEN and TOKEN not in p["biz_content"] for p in seen)
    bind = biz(seen[0])
    assert bind["out_request_no"] == splits.bind_request_no(replace_sub(LOGIN)) and len(bind["out_request_no"]) <= 32
    assert bind["receiver_list"] == [{"type": "loginName", "account": "13800000000", "name": "张三",
                                      "memo": "profit sharing"}]  # fmt: skip
    assert biz(seen[1]) == {
        "out_request_no": "S1", "trade_no": "T1", "extend_params": {"royalty_finish": "true"},
        "royalty_parameters": [
            {"royalty_type": "transfer", "trans_in_type": "userId", "trans_in": "2088102000000201", "amount": "15.00",
             "desc": "佣金"},
            {"royalty_type": "transfer", "trans_in_type": "loginName", "trans_in": "13800000000", "amount": "0.01",
             "desc": "tip"},
        ],
    }  # fmt: skip
    assert biz(seen[2]) == {"out_request_no": "F1", "trade_no": "T1", "royalty_parameters": [],
                            "extend_params": {"royalty_finish": "true"}}  # fmt: skip


def replace_sub(receiver: SplitReceiver) -> SplitReceiver:
    return SplitReceiver(receiver.account, receiver.account_type, receiver.name, SUB)


async def test_isv_splits_without_a_token_are_refused_before_any_request(
    isv_adapter: AlipayAdapter, mock: respx.MockRouter
) -> None:
    route = mock.post(url__startswith=GATEWAY)
    result = await isv_adapter.split(SplitRequest("P1", "S1", "T1", (SplitShare(USER, 1, "x"),)))
    assert (result.status, result.code) == (ResultStatus.FAIL, "SUB_MERCHANT_REQUIRED") and not route.called


@pytest.mark.parametrize(
    ("node", "status", "error", "code"),
    [
        ({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.ROYALTY_RECEIVER_INVALID"},
         ResultStatus.FAIL, ErrorClass.REJECTED, "ACQ.ROYALTY_RECEIVER_INVALID"),
        ({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"},
         ResultStatus.UNKNOWN, ErrorClass.SERVER, "isp.unknow-error"),
        ({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR"},
         ResultStatus.UNKNOWN, ErrorClass.SERVER, "ACQ.SYSTEM_ERROR"),
    ],
)  # fmt: skip
async def test_settle_refusals_and_unknowns(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey],
    node: dict[str, Any], status: ResultStatus, error: ErrorClass, code: str,
) -> None:  # fmt: skip
    mock.post(url__startswith=GATEWAY).mock(side_effect=reply_with(keys, node, []))
    result = await adapter.split(SplitRequest("P1", "S1", "T1", (SplitShare(USER, 1, "x"),)))
    assert (result.status, result.error, result.code) == (status, error, code)


async def test_a_bind_answered_fail_is_a_refusal(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    mock.post(url__startswith=GATEWAY).mock(
        side_effect=reply_with(keys, {"code": "10000", "msg": "Success", "result_code": "FAIL"}, [])
    )
    result = await adapter.bind_receiver(USER)
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "FAIL")


def detail(state: str, amount: str = "1.00", **extra: str) -> dict[str, str]:
    return {"operation_type": "transfer", "trans_in": "2088102000000201", "amount": amount, "state": state, **extra}


@pytest.mark.parametrize(
    ("details", "status", "code", "amount"),
    [
        ([detail("SUCCESS"), detail("SUCCESS", "0.50")], ResultStatus.SUCCESS, None, 150),
        ([detail("SUCCESS"), detail("PROCESSING")], ResultStatus.WAITING, "PROCESSING", None),
        ([detail("FAIL", error_code="TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH"), detail("FAIL")], ResultStatus.FAIL,
         "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH", None),
        ([detail("SUCCESS"), detail("FAIL")], ResultStatus.WAITING, splits.PARTIAL_SPLIT, None),
        ([detail("DONE")], ResultStatus.UNKNOWN, None, None),
        ([], ResultStatus.UNKNOWN, None, None),
    ],
)  # fmt: skip
def test_query_maps_every_receivers_state(
    details: list[dict[str, str]], status: ResultStatus, code: str | None, amount: int | None
) -> None:
    result = splits.query_result({"code": "10000", "royalty_detail_list": details})
    assert (result.status, result.code, result.amount) == (status, code, amount)


async def test_query_sends_the_request_number_and_trade(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []
    node = {"code": "10000", "msg": "Success", "out_request_no": "S1", "royalty_detail_list": [detail("SUCCESS")]}
    mock.post(url__startswith=GATEWAY).mock(side_effect=reply_with(keys, node, seen))
    result = await adapter.query_split(SplitRef("P1", "S1", "T1"))
    assert (result.status, result.amount) == (ResultStatus.SUCCESS, 100)
    assert (seen[0]["method"], biz(seen[0])) == (splits.QUERY_METHOD, {"out_request_no": "S1", "trade_no": "T1"})


def test_receiver_account_types() -> None:
    assert [splits.account_type(a) for a in ("2088102000000201", "208810200000020", "a@b.c", "13800000000")] == [
        "userId", "loginName", "loginName", "loginName",
    ]  # fmt: skip
    assert splits.bind_request_no(USER) != splits.bind_request_no(replace_sub(USER))  # per sub-merchant
