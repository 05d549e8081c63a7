"""Alipay trade bill (`bill_type=trade`): a zip of GBK CSVs; the detail file is read as a stream.

Layout (docs/reconciliation.md): `#` header lines, the start marker `#-----…业务明细列表-----…`, the column header,
data rows whose id cells end in a TAB, the end marker `#-----…业务明细列表结束-----…`, then `#` footer lines with
the totals (`#交易合计：N笔，商家实收共X元…`, `#退款合计：N笔，商家实收退款共-X元…`), which are checked against
the rows.
`业务类型` is `交易` (payment) or `退款` (refund); any other word starting with either is that kind with the word as
its status. Payments carry positive amounts and a negative-or-zero `服务费`, refunds the opposite.
A service-provider account's statement holds one detail file per sub-merchant (`reconciliation/combine.py`): each is
read and footer-checked on its own, in zip order, line numbers running on across them so they stay unique.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Generator
from typing import IO, BinaryIO

from tomato.reconciliation.parsers.lines import (
    LineKind,
    MalformedRow,
    Parsed,
    RowError,
    StatementLine,
    StatementRejected,
    china_time,
    iter_lines,
    required,
    seekable,
    yuan_fen,
)

DETAIL_SUFFIX = "_业务明细.csv"
TITLE = "#支付宝业务明细查询"
START = "业务明细列表"
END = "业务明细列表结束"
COLUMNS = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "完成时间",
    "订单金额（元）",
    "商家实收（元）",
    "退款批次号/请求号",
    "服务费（元）",
)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_PAY_TOTAL = re.compile(r"^#交易合计：(\d+)笔，商家实收共(-?[0-9.]+)元")
_REFUND_TOTAL = re.compile(r"^#退款合计：(\d+)笔，商家实收退款共(-?[0-9.]+)元")


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name as Alipay wrote it: GBK bytes unless the UTF-8 flag is set (zipfile decodes cp437)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def parse(stream: BinaryIO) -> Parsed:
    source = seekable(stream)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise StatementRejected(f"alipay bill is not a zip: {exc}") from None
    with archive:
        details = [i for i in archive.infolist() if member_name(i).endswith(DETAIL_SUFFIX)]
        if not details:
            raise StatementRejected(f"alipay bill zip holds 0 detail files (…{DETAIL_SUFFIX})")
        offset = 0
        for info in details:
            try:
                with archive.open(info) as member:
                    offset = yield from _detail(member, offset)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise StatementRejected(f"alipay bill zip is corrupt: {exc}") from None
            except StatementRejected as exc:
                if len(details) == 1:
                    raise
                raise StatementRejected(f"{member_name(info)}: {exc}") from None


def _marker(line: str) -> str | None:
    """The word of a `#----word----` separator line, else None."""
    if not line.startswith("#-"):
        return None
    return line.strip().strip("#").strip("-")


def _detail(member: IO[bytes], offset: int = 0) -> Generator[StatementLine | MalformedRow, None, int]:  # noqa: C901
    """The lines of one detail file, numbered from `offset` + 1; returns the last line number."""
    header: list[str] | None = None
    phase = "head"
    malformed = 0
    counted = {LineKind.PAYMENT: [0, 0], LineKind.REFUND: [0, 0]}  # rows, sum of 商家实收 (fen, signed)
    footer: dict[LineKind, tuple[int, int]] = {}
    line_no = 0
    for line_no, raw in iter_lines(member):
        if line_no == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM some tools prepend
        try:
            line = raw.decode("gbk")
        except UnicodeDecodeError:
            if phase != "rows":
                raise StatementRejected(f"line {line_no} is not GBK text") from None
            malformed += 1
            yield MalformedRow(offset + line_no, "not GBK text")
            continue
        if phase == "head":
            if line_no == 1 and line.strip() != TITLE:
                raise StatementRejected(f"line 1 is not {TITLE}")
            if _marker(line) == START:
                phase = "columns"
            elif not line.startswith("#"):
                raise StatementRejected(f"line {line_no}: data before the {START} marker")
        elif phase == "columns":
            header = [cell.strip() for cell in line.split(",")]
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                raise StatementRejected(f"line {line_no}: column header lacks {', '.join(missing)}")
            phase = "rows"
        elif phase == "rows":
            if _marker(line) == END:
                phase = "footer"
                continue
            if not line.strip():
                continue
            assert header is not None
            try:
                parsed, received = _row(offset + line_no, header, line)
            except RowError as exc:
                malformed += 1
                yield MalformedRow(offset + line_no, str(exc))
                continue
            counted[parsed.kind][0] += 1
            counted[parsed.kind][1] += received
            yield parsed
        else:
            if not line.strip():
                continue
            if not line.startswith("#"):
                raise StatementRejected(f"line {line_no}: data after the {END} marker")
            for kind, pattern in ((LineKind.PAYMENT, _PAY_TOTAL), (LineKind.REFUND, _REFUND_TOTAL)):
                if m := pattern.match(line):
                    try:
                        footer[kind] = (int(m.group(1)), yuan_fen(m.group(2), "total"))
                    except RowError as exc:
                        raise StatementRejected(f"line {line_no}: {exc}") from None
    if phase != "footer":
        raise StatementRejected(f"alipay bill is truncated: no {END} marker")
    if len(footer) != 2:
        raise StatementRejected("alipay bill has no 交易合计/退款合计 footer")
    if malformed == 0:  # a malformed row cannot be counted: it is reported instead
        for kind, (rows, total) in footer.items():
            if (rows, total) != tuple(counted[kind]):
                raise StatementRejected(
                    f"alipay footer says {rows} {kind.value.lower()} rows totalling {total} fen, "
                    f"the rows make {counted[kind][0]} totalling {counted[kind][1]} fen"
                )
    return offset + line_no


def _row(line_no: int, header: list[str], line: str) -> tuple[StatementLine, int]:
    raw_cells = line.split(",")
    if len(raw_cells) != len(header):
        raise RowError(f"{len(raw_cells)} cells, the header has {len(header)}")
    cells = {name: cell.strip("\t ") for name, cell in zip(header, raw_cells, strict=True)}
    business = required(cells, "业务类型")
    if business.startswith("退款"):
        kind = LineKind.REFUND
    elif business.startswith("交易"):
        kind = LineKind.PAYMENT
    else:
        raise RowError(f"业务类型 is neither 交易 nor 退款: {business!r}")
    status = "SUCCESS" if business in ("交易", "退款") else business
    amount = yuan_fen(required(cells, "订单金额（元）"), "订单金额（元）")
    received = yuan_fen(required(cells, "商家实收（元）"), "商家实收（元）")
    fee = yuan_fen(cells.get("服务费（元）") or "0", "服务费（元）")
    sign = 1 if kind is LineKind.PAYMENT else -1
    if amount * sign <= 0:
        raise RowError(f"订单金额（元） must be {'positive' if sign > 0 else 'negative'} on a {business} row")
    if fee * sign > 0:
        raise RowError(f"服务费（元） must be {'negative' if sign > 0 else 'positive'} or zero on a {business} row")
    refund_no = required(cells, "退款批次号/请求号") if kind is LineKind.REFUND else None
    return StatementLine(
        line_no=line_no,
        kind=kind,
        channel_trade_no=required(cells, "支付宝交易号"),
        order_no=required(cells, "商户订单号"),
        refund_no=refund_no,
        amount=abs(amount),
        fee=abs(fee),
        status=status,
        occurred_at=china_time(required(cells, "完成时间"), TIME_FORMAT, "完成时间"),
    ), received
