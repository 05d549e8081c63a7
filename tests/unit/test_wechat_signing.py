"""WeChat Pay v3 signing, notify encryption, wire codec and config, byte for byte, cross-checked with wechatpayv3.

Keys are generated per module; nothing is copied from other projects (docs/channels.md).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from wechatpayv3 import utils as sdk_utils

from tomato.channel.adapters.wechat import WechatConfig, codec, parse_config, signing
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem, rsa_sign_b64

API_V3_KEY = "0123456789abcdefghijABCDEFGHIJ01"


@pytest.fixture(scope="module")
def merchant_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


@pytest.fixture(scope="module")
def wechat_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


def _bare(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


# --- request signatures ---------------------------------------------------------------------------------


def test_request_message_is_five_lines_each_ending_in_newline() -> None:
    body = '{"mchid":"1230000109","description":"会员"}'.encode()
    message = signing.request_message("post", "/v3/x?mchid=1", "1554208460", "N1", body)
    assert message == b"POST\n/v3/x?mchid=1\n1554208460\nN1\n" + body + b"\n"
    assert signing.request_message("GET", "/v3/y", "1", "N", b"") == b"GET\n/v3/y\n1\nN\n\n"


def test_authorization_round_trip_in_any_item_order(merchant_key: rsa.RSAPrivateKey) -> None:
    body = b'{"a":1}'
    header = signing.authorization(
        mchid="1900000109",
        serial_no="ABC123",
        private_key=merchant_key,
        method="POST",
        url="/v3/p",
        body=body,
        timestamp="1700000000",
        nonce="NONCE",
    )
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="NONCE",timestamp="1700000000"')
    items = signing.parse_authorization(header)
    assert signing.verify_request(merchant_key.public_key(), items, "POST", "/v3/p", body)
    reordered = "WECHATPAY2-SHA256-RSA2048 " + ", ".join(f'{k}="{v}"' for k, v in reversed(list(items.items())))
    assert signing.parse_authorization(reordered) == items
    assert not signing.verify_request(merchant_key.public_key(), items, "POST", "/v3/p", b'{"a":2}')
    assert not signing.verify_request(merchant_key.public_key(), items, "POST", "/v3/p?x=1", body)
    assert not signing.verify_request(merchant_key.public_key(), items, "GET", "/v3/p", body)
    assert not signing.verify_request(generate_rsa_key().public_key(), items, "POST", "/v3/p", body)


@pytest.mark.parametrize(
    "header",
    [
        "",
        'WECHATPAY2-SHA256-RSA1024 mchid="1",nonce_str="n",timestamp="1",serial_no="s",signature="x"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="1",serial_no="s"',
        'WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="2",nonce_str="n",timestamp="1",serial_no="s",signature="x"',
        "WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str=n,timestamp=1,serial_no=s,signature=x",
        'WECHATPAY2-SHA256-RSA2048 mchid="",nonce_str="n",timestamp="1",serial_no="s",signature="x"',
    ],
)
def test_parse_authorization_rejects_malformed(header: str) -> None:
    with pytest.raises(ValueError):
        signing.parse_authorization(header)


def test_sdk_authorization_verifies_and_equals_ours(merchant_key: rsa.RSAPrivateKey) -> None:
    """PKCS#1 v1.5 is deterministic: wechatpayv3 and we must produce the same signature for the same message."""
    data = {"appid": "wx1", "mchid": "1900000109", "description": "测试", "amount": {"total": 1}}
    header = sdk_utils.build_authorization(
        "/v3/pay/transactions/native", "POST", "1900000109", "SERIAL1", merchant_key, data=data
    )
    items = signing.parse_authorization(header)
    body = json.dumps(data).encode()  # what the SDK sends (and signs): ensure_ascii escapes included
    assert signing.verify_request(merchant_key.public_key(), items, "POST", "/v3/pay/transactions/native", body)
    ours = signing.authorization(
        mchid="1900000109",
        serial_no="SERIAL1",
        private_key=merchant_key,
        method="POST",
        url="/v3/pay/transactions/native",
        body=body,
        timestamp=items["timestamp"],
        nonce=items["nonce_str"],
    )
    assert signing.parse_authorization(ours)["signature"] == items["signature"]


# --- response signatures --------------------------------------------------------------------------------


def test_response_signature_matches_the_sdk_both_ways(wechat_key: rsa.RSAPrivateKey) -> None:
    body = '{"code_url":"weixin://wxpay/bizpayurl?pr=abc","desc":"会员"}'.encode()
    signature = signing.sign_response(wechat_key, "1700000000", "NONCE", body)
    assert sdk_utils.rsa_verify("1700000000", "NONCE", body.decode(), signature, wechat_key.public_key())
    sdk_signature = sdk_utils.rsa_sign(wechat_key, "1700000000\nNONCE\n" + body.decode() + "\n")
    assert sdk_signature == signature
    assert signing.verify_response(wechat_key.public_key(), "1700000000", "NONCE", body, signature)
    assert not signing.verify_response(wechat_key.public_key(), "1700000001", "NONCE", body, signature)
    assert not signing.verify_response(wechat_key.public_key(), "1700000000", "NONCE", body + b" ", signature)
    assert not signing.verify_response(wechat_key.public_key(), "1700000000", "NONCE", body, "")


def test_empty_204_body_is_an_empty_line(wechat_key: rsa.RSAPrivateKey) -> None:
    assert signing.response_message("1", "N", b"") == b"1\nN\n\n"
    headers = signing.signed_headers(wechat_key, "PUB_KEY_ID_0114", b"", 1700000000)
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert headers["Wechatpay-Serial"] == "PUB_KEY_ID_0114" and headers["Wechatpay-Timestamp"] == "1700000000"
    assert len(headers["Wechatpay-Nonce"]) == 32 and headers["Request-ID"]
    assert sdk_utils.rsa_verify(
        "1700000000", headers["Wechatpay-Nonce"], "", headers["Wechatpay-Signature"], wechat_key.public_key()
    )


@pytest.mark.parametrize(
    ("timestamp", "fresh"),
    [
        ("1700000000", True),
        ("1700000299", True),
        ("1699999701", True),
        ("1700000300", False),
        ("1699999700", False),
        ("", False),
        ("17e8", False),
        ("-1700000000", False),
        ("１７００００００００", False),
    ],
)
def test_timestamp_window_is_five_minutes_both_ways(timestamp: str, fresh: bool) -> None:
    assert signing.timestamp_fresh(timestamp, 1700000000.0) is fresh


@pytest.mark.parametrize(
    ("presented", "configured", "match"),
    [
        ("PUB_KEY_ID_0114000000000001", "PUB_KEY_ID_0114000000000001", True),
        ("PUB_KEY_ID_0114000000000002", "PUB_KEY_ID_0114000000000001", False),
        ("pub_key_id_0114000000000001", "PUB_KEY_ID_0114000000000001", False),
        ("5157f09efdc096de", "05157F09EFDC096DE", True),  # certificate serials compare as hex numbers
        ("5157F09EFDC096DF", "5157F09EFDC096DE", False),
        ("PUB_KEY_ID_1", "1", False),
        ("not-hex", "ABC", False),
    ],
)
def test_serial_matching(presented: str, configured: str, match: bool) -> None:
    assert signing.serial_matches(presented, configured) is match


def test_jsapi_pay_sign_equals_the_sdk_sign(merchant_key: rsa.RSAPrivateKey) -> None:
    ours = signing.jsapi_pay_sign(merchant_key, "wx1", "1700000000", "NONCE", "prepay_id=wx2")
    expected = sdk_utils.rsa_sign(merchant_key, "\n".join(["wx1", "1700000000", "NONCE", "prepay_id=wx2"]) + "\n")
    assert ours == expected


# --- notify encryption ----------------------------------------------------------------------------------


def test_resource_encryption_is_aes_256_gcm_that_the_sdk_decrypts() -> None:
    nonce = signing.resource_nonce()
    assert len(nonce) == 12 and nonce.isalnum()
    plaintext = '{"out_trade_no":"P1","summary":"支付成功"}'.encode()
    ciphertext = signing.encrypt_resource(API_V3_KEY, nonce, "transaction", plaintext)
    assert sdk_utils.aes_decrypt(nonce, ciphertext, "transaction", API_V3_KEY) == plaintext.decode()
    assert signing.decrypt_resource(API_V3_KEY, nonce, "transaction", ciphertext) == plaintext
    # Independently: AESGCM(key) over (nonce, plaintext, AD), base64(ciphertext ‖ tag).
    expected = AESGCM(API_V3_KEY.encode()).encrypt(nonce.encode(), plaintext, b"transaction")
    assert base64.b64decode(ciphertext) == expected


@pytest.mark.parametrize("case", ["key", "ad", "nonce", "tag", "base64"])
def test_resource_decryption_fails_closed(case: str) -> None:
    nonce = "abcdefghijkl"
    ciphertext = signing.encrypt_resource(API_V3_KEY, nonce, "refund", b"{}")
    args = {"api_v3_key": API_V3_KEY, "nonce": nonce, "associated_data": "refund", "ciphertext_b64": ciphertext}
    if case == "key":
        args["api_v3_key"] = "X" * 32
    elif case == "ad":
        args["associated_data"] = "transaction"
    elif case == "nonce":
        args["nonce"] = "abcdefghijkm"
    elif case == "tag":
        raw = bytearray(base64.b64decode(ciphertext))
        raw[-1] ^= 1
        args["ciphertext_b64"] = base64.b64encode(bytes(raw)).decode()
    else:
        args["ciphertext_b64"] = "not base64!"
    with pytest.raises(signing.DecryptError):
        signing.decrypt_resource(**args)


def _envelope(**overrides: Any) -> bytes:
    nonce = "abcdefghijkl"
    resource = {
        "original_type": "transaction",
        "algorithm": "AEAD_AES_256_GCM",
        "associated_data": "transaction",
        "nonce": nonce,
        "ciphertext": signing.encrypt_resource(API_V3_KEY, nonce, "transaction", b'{"a":1}'),
    }
    envelope: dict[str, Any] = {
        "id": "E1",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "resource": resource,
    }
    for key, value in overrides.items():
        if key.startswith("r_"):
            resource[key[2:]] = value
        else:
            envelope[key] = value
    return json.dumps(envelope).encode()


def test_open_notify() -> None:
    envelope, data = signing.open_notify(API_V3_KEY, _envelope())
    assert envelope["id"] == "E1" and data == {"a": 1}
    for bad in (
        _envelope(resource_type="plain"),
        _envelope(r_algorithm="AEAD_AES_128_GCM"),
        _envelope(resource=[]),
        _envelope(r_nonce=None),
        b"[]",
        b"garbage",
        _envelope(r_associated_data="other"),
    ):
        with pytest.raises(ValueError):
            signing.open_notify(API_V3_KEY, bad)


def test_seal_notify_opens_again() -> None:
    body = signing.seal_notify(
        API_V3_KEY,
        notify_id="EV-1",
        create_time="2024-01-01T10:00:06+08:00",
        event_type="REFUND.SUCCESS",
        summary="退款成功",
        original_type="refund",
        plaintext=b'{"out_refund_no":"R1"}',
    )
    envelope, data = signing.open_notify(API_V3_KEY, body)
    assert data == {"out_refund_no": "R1"}
    assert envelope["resource"]["associated_data"] == "refund" and envelope["event_type"] == "REFUND.SUCCESS"
    assert "退款成功".encode() in body  # raw UTF-8
    with pytest.raises(ValueError):
        signing.open_notify("Y" * 32, body)


# --- codec ----------------------------------------------------------------------------------------------


def test_times_are_rfc3339_in_beijing() -> None:
    moment = datetime(2024, 1, 1, 2, 30, 5, 123456, tzinfo=UTC)
    assert codec.format_time(moment) == "2024-01-01T10:30:05+08:00"
    assert codec.format_time(datetime(2024, 1, 1, 2, 30)) == "2024-01-01T10:30:00+08:00"  # naive is UTC
    assert codec.parse_time("2024-01-01T10:30:05+08:00") == datetime(2024, 1, 1, 2, 30, 5, tzinfo=UTC)
    assert codec.parse_time("2024-01-01T02:30:05Z") == datetime(2024, 1, 1, 2, 30, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        codec.parse_time("2024-01-01T10:30:05")
    assert codec.beijing_date(datetime(2024, 1, 1, 16, 0, tzinfo=UTC)) == date(2024, 1, 2)


def test_json_is_compact_raw_utf8_and_amounts_are_integer_fen() -> None:
    expected = '{"description":"会员","amount":{"total":1}}'.encode()
    assert codec.dumps({"description": "会员", "amount": {"total": 1}}) == expected
    body = codec.loads_object(b'{"amount":{"total":12.34,"refund":1,"flag":true,"text":"1"}}')
    with pytest.raises(ValueError):
        codec.fen_field(body["amount"], "total")  # a float is never money
    assert codec.fen_field(body["amount"], "refund") == 1
    for name in ("flag", "text", "missing"):
        with pytest.raises(ValueError):
            codec.fen_field(body["amount"], name)
    with pytest.raises(ValueError):
        codec.loads_object(b"[1]")


def test_gunzip_caps_and_checks() -> None:
    assert codec.gunzip(gzip.compress(b"abc")) == b"abc"
    with pytest.raises(ValueError, match="too large"):
        codec.gunzip(gzip.compress(b"x" * 2000), limit=1000)
    with pytest.raises(ValueError):
        codec.gunzip(b"not gzip")
    with pytest.raises(ValueError, match="truncated"):
        codec.gunzip(gzip.compress(os.urandom(5000))[:-20])


BJ = timezone(timedelta(hours=8))


def test_trade_bill_matches_the_published_layout() -> None:
    """The synthetic ALL example of docs/reconciliation.md, rebuilt from its values."""
    common = {
        "appid": "wx0000000000000001",
        "mchid": "1900000001",
        "transaction_id": "4200000000202401010000000001",
        "out_trade_no": "T20240101001",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "trade_type": "NATIVE",
        "description": "会员充值",
    }
    lines = [
        codec.BillLine(time=datetime(2024, 1, 1, 10, 0, 5, tzinfo=BJ), amount=1234, fee=7, **common),
        codec.BillLine(
            time=datetime(2024, 1, 1, 15, 30, tzinfo=BJ),
            amount=234,
            fee=-1,
            refund_id="50300000002024010100000000001",
            out_refund_no="R20240101001",
            **common,
        ),
    ]
    text = codec.format_trade_bill(lines).decode()
    expected = (
        codec.BILL_HEADER + "\r\n"
        "`2024-01-01 10:00:05,`wx0000000000000001,`1900000001,`0,`,`4200000000202401010000000001,`T20240101001,"
        "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`0,`0,`0.00,`0.00,`,`,`会员充值,`,"
        "`0.07000,`0.60%,`12.34,`0.00,`\r\n"
        "`2024-01-01 15:30:00,`wx0000000000000001,`1900000001,`0,`,`4200000000202401010000000001,`T20240101001,"
        "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300000002024010100000000001,"
        "`R20240101001,`2.34,`0.00,`ORIGINAL,`SUCCESS,`会员充值,`,`-0.01000,`0.60%,`0.00,`2.34,`\r\n"
        + codec.BILL_SUMMARY_HEADER
        + "\r\n"
        "`2,`12.34,`2.34,`0.00,`0.06000,`12.34,`2.34\r\n"
    )
    assert text == expected
    assert len(codec.BILL_HEADER.split(",")) == 27

    bill = codec.parse_trade_bill(text.replace("\r\n", "\n").encode())  # parse both line endings
    assert [r["交易状态"] for r in bill.rows] == ["SUCCESS", "REFUND"]
    assert bill.rows[1]["商户退款单号"] == "R20240101001" and bill.rows[1]["退款金额"] == "2.34"
    assert bill.summary["手续费总金额"] == "0.06000"
    with pytest.raises(ValueError):
        codec.parse_trade_bill(b"header only\r\n")
    with pytest.raises(ValueError):
        codec.parse_trade_bill((codec.BILL_HEADER + "\n`1,`2\n" + codec.BILL_SUMMARY_HEADER + "\n`0").encode())


def test_checked_bill_compares_sha1_of_the_decompressed_text() -> None:
    text = "交易时间\r\n".encode()
    digest = codec.bill_hash(text)
    assert len(digest) == 40
    assert codec.checked_bill(gzip.compress(text), digest.upper()) == text
    with pytest.raises(ValueError, match="mismatch"):
        codec.checked_bill(gzip.compress(text + b"x"), digest)


# --- config ---------------------------------------------------------------------------------------------


def _config(merchant_key: rsa.RSAPrivateKey, wechat_key: rsa.RSAPrivateKey, **overrides: Any) -> dict[str, Any]:
    return {
        "mchid": "1900000109",
        "appid": "wxd678efh567hg6787",
        "serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "private_key_pem": private_key_pem(merchant_key),
        "api_v3_key": API_V3_KEY,
        "platform_public_key_pem": public_key_pem(wechat_key),
        "platform_public_key_id": "PUB_KEY_ID_0114232806862025052600451000000000",
        "base_url": "https://api.mch.weixin.qq.com",
        **overrides,
    }


def test_parse_config_accepts_pem_and_bare_base64(
    merchant_key: rsa.RSAPrivateKey, wechat_key: rsa.RSAPrivateKey
) -> None:
    config = parse_config(_config(merchant_key, wechat_key))
    assert isinstance(config, WechatConfig) and config.base_url == "https://api.mch.weixin.qq.com"
    bare = parse_config(
        _config(
            merchant_key,
            wechat_key,
            private_key_pem=_bare(private_key_pem(merchant_key)),
            platform_public_key_pem=_bare(public_key_pem(wechat_key)),
            base_url="http://127.0.0.1:9100/",
        )
    )
    assert bare.base_url == "http://127.0.0.1:9100"
    assert API_V3_KEY not in repr(config) and "PRIVATE" not in repr(config)
    cert_serial = parse_config(_config(merchant_key, wechat_key, platform_public_key_id="5157F09EFDC096DE"))
    assert cert_serial.platform_public_key_id == "5157F09EFDC096DE"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mchid", None),
        ("mchid", "19000abc"),
        ("appid", ""),
        ("serial_no", 'AB",x="1'),
        ("private_key_pem", "nope"),
        ("api_v3_key", "0123456789abcdefghijABCDEFGHIJ0"),
        ("api_v3_key", API_V3_KEY + "2"),
        ("api_v3_key", "会" * 32),
        ("platform_public_key_pem", "MIIB"),
        ("platform_public_key_id", "PUB_KEY_ID_"),
        ("platform_public_key_id", "some id"),
        ("base_url", "ftp://api.mch.weixin.qq.com"),
        ("base_url", "https://api.mch.weixin.qq.com/v3"),
        ("base_url", "https://api.mch.weixin.qq.com?x=1"),
        ("base_url", "api.mch.weixin.qq.com"),
        ("base_url", "http://127.0.0.1:port"),
        ("mchid", "1900000109\n1"),
        ("platform_certificate_pem", 42),
        ("platform_certificate_pem", "-----BEGIN CERTIFICATE-----"),
    ],
)
def test_parse_config_names_the_bad_field(
    merchant_key: rsa.RSAPrivateKey, wechat_key: rsa.RSAPrivateKey, field: str, value: Any
) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        parse_config(_config(merchant_key, wechat_key, **{field: value}))


def self_signed_certificate(key: rsa.RSAPrivateKey, serial: int) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA (test)")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM).decode()


def test_platform_certificate_gives_its_hex_serial(wechat_key: rsa.RSAPrivateKey) -> None:
    pem = self_signed_certificate(wechat_key, 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1)
    serial, key = signing.certificate(pem)
    assert serial == "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    signature = rsa_sign_b64(wechat_key, b"1\nN\n\n")
    assert signing.verify_response(key, "1", "N", b"", signature)
