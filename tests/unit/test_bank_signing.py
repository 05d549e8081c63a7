"""Bank (UnionPay ACP 5.1.0, signMethod 01) signing and wire codec, byte for byte.

The signature is cross-checked against a second implementation written in this file from docs/channels.md
§C3 alone (filter blanks, sort, `k=v&…`, lowercase hex SHA-256, RSA-SHA256 over those 64 ASCII bytes, base64).
Keys are generated per test module; the only pinned value is the key-free §D9 digest.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
import zlib
from datetime import UTC, date, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from tomato.channel.adapters.bank import codec, parse_config, signing
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem

D9_CONTENT = (
    "accessType=0&backUrl=https://m.example.com/notify/bank&bizType=000201&certId=69629715588&channelType=07"
    "&currencyCode=156&encoding=UTF-8&frontUrl=https://m.example.com/return/bank&merId=777290058110048"
    "&orderId=T20240101001&signMethod=01&txnAmt=1234&txnSubType=01&txnTime=20240101100000&txnType=01&version=5.1.0"
)
D9_DIGEST = "57b398f90c0c3281a5fe52991814b1ad3baef11d8bf7539ec7bfc2e264cb97cf"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


def d9_fields() -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in D9_CONTENT.split("&"))


# --- an independent implementation, from the reference text only ------------------------------------------


def ref_sign(fields: dict[str, str], key: rsa.RSAPrivateKey, cert_id: str) -> dict[str, str]:
    data = {k: v.strip() for k, v in fields.items() if v.strip() != ""}
    data["certId"] = cert_id
    data.pop("signature", None)
    content = "&".join(k + "=" + data[k] for k in sorted(data))
    hex_digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    data["signature"] = base64.b64encode(
        key.sign(hex_digest.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    return data


def ref_verify(fields: dict[str, str], public: rsa.RSAPublicKey) -> bool:
    content = "&".join(k + "=" + fields[k] for k in sorted(fields) if k != "signature")
    hex_digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    try:
        public.verify(
            base64.b64decode(fields["signature"]), hex_digest.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, KeyError):
        return False
    return True


# --- signing ----------------------------------------------------------------------------------------------


def test_d9_content_and_digest_are_reproduced() -> None:
    fields = d9_fields()
    assert signing.sign_content({**fields, "signature": "ignored"}) == D9_CONTENT
    assert signing.sign_digest(fields) == D9_DIGEST
    assert signing.prepare({k: v for k, v in fields.items() if k != "certId"}, "69629715588") == fields


def test_ours_verify_with_the_reference_and_back(key: rsa.RSAPrivateKey) -> None:
    fields = {k: v for k, v in d9_fields().items() if k != "certId"}
    fields["reqReserved"] = "{origOrderId=P1&note=a=b}"
    ours = signing.sign_fields(fields, key, "69629715588")
    theirs = ref_sign(fields, key, "69629715588")
    assert ours == theirs  # PKCS#1 v1.5 is deterministic: same fields, same signature
    assert ref_verify(ours, key.public_key())
    assert signing.verify_fields(theirs, key.public_key())
    other = ref_sign({**fields, "orderId": "T20240101002"}, key, "1")
    assert signing.verify_fields(other, key.public_key()) and ref_verify(other, key.public_key())


def test_the_rsa_step_signs_the_hex_digest_not_the_content(key: rsa.RSAPrivateKey) -> None:
    signed = signing.sign_fields(d9_fields(), key, "69629715588")
    digest = signing.sign_digest(signed)
    assert len(digest) == 64 and digest == digest.lower()
    raw = base64.b64decode(signed["signature"])
    key.public_key().verify(raw, digest.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    single_hash = base64.b64encode(
        key.sign(signing.sign_content(signed).encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    assert not signing.verify_fields({**signed, "signature": single_hash}, key.public_key())


def test_sign_fields_filters_blanks_trims_and_sets_cert_id(key: rsa.RSAPrivateKey) -> None:
    signed = signing.sign_fields(
        {"orderId": " T1 ", "frontUrl": "", "reqReserved": "   ", "signature": "old", "certId": "9"}, key, "42"
    )
    assert set(signed) == {"orderId", "certId", "signature"}
    assert signed["orderId"] == "T1" and signed["certId"] == "42"
    assert signing.sign_content(signed) == "certId=42&orderId=T1"


def test_verify_fails_on_tampering_other_key_and_missing_signature(key: rsa.RSAPrivateKey) -> None:
    signed = signing.sign_fields(d9_fields(), key, "69629715588")
    public = key.public_key()
    assert signing.verify_fields(signed, public)
    assert not signing.verify_fields({**signed, "txnAmt": "1"}, public)
    assert not signing.verify_fields({**signed, "extra": "x"}, public)  # every received field is covered
    assert not signing.verify_fields({k: v for k, v in signed.items() if k != "signature"}, public)
    assert not signing.verify_fields({**signed, "signature": "not base64!"}, public)
    assert not signing.verify_fields(signed, generate_rsa_key().public_key())


# --- k=v&… bodies -----------------------------------------------------------------------------------------


def test_parse_kv_keeps_nested_values_whole() -> None:
    body = (
        "respCode=00&respMsg=成功[0000000]&reqReserved={origOrderId=P1&origTxnTime=20240101100000}"
        "&riskRateInfo={a={b=1&c=[x&y]}&d=2}&signature=ab+c/d==&empty="
    )
    assert codec.parse_kv(body) == {
        "respCode": "00",
        "respMsg": "成功[0000000]",
        "reqReserved": "{origOrderId=P1&origTxnTime=20240101100000}",
        "riskRateInfo": "{a={b=1&c=[x&y]}&d=2}",
        "signature": "ab+c/d==",
        "empty": "",
    }
    assert codec.parse_nested("{origOrderId=P1&origTxnTime=20240101100000}") == {
        "origOrderId": "P1",
        "origTxnTime": "20240101100000",
    }


def test_parse_kv_literals() -> None:
    assert codec.parse_kv("a=x}y&b=]") == {"a": "x}y", "b": "]"}  # a closer without opener is literal
    assert codec.parse_kv("a={x]}&b=1") == {"a": "{x]}", "b": "1"}  # a mismatched closer inside is literal
    assert codec.parse_kv("") == {}


@pytest.mark.parametrize("body", ["a={b=1&c=2", "a=[", "a=1&", "a=1&b", "=1", "a=1&a=2", "&a=1", "a={x}&b={[}"])
def test_parse_kv_refuses_malformed_bodies(body: str) -> None:
    with pytest.raises(ValueError):
        codec.parse_kv(body)


def test_encode_kv_refuses_values_that_would_not_parse_back() -> None:
    assert codec.encode_kv({"a": "{x=1&y=2}", "b": "2"}) == "a={x=1&y=2}&b=2"
    with pytest.raises(ValueError):
        codec.encode_kv({"a": "x&y=1"})
    with pytest.raises(ValueError):
        codec.encode_kv({"a": "{unclosed"})
    with pytest.raises(ValueError):
        codec.encode_nested({"k": "a&b"})


_plain = st.text(alphabet=st.characters(blacklist_characters="{}[]&=", codec="utf-8"), max_size=8)
_nested = st.recursive(
    _plain,
    lambda inner: st.builds(
        lambda ks, vs: "{" + "&".join(f"k{i}={v}" for i, v in enumerate(vs)) + "}",
        st.none(),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.from_regex(r"[a-zA-Z]{1,8}", fullmatch=True), _nested, max_size=6))
def test_kv_round_trips_nested_values(fields: dict[str, str]) -> None:
    assert codec.parse_kv(codec.encode_kv(fields)) == fields


# --- forms, amounts, times, files --------------------------------------------------------------------------


def test_form_html_escapes_and_parses_back(key: rsa.RSAPrivateKey) -> None:
    fields = signing.sign_fields(
        {"orderId": "T1", "frontUrl": 'https://r.test/?a=1&b="2"', "riskRateInfo": "{commodityName=<b>会员</b>}"},
        key,
        "1",
    )
    page = codec.form_html("https://bank.test/frontTransReq.do?x=1&y=2", fields)
    assert "<b>" not in page and "&quot;2&quot;" in page and 'method="post"' in page
    assert 'getElementById("pay_form").submit()' in page
    action, parsed = codec.parse_form_html(page)
    assert action == "https://bank.test/frontTransReq.do?x=1&y=2"
    assert parsed == fields and signing.verify_fields(parsed, key.public_key())
    with pytest.raises(ValueError):
        codec.parse_form_html("<p>no form</p>")


@pytest.mark.parametrize(("fen", "text"), [(1, "1"), (1234, "1234"), (0, "0")])
def test_amounts_are_integer_fen_strings(fen: int, text: str) -> None:
    assert codec.fen_text(fen) == text and codec.parse_fen(text) == fen


@pytest.mark.parametrize("text", ["12.34", "-1", "+1", "", " 12", "1e3", "１２"])
def test_parse_fen_refuses_non_fen(text: str) -> None:
    with pytest.raises(ValueError):
        codec.parse_fen(text)


def test_fen_text_refuses_floats() -> None:
    with pytest.raises(TypeError):
        codec.fen_text(12.34)  # type: ignore[arg-type]


def test_times_are_beijing_wall_clock() -> None:
    utc = datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC)
    assert codec.format_time(utc) == "20240101100000"
    assert codec.format_time(utc.replace(tzinfo=None)) == "20240101100000"  # naive means UTC
    assert codec.parse_time("20240101100000") == utc
    with pytest.raises(ValueError):
        codec.parse_time("2024-01-01 10:00:00")
    txn = codec.parse_time("20241231235959")
    assert codec.parse_trace_time("0101000005", txn) == datetime(2024, 12, 31, 16, 0, 5, tzinfo=UTC)
    assert codec.parse_trace_time("1231235959", txn) == txn
    assert codec.settle_date(date(2024, 3, 9)) == "0309"


def test_file_content_is_base64_of_zlib_deflated_zip() -> None:
    rows = [
        {
            "queryId": "1",
            "traceNo": "2",
            "orderId": "T1",
            "txnTime": "20240101100000",
            "txnType": "01",
            "txnAmt": "1234",
            "settleDate": "0101",
            "settleAmt": "1234",
            "fee": "7",
            "respCode": "00",
        }
    ]
    zipped = codec.build_statement_zip("INN24010101ZM_777290058110048.csv", rows)
    content = codec.encode_file_content(zipped)
    assert zlib.decompress(base64.b64decode(content)) == zipped  # what Java's Inflater(false) reads
    assert codec.decode_file_content(content) == zipped
    assert codec.read_statement(zipped) == rows
    text = zipfile.ZipFile(io.BytesIO(zipped)).read("INN24010101ZM_777290058110048.csv").decode()
    assert text.startswith("queryId,traceNo,orderId,") and "\r\n" in text
    with pytest.raises(ValueError):
        codec.decode_file_content("not base64!")
    with pytest.raises(ValueError):
        codec.read_statement(b"PK-not-a-zip")


# --- config -----------------------------------------------------------------------------------------------


def _bare(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def _config(key: rsa.RSAPrivateKey) -> dict[str, str]:
    return {
        "mer_id": "777290058110048",
        "cert_id": "69629715588",
        "private_key_pem": private_key_pem(key),
        "bank_public_key_pem": public_key_pem(generate_rsa_key(1024)),
        "front_url": "http://127.0.0.1:9100/bank/gateway/api/frontTransReq.do",
        "back_url": "http://127.0.0.1:9100/bank/gateway/api/backTransReq.do",
        "query_url": "https://bank.test/gateway/api/queryTrans.do",
    }


def test_parse_config_accepts_pem_and_bare_base64(key: rsa.RSAPrivateKey) -> None:
    raw = _config(key)
    config = parse_config(raw)
    assert (config.mer_id, config.file_url) == ("777290058110048", None)
    bare = parse_config(
        {
            **raw,
            "private_key_pem": _bare(raw["private_key_pem"]),
            "bank_public_key_pem": _bare(raw["bank_public_key_pem"]),
            "file_url": "http://f.test/",
        }
    )
    assert bare.file_url == "http://f.test/"
    assert "PRIVATE" not in repr(bare) and raw["private_key_pem"][40:80] not in repr(bare)


def test_pre_order_url_is_app_url_else_derived_from_front_url(key: rsa.RSAPrivateKey) -> None:
    raw = _config(key)
    assert parse_config(raw).pre_order_url == "http://127.0.0.1:9100/bank/gateway/api/appTransReq.do"
    real = "https://gateway.test.95516.com/gateway/api/appTransReq.do"
    assert parse_config({**raw, "app_url": f" {real} "}).pre_order_url == real


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mer_id", ""),
        ("mer_id", "77729005811004"),
        ("mer_id", "7772900581100-8"),
        ("cert_id", "69629715588a"),
        ("private_key_pem", "not a key"),
        ("bank_public_key_pem", "not a key"),
        ("front_url", "ftp://bank.test/front"),
        ("back_url", None),
        ("query_url", "/relative/queryTrans.do"),
        ("file_url", "file:///etc/passwd"),
        ("file_url", 3),
        ("app_url", "//bank.test/appTransReq.do"),
        ("app_url", ""),
    ],
)
def test_parse_config_names_the_bad_field(key: rsa.RSAPrivateKey, field: str, value: object) -> None:
    raw: dict[str, object] = {**_config(key), field: value}
    with pytest.raises(ValueError, match=field):
        parse_config(raw)
