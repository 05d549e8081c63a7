"""WeChat Pay v2 payment-code wire (`v2.py`) and the adapter's mapping of every micropay/orderquery/reverse answer,
against a fake WeChat whose answers are signed here by hand (hashlib/hmac), independently of the code under test."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest

from tomato.channel.adapters.wechat import WechatAdapter, parse_config, v2
from tomato.channel.protocol import CreateRequest, ErrorClass, ResultStatus, TradeRef
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem

BASE = "https://wechat.test"
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
V2_KEY = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
_RSA = generate_rsa_key()


def hand_sign(fields: dict[str, str], key: str = V2_KEY, md5: bool = False) -> str:
    text = ("&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v and k != "sign") + f"&key={key}").encode()
    if md5:
        return hashlib.md5(text).hexdigest().upper()
    return hmac.new(key.encode(), text, hashlib.sha256).hexdigest().upper()


def answer_xml(fields: dict[str, str], key: str | None = V2_KEY) -> bytes:
    """A WeChat answer, signed by hand unless `key` is None, in plain escaped XML (not CDATA)."""
    body = {"return_code": "SUCCESS", "return_msg": "OK", "appid": APPID, "mch_id": MCHID, "nonce_str": "n1",
            **fields}
    if key is not None:
        body["sign"] = hand_sign(body, key)
    return ("<xml>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in body.items()) + "</xml>").encode()


# --- v2 wire -----------------------------------------------------------------------------------------------------


def test_sign_matches_an_independent_computation_for_both_types() -> None:
    fields = {"appid": APPID, "mch_id": MCHID, "body": "豆浆 & 油条", "total_fee": "1", "empty": "", "sign": "X"}
    assert v2.sign(fields, V2_KEY) == hand_sign(fields)
    assert v2.sign(fields, V2_KEY, v2.MD5) == hand_sign(fields, md5=True)
    signed = v2.signed(fields, V2_KEY)
    assert "empty" not in signed and v2.verify(signed, V2_KEY)
    assert not v2.verify({**signed, "total_fee": "2"}, V2_KEY)
    assert not v2.verify(signed, "x" * 32)
    assert not v2.verify({k: v for k, v in signed.items() if k != "sign"}, V2_KEY)
    with pytest.raises(ValueError):
        v2.sign(fields, V2_KEY, "RSA")


def test_xml_round_trip_keeps_any_text() -> None:
    fields = {"body": "a]]>b <c> & 'd' \"e\" 豆浆", "out_trade_no": "X1"}
    assert v2.from_xml(v2.to_xml(fields)) == fields
    assert v2.from_xml(b"<xml><a>1</a><b><![CDATA[x<y]]></b></xml>") == {"a": "1", "b": "x<y"}


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">]><xml><a>&a;</a></xml>',
        b'<!DOCTYPE xml SYSTEM "http://evil.test/x.dtd"><xml><a>1</a></xml>',
        b"<xml><a><b>nested</b></a></xml>",
        b"<other><a>1</a></other>",
        b"<xml><a>1</a><a>2</a></xml>",
        b"not xml",
        b"<xml><a>1</a>",
    ],
)
def test_from_xml_refuses_doctype_entities_and_odd_shapes(data: bytes) -> None:
    with pytest.raises(ValueError):
        v2.from_xml(data)


def test_times_are_beijing() -> None:
    at = datetime(2026, 3, 1, 16, 30, 5, tzinfo=UTC)
    assert v2.format_time(at) == "20260302003005"
    assert v2.parse_time("20260302003005") == at
    with pytest.raises(ValueError):
        v2.parse_time("2026-03-02")


# --- config ------------------------------------------------------------------------------------------------------


def config(**overrides: Any) -> dict[str, Any]:
    values = {
        "mchid": MCHID, "appid": APPID, "serial_no": "AB12", "private_key_pem": private_key_pem(_RSA),
        "api_v3_key": "k" * 32, "platform_public_key_pem": public_key_pem(_RSA), "platform_public_key_id": "AB12",
        "base_url": BASE, "api_v2_key": V2_KEY, **overrides,
    }
    return {k: v for k, v in values.items() if v is not None}


def test_api_v2_key_is_optional_checked_and_never_shown() -> None:
    parsed = parse_config(config())
    assert parsed.api_v2_key == V2_KEY and V2_KEY not in repr(parsed)
    assert parse_config(config(api_v2_key=None)).api_v2_key is None
    for bad in ("short", "é" * 32, "a" * 31 + "\n", 12345):
        with pytest.raises(ValueError, match="api_v2_key"):
            parse_config(config(api_v2_key=bad))


# --- adapter mapping ---------------------------------------------------------------------------------------------


def adapter(handler: Callable[[httpx.Request], httpx.Response]) -> WechatAdapter:
    return WechatAdapter(parse_config(config()), httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def fixed(body: bytes, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=body)


def req(order_no: str = "B1") -> CreateRequest:
    return CreateRequest(order_no=order_no, amount=100, subject="s", pay_method="BARCODE", notify_url="",
                         expire_at=datetime.now(UTC) + timedelta(minutes=1), auth_code="134567890123456789")


PAID = {"result_code": "SUCCESS", "out_trade_no": "B1", "transaction_id": "4200000001", "total_fee": "100",
        "time_end": "20260302120000"}


@pytest.mark.parametrize(
    ("fields", "status", "error", "code"),
    [
        (PAID, ResultStatus.SUCCESS, ErrorClass.NONE, "SUCCESS"),
        ({"result_code": "FAIL", "err_code": "USERPAYING"}, ResultStatus.WAITING, ErrorClass.NONE, "USERPAYING"),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR"}, ResultStatus.UNKNOWN, ErrorClass.SERVER, "SYSTEMERROR"),
        ({"result_code": "FAIL", "err_code": "BANKERROR"}, ResultStatus.UNKNOWN, ErrorClass.SERVER, "BANKERROR"),
        ({"result_code": "FAIL", "err_code": "ORDERPAID"}, ResultStatus.UNKNOWN, ErrorClass.NONE, "ORDERPAID"),
        ({"result_code": "FAIL", "err_code": "AUTHCODEEXPIRE"}, ResultStatus.FAIL, ErrorClass.REJECTED,
         "AUTHCODEEXPIRE"),
        ({"result_code": "FAIL", "err_code": "NOTENOUGH"}, ResultStatus.FAIL, ErrorClass.REJECTED, "NOTENOUGH"),
        ({"result_code": "FAIL", "err_code": "ORDERCLOSED"}, ResultStatus.FAIL, ErrorClass.REJECTED, "ORDERCLOSED"),
        ({"result_code": "FAIL"}, ResultStatus.UNKNOWN, ErrorClass.SERVER, None),
    ],
)
async def test_micropay_answers(
    fields: dict[str, str], status: ResultStatus, error: ErrorClass, code: str | None
) -> None:
    result = await adapter(fixed(answer_xml(fields))).create(req())
    assert (result.status, result.error, result.code) == (status, error, code)
    if status is ResultStatus.SUCCESS:
        assert (result.amount, result.channel_trade_no) == (100, "4200000001")
        assert result.paid_at == datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "status_code", "error"),
    [
        (answer_xml({"return_code": "FAIL", "return_msg": "签名错误"}, key=None), 200, ErrorClass.BAD_SIGNATURE),
        (answer_xml(PAID, key=None), 200, ErrorClass.BAD_SIGNATURE),  # unsigned success proves nothing
        (answer_xml(PAID, key="z" * 32), 200, ErrorClass.BAD_SIGNATURE),
        (answer_xml({**PAID, "mch_id": "1900000999"}), 200, ErrorClass.MALFORMED),
        (answer_xml({**PAID, "out_trade_no": "OTHER"}), 200, ErrorClass.MALFORMED),
        (answer_xml({**PAID, "time_end": "soon"}), 200, ErrorClass.MALFORMED),
        (b"<html>bad gateway</html>", 502, ErrorClass.SERVER),
        (b"{}", 200, ErrorClass.MALFORMED),
    ],
)
async def test_unprovable_answers_are_unknown(body: bytes, status_code: int, error: ErrorClass) -> None:
    result = await adapter(fixed(body, status_code)).create(req())
    assert (result.status, result.error) == (ResultStatus.UNKNOWN, error)


async def test_transport_failure_is_unknown() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    assert (await adapter(boom).create(req())).status is ResultStatus.UNKNOWN


@pytest.mark.parametrize(
    ("fields", "status", "error", "code"),
    [
        ({**PAID, "trade_state": "SUCCESS"}, ResultStatus.SUCCESS, ErrorClass.NONE, "SUCCESS"),
        ({**PAID, "trade_state": "REFUND"}, ResultStatus.SUCCESS, ErrorClass.NONE, "REFUND"),
        ({"result_code": "SUCCESS", "trade_state": "USERPAYING"}, ResultStatus.WAITING, ErrorClass.NONE, "USERPAYING"),
        ({"result_code": "SUCCESS", "trade_state": "REVOKED"}, ResultStatus.FAIL, ErrorClass.NONE, "REVOKED"),
        ({"result_code": "SUCCESS", "trade_state": "PAYERROR"}, ResultStatus.FAIL, ErrorClass.NONE, "PAYERROR"),
        ({"result_code": "SUCCESS", "trade_state": "CLOSED"}, ResultStatus.FAIL, ErrorClass.NONE, "CLOSED"),
        ({"result_code": "FAIL", "err_code": "ORDERNOTEXIST"}, ResultStatus.WAITING, ErrorClass.NONE,
         "ORDERNOTEXIST"),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR"}, ResultStatus.UNKNOWN, ErrorClass.SERVER, "SYSTEMERROR"),
        ({"result_code": "FAIL", "err_code": "PARAM_ERROR"}, ResultStatus.FAIL, ErrorClass.REJECTED, "PARAM_ERROR"),
        ({"result_code": "SUCCESS", "trade_state": "ODD"}, ResultStatus.UNKNOWN, ErrorClass.MALFORMED, None),
    ],
)
async def test_orderquery_answers(
    fields: dict[str, str], status: ResultStatus, error: ErrorClass, code: str | None
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=answer_xml(fields))

    result = await adapter(handler).query(TradeRef("B1", pay_method="BARCODE"))
    assert (result.status, result.error, result.code) == (status, error, code)
    assert seen[0].url == BASE + "/pay/orderquery"


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"result_code": "SUCCESS", "recall": "N"}, ResultStatus.SUCCESS, ErrorClass.NONE),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR", "recall": "Y"}, ResultStatus.WAITING, ErrorClass.NONE),
        ({"result_code": "FAIL", "err_code": "USERPAYING", "recall": "Y"}, ResultStatus.WAITING, ErrorClass.NONE),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR", "recall": "N"}, ResultStatus.UNKNOWN, ErrorClass.SERVER),
        ({"result_code": "FAIL", "err_code": "REVERSE_EXPIRE", "recall": "N"}, ResultStatus.FAIL, ErrorClass.REJECTED),
    ],
)
async def test_reverse_answers(fields: dict[str, str], status: ResultStatus, error: ErrorClass) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=answer_xml(fields))

    result = await adapter(handler).cancel(TradeRef("B1", "4200000001", pay_method="BARCODE"))
    assert (result.status, result.error) == (status, error)
    sent = v2.from_xml(seen[0].content)
    assert seen[0].url == BASE + "/secapi/pay/reverse"
    assert (sent["out_trade_no"], sent["transaction_id"], sent["sign_type"]) == ("B1", "4200000001", "HMAC-SHA256")
    assert sent["sign"] == hand_sign(sent)


async def test_qr_query_of_a_barcode_less_account_stays_v3() -> None:
    """Only BARCODE orders use orderquery; other orders keep the v3 query path."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(500)

    await adapter(handler).query(TradeRef("Q1", pay_method="WECHAT_NATIVE"))
    assert seen == ["/v3/pay/transactions/out-trade-no/Q1"]
