"""BankAdapter against respx: every error class, every flow's result mapping, the pre-order and form, the notify.

The fake bank answers are signed here with a hand-written ACP signer (content → hex SHA-256 → RSA), not with
the adapter's signing module, so a shared mistake cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tomato.channel.adapters.bank import BankAdapter, StatementUnavailable, codec, parse_config, signing
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
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem

BANK = "https://bank.test/gateway/api"
FRONT, BACK, QUERY = BANK + "/frontTransReq.do", BANK + "/backTransReq.do", BANK + "/queryTrans.do"
APP = "https://bank.test/bank/gateway/api/appTransReq.do"  # derived: front_url's origin + the simulator's path
FILE = "https://file.bank.test/"
MER_ID = "777290058110048"
CERT_ID = "69629715588"
NOW = datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)  # 10:00:00 in Beijing
CREATED = NOW - timedelta(minutes=5)  # the order row: 09:55:00 in Beijing
NOTIFY_URL = "https://pay.test/callbacks/bank/ca1"


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"merchant": generate_rsa_key(), "bank": generate_rsa_key(), "other": generate_rsa_key()}


def config(keys: dict[str, rsa.RSAPrivateKey], **extra: str) -> dict[str, str]:
    return {
        "mer_id": MER_ID,
        "cert_id": CERT_ID,
        "private_key_pem": private_key_pem(keys["merchant"]),
        "bank_public_key_pem": public_key_pem(keys["bank"]),
        "front_url": FRONT,
        "back_url": BACK,
        "query_url": QUERY,
        "file_url": FILE,
        **extra,
    }


@pytest.fixture
async def adapter(keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[BankAdapter]:
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        yield BankAdapter(parse_config(config(keys)), http, clock=FrozenClock(NOW))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


def acp_sign(fields: dict[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The bank's side, by hand: sorted k=v&…, hex SHA-256, SHA256withRSA over the hex, base64."""
    content = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature")
    digest = hashlib.sha256(content.encode()).hexdigest().encode()
    signature = base64.b64encode(key.sign(digest, padding.PKCS1v15(), hashes.SHA256())).decode()
    return {**fields, "signature": signature}


def kv(fields: dict[str, str]) -> bytes:
    return "&".join(f"{k}={v}" for k, v in fields.items()).encode()


BASE = {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "certId": "7", "merId": MER_ID, "accessType": "0"}
OK = {**BASE, "respCode": "00", "respMsg": "成功[0000000]"}
PAID = {
    **OK,
    "txnType": "00",
    "orderId": "P20240101001",
    "txnTime": "20240101095500",
    "origRespCode": "00",
    "origRespMsg": "成功[0000000]",
    "queryId": "692401011000050000001",
    "txnAmt": "1234",
    "traceTime": "0101095512",
    "traceNo": "000001",
    "settleDate": "0101",
}


def answer(fields: dict[str, str], key: rsa.RSAPrivateKey) -> httpx.Response:
    return httpx.Response(200, content=kv(acp_sign(fields, key)), headers={"Content-Type": "text/plain"})


def sent(request: httpx.Request) -> dict[str, str]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded;charset=UTF-8"
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


def create_request(**extra: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "order_no": "P20240101001",
        "amount": 1234,
        "subject": "会员 & {充值}",
        "pay_method": "BANK_WEB",
        "notify_url": NOTIFY_URL,
        "expire_at": NOW + timedelta(minutes=30),
        "return_url": "https://shop.test/done",
        "created_at": CREATED,
    }
    fields.update(extra)
    return CreateRequest(**fields)


def refund_request(**extra: Any) -> RefundRequest:
    fields: dict[str, Any] = {
        "order_no": "P20240101001",
        "refund_no": "R20240101002",
        "amount": 234,
        "total_amount": 1234,
        "notify_url": NOTIFY_URL,
        "channel_trade_no": "692401011000050000001",
        "order_created_at": CREATED,
    }
    fields.update(extra)
    return RefundRequest(**fields)


# --- create: a signed pre-order, then the same signed fields as the form ------------------------------------

PRE_ORDER = {
    **OK,
    "txnType": "01",
    "txnSubType": "01",
    "bizType": "000201",
    "orderId": "P20240101001",
    "txnTime": "20240101095500",
    "tn": "740161715148366495200",
}


def pre_order_ok(keys: dict[str, rsa.RSAPrivateKey], seen: list[dict[str, str]]) -> Callable[..., httpx.Response]:
    """The bank's pre-order: records the request and answers 00 with a tn for the orderId/txnTime it was sent."""

    def reply(request: httpx.Request) -> httpx.Response:
        fields = sent(request)
        seen.append(fields)
        return answer({**PRE_ORDER, "orderId": fields["orderId"], "txnTime": fields["txnTime"]}, keys["bank"])

    return reply


async def test_create_pre_orders_then_renders_the_same_signed_fields_as_a_form(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []
    route = mock.post(APP).mock(side_effect=pre_order_ok(keys, seen))
    result = await adapter.create(create_request())
    assert route.call_count == 1
    assert result.status is ResultStatus.SUCCESS and result.pay_data is not None
    assert result.pay_data.type == "form_html" and result.channel_trade_no is None  # tn is not the queryId
    page = str(result.pay_data.value)
    action, fields = codec.parse_form_html(page)
    assert action == FRONT and "submit()" in page
    assert fields == seen[0]  # nothing added to or changed in the form after signing
    content = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature")
    digest = hashlib.sha256(content.encode()).hexdigest().encode()
    keys["merchant"].public_key().verify(
        base64.b64decode(fields["signature"]), digest, padding.PKCS1v15(), hashes.SHA256()
    )
    assert fields == {
        **fields,
        "version": "5.1.0",
        "encoding": "UTF-8",
        "signMethod": "01",
        "txnType": "01",
        "txnSubType": "01",
        "bizType": "000201",
        "channelType": "07",
        "accessType": "0",
        "currencyCode": "156",
        "merId": MER_ID,
        "certId": CERT_ID,
        "orderId": "P20240101001",
        "txnAmt": "1234",
        "txnTime": "20240101095500",
        "payTimeout": "20240101103000",
        "frontUrl": "https://shop.test/done",
        "backUrl": NOTIFY_URL,
    }
    assert codec.parse_nested(fields["riskRateInfo"]) == {"commodityName": "会员 充值"}


async def test_create_txn_time_is_the_orders_creation_time_else_the_clock(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []
    mock.post(APP).mock(side_effect=pre_order_ok(keys, seen))
    naive_utc = datetime(2024, 1, 1, 1, 55, 0, 999999)  # stored times may come back naive: they are UTC
    for created_at in (CREATED, naive_utc, None):
        assert (await adapter.create(create_request(created_at=created_at))).status is ResultStatus.SUCCESS
    assert [f["txnTime"] for f in seen] == ["20240101095500", "20240101095500", "20240101100000"]


async def test_create_fields_reproduce_the_d9_digest(
    mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """With §D9's inputs, the form minus payTimeout/riskRateInfo hashes to the published intermediate."""
    mock.post(APP).mock(side_effect=pre_order_ok(keys, []))
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        adapter = BankAdapter(parse_config(config(keys)), http, clock=FrozenClock(NOW + timedelta(hours=3)))
        result = await adapter.create(
            create_request(
                order_no="T20240101001",
                notify_url="https://m.example.com/notify/bank",
                return_url="https://m.example.com/return/bank",
                created_at=NOW,
            )
        )
    assert result.pay_data is not None
    _, fields = codec.parse_form_html(str(result.pay_data.value))
    core = {k: v for k, v in fields.items() if k not in ("payTimeout", "riskRateInfo")}
    assert signing.sign_digest(core) == "57b398f90c0c3281a5fe52991814b1ad3baef11d8bf7539ec7bfc2e264cb97cf"


async def test_create_posts_to_app_url_when_configured(
    mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    derived = mock.post(APP).mock(side_effect=pre_order_ok(keys, []))
    explicit = mock.post("https://gateway.test.95516.com/gateway/api/appTransReq.do").mock(
        side_effect=pre_order_ok(keys, [])
    )
    raw = config(keys, app_url="https://gateway.test.95516.com/gateway/api/appTransReq.do")
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        result = await BankAdapter(parse_config(raw), http, clock=FrozenClock(NOW)).create(create_request())
    assert result.status is ResultStatus.SUCCESS
    assert (explicit.call_count, derived.call_count) == (1, 0)


async def test_create_defaults_front_url_and_refuses_other_methods(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    route = mock.post(APP).mock(side_effect=pre_order_ok(keys, []))
    result = await adapter.create(create_request(return_url=None))
    assert result.pay_data is not None
    assert codec.parse_form_html(str(result.pay_data.value))[1]["frontUrl"] == "https://pay.test/"
    other = await adapter.create(create_request(pay_method="ALIPAY_QR"))
    assert (other.status, other.error, other.code) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "PAY_METHOD_NOT_SUPPORTED",
    )
    bad_id = await adapter.create(create_request(order_no="P-1"))
    assert (bad_id.status, bad_id.code) == (ResultStatus.FAIL, "INVALID_ORDER_ID")
    assert route.call_count == 1  # refusals never reach the bank


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({k: v for k, v in PRE_ORDER.items() if k != "tn"}, ErrorClass.MALFORMED),
        ({**PRE_ORDER, "tn": ""}, ErrorClass.MALFORMED),
        ({**PRE_ORDER, "orderId": "P20240101999"}, ErrorClass.MALFORMED),
        ({**PRE_ORDER, "txnTime": "20240101095501"}, ErrorClass.MALFORMED),
    ],
)
async def test_create_needs_a_tn_for_this_order(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    fields: dict[str, str],
    error: ErrorClass,
) -> None:
    mock.post(APP).mock(return_value=answer({k: v for k, v in fields.items() if v}, keys["bank"]))
    result = await adapter.create(create_request())
    assert (result.status, result.error, result.pay_data) == (ResultStatus.UNKNOWN, error, None)


async def test_create_not_found_code_is_a_refusal_not_waiting(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    mock.post(APP).mock(return_value=answer({**BASE, "respCode": "34", "respMsg": "查无此交易"}, keys["bank"]))
    result = await adapter.create(create_request())
    assert (result.status, result.error, result.code, result.pay_data) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        "34",
        None,
    )


# --- error classes -----------------------------------------------------------------------------------------

FLOWS: dict[str, Callable[[BankAdapter], Any]] = {
    "create": lambda a: a.create(create_request()),
    "query": lambda a: a.query(TradeRef("P20240101001", created_at=CREATED)),
    "close": lambda a: a.close(TradeRef("P20240101001", created_at=CREATED)),
    "refund": lambda a: a.refund(refund_request()),
    "query_refund": lambda a: a.query_refund(RefundRef("P20240101001", "R20240101002", created_at=NOW)),
}
ALL = (APP, QUERY, BACK)


def route_all(mock: respx.MockRouter, **kwargs: Any) -> None:
    for url in ALL:
        mock.post(url).mock(**kwargs)


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
    adapter: BankAdapter, mock: respx.MockRouter, flow: str, exc: Exception, error: ErrorClass
) -> None:
    route_all(mock, side_effect=exc)
    result = await FLOWS[flow](adapter)
    assert result.pay_data is None  # no form unless the bank took the pre-order
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, error)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    ("status", "error"),
    [(500, ErrorClass.SERVER), (503, ErrorClass.SERVER), (404, ErrorClass.MALFORMED), (302, ErrorClass.MALFORMED)],
)
async def test_http_status_errors_are_unknown(
    adapter: BankAdapter, mock: respx.MockRouter, flow: str, status: int, error: ErrorClass
) -> None:
    route_all(mock, return_value=httpx.Response(status, text="oops"))
    result = await FLOWS[flow](adapter)
    assert result.pay_data is None  # no form unless the bank took the pre-order
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, error)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("case", ["wrong_key", "missing_signature", "tampered", "refusal_wrong_key", "extra_field"])
async def test_bad_signatures_are_unknown_never_fail(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str, case: str
) -> None:
    fields = {**PAID, "txnType": "04", "origQryId": "692401011000050000001"}
    if case == "wrong_key":
        body = kv(acp_sign(fields, keys["other"]))
    elif case == "missing_signature":
        body = kv(fields)
    elif case == "tampered":
        body = kv(acp_sign(fields, keys["bank"])).replace(b"txnAmt=1234", b"txnAmt=9234")
    elif case == "refusal_wrong_key":
        body = kv(acp_sign({**BASE, "respCode": "36", "respMsg": "与原交易信息不符"}, keys["other"]))
    else:
        body = kv(acp_sign(fields, keys["bank"])) + b"&injected=1"
    route_all(mock, return_value=httpx.Response(200, content=body))
    result = await FLOWS[flow](adapter)
    assert result.pay_data is None  # no form unless the bank took the pre-order
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.BAD_SIGNATURE)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize(
    "content", [b"", b"<html>gateway</html>", b"respCode=00&reqReserved={a=1&b=2", b"\xff\xfe=\x00", b"a=1&a=2"]
)
async def test_unparseable_is_unknown_malformed(
    adapter: BankAdapter, mock: respx.MockRouter, flow: str, content: bytes
) -> None:
    route_all(mock, return_value=httpx.Response(200, content=content))
    result = await FLOWS[flow](adapter)
    assert result.pay_data is None  # no form unless the bank took the pre-order
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("fields", [{**BASE, "respMsg": "no code"}, {**OK, "merId": "777290058110049"}])
async def test_signed_but_unusable_is_malformed(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str, fields: dict[str, str]
) -> None:
    route_all(mock, return_value=answer(fields, keys["bank"]))
    result = await FLOWS[flow](adapter)
    assert result.pay_data is None  # no form unless the bank took the pre-order
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("code", ["03", "04", "05"])
async def test_signed_outcome_unknown_codes_are_unknown_server(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str, code: str
) -> None:
    route_all(mock, return_value=answer({**BASE, "respCode": code, "respMsg": "交易状态未明"}, keys["bank"]))
    result = await FLOWS[flow](adapter)
    assert result.pay_data is None  # no form unless the bank took the pre-order
    assert (result.status, result.error, result.code) == (ResultStatus.UNKNOWN, ErrorClass.SERVER, code)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("code", ["11", "31", "36", "12"])
async def test_signed_business_error_is_fail_rejected(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], flow: str, code: str
) -> None:
    route_all(mock, return_value=answer({**BASE, "respCode": code, "respMsg": "refused[1]"}, keys["bank"]))
    result = await FLOWS[flow](adapter)
    assert result.pay_data is None  # no form unless the bank took the pre-order
    assert (result.status, result.error, result.code, result.message) == (
        ResultStatus.FAIL,
        ErrorClass.REJECTED,
        code,
        "refused[1]",
    )


async def test_query_without_created_at_makes_no_call(adapter: BankAdapter, mock: respx.MockRouter) -> None:
    route = mock.route()
    result = await adapter.query(TradeRef("P20240101001"))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)
    assert not route.called


# --- query / close mapping ---------------------------------------------------------------------------------


async def test_query_sends_the_original_txn_time_and_maps_paid(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(sent(request))
        return answer({**PAID, "reqReserved": "{x=1&y={z=2}}"}, keys["bank"])

    mock.post(QUERY).mock(side_effect=reply)
    result = await adapter.query(TradeRef("P20240101001", amount=1234, created_at=CREATED))
    assert (result.status, result.channel_trade_no, result.amount) == (
        ResultStatus.SUCCESS,
        "692401011000050000001",
        1234,
    )
    assert isinstance(result.amount, int)
    assert result.paid_at == datetime(2024, 1, 1, 1, 55, 12, tzinfo=UTC)
    request = seen[0]
    assert signing.verify_fields(request, keys["merchant"].public_key())
    assert {k: request[k] for k in ("txnType", "txnSubType", "bizType", "orderId", "txnTime", "merId", "certId")} == {
        "txnType": "00",
        "txnSubType": "00",
        "bizType": "000000",
        "orderId": "P20240101001",
        "txnTime": "20240101095500",
        "merId": MER_ID,
        "certId": CERT_ID,
    }


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({**PAID, "origRespCode": "A6"}, ResultStatus.SUCCESS, "A6"),
        ({**PAID, "origRespCode": "05"}, ResultStatus.WAITING, "05"),
        ({**PAID, "origRespCode": "03"}, ResultStatus.WAITING, "03"),
        ({**BASE, "respCode": "34", "respMsg": "查无此交易"}, ResultStatus.WAITING, "34"),
        ({**PAID, "origRespCode": "01", "origRespMsg": "交易失败"}, ResultStatus.FAIL, "01"),
        ({**PAID, "origRespCode": "61"}, ResultStatus.FAIL, "61"),
    ],
)
async def test_query_mapping(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    fields: dict[str, str],
    status: ResultStatus,
    code: str,
) -> None:
    mock.post(QUERY).mock(return_value=answer(fields, keys["bank"]))
    result = await adapter.query(TradeRef("P20240101001", created_at=CREATED))
    assert (result.status, result.code, result.error) == (status, code, ErrorClass.NONE)


@pytest.mark.parametrize(
    "fields", [{**PAID, "origRespCode": ""}, {**PAID, "txnAmt": "12.34"}, {**PAID, "traceTime": "13"}]
)
async def test_query_malformed_answers(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey], fields: dict[str, str]
) -> None:
    mock.post(QUERY).mock(return_value=answer({k: v for k, v in fields.items() if v}, keys["bank"]))
    result = await adapter.query(TradeRef("P20240101001", created_at=CREATED))
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, ErrorClass.MALFORMED)


@pytest.mark.parametrize(
    ("fields", "status", "error", "code"),
    [
        (PAID, ResultStatus.FAIL, ErrorClass.REJECTED, "ALREADY_PAID"),
        ({**BASE, "respCode": "34", "respMsg": "查无此交易"}, ResultStatus.SUCCESS, ErrorClass.NONE, "34"),
        ({**PAID, "origRespCode": "01"}, ResultStatus.SUCCESS, ErrorClass.NONE, "01"),
        ({**PAID, "origRespCode": "05"}, ResultStatus.WAITING, ErrorClass.NONE, "05"),
        ({**BASE, "respCode": "04", "respMsg": "?"}, ResultStatus.UNKNOWN, ErrorClass.SERVER, "04"),
    ],
)
async def test_close_is_decided_by_a_query(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    fields: dict[str, str],
    status: ResultStatus,
    error: ErrorClass,
    code: str,
) -> None:
    mock.post(QUERY).mock(return_value=answer(fields, keys["bank"]))
    result = await adapter.close(TradeRef("P20240101001", created_at=CREATED))
    assert (result.status, result.error, result.code) == (status, error, code)
    if code == "ALREADY_PAID":
        assert (result.channel_trade_no, result.amount) == ("692401011000050000001", 1234)


# --- refunds -----------------------------------------------------------------------------------------------

REFUND_OK = {
    **OK,
    "txnType": "04",
    "txnSubType": "00",
    "orderId": "R20240101002",
    "txnTime": "20240101100000",
    "txnAmt": "234",
    "queryId": "692401011000000000002",
    "origQryId": "692401011000050000001",
    "reqReserved": "{origOrderId=P20240101001&origTxnTime=20240101095500}",
}


async def test_refund_request_fields_and_accepted_is_waiting(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    seen: list[dict[str, str]] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(sent(request))
        return answer(REFUND_OK, keys["bank"])

    mock.post(BACK).mock(side_effect=reply)
    result = await adapter.refund(refund_request())
    assert (result.status, result.channel_refund_no, result.channel_trade_no, result.amount) == (
        ResultStatus.WAITING,
        "692401011000000000002",
        "692401011000050000001",
        234,
    )
    request = seen[0]
    assert signing.verify_fields(request, keys["merchant"].public_key())
    assert {
        k: request[k]
        for k in (
            "txnType",
            "txnSubType",
            "bizType",
            "orderId",
            "txnAmt",
            "origQryId",
            "backUrl",
            "txnTime",
            "currencyCode",
        )
    } == {
        "txnType": "04",
        "txnSubType": "00",
        "bizType": "000201",
        "orderId": "R20240101002",
        "txnAmt": "234",
        "origQryId": "692401011000050000001",
        "backUrl": NOTIFY_URL,
        "txnTime": "20240101100000",
        "currencyCode": "156",
    }
    assert codec.parse_nested(request["reqReserved"]) == {
        "origOrderId": "P20240101001",
        "origTxnTime": "20240101095500",
    }


async def test_refund_without_query_id_asks_the_bank_first(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    back = mock.post(BACK).mock(return_value=answer(REFUND_OK, keys["bank"]))
    mock.post(QUERY).mock(return_value=answer(PAID, keys["bank"]))
    result = await adapter.refund(refund_request(channel_trade_no=None))
    assert result.status is ResultStatus.WAITING
    assert sent(back.calls[0].request)["origQryId"] == "692401011000050000001"

    mock.post(QUERY).mock(return_value=answer({**BASE, "respCode": "34", "respMsg": "查无此交易"}, keys["bank"]))
    unpaid = await adapter.refund(refund_request(channel_trade_no=None))
    assert (unpaid.status, unpaid.error, unpaid.code) == (ResultStatus.FAIL, ErrorClass.REJECTED, "ORIGINAL_NOT_PAID")
    assert back.call_count == 1


@pytest.mark.parametrize(
    ("fields", "status", "amount"),
    [
        ({**REFUND_OK, "origRespCode": "00", "txnType": "00"}, ResultStatus.SUCCESS, 234),
        ({**REFUND_OK, "origRespCode": "05"}, ResultStatus.WAITING, None),
        ({**BASE, "respCode": "34", "respMsg": "查无此交易"}, ResultStatus.WAITING, None),
        ({**REFUND_OK, "origRespCode": "01"}, ResultStatus.FAIL, 234),
    ],
)
async def test_query_refund(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    fields: dict[str, str],
    status: ResultStatus,
    amount: int | None,
) -> None:
    route = mock.post(QUERY).mock(return_value=answer(fields, keys["bank"]))
    result = await adapter.query_refund(RefundRef("P20240101001", "R20240101002", created_at=NOW))
    assert (result.status, result.amount) == (status, amount)
    request = sent(route.calls[0].request)
    assert (request["orderId"], request["txnTime"]) == ("R20240101002", "20240101100000")
    if status is ResultStatus.SUCCESS:
        assert (result.channel_refund_no, result.channel_trade_no) == ("692401011000000000002", "692401011000050000001")


# --- statements ----------------------------------------------------------------------------------------------


async def test_download_statement_inflates_the_zip(
    adapter: BankAdapter, mock: respx.MockRouter, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    zipped = codec.build_statement_zip("INN.csv", [])
    route = mock.post(FILE).mock(
        return_value=answer({**OK, "fileName": "x.zip", "fileContent": codec.encode_file_content(zipped)}, keys["bank"])
    )
    assert await adapter.download_statement(date(2024, 3, 9)) == zipped
    request = sent(route.calls[0].request)
    assert (
        request["txnType"],
        request["txnSubType"],
        request["bizType"],
        request["fileType"],
        request["settleDate"],
    ) == ("76", "01", "000000", "00", "0309")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({**BASE, "respCode": "98", "respMsg": "文件不存在"}, ErrorClass.REJECTED),
        ({**OK, "fileContent": "bm90IHpsaWI="}, ErrorClass.MALFORMED),
    ],
)
async def test_download_statement_failures_raise(
    adapter: BankAdapter,
    mock: respx.MockRouter,
    keys: dict[str, rsa.RSAPrivateKey],
    fields: dict[str, str],
    error: ErrorClass,
) -> None:
    mock.post(FILE).mock(return_value=answer(fields, keys["bank"]))
    with pytest.raises(StatementUnavailable) as info:
        await adapter.download_statement(date(2024, 1, 1))
    assert info.value.result.error is error


async def test_download_statement_needs_a_file_url(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    raw = {k: v for k, v in config(keys).items() if k != "file_url"}
    async with guarded_client(2.0, httpx.AsyncHTTPTransport()) as http:
        with pytest.raises(StatementUnavailable, match="NO_FILE_URL"):
            await BankAdapter(parse_config(raw), http).download_statement(date(2024, 1, 1))


# --- callbacks ---------------------------------------------------------------------------------------------


def notify_body(key: rsa.RSAPrivateKey, **overrides: str | None) -> bytes:
    """A signed back-notify; an override of None drops that field."""
    fields = {
        **BASE,
        "txnType": "01",
        "txnSubType": "01",
        "bizType": "000201",
        "orderId": "P20240101001",
        "txnTime": "20240101095500",
        "txnAmt": "1234",
        "currencyCode": "156",
        "queryId": "692401011000050000001",
        "traceNo": "000001",
        "traceTime": "0101095512",
        "settleAmt": "1234",
        "settleDate": "0101",
        "respCode": "00",
        "respMsg": "成功[0000000]",
    }
    merged: dict[str, str | None] = {**fields, **overrides}
    signed = acp_sign({k: v for k, v in merged.items() if v is not None}, key)
    return urlencode(signed).encode()


def test_parse_callback_payment(adapter: BankAdapter, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    notify = adapter.parse_callback({"content-type": "application/x-www-form-urlencoded"}, notify_body(keys["bank"]))
    assert (notify.kind, notify.status, notify.order_no, notify.amount) == (
        "payment",
        ResultStatus.SUCCESS,
        "P20240101001",
        1234,
    )
    assert notify.channel_trade_no == "692401011000050000001"
    assert notify.paid_at == datetime(2024, 1, 1, 1, 55, 12, tzinfo=UTC)
    no_trace = adapter.parse_callback({}, notify_body(keys["bank"], traceTime=None))
    assert no_trace.paid_at == CREATED


@pytest.mark.parametrize(
    ("code", "status"),
    [("A6", ResultStatus.SUCCESS), ("05", ResultStatus.WAITING), ("01", ResultStatus.FAIL), ("61", ResultStatus.FAIL)],
)
def test_parse_callback_statuses(
    adapter: BankAdapter, keys: dict[str, rsa.RSAPrivateKey], code: str, status: ResultStatus
) -> None:
    notify = adapter.parse_callback({}, notify_body(keys["bank"], respCode=code))
    assert notify.status is status
    assert (notify.paid_at is not None) is (status is ResultStatus.SUCCESS)


def test_parse_callback_refund(adapter: BankAdapter, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    refund: dict[str, str | None] = {
        "txnType": "04",
        "txnSubType": "00",
        "orderId": "R20240101002",
        "txnAmt": "234",
        "queryId": "692401011000000000002",
        "origQryId": "692401011000050000001",
    }
    notify = adapter.parse_callback(
        {}, notify_body(keys["bank"], **refund, reqReserved="{origOrderId=P20240101001&origTxnTime=20240101095500}")
    )
    assert (notify.kind, notify.status, notify.order_no, notify.refund_no, notify.amount) == (
        "refund",
        ResultStatus.SUCCESS,
        "P20240101001",
        "R20240101002",
        234,
    )
    assert (notify.channel_refund_no, notify.channel_trade_no) == ("692401011000000000002", "692401011000050000001")
    without_origin = adapter.parse_callback({}, notify_body(keys["bank"], **refund))
    assert (without_origin.order_no, without_origin.refund_no) == ("R20240101002", "R20240101002")


@pytest.mark.parametrize(
    "case",
    [
        "other_key",
        "tampered",
        "other_mer_id",
        "no_signature",
        "garbage",
        "bad_amount",
        "no_amount",
        "txn_type_31",
        "sign_method_11",
        "no_order_id",
        "repeated_field",
        "superscript_txn_time",
        "fullwidth_trace_time",
    ],
)
def test_parse_callback_rejects(adapter: BankAdapter, keys: dict[str, rsa.RSAPrivateKey], case: str) -> None:
    bank = keys["bank"]
    bodies: dict[str, Callable[[], bytes]] = {
        "other_key": lambda: notify_body(keys["other"]),
        "tampered": lambda: notify_body(bank).replace(b"txnAmt=1234", b"txnAmt=1"),
        "other_mer_id": lambda: notify_body(bank, merId="777290058110049"),
        "no_signature": lambda: b"&".join(p for p in notify_body(bank).split(b"&") if not p.startswith(b"signature=")),
        "garbage": lambda: b"\xff\xfe=\x00",
        "bad_amount": lambda: notify_body(bank, txnAmt="12.34"),
        "no_amount": lambda: notify_body(bank, txnAmt=None),
        "txn_type_31": lambda: notify_body(bank, txnType="31"),
        "sign_method_11": lambda: notify_body(bank, signMethod="11"),
        "no_order_id": lambda: notify_body(bank, orderId=None),
        "repeated_field": lambda: notify_body(bank) + b"&respCode=00",
        # issue 16: digits outside ASCII are malformed, refused in the bank's form rather than read or crashed on
        "superscript_txn_time": lambda: notify_body(bank, txnTime="2024010109550²"),
        "fullwidth_trace_time": lambda: notify_body(bank, traceTime="\uff10\uff11\uff10\uff110955\uff11\uff12"),
    }
    body = bodies[case]()
    with pytest.raises(CallbackRejected):
        adapter.parse_callback({}, body)


def test_callback_ack(adapter: BankAdapter) -> None:
    ok, refused = adapter.callback_ack(True), adapter.callback_ack(False)
    assert (ok.status_code, ok.body) == (200, b"ok")
    assert (refused.status_code, refused.body) == (400, b"fail")
