"""AlipayAdapter against respx: every error-class mapping, every flow's result mapping, and the callback.

The fake Alipay answers are signed by hand here (node bytes → RSA2), independently of the simulator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.alipay import AlipayAdapter, StatementUnavailable, parse_config
from tomato.channel.adapters.alipay import signing as alipay_signing
from tomato.channel.adapters.alipay.adapter import bill_url_allowed
from tomato.channel.http import guarded_client
from tomato.channel.protocol import (
    CallbackRejected,
    CreateRequest,
    ErrorClass,
    RefundRef,
    RefundRequest,
    ResultStatus,
    TradeRef,
)
from tomato.core.clock import FrozenClock
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem, rsa_sign_b64

GATEWAY = "https://alipay.test/gateway.do"
APP_ID = "2021000000000001"
NOW = datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)  # 10:00:00 in Beijing


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"app": generate_rsa_key(), "alipay": generate_rsa_key(), "other": generate_rsa_key()}


@pytest.fixture
async def adapter(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[AlipayAdapter]:
    config = parse_config(
        {
            "app_id": APP_ID,
            "private_key_pem": private_key_pem(keys["app"]),
            "alipay_public_key_pem": public_key_pem(keys["alipay"]),
            "gateway_url": GATEWAY,
        }
    )
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        yield AlipayAdapter(config, http, clock=FrozenClock(NOW))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


def signed_body(method: str, node: dict[str, Any], key: rsa.RSAPrivateKey, *, sign: bool = True) -> bytes:
    node_json = json.dumps(node, separators=(",", ":"), ensure_ascii=False)
    response_key = method.replace(".", "_") + "_response"
    if not sign:
        return f'{{"{response_key}":{node_json}}}'.encode()
    signature = rsa_sign_b64(key, node_json.encode())
    return f'{{"{response_key}":{node_json},"sign":"{signature}"}}'.encode()


def answer(method: str, node: dict[str, Any], key: rsa.RSAPrivateKey) -> httpx.Response:
    return httpx.Response(200, content=signed_body(method, node, key), headers={"Content-Type": "application/json"})


def request_params(request: httpx.Request) -> dict[str, str]:
    query = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
    form = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
    assert not set(query) & set(form)
    return {**query, **form}


def create_request(pay_method: str = "ALIPAY_QR", **extra: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "order_no": "P100",
        "amount": 1234,
        "subject": "会员充值",
        "pay_method": pay_method,
        "notify_url": "https://pay.test/callbacks/alipay/ca1",
        "expire_at": NOW + timedelta(minutes=30),
    }
    fields.update(extra)
    return CreateRequest(**fields)


OK = {"code": "10000", "msg": "Success"}

# --- requests on the wire -------------------------------------------------------------------------------


async def test_qr_create_posts_a_signed_precreate(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(
            "alipay.trade.precreate", {**OK, "out_trade_no": "P100", "qr_code": "https://qr/x"}, keys["alipay"]
        )

    mock.post(GATEWAY).mock(side_effect=reply)
    result = await adapter.create(create_request())
    assert result.status is ResultStatus.SUCCESS
    assert result.pay_data is not None and (result.pay_data.type, result.pay_data.value) == ("qr_code", "https://qr/x")

    request = seen[0]
    assert request.headers["content-type"] == "application/x-www-form-urlencoded;charset=utf-8"
    form = dict(parse_qsl(request.content.decode()))
    assert set(form) == {"biz_content"}
    params = request_params(request)
    assert alipay_signing.verify_params(params, keys["app"].public_key())
    assert params["method"] == "alipay.trade.precreate" and params["app_id"] == APP_ID
    assert params["timestamp"] == "2024-01-01 10:00:00" and params["sign_type"] == "RSA2"
    assert params["notify_url"] == "https://pay.test/callbacks/alipay/ca1"
    biz = json.loads(params["biz_content"])
    assert biz == {
        "out_trade_no": "P100",
        "total_amount": "12.34",
        "subject": "会员充值",
        "time_expire": "2024-01-01 10:30:00",
    }
    assert '"会员充值"' in params["biz_content"]  # raw UTF-8, not \u escapes


@pytest.mark.parametrize(
    ("pay_method", "method", "product_code"),
    [
        ("ALIPAY_WAP", "alipay.trade.wap.pay", "QUICK_WAP_PAY"),
        ("ALIPAY_PC", "alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
    ],
)
async def test_browser_methods_build_a_signed_url_without_calling(
    adapter: AlipayAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    pay_method: str,
    method: str,
    product_code: str,
) -> None:
    route = mock.route()
    result = await adapter.create(create_request(pay_method, return_url="https://shop.test/done"))
    assert not route.called
    assert result.status is ResultStatus.SUCCESS and result.pay_data is not None
    assert result.pay_data.type == "redirect_url"
    url = str(result.pay_data.value)
    assert url.startswith(GATEWAY + "?")
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert alipay_signing.verify_params(params, keys["app"].public_key())
    assert params["method"] == method and params["return_url"] == "https://shop.test/done"
    biz = json.loads(params["biz_content"])
    assert biz["product_code"] == product_code and biz["total_amount"] == "12.34"

    no_return = await adapter.create(create_request(pay_method, return_url=""))
    assert no_return.pay_data is not None
    assert "return_url" not in dict(parse_qsl(urlsplit(str(no_return.pay_data.value)).query))


# --- error classes --------------------------------------------------------------------------------------

FLOWS: dict[str, Callable[[AlipayAdapter], Any]] = {
    "create": lambda a: a.create(create_request()),
    "query": lambda a: a.query(TradeRef("P100")),
    "close": lambda a: a.close(TradeRef("P100")),
    "refund": lambda a: a.refund(RefundRequest("P100", "R1", 100, 1234, "https://pay.test/n")),
    "query_refund": lambda a: a.query_refund(RefundRef("P100", "R1")),
}


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), ErrorClass.CONNECT),
        (httpx.ConnectTimeout("connect timed out"), ErrorClass.CONNECT),
        (httpx.ReadTimeout("read timed out"), ErrorClass.TIMEOUT),
        (httpx.WriteTimeout("write timed out"), ErrorClass.TIMEOUT),
    ],
)
async def test_transport_errors_are_unknown(
    adapter: AlipayAdapter, mock: respx.MockRouter, flow: str, exc: Exception, error: ErrorClass
) -> None:
    mock.post(GATEWAY).mock(side_effect=exc)
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, error)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_unknown_server(adapter: AlipayAdapter, mock: respx.MockRouter, flow: str, status: int) -> None:
    mock.post(GATEWAY).respond(status, text="oops")
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("case", ["wrong_key", "missing_sign", "tampered_node", "business_error_wrong_key"])
async def test_bad_response_signature_is_unknown_never_fail(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str, case: str
) -> None:
    method = {
        "create": "alipay.trade.precreate",
        "query": "alipay.trade.query",
        "close": "alipay.trade.close",
        "refund": "alipay.trade.refund",
        "query_refund": "alipay.trade.fastpay.refund.query",
    }[flow]
    node: dict[str, Any] = {
        **OK,
        "out_trade_no": "P100",
        "trade_no": "T1",
        "qr_code": "q",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "12.34",
        "fund_change": "Y",
        "refund_status": "REFUND_SUCCESS",
    }
    if case == "wrong_key":
        body = signed_body(method, node, keys["other"])
    elif case == "missing_sign":
        body = signed_body(method, node, keys["alipay"], sign=False)
    elif case == "tampered_node":
        body = signed_body(method, node, keys["alipay"]).replace(b"12.34", b"99.34")
    else:
        business = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR", "sub_msg": "x"}
        body = signed_body(method, business, keys["other"])
    mock.post(GATEWAY).respond(200, content=body)
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    "content", [b"<html>gateway</html>", b"[]", b'{"sign":"x"}', b'{"alipay_trade_query_response":"x","sign":"y"}']
)
async def test_unparseable_is_unknown_malformed(
    adapter: AlipayAdapter, mock: respx.MockRouter, flow: str, content: bytes
) -> None:
    mock.post(GATEWAY).respond(200, content=content)
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) in {
        (ResultStatus.UNKNOWN, ErrorClass.MALFORMED),
        (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE),
    }
    assert result.status is not ResultStatus.FAIL


async def test_non_json_is_malformed(adapter: AlipayAdapter, mock: respx.MockRouter) -> None:
    mock.post(GATEWAY).respond(200, content=b"<html>gateway</html>")
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("sub_code", ["isp.unknow-error", "isp.rpc-service-unavailable", None])
async def test_code_20000_is_unknown_server(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str, sub_code: str | None
) -> None:
    node = {"code": "20000", "msg": "Service Currently Unavailable", "sub_msg": "busy"}
    if sub_code:
        node["sub_code"] = sub_code
    mock.post(GATEWAY).mock(side_effect=lambda req: answer(request_params(req)["method"], node, keys["alipay"]))
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    ("code", "sub_code"),
    [
        ("40004", "ACQ.TRADE_STATUS_ERROR"),
        ("40002", "isv.invalid-signature"),
        ("40006", "isv.insufficient-isv-permissions"),
    ],
)
async def test_signed_business_error_is_fail_rejected(
    adapter: AlipayAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    flow: str,
    code: str,
    sub_code: str,
) -> None:
    node = {"code": code, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": "refused"}
    mock.post(GATEWAY).mock(side_effect=lambda req: answer(request_params(req)["method"], node, keys["alipay"]))
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, sub_code)
    assert result.message == "refused"


async def test_acq_system_error_is_unknown(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    node = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "retry"}
    mock.post(GATEWAY).mock(return_value=answer("alipay.trade.refund", node, keys["alipay"]))
    result = await FLOWS["refund"](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


async def test_gateway_error_response_node_is_honoured(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    node = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id", "sub_msg": "bad app"}
    mock.post(GATEWAY).mock(return_value=answer("error", node, keys["alipay"]))
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.code) == (ResultStatus.FAIL, "isv.invalid-app-id")


# --- flow result mapping --------------------------------------------------------------------------------


def _reply(mock: respx.MockRouter, method: str, node: dict[str, Any], key: rsa.RSAPrivateKey) -> None:
    mock.post(GATEWAY).mock(return_value=answer(method, node, key))


@pytest.mark.parametrize("trade_status", ["TRADE_SUCCESS", "TRADE_FINISHED"])
async def test_query_paid(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], trade_status: str
) -> None:
    node = {
        **OK,
        "trade_no": "2024010122001400000000000001",
        "out_trade_no": "P100",
        "trade_status": trade_status,
        "total_amount": "12.34",
        "send_pay_date": "2024-01-01 10:00:05",
    }
    _reply(mock, "alipay.trade.query", node, keys["alipay"])
    result = await adapter.query(TradeRef("P100"))
    assert result.status is ResultStatus.SUCCESS
    assert result.channel_trade_no == "2024010122001400000000000001"
    assert result.amount == 1234 and isinstance(result.amount, int)
    assert result.paid_at == datetime(2024, 1, 1, 2, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("node", "status", "code"),
    [
        (
            {**OK, "trade_no": "T", "trade_status": "WAIT_BUYER_PAY", "total_amount": "12.34"},
            ResultStatus.WAITING,
            "WAIT_BUYER_PAY",
        ),
        (
            {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "no"},
            ResultStatus.WAITING,
            "ACQ.TRADE_NOT_EXIST",
        ),
        (
            {**OK, "trade_no": "T", "trade_status": "TRADE_CLOSED", "total_amount": "12.34"},
            ResultStatus.FAIL,
            "TRADE_CLOSED",
        ),
    ],
)
async def test_query_not_paid(
    adapter: AlipayAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    node: dict[str, Any],
    status: ResultStatus,
    code: str,
) -> None:
    _reply(mock, "alipay.trade.query", node, keys["alipay"])
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.code) == (status, code)


async def test_query_with_bad_amount_is_malformed(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    node = {**OK, "trade_no": "T", "trade_status": "TRADE_SUCCESS", "total_amount": "12.345"}
    _reply(mock, "alipay.trade.query", node, keys["alipay"])
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


@pytest.mark.parametrize(
    ("node", "status", "code"),
    [
        ({**OK, "trade_no": "T", "out_trade_no": "P100"}, ResultStatus.SUCCESS, None),
        (
            {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"},
            ResultStatus.SUCCESS,
            "ACQ.TRADE_NOT_EXIST",
        ),
        (
            {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_STATUS_ERROR"},
            ResultStatus.FAIL,
            "ACQ.TRADE_STATUS_ERROR",
        ),
    ],
)
async def test_close(
    adapter: AlipayAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    node: dict[str, Any],
    status: ResultStatus,
    code: str | None,
) -> None:
    _reply(mock, "alipay.trade.close", node, keys["alipay"])
    result = await adapter.close(TradeRef("P100"))
    assert (result.status, result.code) == (status, code)


async def test_refund_sends_out_request_no_and_maps_fund_change(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []
    fund_change = iter(["Y", "N"])

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request_params(request))
        node = {**OK, "trade_no": "T", "out_trade_no": "P100", "fund_change": next(fund_change), "refund_fee": "1.00"}
        return answer("alipay.trade.refund", node, keys["alipay"])

    mock.post(GATEWAY).mock(side_effect=reply)
    req = RefundRequest("P100", "R1", 100, 1234, "https://pay.test/n", reason="客户退货", channel_trade_no="T")
    first = await adapter.refund(req)
    assert (first.status, first.amount, first.channel_trade_no) == (ResultStatus.SUCCESS, 100, "T")
    replay = await adapter.refund(req)
    assert replay.status is ResultStatus.WAITING  # fund_change N: confirm with a refund query
    biz = json.loads(seen[0]["biz_content"])
    assert biz == {
        "out_trade_no": "P100",
        "refund_amount": "1.00",
        "out_request_no": "R1",
        "trade_no": "T",
        "refund_reason": "客户退货",
    }


@pytest.mark.parametrize(
    ("extra", "status", "amount"),
    [
        ({}, ResultStatus.WAITING, None),  # 10000 alone is not a refund
        ({"refund_status": "REFUND_PROCESSING"}, ResultStatus.WAITING, None),
        (
            {"refund_status": "REFUND_SUCCESS", "refund_amount": "1.00", "out_request_no": "R1"},
            ResultStatus.SUCCESS,
            100,
        ),
    ],
)
async def test_refund_query(
    adapter: AlipayAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    extra: dict[str, str],
    status: ResultStatus,
    amount: int | None,
) -> None:
    _reply(
        mock,
        "alipay.trade.fastpay.refund.query",
        {**OK, "trade_no": "T", "out_trade_no": "P100", **extra},
        keys["alipay"],
    )
    result = await adapter.query_refund(RefundRef("P100", "R1"))
    assert (result.status, result.amount) == (status, amount)


async def test_download_statement_fetches_the_bill(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request_params(request))
        node = {**OK, "bill_download_url": "https://alipay.test/b.csv.zip?sig=1"}
        return answer("alipay.data.dataservice.bill.downloadurl.query", node, keys["alipay"])

    mock.post(GATEWAY).mock(side_effect=reply)
    mock.get("https://alipay.test/b.csv.zip?sig=1").respond(200, content=b"PK\x03\x04zip")
    assert await adapter.download_statement(date(2024, 1, 1)) == b"PK\x03\x04zip"
    assert json.loads(seen[0]["biz_content"]) == {"bill_type": "trade", "bill_date": "2024-01-01"}


async def test_download_statement_not_ready_raises(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    node = {"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_not_exist", "sub_msg": "no bill"}
    _reply(mock, "alipay.data.dataservice.bill.downloadurl.query", node, keys["alipay"])
    with pytest.raises(StatementUnavailable) as info:
        await adapter.download_statement(date(2024, 1, 1))
    assert info.value.result.code == "isp.bill_not_exist"


# --- callbacks ------------------------------------------------------------------------------------------


def notify_body(key: rsa.RSAPrivateKey, **overrides: str) -> bytes:
    fields = {
        "notify_time": "2024-01-01 10:00:06",
        "notify_type": "trade_status_sync",
        "notify_id": "n1",
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": "2024010122001400000000000001",
        "out_trade_no": "P100",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "12.34",
        "subject": "会员 & 充值",
        "gmt_payment": "2024-01-01 10:00:05",
        "fund_bill_list": '[{"amount":"12.34","fundChannel":"ALIPAYACCOUNT"}]',
    }
    fields.update(overrides)
    content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type"))
    fields["sign"] = rsa_sign_b64(key, content.encode())
    return urlencode(fields).encode()


def test_parse_callback_payment(adapter: AlipayAdapter, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    notify = adapter.parse_callback({"content-type": "application/x-www-form-urlencoded"}, notify_body(keys["alipay"]))
    assert (notify.kind, notify.status, notify.order_no) == ("payment", ResultStatus.SUCCESS, "P100")
    assert notify.amount == 1234 and notify.channel_trade_no == "2024010122001400000000000001"
    assert notify.paid_at == datetime(2024, 1, 1, 2, 0, 5, tzinfo=UTC)
    assert notify.raw["subject"] == "会员 & 充值"


@pytest.mark.parametrize(
    ("trade_status", "status"),
    [
        ("TRADE_FINISHED", ResultStatus.SUCCESS),
        ("TRADE_CLOSED", ResultStatus.FAIL),
        ("WAIT_BUYER_PAY", ResultStatus.WAITING),
    ],
)
def test_parse_callback_statuses(
    adapter: AlipayAdapter, keys: dict[str, rsa.RSAPrivateKey], trade_status: str, status: ResultStatus
) -> None:
    notify = adapter.parse_callback({}, notify_body(keys["alipay"], trade_status=trade_status))
    assert notify.status is status


def test_parse_callback_refund(adapter: AlipayAdapter, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    body = notify_body(keys["alipay"], refund_fee="1.00", out_biz_no="R1", gmt_refund="2024-01-01 11:00:00.123")
    notify = adapter.parse_callback({}, body)
    assert (notify.kind, notify.refund_no, notify.status) == ("refund", "R1", ResultStatus.SUCCESS)


@pytest.mark.parametrize(
    "case", ["other_key", "tampered", "other_app", "no_sign", "rsa1", "garbage", "bad_amount", "sign_type_signed"]
)
def test_parse_callback_rejects(adapter: AlipayAdapter, keys: dict[str, rsa.RSAPrivateKey], case: str) -> None:
    if case == "other_key":
        body = notify_body(keys["other"])
    elif case == "tampered":
        body = notify_body(keys["alipay"]).replace(b"total_amount=12.34", b"total_amount=0.01")
    elif case == "other_app":
        body = notify_body(keys["alipay"], app_id="2021000000000999")
    elif case == "no_sign":
        body = b"&".join(p for p in notify_body(keys["alipay"]).split(b"&") if not p.startswith(b"sign="))
    elif case == "rsa1":
        body = notify_body(keys["alipay"], sign_type="RSA")
    elif case == "garbage":
        body = b"\xff\xfe=\x00"
    elif case == "bad_amount":
        body = notify_body(keys["alipay"], total_amount="12.345")
    else:
        fields = dict(parse_qsl(notify_body(keys["alipay"]).decode()))
        content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "sign")
        fields["sign"] = rsa_sign_b64(keys["alipay"], content.encode())
        body = urlencode(fields).encode()
    with pytest.raises(CallbackRejected):
        adapter.parse_callback({}, body)


def test_callback_ack(adapter: AlipayAdapter) -> None:
    ok = adapter.callback_ack(True)
    assert (ok.status_code, ok.body, ok.content_type) == (200, b"success", "text/plain")
    assert adapter.callback_ack(False).body == b"fail"


async def test_download_statement_refuses_a_bill_url_on_another_host(
    adapter: AlipayAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    node = {**OK, "bill_download_url": "https://bills.elsewhere.test/b.csv.zip"}
    _reply(mock, "alipay.data.dataservice.bill.downloadurl.query", node, keys["alipay"])
    with pytest.raises(StatementUnavailable) as info:
        await adapter.download_statement(date(2024, 1, 1))
    assert info.value.result.message == "bill_download_url on another host"


@pytest.mark.parametrize(
    ("url", "gateway", "allowed"),
    [
        (
            "http://127.0.0.1:9100/alipay/downloadBillFile.resource?fileId=x",
            "http://127.0.0.1:9100/alipay/gateway.do",
            True,
        ),
        ("http://127.0.0.1:9101/alipay/bill", "http://127.0.0.1:9100/alipay/gateway.do", False),
        ("https://dwbillcenter.alipay.com/downloadBillFile.resource", "https://openapi.alipay.com/gateway.do", True),
        ("http://dwbillcenter.alipay.com/downloadBillFile.resource", "https://openapi.alipay.com/gateway.do", False),
        ("https://alipay.com.evil.test/b", "https://openapi.alipay.com/gateway.do", False),
        ("https://x.10.0.0.1/b", "https://10.0.0.1/gateway.do", False),
        ("file:///etc/passwd", "https://openapi.alipay.com/gateway.do", False),
    ],
)
def test_bill_urls_are_followed_only_to_the_gateways_host_or_domain(url: str, gateway: str, allowed: bool) -> None:
    assert bill_url_allowed(url, gateway) is allowed
