"""Statement parsers on fixtures written here from the channels' byte layouts (docs/reconciliation.md).

The fixtures are built by hand, not by the simulators, so a simulator and a parser that agree on a wrong layout
would still be caught: GBK text and GBK zip entry names, TAB-suffixed id cells, backtick-prefixed cells, a BOM,
footers and summaries, `\\r\\n` and `\\n` line endings. Malformed rows come back with their line numbers; a file that
fails its archive, hash or structure is refused whole.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tracemalloc
import zipfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pytest

from tomato.reconciliation.statement import (
    LineKind,
    MalformedRow,
    StatementLine,
    StatementRejected,
    parse_statement,
)

T = "\t"
ALIPAY_COLUMNS = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
    "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,"
    "卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
)
ALIPAY_START = "#" + "-" * 41 + "业务明细列表" + "-" * 40
ALIPAY_END = "#" + "-" * 41 + "业务明细列表结束" + "-" * 36
TRADE_NO = "2024010122001400000000000001"


def alipay_row(
    business: str, amount: str, fee: str, request_no: str = "", done: str = "2024-01-01 10:00:05", order: str = "T1"
) -> str:
    return (
        f"{TRADE_NO}{T},{order}{T},{business}{T},会员充值,2024-01-01 10:00:00,{done},{T},{T},{T},{T},"
        f"*三(138****0000){T},{amount},{amount},0.00,0.00,0.00,0.00,0.00,,0.00{T},0.00,{request_no}{T},{fee},0.00,"
    )


PAYMENT_ROW = alipay_row("交易", "12.34", "-0.07")
REFUND_ROW = alipay_row("退款", "-2.34", "0.01", "R1", "2024-01-01 15:30:00")


def alipay_detail(rows: Iterable[str], footer: tuple[str, str] | None = None, end: bool = True) -> list[str]:
    rows = list(rows)
    pay_total, refund_total = footer or ("1笔，商家实收共12.34元", "1笔，商家实收退款共-2.34元")
    lines = [
        "#支付宝业务明细查询",
        "#账号：[20880000000000010156]",
        "#起始日期：[2024年01月01日 00:00:00]   终止日期：[2024年01月02日 00:00:00]",
        ALIPAY_START,
        ALIPAY_COLUMNS,
        *rows,
    ]
    if end:
        lines += [
            ALIPAY_END,
            f"#交易合计：{pay_total}，商家优惠共0.00元",
            f"#退款合计：{refund_total}，商家优惠退款共0.00元",
            "#导出时间：[2024年01月02日 09:30:12]",
        ]
    return lines


class GbkName(zipfile.ZipInfo):
    """An entry name stored as GBK bytes without the UTF-8 flag, as Alipay writes them."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def alipay_zip(lines: list[str], eol: str = "\r\n", body: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = GbkName("20880000000000010156_20240101_业务明细.csv")
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, body if body is not None else (eol.join(lines) + eol).encode("gbk"))
        summary = GbkName("20880000000000010156_20240101_业务明细(汇总).csv")
        archive.writestr(summary, "#支付宝业务汇总查询\r\n".encode("gbk"))
    return buffer.getvalue()


def parse(channel: str, data: bytes, **kw: str) -> list[StatementLine | MalformedRow]:
    return list(parse_statement(channel, io.BytesIO(data), **kw))


def at(text: str) -> datetime:
    """A China wall-clock time as UTC."""
    local = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return local.replace(tzinfo=UTC) - (datetime(2000, 1, 1, 8) - datetime(2000, 1, 1))


# --- Alipay ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_alipay_bill_reads_gbk_tab_suffixed_ids_and_footer(eol: str) -> None:
    got = parse("alipay", alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW]), eol))
    assert got == [
        StatementLine(6, LineKind.PAYMENT, TRADE_NO, "T1", None, 1234, 7, "SUCCESS", at("2024-01-01 10:00:05")),
        StatementLine(7, LineKind.REFUND, TRADE_NO, "T1", "R1", 234, 1, "SUCCESS", at("2024-01-01 15:30:00")),
    ]


def test_alipay_bill_with_a_bom_and_a_status_word() -> None:
    rows = [alipay_row("交易关闭", "12.34", "-0.07"), REFUND_ROW]
    data = alipay_zip([], body=b"\xef\xbb\xbf" + ("\r\n".join(alipay_detail(rows)) + "\r\n").encode("gbk"))
    got = parse("alipay", data)
    assert [(line.kind, line.status) for line in got if isinstance(line, StatementLine)] == [
        (LineKind.PAYMENT, "交易关闭"),
        (LineKind.REFUND, "SUCCESS"),
    ]


def test_alipay_malformed_rows_are_reported_with_their_line_numbers() -> None:
    rows = [
        PAYMENT_ROW,
        alipay_row("交易", "12.3x", "-0.07"),  # line 7: not an amount
        PAYMENT_ROW + ",extra",  # line 8: a cell too many
        alipay_row("转账", "1.00", "0.00"),  # line 9: neither 交易 nor 退款
        alipay_row("交易", "1.00", "0.01"),  # line 10: a fee returned on a payment
        alipay_row("退款", "-1.00", "0.00", ""),  # line 11: a refund without its request number
        alipay_row("交易", "1.00", "0.00", done="2024-13-01 00:00:00"),  # line 12: not a time
        alipay_row("交易", "1.001", "0.00"),  # line 13: a fraction of a fen
        REFUND_ROW,
    ]
    lines = alipay_detail(rows)
    body = ("\r\n".join(lines) + "\r\n").encode("gbk").replace(b"12.3x", b"12.3\xff")  # line 7: not GBK either
    got = parse("alipay", alipay_zip([], body=body))
    bad = {line.line_no: line.reason for line in got if isinstance(line, MalformedRow)}
    assert sorted(bad) == [7, 8, 9, 10, 11, 12, 13]
    assert "26 cells" in bad[8] and "业务类型" in bad[9] and "服务费" in bad[10] and "退款批次号" in bad[11]
    assert "完成时间" in bad[12] and "fen" in bad[13]
    assert [line.line_no for line in got if isinstance(line, StatementLine)] == [6, 14]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not a zip at all", "not a zip"),
        (alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW]))[:200], "not a zip"),
        (alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW]), "\r\n"), None),  # control: accepted
        (alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW], end=False)), "truncated"),
        (alipay_zip(alipay_detail([PAYMENT_ROW])), "footer says 1 refund"),
        (alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW], ("2笔，商家实收共12.34元", "1笔，商家实收退款共-2.34元"))),
         "footer says 2 payment"),
        (alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW], ("1笔，商家实收共12.35元", "1笔，商家实收退款共-2.34元"))),
         "totalling 1235"),
        (alipay_zip(["#支付宝业务明细查询", ALIPAY_START, "支付宝交易号,商户订单号"]), "column header lacks"),
        (alipay_zip(["#something else", ALIPAY_START, ALIPAY_COLUMNS, ALIPAY_END]), "line 1"),
        (alipay_zip(["#支付宝业务明细查询", PAYMENT_ROW]), "data before"),
    ],
)  # fmt: skip
def test_alipay_corrupt_or_inconsistent_bill_is_rejected_whole(data: bytes, reason: str | None) -> None:
    if reason is None:
        assert len(parse("alipay", data)) == 2
        return
    with pytest.raises(StatementRejected, match=reason):
        parse("alipay", data)


def test_alipay_zip_with_a_damaged_member_or_without_a_detail_file_is_rejected() -> None:
    data = bytearray(alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW] * 50)))
    start = data.index(b"PK\x03\x04") + 30 + len("20880000000000010156_20240101_业务明细.csv".encode("gbk"))
    for i in range(start + 20, start + 40):
        data[i] ^= 0x55  # inside the deflated detail: CRC or inflate error
    with pytest.raises(StatementRejected, match="corrupt"):
        parse("alipay", bytes(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("other.csv", b"x")
    with pytest.raises(StatementRejected, match="0 detail files"):
        parse("alipay", buffer.getvalue())


# --- WeChat ---------------------------------------------------------------------------------------------

WX_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,"
    "订单金额,申请退款金额,费率备注"
)
WX_SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
WX_ID = "4200000000202401010000000001"
WX_PAYMENT = (
    f"`2024-01-01 10:00:05,`wx0000000000000001,`1900000001,`0,`,`{WX_ID},`T1,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,"
    "`NATIVE,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`0,`0,`0.00,`0.00,`,`,`会员充值,`,`0.07000,`0.60%,`12.34,`0.00,`"
)
WX_REFUND = (
    f"`2024-01-01 15:30:00,`wx0000000000000001,`1900000001,`0,`,`{WX_ID},`T1,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,"
    "`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300000002024010100000000001,`R1,`2.34,`0.00,`ORIGINAL,`SUCCESS,"
    "`会员充值,`,`-0.01000,`0.60%,`0.00,`2.34,`"
)
WX_SUMMARY = "`2,`12.34,`2.34,`0.00,`0.06000,`12.34,`2.34"


def wx_bill(
    rows: Iterable[str] = (WX_PAYMENT, WX_REFUND), summary: str | None = WX_SUMMARY, eol: str = "\r\n"
) -> bytes:
    lines = [WX_HEADER, *rows]
    if summary is not None:
        lines += [WX_SUMMARY_HEADER, summary]
    return (eol.join(lines) + eol).encode("utf-8")


WX_EXPECTED = [
    StatementLine(2, LineKind.PAYMENT, WX_ID, "T1", None, 1234, 7, "SUCCESS", at("2024-01-01 10:00:05")),
    StatementLine(3, LineKind.REFUND, WX_ID, "T1", "R1", 234, 1, "SUCCESS", at("2024-01-01 15:30:00")),
]


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
@pytest.mark.parametrize("packing", ["plain", "gzip", "bom"])
def test_wechat_bill_reads_backticks_summary_and_both_line_endings(eol: str, packing: str) -> None:
    text = wx_bill(eol=eol)
    data = {"plain": text, "gzip": gzip.compress(text), "bom": b"\xef\xbb\xbf" + text}[packing]
    sha1 = hashlib.sha1(b"\xef\xbb\xbf" + text if packing == "bom" else text).hexdigest()
    assert parse("wechat", data, expected_sha1=sha1.upper()) == WX_EXPECTED


def test_wechat_hash_mismatch_rejects_the_file() -> None:
    text = wx_bill()
    with pytest.raises(StatementRejected, match="SHA1"):
        parse("wechat", gzip.compress(text), expected_sha1=hashlib.sha1(text + b" ").hexdigest())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (gzip.compress(wx_bill())[:-12], "corrupt"),  # truncated gzip
        (b"\x1f\x8b\x08\x00garbage-garbage-garbage", "corrupt"),
        (wx_bill(summary=None), "truncated"),
        (wx_bill(summary="`3,`12.34,`2.34,`0.00,`0.06000,`12.34,`2.34"), "总交易单数 3"),
        (wx_bill(summary="`2,`12.34,`2.34,`0.00,`0.07000,`12.34,`2.34"), "手续费总金额"),
        (wx_bill(summary="`2,`12.34,`2.34,`0.00"), "summary row has 4 cells"),
        (wx_bill() + b"`1,`2\r\n", "after the summary"),
        (b"a,b,c\r\n" + wx_bill()[len(WX_HEADER) + 2 :], "column header lacks"),
    ],
)
def test_wechat_corrupt_or_inconsistent_bill_is_rejected_whole(data: bytes, reason: str) -> None:
    with pytest.raises(StatementRejected, match=reason):
        parse("wechat", data)


def test_wechat_malformed_rows_and_status_words() -> None:
    rows = [
        WX_PAYMENT,
        WX_PAYMENT.replace("`12.34,`0.00,`0,`0", "`12.345,`0.00,`0,`0"),  # line 3: settled amount not in fen
        WX_PAYMENT.replace("`0.07000", "`-0.07000"),  # line 4: a payment whose fee is returned
        WX_PAYMENT.replace("2024-01-01 10:00:05", "01/01/2024"),  # line 5: not a time
        WX_PAYMENT + ",`extra",  # line 6: a cell too many
        WX_REFUND.replace("`R1", "`"),  # line 7: a refund without its refund number
        WX_PAYMENT.replace("`SUCCESS", "`REVOKED"),
        WX_REFUND.replace("`ORIGINAL,`SUCCESS", "`ORIGINAL,`PROCESSING"),
    ]
    got = parse("wechat", wx_bill(rows))
    bad = {line.line_no: line.reason for line in got if isinstance(line, MalformedRow)}
    assert sorted(bad) == [3, 4, 5, 6, 7]
    assert "应结订单金额" in bad[3] and "手续费" in bad[4] and "交易时间" in bad[5] and "28 cells" in bad[6]
    assert "商户退款单号" in bad[7]
    good = [(line.line_no, line.kind, line.status) for line in got if isinstance(line, StatementLine)]
    assert good == [
        (2, LineKind.PAYMENT, "SUCCESS"),
        (8, LineKind.PAYMENT, "REVOKED"),
        (9, LineKind.REFUND, "PROCESSING"),
    ]


WX_ODD_ROWS = [
    WX_PAYMENT,  # the fast path
    WX_PAYMENT.replace("`12.34,`0.00,`0,`0", "`12.3,`0.00,`0,`0").replace("`12.34,`0.00,`", "`12.3,`0.00,`"),
    WX_PAYMENT.replace("`T1,", "` T1 ,"),  # cells are stripped
    WX_PAYMENT.replace("2024-01-01 10:00:05", "2024-1-1 10:00:05"),  # what strptime reads, the general path too
    WX_PAYMENT.replace("`T1,", "T1,"),  # a cell without its backtick
    "",  # a blank line keeps its number
    WX_PAYMENT.replace("`会员充值", "`会员,充值"),  # a comma inside a cell: a cell too many
    WX_PAYMENT.replace("2024-01-01 10:00:05", "2024-02-30 10:00:05"),  # no such day
    WX_PAYMENT.replace("`12.34,`0.00,`0,`0", "`12.345,`0.00,`0,`0"),
    WX_PAYMENT.replace("`0.07000", "`0.07001"),  # a fee of a fraction of a fen
    WX_PAYMENT.replace("`0.07000", "`\uff10.07000"),  # a full-width digit is no yuan amount
    WX_REFUND,
    WX_PAYMENT.replace("`SUCCESS", "`REVOKED"),
    WX_PAYMENT.replace(WX_ID, "4" * 65),  # longer than the staging column: cut there, kept whole as a line
]


@pytest.mark.parametrize("block", [7, 100, 64 * 1024])
@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_wechat_fast_path_and_staging_rows_agree_with_the_lines(
    block: int, eol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain payment rows take the parser's fast path, everything else the general one; blocks cut anywhere.
    Whatever the path, the lines, their numbers and errors are the same, and `records` (what the loader copies)
    are exactly the staging rows of those lines."""
    from tomato.reconciliation.parsers import wechat
    from tomato.reconciliation.statement import Statement, staging_row

    data = (
        wx_bill(WX_ODD_ROWS, summary=None, eol=eol) + (WX_SUMMARY_HEADER + eol + "`0,`0,`0,`0,`0,`0,`0" + eol).encode()
    )
    monkeypatch.setattr(wechat, "BLOCK", block)
    got = parse("wechat", data)
    bad = {line.line_no: line.reason for line in got if isinstance(line, MalformedRow)}
    assert sorted(bad) == [8, 9, 10, 11, 12]
    assert "28 cells" in bad[8] and "交易时间" in bad[9] and "应结订单金额" in bad[10] and "手续费" in bad[11]
    assert "手续费" in bad[12]
    good = [line for line in got if isinstance(line, StatementLine)]
    assert [line.line_no for line in good] == [2, 3, 4, 5, 6, 13, 14, 15]
    assert good[0] == WX_EXPECTED[0]
    assert (good[1].amount, good[2].order_no, good[3].occurred_at, good[4].order_no) == (
        1230,
        "T1",
        at("2024-01-01 10:00:05"),
        "T1",
    )
    assert (good[5].kind, good[6].status, good[7].channel_trade_no) == (LineKind.REFUND, "REVOKED", "4" * 65)

    statement = Statement("wechat", lambda: io.BytesIO(data))
    assert list(statement) == got
    rows = [row for part in statement.records("RB1") if isinstance(part, list) for row in part]
    assert rows == [staging_row("RB1", line) for line in good]
    assert rows[-1][5] == "4" * 64
    malformed = [part for part in statement.records("RB1") if isinstance(part, MalformedRow)]
    assert malformed == [line for line in got if isinstance(line, MalformedRow)]


def test_wechat_line_not_utf8_is_a_malformed_row_in_any_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from tomato.reconciliation.parsers import wechat

    monkeypatch.setattr(wechat, "BLOCK", 50)
    data = wx_bill([WX_PAYMENT, "`\u4f1a".encode().decode() + "x"]).replace("`会x".encode(), b"`\xff\xfex")
    got = parse("wechat", data)
    assert got[0] == WX_EXPECTED[0] and got[1] == MalformedRow(3, "not UTF-8 text")
    with pytest.raises(StatementRejected, match="line 1 is not UTF-8"):
        parse("wechat", b"\xff" + wx_bill())


# --- bank -----------------------------------------------------------------------------------------------

BANK_HEADER = "queryId,traceNo,orderId,txnTime,txnType,txnAmt,settleDate,settleAmt,fee,respCode"
BANK_PAYMENT = "692401011000050000001,000001,T20240101003,20240101100000,01,1234,0101,1234,7,00"
BANK_REFUND = "692401011530000000002,000002,R20240101003,20240101153000,04,234,0101,-234,-1,00"


def bank_zip(lines: Iterable[str], eol: str = "\r\n", members: int = 1, prefix: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(members):
            archive.writestr(f"INN24010101ZM_777290058110048_{n}.csv", prefix + (eol.join(lines) + eol).encode())
    return buffer.getvalue()


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"])
def test_bank_file_reads_payments_and_refunds_in_fen(eol: str, prefix: bytes) -> None:
    got = parse("bank", bank_zip([BANK_HEADER, BANK_PAYMENT, BANK_REFUND], eol, prefix=prefix))
    assert got == [
        StatementLine(2, LineKind.PAYMENT, "692401011000050000001", "T20240101003", None, 1234, 7, "SUCCESS",
                      at("2024-01-01 10:00:00")),
        StatementLine(3, LineKind.REFUND, "692401011530000000002", None, "R20240101003", 234, 1, "SUCCESS",
                      at("2024-01-01 15:30:00")),
    ]  # fmt: skip


def test_bank_malformed_rows_and_failed_status() -> None:
    rows = [
        BANK_HEADER,
        BANK_PAYMENT.replace(",01,1234,", ",02,1234,"),  # line 2: unknown txnType
        BANK_PAYMENT.replace(",1234,0101,1234,", ",12.34,0101,1234,"),  # line 3: not fen
        BANK_REFUND.replace("-234,-1", "234,1"),  # line 4: a refund with positive settlement
        BANK_PAYMENT + ",x",  # line 5: a cell too many
        BANK_PAYMENT.replace(",00", ",01"),
    ]
    got = parse("bank", bank_zip(rows))
    bad = {line.line_no: line.reason for line in got if isinstance(line, MalformedRow)}
    assert sorted(bad) == [2, 3, 4, 5]
    assert "txnType" in bad[2] and "txnAmt" in bad[3] and "negative" in bad[4] and "11 cells" in bad[5]
    assert [(line.line_no, line.status) for line in got if isinstance(line, StatementLine)] == [(6, "01")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 not really", "not a zip"),
        (bank_zip([BANK_HEADER, BANK_PAYMENT], members=2), "2 files"),
        (bank_zip(["queryId,orderId", BANK_PAYMENT]), "header"),
        (bank_zip([]), "header"),
    ],
)
def test_bank_corrupt_file_is_rejected_whole(data: bytes, reason: str) -> None:
    with pytest.raises(StatementRejected, match=reason):
        parse("bank", data)


# --- common ---------------------------------------------------------------------------------------------


class OneWay(io.RawIOBase):
    """A stream that cannot seek (a socket, a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._inner.readinto(buffer)


@pytest.mark.parametrize(
    ("channel", "data"),
    [
        ("alipay", alipay_zip(alipay_detail([PAYMENT_ROW, REFUND_ROW]))),
        ("wechat", gzip.compress(wx_bill())),
        ("bank", bank_zip([BANK_HEADER, BANK_PAYMENT, BANK_REFUND])),
    ],
)
def test_a_stream_that_cannot_seek_parses_alike(channel: str, data: bytes) -> None:
    stream: BinaryIO = io.BufferedReader(OneWay(data))  # type: ignore[assignment]
    assert list(parse_statement(channel, stream)) == parse(channel, data)


def test_a_line_without_an_end_is_refused_and_an_unknown_channel_is_an_error() -> None:
    with pytest.raises(StatementRejected, match="longer than"):
        parse("wechat", wx_bill(["`" + "x" * 70_000]))
    with pytest.raises(ValueError, match="no statement parser"):
        parse_statement("paypal", io.BytesIO(b""))


# --- bounded memory -------------------------------------------------------------------------------------

ROWS = 8_000
SUBJECT = "会员充值" * 400  # long rows: a large file without many rows to time


def write_large_wechat(path: Path) -> None:
    paid = fees = 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write((WX_HEADER + "\r\n").encode())
        for n in range(ROWS):
            amount = 100 + n % 9000
            fee = (amount * 3800 + 500_000) // 1_000_000
            paid, fees = paid + amount, fees + fee
            yuan = f"{amount // 100}.{amount % 100:02d}"
            row = WX_PAYMENT.replace(WX_ID, f"42{n:026d}").replace("`T1,", f"`P{n:012d},")
            row = row.replace("`12.34", "`" + yuan).replace("`0.07000", f"`{fee // 100}.{fee % 100:02d}000")
            row = row.replace("`会员充值", "`" + SUBJECT)
            out.write((row + "\r\n").encode())
        summary = f"`{ROWS},`{paid // 100}.{paid % 100:02d},`0.00,`0.00,`{fees // 100}.{fees % 100:02d}000,`0,`0"
        out.write((WX_SUMMARY_HEADER + "\r\n" + summary + "\r\n").encode())


def write_large_alipay(path: Path) -> None:
    rows, paid = [], 0
    for n in range(ROWS):
        rows.append(alipay_row("交易", "1.23", "0.00", order=f"P{n:012d}").replace("会员充值", SUBJECT))
        paid += 123
    footer = (f"{ROWS}笔，商家实收共{paid // 100}.{paid % 100:02d}元", "0笔，商家实收退款共0.00元")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        info = GbkName("p_20240101_业务明细.csv")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w") as member:
            for line in alipay_detail(rows, footer):
                member.write((line + "\r\n").encode("gbk"))


@pytest.mark.parametrize(("channel", "write"), [("wechat", write_large_wechat), ("alipay", write_large_alipay)])
def test_a_large_file_parses_in_bounded_memory(channel: str, write: Callable[[Path], None], tmp_path: Path) -> None:
    path = tmp_path / "statement"
    write(path)
    if channel == "wechat":
        with gzip.open(path, "rb") as text:
            size = sum(len(chunk) for chunk in iter(lambda: text.read(1 << 20), b""))
    else:
        with zipfile.ZipFile(path) as archive:
            size = archive.infolist()[0].file_size
    assert size > 20_000_000  # the decompressed file
    tracemalloc.start()
    try:
        count = 0
        with path.open("rb") as stream:
            for line in parse_statement(channel, stream):
                assert isinstance(line, StatementLine), line
                count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == ROWS
    assert peak < size / 50, f"peak {peak} bytes for a {size}-byte file"


def test_wechat_padded_amount_fee_and_time_cells_read_as_the_plain_ones() -> None:
    """The fast path remembers fees and times under the cell as read and strips only what is not plain digits: a
    padded cell, before or after the same value plain (cache hit or not), reads as the plain one."""
    from tomato.reconciliation.statement import Statement, staging_row

    padded = (
        WX_PAYMENT.replace("`2024-01-01 10:00:05,", "` 2024-01-01 10:00:05 ,")
        .replace("`12.34,", "` 12.34,", 1)  # the settled amount, not the order amount
        .replace("`0.07000,", "`0.07000 ,")
        .replace("`0.00,`0.00,`,`,", "` 0.00,`0.00,`,`,")
    )
    assert padded.count("` ") == 3 and padded.count(" ,") == 2
    data = (
        wx_bill([WX_PAYMENT, padded, padded, WX_PAYMENT], summary=None, eol="\n")
        + (WX_SUMMARY_HEADER + "\n" + "`4,`49.36,`0.00,`0.00,`0.28000,`49.36,`0.00" + "\n").encode()
    )
    got = parse("wechat", data)
    assert [line.line_no for line in got] == [2, 3, 4, 5]
    for line in got:
        assert isinstance(line, StatementLine)
        assert (line.amount, line.fee, line.occurred_at, line.order_no) == (1234, 7, at("2024-01-01 10:00:05"), "T1")
    rows = [row for part in Statement("wechat", lambda: io.BytesIO(data)).records("RB1") if isinstance(part, list)
            for row in part]  # fmt: skip
    assert rows == [staging_row("RB1", line) for line in got]


def copied_rows(text: bytes) -> list[tuple[object, ...]]:
    """COPY text read back as PostgreSQL reads it into recon_lines' columns."""
    rows: list[tuple[object, ...]] = []
    for line in text.decode().splitlines():
        batch, line_no, kind, ref, order_no, trade, amount, fee, status, when = line.split("\t")
        occurred = datetime.fromisoformat(when).astimezone(UTC)
        rows.append((batch, int(line_no), kind, ref, order_no, trade, int(amount), int(fee), status, occurred))
    return rows


@pytest.mark.parametrize("block", [7, 300, 2000])
def test_wechat_copy_text_blocks_are_the_staging_rows_of_the_lines(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of plain payment rows come as COPY text, the others as rows, wherever the blocks are cut: read back,
    they are exactly the staging rows `records` gives without COPY text, and the errors are the same."""
    from tomato.reconciliation.parsers import wechat
    from tomato.reconciliation.statement import Statement

    plain = [WX_PAYMENT.replace("`T1,", f"`T{n},").replace("10:00:05", f"10:00:{n % 60:02d}") for n in range(40)]
    plain[5] = plain[5].replace("`0.07000,", "`0.07,")  # a fee with two decimals only
    rows = [*plain[:20], *WX_ODD_ROWS, *plain[20:]]
    data = wx_bill(rows, summary=None, eol="\n") + (WX_SUMMARY_HEADER + "\n`0,`0,`0,`0,`0,`0,`0\n").encode()
    monkeypatch.setattr(wechat, "BLOCK", block)
    statement = Statement("wechat", lambda: io.BytesIO(data))
    expected = [row for part in statement.records("RB1") if isinstance(part, list) for row in part]
    parts = list(statement.records("RB1", copy_text=True))
    texts = [part for part in parts if isinstance(part, bytes)]
    got = [row for part in parts if isinstance(part, list) for row in part]
    got += [row for text in texts for row in copied_rows(text)]
    assert sorted(got, key=lambda row: row[1]) == expected
    assert len(expected) == 48
    assert texts, "plain payment rows come as COPY text"
    if block == 7:  # a block per line: every plain payment row is copied as text (42: two of WX_ODD_ROWS are)
        assert sum(len(copied_rows(text)) for text in texts) == 42
    malformed = [part for part in parts if isinstance(part, MalformedRow)]
    assert [m.line_no for m in malformed] == [28, 29, 30, 31, 32]


def test_wechat_copy_text_checks_the_summary_like_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows taken as COPY text still count toward the summary check: a summary that disagrees refuses the file."""
    from tomato.reconciliation.parsers import wechat
    from tomato.reconciliation.statement import Statement

    monkeypatch.setattr(wechat, "BLOCK", 7)  # a block per line: the rows are blocks of their own

    plain = [WX_PAYMENT.replace("`T1,", f"`T{n},") for n in range(3)]
    good = (WX_SUMMARY_HEADER + "\n`3,`37.02,`0.00,`0.00,`0.21000,`37.02,`0.00\n").encode()
    data = wx_bill(plain, summary=None, eol="\n")
    parts = list(Statement("wechat", lambda: io.BytesIO(data + good)).records("RB1", copy_text=True))
    assert [type(part) for part in parts] == [bytes]
    assert len(copied_rows(parts[0])) == 3
    bad = good.replace(b"0.21000", b"0.22000")
    with pytest.raises(StatementRejected, match="手续费总金额"):
        list(Statement("wechat", lambda: io.BytesIO(data + bad)).records("RB1", copy_text=True))
