"""WechatAdapter against respx: every error-class mapping, every flow's result mapping, the bill and the callback.

The fake WeChat answers are signed by hand here (`TS\\nNONCE\\nBODY\\n` → RSA), independently of the simulator.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.unit.test_wechat_signing import self_signed_certificate
from tomato.channel.adapters.wechat import StatementUnavailable, WechatAdapter, parse_config, signing
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

BASE = "https://wechat.test"
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
KEY_ID = "PUB_KEY_ID_0114232806862025052600451000000000"
CERT_SERIAL = 0x7132D0E1D6AC49F2F6A3D8C8E62B6B2C2F1A9D01
API_V3_KEY = "0123456789abcdefghijABCDEFGHIJ01"
NOW = datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)  # 10:00:00 in Beijing
TS = int(NOW.timestamp())


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {
        "merchant": generate_rsa_key(),
        "wechat": generate_rsa_key(),
        "cert": generate_rsa_key(),
        "other": generate_rsa_key(),
    }


def config(keys: dict[str, rsa.RSAPrivateKey], **overrides: Any) -> dict[str, Any]:
    return {
        "mchid": MCHID,
        "appid": APPID,
        "serial_no": SERIAL,
        "private_key_pem": private_key_pem(keys["merchant"]),
        "api_v3_key": API_V3_KEY,
        "platform_public_key_pem": public_key_pem(keys["wechat"]),
        "platform_public_key_id": KEY_ID,
        "base_url": BASE,
        **overrides,
    }


@pytest.fixture
async def adapter(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[WechatAdapter]:
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        yield WechatAdapter(parse_config(config(keys)), http, clock=FrozenClock(NOW))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


def signed(
    key: rsa.RSAPrivateKey,
    status: int,
    body: dict[str, Any] | bytes | None,
    *,
    serial: str = KEY_ID,
    ts: int = TS,
    drop: str | None = None,
    sign_type: str = "WECHATPAY2-SHA256-RSA2048",
    tamper: bool = False,
) -> httpx.Response:
    content = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    headers = {
        "Wechatpay-Timestamp": str(ts),
        "Wechatpay-Nonce": "N0NCE",
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": signing.sign_response(key, str(ts), "N0NCE", content),
        "Wechatpay-Signature-Type": sign_type,
        "Request-ID": "R1",
    }
    if body is not None:
        headers["Content-Type"] = "application/json; charset=utf-8"
    if drop:
        headers.pop(drop)
    return httpx.Response(status, content=content + (b" " if tamper else b""), headers=headers)


def verify_request(request: httpx.Request, key: rsa.RSAPrivateKey) -> dict[str, str]:
    items = signing.parse_authorization(request.headers["authorization"])
    url = request.url.raw_path.decode()
    assert signing.verify_request(key.public_key(), items, request.method, url, request.content)
    assert items["mchid"] == MCHID and items["serial_no"] == SERIAL and items["timestamp"] == str(TS)
    assert request.headers["wechatpay-serial"] == KEY_ID and request.headers["accept"] == "application/json"
    return items


def create_request(pay_method: str = "WECHAT_NATIVE", **extra: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "order_no": "P100",
        "amount": 1234,
        "subject": "会员充值",
        "pay_method": pay_method,
        "notify_url": "https://pay.test/callbacks/wechat/ca1",
        "expire_at": NOW + timedelta(minutes=30),
        "client_ip": "203.0.113.9",
        "openid": "oUser",
    }
    fields.update(extra)
    return CreateRequest(**fields)


TRANSACTION = {
    "appid": APPID,
    "mchid": MCHID,
    "out_trade_no": "P100",
    "transaction_id": "4200000000202401010000000001",
    "trade_type": "NATIVE",
    "trade_state": "SUCCESS",
    "trade_state_desc": "支付成功",
    "success_time": "2024-01-01T10:00:05+08:00",
    "amount": {"total": 1234, "payer_total": 1234, "currency": "CNY"},
}
REFUND = {
    "refund_id": "50300000002024010100000000001",
    "out_refund_no": "R1",
    "transaction_id": TRANSACTION["transaction_id"],
    "out_trade_no": "P100",
    "status": "PROCESSING",
    "amount": {"total": 1234, "refund": 100, "currency": "CNY"},
}

# --- requests on the wire -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pay_method", "path", "answer", "pay_type"),
    [
        ("WECHAT_NATIVE", "native", {"code_url": "weixin://wxpay/bizpayurl?pr=x"}, "qr_code"),
        ("WECHAT_H5", "h5", {"h5_url": "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?x=1"}, "redirect_url"),
        ("WECHAT_JSAPI", "jsapi", {"prepay_id": "wx201410272009395522657a690389285100"}, "jsapi"),
    ],
)
async def test_create_posts_a_signed_order(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    pay_method: str,
    path: str,
    answer: dict[str, str],
    pay_type: str,
) -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return signed(keys["wechat"], 200, answer)

    mock.post(f"{BASE}/v3/pay/transactions/{path}").mock(side_effect=reply)
    result = await adapter.create(create_request(pay_method))
    assert result.status is ResultStatus.SUCCESS and result.pay_data is not None
    assert result.pay_data.type == pay_type

    request = seen[0]
    verify_request(request, keys["merchant"])
    assert request.headers["content-type"] == "application/json"
    assert '"description":"会员充值"'.encode() in request.content  # raw UTF-8, compact
    body = json.loads(request.content)
    expected: dict[str, Any] = {
        "appid": APPID,
        "mchid": MCHID,
        "description": "会员充值",
        "out_trade_no": "P100",
        "time_expire": "2024-01-01T10:30:00+08:00",
        "notify_url": "https://pay.test/callbacks/wechat/ca1",
        "amount": {"total": 1234, "currency": "CNY"},
    }
    if path == "jsapi":
        expected["payer"] = {"openid": "oUser"}
        params = result.pay_data.value
        assert isinstance(params, dict) and params["package"] == "prepay_id=" + answer["prepay_id"]
        assert params["timeStamp"] == str(TS) and params["signType"] == "RSA" and params["appId"] == APPID
        message = f"{APPID}\n{TS}\n{params['nonceStr']}\n{params['package']}\n".encode()
        assert params["paySign"] == rsa_sign_b64(keys["merchant"], message)
    else:
        assert result.pay_data.value == next(iter(answer.values()))
    if path == "h5":
        expected["scene_info"] = {"payer_client_ip": "203.0.113.9", "h5_info": {"type": "Wap"}}
    assert body == expected


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (create_request("ALIPAY_QR"), "PAY_METHOD_NOT_SUPPORTED"),
        (create_request("WECHAT_JSAPI", openid=None), "PAYER_OPENID_REQUIRED"),
        (create_request("WECHAT_H5", client_ip=None), "PAYER_CLIENT_IP_REQUIRED"),
    ],
)
async def test_create_refuses_locally_without_calling(
    adapter: WechatAdapter, mock: respx.MockRouter, req: CreateRequest, code: str
) -> None:
    route = mock.route()
    result = await adapter.create(req)
    assert not route.called
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, code)


async def test_query_signs_the_path_with_its_query_string(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[httpx.Request] = []
    mock.get(f"{BASE}/v3/pay/transactions/out-trade-no/P100", params={"mchid": MCHID}).mock(
        side_effect=lambda r: seen.append(r) or signed(keys["wechat"], 200, TRANSACTION)
    )
    result = await adapter.query(TradeRef("P100"))
    assert result.status is ResultStatus.SUCCESS
    verify_request(seen[0], keys["merchant"])
    assert seen[0].url.raw_path == f"/v3/pay/transactions/out-trade-no/P100?mchid={MCHID}".encode()
    assert seen[0].content == b"" and "content-type" not in seen[0].headers


# --- error classes --------------------------------------------------------------------------------------

FLOWS: dict[str, Callable[[WechatAdapter], Any]] = {
    "create": lambda a: a.create(create_request()),
    "query": lambda a: a.query(TradeRef("P100")),
    "close": lambda a: a.close(TradeRef("P100")),
    "refund": lambda a: a.refund(RefundRequest("P100", "R1", 100, 1234, "https://pay.test/n")),
    "query_refund": lambda a: a.query_refund(RefundRef("P100", "R1")),
}
OK_BODY: dict[str, Any] = {"code_url": "weixin://x", **TRANSACTION, **REFUND}


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), ErrorClass.CONNECT),
        (httpx.ConnectTimeout("connect timed out"), ErrorClass.CONNECT),
        (httpx.ReadTimeout("read timed out"), ErrorClass.TIMEOUT),
        (httpx.WriteTimeout("write timed out"), ErrorClass.TIMEOUT),
        (httpx.RemoteProtocolError("peer closed"), ErrorClass.SERVER),
    ],
)
async def test_transport_errors_are_unknown(
    adapter: WechatAdapter, mock: respx.MockRouter, flow: str, exc: Exception, error: ErrorClass
) -> None:
    mock.route(host="wechat.test").mock(side_effect=exc)
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, error)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("sign", [True, False])
async def test_5xx_is_unknown_server(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    flow: str,
    status: int,
    sign: bool,
) -> None:
    body = {"code": "SYSTEM_ERROR", "message": "系统错误"}
    answer = signed(keys["wechat"], status, body) if sign else httpx.Response(status, text="oops")
    mock.route(host="wechat.test").mock(return_value=answer)
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.SERVER)


BAD_SIGNATURES = {
    "wrong_key": lambda k, s, b: signed(k["other"], s, b),
    "tampered_body": lambda k, s, b: signed(k["wechat"], s, b, tamper=True),
    "no_signature": lambda k, s, b: signed(k["wechat"], s, b, drop="Wechatpay-Signature"),
    "no_timestamp": lambda k, s, b: signed(k["wechat"], s, b, drop="Wechatpay-Timestamp"),
    "no_serial": lambda k, s, b: signed(k["wechat"], s, b, drop="Wechatpay-Serial"),
    "unknown_serial": lambda k, s, b: signed(k["wechat"], s, b, serial="PUB_KEY_ID_0114999"),
    "stale": lambda k, s, b: signed(k["wechat"], s, b, ts=TS - 300),
    "future": lambda k, s, b: signed(k["wechat"], s, b, ts=TS + 301),
    "sm2": lambda k, s, b: signed(k["wechat"], s, b, sign_type="WECHATPAY2-SM2-WITH-SM3"),
    "unsigned": lambda k, s, b: httpx.Response(s, json=b),
}


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("case", BAD_SIGNATURES)
@pytest.mark.parametrize("status", [200, 400])
async def test_bad_response_signature_is_unknown_never_fail(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    flow: str,
    case: str,
    status: int,
) -> None:
    body = OK_BODY if status == 200 else {"code": "ORDERPAID", "message": "订单已支付"}
    mock.route(host="wechat.test").mock(return_value=BAD_SIGNATURES[case](keys, status, body))
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)


async def test_unsigned_204_close_is_unknown(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    mock.post(f"{BASE}/v3/pay/transactions/out-trade-no/P100/close").mock(return_value=httpx.Response(204))
    result = await adapter.close(TradeRef("P100"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    ("status", "content"),
    [
        (200, b"<html>gateway</html>"),
        (200, b"[]"),
        (400, b"oops"),
        (400, b'{"message":"no code"}'),
        (302, b'{"code":"MOVED"}'),
        (202, b'{"code":"USERPAYING"}'),
    ],
)
async def test_unparseable_or_unexpected_is_unknown_malformed(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    flow: str,
    status: int,
    content: bytes,
) -> None:
    mock.route(host="wechat.test").mock(return_value=signed(keys["wechat"], status, content))
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


BUSINESS_ERRORS = [
    (400, "PARAM_ERROR"),
    (401, "SIGN_ERROR"),
    (403, "NO_AUTH"),
    (429, "FREQUENCY_LIMITED"),
    (400, "INVALID_REQUEST"),
]


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(("status", "code"), BUSINESS_ERRORS)
async def test_signed_business_error_is_fail_rejected(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    flow: str,
    status: int,
    code: str,
) -> None:
    """A refused action did nothing; a refused query is a refusal to answer, which settles nothing."""
    mock.route(host="wechat.test").mock(return_value=signed(keys["wechat"], status, {"code": code, "message": "不行"}))
    result = await FLOWS[flow](adapter)
    assert (result.status, result.error, result.code, result.message) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        code,
        "不行",
    )
    assert not result.settles_query


# --- flow result mapping --------------------------------------------------------------------------------


def _reply(mock: respx.MockRouter, answer: httpx.Response) -> None:
    mock.route(host="wechat.test").mock(return_value=answer)


@pytest.mark.parametrize("state", ["SUCCESS", "REFUND"])
async def test_query_paid(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], state: str
) -> None:
    _reply(mock, signed(keys["wechat"], 200, {**TRANSACTION, "trade_state": state}))
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.code) == (ResultStatus.SUCCESS, state)
    assert (result.channel_trade_no, result.amount) == ("4200000000202401010000000001", 1234)
    assert isinstance(result.amount, int) and result.paid_at == datetime(2024, 1, 1, 2, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("NOTPAY", ResultStatus.WAITING),
        ("USERPAYING", ResultStatus.WAITING),
        ("ACCEPT", ResultStatus.WAITING),
        ("PAYERROR", ResultStatus.FAIL),
        ("CLOSED", ResultStatus.FAIL),
        ("REVOKED", ResultStatus.FAIL),
    ],
)
async def test_query_not_paid(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    state: str,
    status: ResultStatus,
) -> None:
    body = {k: v for k, v in TRANSACTION.items() if k not in ("success_time", "transaction_id")}
    _reply(mock, signed(keys["wechat"], 200, {**body, "trade_state": state}))
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.code, result.amount, result.paid_at) == (status, state, 1234, None)
    assert result.error is ErrorClass.NONE and result.settles_query is (status is ResultStatus.FAIL)


@pytest.mark.parametrize(
    "body",
    [
        {**TRANSACTION, "trade_state": "WHATEVER"},
        {**TRANSACTION, "amount": {"total": 12.34}},
        {**TRANSACTION, "amount": {"total": "1234"}},
        {**TRANSACTION, "success_time": "yesterday"},
        {k: v for k, v in TRANSACTION.items() if k != "success_time"},
        {**TRANSACTION, "out_trade_no": "P999"},
        {**TRANSACTION, "mchid": "1900000999"},
    ],
)
async def test_query_answer_that_does_not_add_up_is_malformed(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], body: dict[str, Any]
) -> None:
    _reply(mock, signed(keys["wechat"], 200, body))
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


async def test_query_not_found_keeps_waiting(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    _reply(mock, signed(keys["wechat"], 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}))
    result = await adapter.query(TradeRef("P100"))
    assert (result.status, result.code) == (ResultStatus.WAITING, "ORDER_NOT_EXIST")


@pytest.mark.parametrize(
    ("status", "body", "result_status", "code"),
    [
        (204, None, ResultStatus.SUCCESS, None),
        (404, {"code": "ORDER_NOT_EXIST", "message": "x"}, ResultStatus.SUCCESS, "ORDER_NOT_EXIST"),
        (400, {"code": "ORDER_CLOSED", "message": "x"}, ResultStatus.SUCCESS, "ORDER_CLOSED"),
        (400, {"code": "ORDERPAID", "message": "x"}, ResultStatus.FAIL, "ORDERPAID"),
    ],
)
async def test_close(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    status: int,
    body: dict[str, Any] | None,
    result_status: ResultStatus,
    code: str | None,
) -> None:
    seen: list[httpx.Request] = []
    mock.post(f"{BASE}/v3/pay/transactions/out-trade-no/P100/close").mock(
        side_effect=lambda r: seen.append(r) or signed(keys["wechat"], status, body)
    )
    result = await adapter.close(TradeRef("P100"))
    assert (result.status, result.code) == (result_status, code)
    verify_request(seen[0], keys["merchant"])
    assert json.loads(seen[0].content) == {"mchid": MCHID}


@pytest.mark.parametrize(
    ("status", "result_status"),
    [
        ("SUCCESS", ResultStatus.SUCCESS),
        ("PROCESSING", ResultStatus.WAITING),
        ("ABNORMAL", ResultStatus.FAIL),
        ("CLOSED", ResultStatus.FAIL),
    ],
)
async def test_refund_and_its_query_map_status(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    status: str,
    result_status: ResultStatus,
) -> None:
    seen: list[httpx.Request] = []
    body = {**REFUND, "status": status}
    if status == "SUCCESS":
        body["success_time"] = "2024-01-01T11:00:00+08:00"
    mock.route(host="wechat.test").mock(side_effect=lambda r: seen.append(r) or signed(keys["wechat"], 200, body))
    req = RefundRequest("P100", "R1", 100, 1234, "https://pay.test/n", reason="客户退货", channel_trade_no="42")
    for result in (await adapter.refund(req), await adapter.query_refund(RefundRef("P100", "R1"))):
        assert (result.status, result.error, result.code, result.amount) == (
            result_status,
            ErrorClass.NONE,
            status,
            100,
        )
        assert result.channel_refund_no == REFUND["refund_id"] and result.channel_trade_no == REFUND["transaction_id"]
        succeeded_at = datetime(2024, 1, 1, 3, 0, tzinfo=UTC) if status == "SUCCESS" else None
        assert result.paid_at == succeeded_at  # the refund's success time
    assert json.loads(seen[0].content) == {
        "out_trade_no": "P100",
        "out_refund_no": "R1",
        "notify_url": "https://pay.test/n",
        "reason": "客户退货",
        "amount": {"refund": 100, "total": 1234, "currency": "CNY"},
    }
    assert seen[1].method == "GET" and seen[1].url.raw_path == b"/v3/refund/domestic/refunds/R1"
    verify_request(seen[1], keys["merchant"])


@pytest.mark.parametrize(
    "body",
    [
        {**REFUND, "status": "WHATEVER"},
        {**REFUND, "out_refund_no": "R2"},
        {**REFUND, "amount": {}},
        {**REFUND, "status": "SUCCESS", "success_time": "soon"},
    ],
)
async def test_refund_answer_that_does_not_add_up_is_malformed(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], body: dict[str, Any]
) -> None:
    _reply(mock, signed(keys["wechat"], 200, body))
    for result in (await FLOWS["refund"](adapter), await FLOWS["query_refund"](adapter)):
        assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


async def test_refund_beyond_balance_and_missing_refund(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    _reply(mock, signed(keys["wechat"], 400, {"code": "NOT_ENOUGH", "message": "余额不足"}))
    result = await FLOWS["refund"](adapter)
    assert (result.status, result.error, result.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "NOT_ENOUGH")
    _reply(mock, signed(keys["wechat"], 404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}))
    result = await FLOWS["query_refund"](adapter)
    assert (result.status, result.code) == (ResultStatus.WAITING, "RESOURCE_NOT_EXISTS")


# --- platform keys: public-key id and certificate serial ------------------------------------------------


async def test_both_public_key_id_and_certificate_serial_verify(
    mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    pem = self_signed_certificate(keys["cert"], CERT_SERIAL)
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        adapter = WechatAdapter(parse_config(config(keys, platform_certificate_pem=pem)), http, FrozenClock(NOW))
        hex_serial = format(CERT_SERIAL, "X")
        for answer in (
            signed(keys["wechat"], 200, TRANSACTION),
            signed(keys["cert"], 200, TRANSACTION, serial=hex_serial.lower()),
        ):
            _reply(mock, answer)
            assert (await adapter.query(TradeRef("P100"))).status is ResultStatus.SUCCESS
        # A certificate serial presented with the public key's signature (or the other way round) fails.
        for answer in (
            signed(keys["wechat"], 200, TRANSACTION, serial=hex_serial),
            signed(keys["cert"], 200, TRANSACTION),
        ):
            _reply(mock, answer)
            assert (await adapter.query(TradeRef("P100"))).error is ErrorClass.BAD_SIGNATURE


async def test_platform_key_configured_by_certificate_serial(
    mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        adapter = WechatAdapter(parse_config(config(keys, platform_public_key_id="00ABCDEF")), http, FrozenClock(NOW))
        _reply(mock, signed(keys["wechat"], 200, TRANSACTION, serial="abcdef"))
        assert (await adapter.query(TradeRef("P100"))).status is ResultStatus.SUCCESS


# --- statements -----------------------------------------------------------------------------------------

BILL = "交易时间,商户订单号\r\n`2024-01-01 10:00:05,`P100\r\n总交易单数\r\n`1\r\n".encode()


def bill_routes(
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    *,
    hash_value: str | None = None,
    url: str = f"{BASE}/v3/billdownload/file?token=t1",
    payload: bytes | None = None,
) -> list[httpx.Request]:
    seen: list[httpx.Request] = []
    answer = {"hash_type": "SHA1", "hash_value": hash_value or hashlib.sha1(BILL).hexdigest(), "download_url": url}
    content = payload or gzip.compress(BILL)
    mock.get(f"{BASE}/v3/bill/tradebill").mock(
        side_effect=lambda r: seen.append(r) or signed(keys["wechat"], 200, answer)
    )
    mock.get(url).mock(side_effect=lambda r: seen.append(r) or httpx.Response(200, content=content))
    return seen


async def test_download_statement_checks_the_hash(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen = bill_routes(mock, keys)
    assert await adapter.download_statement(date(2024, 1, 1)) == BILL
    assert seen[0].url.raw_path == b"/v3/bill/tradebill?bill_date=2024-01-01&bill_type=ALL&tar_type=GZIP"
    verify_request(seen[0], keys["merchant"])
    verify_request(seen[1], keys["merchant"])  # the download is a signed request too (its answer is not)
    assert seen[1].url.raw_path == b"/v3/billdownload/file?token=t1"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"hash_value": "0" * 40}, ErrorClass.MALFORMED),
        ({"payload": BILL}, ErrorClass.MALFORMED),  # not gzip
        ({"url": "https://evil.test/v3/billdownload/file?token=t1"}, ErrorClass.MALFORMED),
    ],
)
async def test_download_statement_refuses_what_does_not_check_out(
    adapter: WechatAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    kwargs: dict[str, Any],
    error: ErrorClass,
) -> None:
    bill_routes(mock, keys, **kwargs)
    with pytest.raises(StatementUnavailable) as info:
        await adapter.download_statement(date(2024, 1, 1))
    assert (info.value.result.status, info.value.result.error) == (ResultStatus.UNKNOWN, error)


async def test_download_statement_not_there(
    adapter: WechatAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    _reply(mock, signed(keys["wechat"], 400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}))
    with pytest.raises(StatementUnavailable) as info:
        await adapter.download_statement(date(2024, 1, 1))
    assert info.value.result.code == "NO_STATEMENT_EXIST"
    mock.routes.clear()
    bill_routes(mock, keys)
    mock.get(f"{BASE}/v3/billdownload/file?token=t1").mock(return_value=httpx.Response(403))
    with pytest.raises(StatementUnavailable) as info:
        await adapter.download_statement(date(2024, 1, 1))
    assert info.value.result.error is ErrorClass.SERVER


# --- callbacks ------------------------------------------------------------------------------------------


def notify(
    keys: dict[str, rsa.RSAPrivateKey],
    event: str = "TRANSACTION.SUCCESS",
    plain: dict[str, Any] | None = None,
    *,
    api_v3_key: str = API_V3_KEY,
    signer: str = "wechat",
    ts: int = TS,
    original_type: str = "transaction",
) -> tuple[dict[str, str], bytes]:
    nonce = "abcdefghijkl"
    data = plain if plain is not None else TRANSACTION
    ciphertext = signing.encrypt_resource(api_v3_key, nonce, original_type, json.dumps(data).encode())
    body = json.dumps(
        {
            "id": "EV-1",
            "create_time": "2024-01-01T10:00:06+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event,
            "summary": "支付成功",
            "resource": {
                "original_type": original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ciphertext,
                "associated_data": original_type,
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    ).encode()
    response = signed(keys[signer], 200, body, ts=ts)
    return {k.lower(): v for k, v in response.headers.items()}, body


def test_parse_callback_payment(adapter: WechatAdapter, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    headers, body = notify(keys)
    result = adapter.parse_callback({k.title(): v for k, v in headers.items()}, body)  # header case is irrelevant
    assert (result.kind, result.status, result.order_no, result.amount) == (
        "payment",
        ResultStatus.SUCCESS,
        "P100",
        1234,
    )
    assert result.channel_trade_no == TRANSACTION["transaction_id"]
    assert result.paid_at == datetime(2024, 1, 1, 2, 0, 5, tzinfo=UTC)
    assert result.raw["notify_id"] == "EV-1" and result.raw["trade_state_desc"] == "支付成功"


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("REFUND.SUCCESS", ResultStatus.SUCCESS),
        ("REFUND.ABNORMAL", ResultStatus.FAIL),
        ("REFUND.CLOSED", ResultStatus.FAIL),
    ],
)
def test_parse_callback_refund(
    adapter: WechatAdapter, keys: dict[str, rsa.RSAPrivateKey], event: str, status: ResultStatus
) -> None:
    plain = {
        "mchid": MCHID,
        "out_trade_no": "P100",
        "transaction_id": "42",
        "out_refund_no": "R1",
        "refund_id": "503",
        "refund_status": event.split(".")[1],
        "success_time": "2024-01-01T11:00:00+08:00",
        "amount": {"total": 1234, "refund": 234, "payer_total": 1234, "payer_refund": 234},
    }
    headers, body = notify(keys, event, plain, original_type="refund")
    result = adapter.parse_callback(headers, body)
    assert (result.kind, result.status, result.refund_no, result.channel_refund_no) == ("refund", status, "R1", "503")
    assert (result.order_no, result.amount, result.channel_trade_no) == ("P100", 234, "42")
    succeeded_at = datetime(2024, 1, 1, 3, 0, tzinfo=UTC) if status is ResultStatus.SUCCESS else None
    assert result.paid_at == succeeded_at


def _case(keys: dict[str, rsa.RSAPrivateKey], case: str) -> tuple[dict[str, str], bytes]:
    if case == "other_key":
        return notify(keys, signer="other")
    if case == "stale":
        return notify(keys, ts=TS - 600)
    if case == "wrong_api_v3_key":
        return notify(keys, api_v3_key="X" * 32)
    if case == "other_mchid":
        return notify(keys, plain={**TRANSACTION, "mchid": "1900000999"})
    if case == "unknown_event":
        return notify(keys, "PAYSCORE.USER_OPEN_SERVICE")
    if case == "float_amount":
        return notify(keys, plain={**TRANSACTION, "amount": {"total": 12.34}})
    if case == "no_out_trade_no":
        return notify(keys, plain={k: v for k, v in TRANSACTION.items() if k != "out_trade_no"})
    headers, body = notify(keys)
    if case == "tampered":
        return headers, body.replace(b'"EV-1"', b'"EV-2"')
    if case == "no_signature":
        return {k: v for k, v in headers.items() if k != "wechatpay-signature"}, body
    if case == "signature_probe":
        return {**headers, "wechatpay-signature": "WECHATPAY/SIGNTEST/" + headers["wechatpay-signature"]}, body
    if case == "sign_type":
        return {**headers, "wechatpay-signature-type": "WECHATPAY2-SM2-WITH-SM3"}, body
    signed_garbage = signed(keys["wechat"], 200, b"\xff not json")
    return {k.lower(): v for k, v in signed_garbage.headers.items()}, b"\xff not json"


@pytest.mark.parametrize(
    "case",
    [
        "other_key",
        "stale",
        "wrong_api_v3_key",
        "other_mchid",
        "unknown_event",
        "float_amount",
        "no_out_trade_no",
        "tampered",
        "no_signature",
        "signature_probe",
        "sign_type",
        "garbage",
    ],
)
def test_parse_callback_rejects(adapter: WechatAdapter, keys: dict[str, rsa.RSAPrivateKey], case: str) -> None:
    headers, body = _case(keys, case)
    with pytest.raises(CallbackRejected):
        adapter.parse_callback(headers, body)


def test_callback_ack(adapter: WechatAdapter) -> None:
    ok = adapter.callback_ack(True)
    assert (ok.status_code, ok.body) == (204, b"")
    refused = adapter.callback_ack(False, "验签失败")
    assert (refused.status_code, refused.content_type) == (400, "application/json")
    assert json.loads(refused.body) == {"code": "FAIL", "message": "验签失败"}
    assert json.loads(adapter.callback_ack(False).body)["code"] == "FAIL"
