"""Alipay service-provider mode, unit level: the config's `mode`, the token rule, and the combined ISV statement
(one zip of every sub-merchant's bill) as the parser reads it."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import httpx
import pytest
import respx

from tomato.channel.adapters.alipay import AlipayAdapter, isv, parse_config
from tomato.channel.protocol import (
    ErrorClass,
    ResultStatus,
    StatementUnavailable,
    SubMerchant,
    TradeRef,
)
from tomato.channel.sandbox.alipay_bill import build_bill
from tomato.channel.sandbox.state import BillRow, SimTrade, TradeState
from tomato.core.crypto import generate_rsa_key, private_key_pem, public_key_pem
from tomato.reconciliation.combine import combine, sub_name
from tomato.reconciliation.parsers.alipay import member_name
from tomato.reconciliation.statement import StatementLine, StatementRejected, parse_statement

AT = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
DAY = date(2026, 3, 10)
GATEWAY = "https://openapi.alipay.test/gateway.do"
BASE = {
    "app_id": "2021000000000100",
    "private_key_pem": private_key_pem(generate_rsa_key()),
    "alipay_public_key_pem": public_key_pem(generate_rsa_key()),
    "gateway_url": GATEWAY,
}


def test_mode_defaults_to_direct_and_accepts_isv_only() -> None:
    assert parse_config(BASE).mode == "direct"
    assert parse_config({**BASE, "mode": "isv"}).mode == "isv"
    assert "mode='isv'" in repr(parse_config({**BASE, "mode": "isv"}))
    for bad in ("ISV", "partner", "", None, 1):
        with pytest.raises(ValueError, match="^mode: "):
            parse_config({**BASE, "mode": bad})


def test_the_token_rule() -> None:
    token_sub = SubMerchant(app_auth_token="202603BBtoken", auth_app_id="2021000000000301")
    assert isv.app_auth_token("direct", token_sub) is None  # direct mode ignores the sub-merchant
    assert isv.app_auth_token("isv", token_sub) == "202603BBtoken"
    for missing in (None, SubMerchant(auth_app_id="2021000000000301"), SubMerchant(app_auth_token="")):
        refused = isv.app_auth_token("isv", missing)
        assert not isinstance(refused, str) and refused is not None
        assert (refused.status, refused.error, refused.code) == (
            ResultStatus.FAIL, ErrorClass.REJECTED, "SUB_MERCHANT_REQUIRED"
        )  # fmt: skip


@respx.mock
async def test_isv_token_is_a_signed_query_parameter_not_biz_content() -> None:
    """On the wire: app_auth_token travels with the other common parameters (URL query), covered by `sign`."""
    route = respx.post(url__startswith=GATEWAY).mock(return_value=httpx.Response(500))
    sub = SubMerchant(app_auth_token="202603BBtoken", auth_app_id="2021000000000301")
    async with httpx.AsyncClient() as http:
        adapter = AlipayAdapter(parse_config({**BASE, "mode": "isv"}), http)
        result = await adapter.query(TradeRef("P1", sub=sub))
        assert result.status is ResultStatus.UNKNOWN  # the 500 answer: it was sent
        refused = await adapter.query(TradeRef("P1"))
        assert refused.code == "SUB_MERCHANT_REQUIRED"
        direct = AlipayAdapter(parse_config(BASE), http)
        await direct.query(TradeRef("P1", sub=sub))
    assert route.call_count == 2
    isv_request, direct_request = (call.request for call in route.calls)
    query = dict(isv_request.url.params)
    body = isv_request.content.decode()
    assert query["app_auth_token"] == "202603BBtoken" and "sign" in query and "app_auth_token" not in body
    assert "app_auth_token" not in str(direct_request.url) and "app_auth_token" not in direct_request.content.decode()


def bill(pid: str, *rows: tuple[str, int]) -> bytes:
    trades = [SimTrade("alipay", pid, order_no, f"2026031022001{n:015d}", amount, "s", "", AT, TradeState.PAID,
                       paid_at=AT) for n, (order_no, amount) in enumerate(rows)]  # fmt: skip
    return build_bill("2088101000000001", DAY, [BillRow(t, None, AT, t.amount, 5) for t in trades], AT)[1]


def test_a_combined_bill_parses_every_detail_file_with_running_line_numbers() -> None:
    data = combine("alipay", [("000-A", bill("A", ("PA1", 100), ("PA2", 200))), ("001-B", bill("B", ("PB1", 300)))])
    lines = [line for line in parse_statement("alipay", io.BytesIO(data)) if isinstance(line, StatementLine)]
    assert [(line.order_no, line.amount) for line in lines] == [("PA1", 100), ("PA2", 200), ("PB1", 300)]
    assert lines[2].line_no > lines[1].line_no > lines[0].line_no
    single = [line for line in parse_statement("alipay", io.BytesIO(bill("B", ("PB1", 300))))
              if isinstance(line, StatementLine)]  # fmt: skip
    assert lines[2].line_no > single[0].line_no  # the second file's lines are numbered after the first's


def test_each_detail_file_is_footer_checked_on_its_own() -> None:
    good = bill("A", ("PA1", 100))
    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bill("B", ("PB1", 300)))) as src, zipfile.ZipFile(tampered, "w") as out:
        for info in src.infolist():
            old, new = "商家实收共3.00元".encode("gbk"), "商家实收共4.00元".encode("gbk")
            out.writestr(member_name(info), src.read(info).replace(old, new))
    data = combine("alipay", [("000-A", good), ("001-B", tampered.getvalue())])
    footer = (
        r"^001-B/.*业务明细\.csv: alipay footer says 1 payment rows totalling 400 fen, the rows make 1 totalling 300"
    )
    with pytest.raises(StatementRejected, match=footer):
        list(parse_statement("alipay", io.BytesIO(data)))  # A's file alone is fine: the check is per file


def test_combining_refuses_what_it_cannot_combine() -> None:
    with pytest.raises(StatementUnavailable, match="not a zip"):
        combine("alipay", [("000-A", b"not a zip")])
    with pytest.raises(ValueError, match="wechat"):
        combine("wechat", [("000-A", b"x")])
    assert sub_name(SubMerchant(auth_app_id="2021/../x"), 7) == "007-2021____x"
    assert sub_name(SubMerchant(), 2) == "002"
