"""Alipay RSA2 signing and wire codec, byte for byte, cross-checked against python-alipay-sdk (fzlee).

Keys are generated per test session; nothing is copied from other projects.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.alipay import codec, parse_config, signing
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem, rsa_verify_b64
from tomato.core.money import MoneyFormatError


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


@pytest.fixture(scope="module")
def alipay_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


def _bare(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


# --- request signing ------------------------------------------------------------------------------------


def test_sign_content_drops_sign_and_empty_keeps_sign_type_sorted_raw() -> None:
    params = {
        "timestamp": "2024-01-01 10:00:00",
        "sign": "xxx",
        "app_id": "2021000000000001",
        "return_url": "",
        "sign_type": "RSA2",
        "biz_content": '{"subject":"会员 & 充值","total_amount":"12.34"}',
    }
    assert signing.sign_content(params) == (
        'app_id=2021000000000001&biz_content={"subject":"会员 & 充值","total_amount":"12.34"}'
        "&sign_type=RSA2&timestamp=2024-01-01 10:00:00"
    )


def test_signed_params_verify_and_tampering_fails(app_key: rsa.RSAPrivateKey) -> None:
    params = codec.common_params("2021000000000001", "alipay.trade.query", datetime(2024, 1, 1, 2, tzinfo=UTC))
    params["biz_content"] = codec.biz_content({"out_trade_no": "P1"})
    signed = signing.sign_params(params, app_key)
    assert signing.verify_params(signed, app_key.public_key())
    assert not signing.verify_params({**signed, "biz_content": '{"out_trade_no":"P2"}'}, app_key.public_key())
    assert not signing.verify_params({**signed, "sign_type": "RSA"}, app_key.public_key())  # sign_type is signed
    assert not signing.verify_params({k: v for k, v in signed.items() if k != "sign"}, app_key.public_key())
    assert not signing.verify_params(signed, generate_rsa_key().public_key())


def test_our_request_signature_equals_the_sdk_one(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> None:
    """PKCS#1 v1.5 is deterministic: the SDK and we must produce the same `sign` for the same params."""
    sdk = AliPay(
        appid="2021000000000001",
        app_notify_url=None,
        app_private_key_string=private_key_pem(app_key),
        alipay_public_key_string=public_key_pem(alipay_key),
    )
    data = sdk.build_body("alipay.trade.precreate", {"out_trade_no": "P1", "total_amount": "0.01", "subject": "测试"})
    query = sdk.sign_data(dict(data))
    sdk_params = dict(parse_qsl(query, keep_blank_values=True))
    assert signing.verify_params(sdk_params, app_key.public_key())
    ours = signing.sign_params({k: v for k, v in sdk_params.items() if k != "sign"}, app_key)
    assert ours["sign"] == sdk_params["sign"]


# --- notifies -------------------------------------------------------------------------------------------


def test_notify_content_drops_sign_and_sign_type(alipay_key: rsa.RSAPrivateKey) -> None:
    fields = {"trade_status": "TRADE_SUCCESS", "sign_type": "RSA2", "app_id": "A", "total_amount": "0.10"}
    assert signing.notify_content({**fields, "sign": "s"}) == "app_id=A&total_amount=0.10&trade_status=TRADE_SUCCESS"
    signed = signing.sign_notify(fields, alipay_key)
    assert signing.verify_notify(signed, alipay_key.public_key())
    assert not signing.verify_notify({**signed, "total_amount": "0.11"}, alipay_key.public_key())
    # A signer that (wrongly) kept sign_type in the content does not verify.
    wrong = {**fields, "sign": signing.sign_params(fields, alipay_key)["sign"]}
    assert not signing.verify_notify(wrong, alipay_key.public_key())


def test_sdk_verifies_our_notify_signature(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> None:
    sdk = AliPay(
        appid="A",
        app_notify_url=None,
        app_private_key_string=private_key_pem(app_key),
        alipay_public_key_string=public_key_pem(alipay_key),
    )
    signed = signing.sign_notify({"app_id": "A", "subject": "会员", "sign_type": "RSA2"}, alipay_key)
    data = {k: v for k, v in signed.items() if k != "sign"}
    assert sdk.verify(data, signed["sign"]) is True


# --- sync responses ------------------------------------------------------------------------------------


def test_extract_node_is_the_raw_substring() -> None:
    node = '{"code":"10000","msg":"Success","qr_code":"https:\\/\\/qr.alipay.com\\/x","list":[{"a":"1"}]}'
    body = '{"alipay_trade_precreate_response" :\n ' + node + ',"sign":"abc"}'
    assert signing.extract_node(body, "alipay_trade_precreate_response") == node
    assert signing.extract_node(body, "alipay_trade_query_response") is None
    assert signing.extract_node('{"x_response":"str"}', "x_response") is None
    assert signing.extract_node('{"x_response":{"a":"b"', "x_response") is None


def test_extract_node_ignores_braces_inside_strings() -> None:
    node = '{"sub_msg":"bad } value {","code":"40004"}'
    assert signing.extract_node('{"k_response":' + node + ',"sign":"s"}', "k_response") == node


def test_signed_response_passes_the_sdk(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> None:
    node = '{"code":"10000","msg":"Success","out_trade_no":"P1","qr_code":"https://qr.alipay.com/sim1"}'
    body = signing.sign_response("alipay_trade_precreate_response", node, alipay_key)
    assert body.startswith('{"alipay_trade_precreate_response":' + node + ',"sign":"')
    sdk = AliPay(
        appid="A",
        app_notify_url=None,
        app_private_key_string=private_key_pem(app_key),
        alipay_public_key_string=public_key_pem(alipay_key),
    )
    assert sdk._verify_and_return_sync_response(body, "alipay_trade_precreate_response")["qr_code"] == (
        "https://qr.alipay.com/sim1"
    )
    raw = signing.extract_node(body, "alipay_trade_precreate_response")
    assert raw == node
    signature = body.rsplit('"sign":"', 1)[1][:-2]
    assert signing.verify_response_node(raw, signature, alipay_key.public_key())
    assert not signing.verify_response_node(raw.replace("P1", "P2"), signature, alipay_key.public_key())
    assert not signing.verify_response_node(raw, "", alipay_key.public_key())
    assert rsa_verify_b64(alipay_key.public_key(), node.encode(), signature)


# --- codec ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fen", "text"), [(1, "0.01"), (10, "0.10"), (1234, "12.34"), (100, "1.00"), (0, "0.00")])
def test_yuan_strings_have_two_decimals(fen: int, text: str) -> None:
    assert codec.yuan(fen) == text
    assert codec.fen(text) == fen
    assert isinstance(codec.fen(text), int)


def test_amounts_refuse_floats_and_fractions_of_fen() -> None:
    with pytest.raises(TypeError):
        codec.yuan(12.34)  # type: ignore[arg-type]
    with pytest.raises(MoneyFormatError):
        codec.fen("12.345")
    with pytest.raises(MoneyFormatError):
        codec.fen("abc")
    assert codec.fen(str(Decimal("0.10"))) == 10


def test_beijing_time_round_trip() -> None:
    utc = datetime(2024, 1, 1, 16, 30, 5, tzinfo=UTC)
    assert codec.format_beijing(utc) == "2024-01-02 00:30:05"
    back = codec.parse_beijing("2024-01-02 00:30:05")
    assert back == utc and back.utcoffset() is not None and back.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        codec.parse_beijing("2024-01-02T00:30:05Z")
    assert codec.format_bill_date(date(2024, 1, 2)) == "2024-01-02"


def test_biz_content_is_compact_raw_utf8() -> None:
    assert codec.biz_content({"subject": "会员", "total_amount": "1.00"}) == '{"subject":"会员","total_amount":"1.00"}'


def test_post_split_puts_only_common_params_in_the_query() -> None:
    params = codec.common_params("A", "alipay.trade.precreate", datetime(2024, 1, 1, tzinfo=UTC), notify_url="http://n")
    params["biz_content"] = "{}"
    params["sign"] = "s"
    query, form = codec.split_for_post(params)
    assert form == {"biz_content": "{}"}
    assert query["notify_url"] == "http://n" and query["sign"] == "s" and "biz_content" not in query
    assert "return_url" not in params  # empty optional URLs are not sent


def test_redirect_url_round_trips_the_signed_params(app_key: rsa.RSAPrivateKey) -> None:
    params = codec.common_params(
        "A", "alipay.trade.wap.pay", datetime(2024, 1, 1, tzinfo=UTC), return_url="http://r?x=1"
    )
    params["biz_content"] = codec.biz_content({"subject": "会员 & 充值", "out_trade_no": "P1"})
    signed = signing.sign_params(params, app_key)
    url = codec.redirect_url("http://127.0.0.1:9100/alipay/gateway.do", signed)
    parts = urlsplit(url)
    assert parts.path == "/alipay/gateway.do"
    parsed = codec.parse_form(parts.query)
    assert parsed == signed
    assert signing.verify_params(parsed, app_key.public_key())


def test_parse_form_refuses_repeated_keys() -> None:
    with pytest.raises(ValueError):
        codec.parse_form(b"a=1&a=2")


# --- config ---------------------------------------------------------------------------------------------


def _config(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> dict[str, str]:
    return {
        "app_id": "2021000000000001",
        "private_key_pem": private_key_pem(app_key),
        "alipay_public_key_pem": public_key_pem(alipay_key),
        "gateway_url": "http://127.0.0.1:9100/alipay/gateway.do",
    }


def test_parse_config_accepts_pem_and_bare_base64(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> None:
    raw = _config(app_key, alipay_key)
    assert parse_config(raw).app_id == "2021000000000001"
    bare = {
        **raw,
        "private_key_pem": _bare(raw["private_key_pem"]),
        "alipay_public_key_pem": _bare(raw["alipay_public_key_pem"]),
    }
    config = parse_config(bare)
    assert "PRIVATE" not in repr(config) and raw["private_key_pem"][40:80] not in repr(config)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("app_id", ""),
        ("private_key_pem", "not a key"),
        ("alipay_public_key_pem", "not a key"),
        ("gateway_url", "ftp://x/gateway.do"),
        ("gateway_url", None),
    ],
)
def test_parse_config_names_the_bad_field(
    app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey, field: str, value: str | None
) -> None:
    raw: dict[str, str | None] = {**_config(app_key, alipay_key), field: value}
    with pytest.raises(ValueError, match=field):
        parse_config(raw)
