"""WeChat Pay trade bill (`bill_type=ALL`): UTF-8 CSV, every data cell prefixed with a backtick.

Read as a stream, gzip or plain (the first two bytes decide). Layout (docs/reconciliation.md): the column header,
data rows, the summary header (`总交易单数,…`) and one summary row, whose count, amounts and fee total are checked
against the rows. `交易状态` `SUCCESS` is a payment, `REFUND` a refund whose status is `退款状态`; any other word is
a payment with that status. A given SHA1 (WeChat's `hash_value`, of the decompressed bytes) is checked at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import zlib
from typing import IO, BinaryIO, cast

from tomato.reconciliation.parsers.common import (
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

COLUMNS = (
    "交易时间",
    "微信订单号",
    "商户订单号",
    "交易状态",
    "应结订单金额",
    "商户退款单号",
    "退款金额",
    "退款状态",
    "手续费",
    "订单金额",
    "申请退款金额",
)
SUMMARY_FIRST = "总交易单数"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_BOM = b"\xef\xbb\xbf"


def parse(stream: BinaryIO, expected_sha1: str | None = None) -> Parsed:
    source = seekable(stream)
    head = source.read(2)
    source.seek(0)
    text: IO[bytes] = cast(IO[bytes], gzip.open(source, "rb")) if head == b"\x1f\x8b" else source
    digest = hashlib.sha1() if expected_sha1 is not None else None  # noqa: S324 - WeChat's integrity check
    try:
        yield from _bill(text, digest)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise StatementRejected(f"wechat bill gzip is corrupt: {exc}") from None
    if digest is not None and expected_sha1 is not None:
        if not hmac.compare_digest(digest.hexdigest(), expected_sha1.strip().lower()):
            raise StatementRejected("wechat bill SHA1 does not match hash_value")


def _cells(line: str) -> list[str]:
    return [cell[1:] if cell.startswith("`") else cell for cell in line.split(",")]


def _bill(text: IO[bytes], digest: hashlib._Hash | None) -> Parsed:  # noqa: C901 - one pass, small state machine
    header: list[str] | None = None
    summary_header: list[str] | None = None
    summary: dict[str, str] | None = None
    malformed = rows = paid = refunded = fees = 0
    for line_no, raw in iter_lines(text, digest):
        if line_no == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            if header is None or summary_header is not None:
                raise StatementRejected(f"line {line_no} is not UTF-8 text") from None
            malformed += 1
            yield MalformedRow(line_no, "not UTF-8 text")
            continue
        if not line.strip():
            continue
        if header is None:
            header = [cell.strip() for cell in line.split(",")]
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                raise StatementRejected(f"line {line_no}: column header lacks {', '.join(missing)}")
            continue
        if summary_header is None:
            if line.split(",")[0].strip() == SUMMARY_FIRST:
                summary_header = [cell.strip() for cell in line.split(",")]
                continue
            try:
                parsed, (settled, refund) = _row(line_no, header, line)
            except RowError as exc:
                malformed += 1
                yield MalformedRow(line_no, str(exc))
                continue
            rows += 1
            paid += settled
            refunded += refund
            fees += parsed.fee if parsed.kind is LineKind.PAYMENT else -parsed.fee
            yield parsed
            continue
        if summary is not None:
            raise StatementRejected(f"line {line_no}: data after the summary row")
        cells = _cells(line)
        if len(cells) != len(summary_header):
            raise StatementRejected(f"line {line_no}: summary row has {len(cells)} cells")
        summary = dict(zip(summary_header, cells, strict=True))
    if header is None or summary is None:
        raise StatementRejected("wechat bill is truncated: no column header or no summary row")
    if malformed == 0:
        _check_summary(summary, rows, paid, refunded, fees)


def _check_summary(summary: dict[str, str], rows: int, paid: int, refunded: int, fees: int) -> None:
    try:
        expected = {
            "总交易单数": int(summary.get("总交易单数", "")),
            "应结订单总金额": yuan_fen(summary.get("应结订单总金额", ""), "应结订单总金额"),
            "退款总金额": yuan_fen(summary.get("退款总金额", ""), "退款总金额"),
            "手续费总金额": yuan_fen(summary.get("手续费总金额", ""), "手续费总金额"),
        }
    except (ValueError, RowError) as exc:
        raise StatementRejected(f"wechat summary row: {exc}") from None
    found = {"总交易单数": rows, "应结订单总金额": paid, "退款总金额": refunded, "手续费总金额": fees}
    wrong = [f"{name} {expected[name]} (rows make {found[name]})" for name in expected if expected[name] != found[name]]
    if wrong:
        raise StatementRejected("wechat summary does not match the rows: " + "; ".join(wrong))


def _row(line_no: int, header: list[str], line: str) -> tuple[StatementLine, tuple[int, int]]:
    raw_cells = _cells(line)
    if len(raw_cells) != len(header):
        raise RowError(f"{len(raw_cells)} cells, the header has {len(header)}")
    cells = {name: cell.strip() for name, cell in zip(header, raw_cells, strict=True)}
    state = required(cells, "交易状态")
    fee = yuan_fen(cells.get("手续费") or "0", "手续费")
    settled = yuan_fen(cells.get("应结订单金额") or "0", "应结订单金额")
    refund_total = yuan_fen(cells.get("退款金额") or "0", "退款金额")
    if state == "REFUND":
        kind, status = LineKind.REFUND, required(cells, "退款状态")
        amount = yuan_fen(required(cells, "申请退款金额"), "申请退款金额")
        refund_no: str | None = required(cells, "商户退款单号")
        if fee > 0:
            raise RowError("手续费 must be negative or zero on a refund row")
    else:
        kind, status, refund_no = LineKind.PAYMENT, state, None
        amount = yuan_fen(required(cells, "订单金额"), "订单金额")
        if fee < 0:
            raise RowError("手续费 must be positive or zero on a payment row")
    if amount <= 0:
        raise RowError("the amount must be positive")
    return StatementLine(
        line_no=line_no,
        kind=kind,
        channel_trade_no=required(cells, "微信订单号"),
        order_no=required(cells, "商户订单号"),
        refund_no=refund_no,
        amount=amount,
        fee=abs(fee),
        status=status,
        occurred_at=china_time(required(cells, "交易时间"), TIME_FORMAT, "交易时间"),
    ), (settled, refund_total)
