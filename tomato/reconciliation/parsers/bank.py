"""Bank reconciliation file: a zip holding one CSV of our documented layout (UTF-8, amounts in fen).

Columns `queryId,traceNo,orderId,txnTime,txnType,txnAmt,settleDate,settleAmt,fee,respCode` (docs/reconciliation.md):
`txnType` `01` is a payment (positive `settleAmt` and `fee`), `04` a refund (both negative or zero, `orderId` the
refund's own); `respCode` `00` is `SUCCESS`, any other code is the status as written. There is no footer.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from typing import IO, BinaryIO

from tomato.channel.adapters.bank.codec import STATEMENT_COLUMNS
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
)

TIME_FORMAT = "%Y%m%d%H%M%S"
_FEN = re.compile(r"^-?[0-9]{1,18}$")
_BOM = b"\xef\xbb\xbf"


def parse(stream: BinaryIO) -> Parsed:
    source = seekable(stream)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise StatementRejected(f"bank file is not a zip: {exc}") from None
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
        if len(members) != 1:
            raise StatementRejected(f"bank file zip holds {len(members)} files, not 1")
        try:
            with archive.open(members[0]) as member:
                yield from _file(member)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise StatementRejected(f"bank file zip is corrupt: {exc}") from None


def _file(member: IO[bytes]) -> Parsed:
    header_seen = False
    for line_no, raw in iter_lines(member):
        if not header_seen:
            header = raw.removeprefix(_BOM).decode("utf-8", "replace").split(",")
            if tuple(cell.strip() for cell in header) != STATEMENT_COLUMNS:
                raise StatementRejected(f"line {line_no}: not the bank file header {','.join(STATEMENT_COLUMNS)}")
            header_seen = True
            continue
        if not raw.strip():
            continue
        try:
            yield _row(line_no, raw)
        except RowError as exc:
            yield MalformedRow(line_no, str(exc))
    if not header_seen:
        raise StatementRejected("bank file is empty: no header")


def _fen(cells: dict[str, str], name: str) -> int:
    value = required(cells, name)
    if not _FEN.match(value):
        raise RowError(f"{name} is not an amount in fen: {value!r}")
    return int(value)


def _row(line_no: int, raw: bytes) -> StatementLine:
    try:
        values = raw.decode("utf-8").split(",")
    except UnicodeDecodeError:
        raise RowError("not UTF-8 text") from None
    if len(values) != len(STATEMENT_COLUMNS):
        raise RowError(f"{len(values)} cells, the header has {len(STATEMENT_COLUMNS)}")
    cells = {name: value.strip() for name, value in zip(STATEMENT_COLUMNS, values, strict=True)}
    txn_type = required(cells, "txnType")
    if txn_type not in ("01", "04"):
        raise RowError(f"txnType is neither 01 (payment) nor 04 (refund): {txn_type!r}")
    kind = LineKind.PAYMENT if txn_type == "01" else LineKind.REFUND
    amount, settled, fee = _fen(cells, "txnAmt"), _fen(cells, "settleAmt"), _fen(cells, "fee")
    sign = 1 if kind is LineKind.PAYMENT else -1
    if amount <= 0:
        raise RowError("txnAmt must be positive")
    if settled * sign <= 0 or fee * sign < 0:
        word = "positive" if sign > 0 else "negative"
        raise RowError(f"settleAmt and fee must be {word} on a txnType {txn_type} row")
    code = required(cells, "respCode")
    order_id = required(cells, "orderId")
    return StatementLine(
        line_no=line_no,
        kind=kind,
        channel_trade_no=required(cells, "queryId"),
        order_no=order_id if kind is LineKind.PAYMENT else None,
        refund_no=order_id if kind is LineKind.REFUND else None,
        amount=amount,
        fee=abs(fee),
        status="SUCCESS" if code in ("00", "A6") else code,
        occurred_at=china_time(required(cells, "txnTime"), TIME_FORMAT, "txnTime"),
    )
