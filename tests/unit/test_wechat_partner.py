"""WeChat Pay partner mode (服务商): the config's `mode`, the wire each mode spells, and a large provider bill read by
the reconciliation parser's COPY fast path. Keys are generated per module."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.channel.adapters.wechat import codec, parse_config, partner
from tomato.channel.protocol import ErrorClass, ResultStatus, SubMerchant
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem
from tomato.reconciliation.parsers import wechat as wechat_bill

API_V3_KEY = "partnerKEY0123456789abcdefghijkl"
SP_MCHID, SP_APPID = "1230000109", "wxsp1234567890abcd"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_rsa_key(1024)


def _raw(key: rsa.RSAPrivateKey, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "mode": "partner",
        "sp_mchid": SP_MCHID,
        "sp_appid": SP_APPID,
        "serial_no": "6B0C3A7E5D1F2A9B",
        "private_key_pem": private_key_pem(key),
        "api_v3_key": API_V3_KEY,
        "platform_public_key_pem": public_key_pem(key),
        "platform_public_key_id": "PUB_KEY_ID_0114232806862025052600451000000000",
        "base_url": "https://api.mch.weixin.qq.com",
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def test_partner_config_holds_the_provider_in_mchid_and_appid(key: rsa.RSAPrivateKey) -> None:
    config = parse_config(_raw(key))
    assert (config.mode, config.partner, config.mchid, config.appid) == ("partner", True, SP_MCHID, SP_APPID)
    assert API_V3_KEY not in repr(config) and "PRIVATE" not in repr(config) and "partner" in repr(config)
    direct = parse_config(_raw(key, mode=None, sp_mchid=None, sp_appid=None, mchid="1900000109", appid="wxd6"))
    assert (direct.mode, direct.partner, direct.mchid) == ("direct", False, "1900000109")
    explicit = parse_config(_raw(key, mode="direct", sp_mchid=None, sp_appid=None, mchid="1900000109", appid="wxd6"))
    assert explicit == direct


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"mode": "isv"}, "mode"),
        ({"mode": None, "sp_mchid": None}, "mchid"),  # direct mode (the default) needs mchid
        ({"mode": 1}, "mode"),
        ({"sp_mchid": None}, "sp_mchid"),
        ({"sp_appid": None}, "sp_appid"),
        ({"sp_mchid": ""}, "sp_mchid"),
        ({"sp_mchid": "12a"}, "sp_mchid"),
        ({"mchid": "1900000109"}, "mchid"),  # partner mode never takes a second merchant number
        ({"appid": "wxd6"}, "appid"),
    ],
)
def test_partner_config_names_the_bad_field(key: rsa.RSAPrivateKey, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        parse_config(_raw(key, **overrides))


def test_each_mode_spells_its_wire(key: rsa.RSAPrivateKey) -> None:
    sp = parse_config(_raw(key))
    direct = parse_config(_raw(key, mode=None, sp_mchid=None, sp_appid=None, mchid="1900000109", appid="wxd6"))
    a = SubMerchant(sub_mchid="1900000201", sub_appid="wxsubA")
    b = SubMerchant(sub_mchid="1900000202")
    assert partner.create_path(sp, "h5") == "/v3/pay/partner/transactions/h5"
    assert partner.create_path(direct, "h5") == "/v3/pay/transactions/h5"
    assert list(partner.create_identity(sp, a).items()) == [
        ("sp_appid", SP_APPID),
        ("sp_mchid", SP_MCHID),
        ("sub_appid", "wxsubA"),
        ("sub_mchid", "1900000201"),
    ]
    assert partner.create_identity(sp, b) == {"sp_appid": SP_APPID, "sp_mchid": SP_MCHID, "sub_mchid": "1900000202"}
    assert partner.create_identity(direct, None) == {"appid": "wxd6", "mchid": "1900000109"}
    assert partner.payer(sp, a, "o1") == {"sub_openid": "o1"} and partner.payer(sp, b, "o1") == {"sp_openid": "o1"}
    assert partner.payer(direct, None, "o1") == {"openid": "o1"}
    assert (partner.jsapi_app_id(sp, a), partner.jsapi_app_id(sp, b), partner.jsapi_app_id(direct, a)) == (
        "wxsubA",
        SP_APPID,
        "wxd6",
    )
    assert partner.query_path(sp, "P 1", b) == (
        f"/v3/pay/partner/transactions/out-trade-no/P%201?sp_mchid={SP_MCHID}&sub_mchid=1900000202"
    )
    assert partner.query_path(direct, "P1", None) == "/v3/pay/transactions/out-trade-no/P1?mchid=1900000109"
    assert partner.close_request(sp, "P1", b) == (
        "/v3/pay/partner/transactions/out-trade-no/P1/close",
        {"sp_mchid": SP_MCHID, "sub_mchid": "1900000202"},
    )
    assert partner.refund_identity(sp, b) == {"sub_mchid": "1900000202"} and partner.refund_identity(direct, b) == {}
    assert partner.refund_query_path(sp, "R1", b) == "/v3/refund/domestic/refunds/R1?sub_mchid=1900000202"
    assert partner.refund_query_path(direct, "R1", b) == "/v3/refund/domestic/refunds/R1"
    day = date(2030, 1, 2)
    base = "/v3/bill/tradebill?bill_date=2030-01-02&bill_type=ALL&tar_type=GZIP"
    assert (partner.bill_path(sp, day, None), partner.bill_path(sp, day, b)) == (base, base + "&sub_mchid=1900000202")
    assert partner.bill_path(direct, day, b) == base


def test_missing_sub_merchant_only_matters_in_partner_mode(key: rsa.RSAPrivateKey) -> None:
    sp = parse_config(_raw(key))
    direct = parse_config(_raw(key, mode=None, sp_mchid=None, sp_appid=None, mchid="1900000109", appid="wxd6"))
    for sub in (None, SubMerchant(), SubMerchant(sub_appid="wxsubA"), SubMerchant(auth_app_id="2021")):
        refusal = partner.missing_sub(sp, sub)
        assert refusal is not None
        assert (refusal.status, refusal.error, refusal.code) == (
            ResultStatus.FAIL,
            ErrorClass.REJECTED,
            "SUB_MERCHANT_REQUIRED",
        )
        assert partner.missing_sub(direct, sub) is None
    assert partner.missing_sub(sp, SubMerchant(sub_mchid="1900000201")) is None


def test_notify_owner_checks_sp_mchid_and_reports_sub_mchid(key: rsa.RSAPrivateKey) -> None:
    sp = parse_config(_raw(key))
    direct = parse_config(_raw(key, mode=None, sp_mchid=None, sp_appid=None, mchid="1900000109", appid="wxd6"))
    assert partner.notify_sub_merchant(sp, {"sp_mchid": SP_MCHID, "sub_mchid": "1900000201"}) == "1900000201"
    assert partner.notify_sub_merchant(direct, {"mchid": "1900000109"}) is None
    for data in (
        {"sp_mchid": "1", "sub_mchid": "2"},
        {"sp_mchid": SP_MCHID},
        {"sp_mchid": SP_MCHID, "sub_mchid": ""},
        {"mchid": SP_MCHID, "sub_mchid": "2"},
    ):
        with pytest.raises(ValueError):
            partner.notify_sub_merchant(sp, data)
    with pytest.raises(ValueError):
        partner.notify_sub_merchant(direct, {"sp_mchid": "1900000109", "sub_mchid": "2"})


def test_a_large_partner_bill_takes_the_parsers_copy_fast_path() -> None:
    """Past the first 64 KiB block, plain payment rows go the COPY way: the filled 特约商户号 column must not
    knock a provider's bill off it, and every row still matches on our out_trade_no."""
    start = datetime(2030, 1, 2, 1, 0, tzinfo=UTC)
    lines = [
        codec.BillLine(
            time=start + timedelta(seconds=n),
            appid=SP_APPID,
            mchid=SP_MCHID,
            sub_mchid=f"19000002{n % 2:02d}",
            transaction_id=f"42000{n:023d}",
            out_trade_no=f"SB{n:05d}",
            openid="oSim",
            trade_type="NATIVE",
            description="会员充值",
            amount=100 + n,
            fee=1,
        )
        for n in range(1500)
    ]
    text = codec.format_trade_bill(lines)
    assert len(text) > 3 * 64 * 1024
    assert {row["特约商户号"] for row in codec.parse_trade_bill(text).rows} == {"1900000200", "1900000201"}
    items = list(wechat_bill.records(io.BytesIO(text), "batch", copy_text=True))
    copied = [row.split("\t") for item in items if isinstance(item, bytes) for row in item.decode().splitlines()]
    listed = [record for item in items if isinstance(item, list) for record in item]
    assert len(copied) > 1000  # most rows went the fast way
    refs = sorted([row[3] for row in copied] + [str(record[3]) for record in listed])
    assert refs == [f"SB{n:05d}" for n in range(1500)]
    amounts = {row[3]: int(row[6]) for row in copied}
    assert all(amounts[f"SB{n:05d}"] == 100 + n for n in range(1500) if f"SB{n:05d}" in amounts)
