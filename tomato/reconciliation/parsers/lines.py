"""What every statement parser yields, and the bounded-memory reading they share.

A parser reads its file line by line from a stream (zip members through `zipfile` streams, gzip through
`gzip.open`), so memory stays bounded whatever the file size: at most one line (`MAX_LINE_BYTES`) and the
decompressor's window are held at a time.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import IO, Any, BinaryIO, Protocol

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # every channel file writes China wall-clock times
MAX_LINE_BYTES = 64 * 1024  # a longer line is not a statement line: the file is refused whole
SPOOL_BYTES = 8 * 1024 * 1024  # a non-seekable stream is spooled to disk beyond this

_YUAN = re.compile(r"^-?[0-9]{1,16}(\.[0-9]{1,5})?$")


class LineKind(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One normalised statement row (docs/reconciliation.md)."""

    line_no: int  # 1-based line number in the (decompressed) file
    kind: LineKind
    channel_trade_no: str  # Alipay trade_no, WeChat transaction_id, bank queryId
    order_no: str | None  # our order_no as sent to the channel; None on bank refund rows
    refund_no: str | None  # our refund_no on refund rows
    amount: int  # fen, > 0 for payments and refunds
    fee: int  # fen, >= 0: charged on a payment, returned on a refund
    status: str  # "SUCCESS" for a completed payment/refund, else the channel's own word
    occurred_at: datetime  # UTC


@dataclass(frozen=True, slots=True)
class MalformedRow:
    line_no: int
    reason: str


class StatementRejected(Exception):
    """The whole file is refused (hash, archive, header, footer totals, truncation).

    Parsers stream, so this may be raised after some lines were yielded: a consumer discards everything it got
    from a file that ends in this exception.
    """


Parsed = Iterator[StatementLine | MalformedRow]
# a staging row of `recon_lines` (repository.LINE_COLUMNS): batch_id, line_no, kind, ref, order_no,
# channel_trade_no, amount, fee, status, occurred_at
Record = tuple[Any, ...]


def staging_row(batch_id: str, line: Any) -> Record:
    """The staging row of a line (a `StatementLine` or alike): `ref` is the order_no of a payment, the refund_no of
    a refund; ids cut to their column's 64 characters, a status other than SUCCESS to 32."""
    kind = "PAYMENT" if line.kind == "PAYMENT" else "REFUND"
    ref = line.order_no if kind == "PAYMENT" else line.refund_no
    if not ref:
        ref = f"?{line.channel_trade_no}"
    status = line.status if line.status == "SUCCESS" else line.status[:32]
    return (batch_id, line.line_no, kind, ref[:64], line.order_no, line.channel_trade_no[:64], line.amount, line.fee,
            status, line.occurred_at)  # fmt: skip


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class RowError(ValueError):
    """A row that cannot be read: becomes a `MalformedRow` with its line number."""


def seekable(stream: BinaryIO) -> IO[bytes]:
    """`stream` itself when it can seek (zip needs that), else a copy spooled to a temporary file."""
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError):
        pass
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the caller reads it
    shutil.copyfileobj(stream, spool, 1024 * 1024)
    spool.seek(0)
    return spool


def iter_lines(stream: Any, digest: _Digest | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its `\\r\\n` or `\\n`) for every line; `digest` sees the raw bytes."""
    line_no = 0
    while True:
        raw: bytes = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > MAX_LINE_BYTES:
            raise StatementRejected(f"line {line_no} is longer than {MAX_LINE_BYTES} bytes")
        if digest is not None:
            digest.update(raw)
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        yield line_no, raw


def yuan_fen(text: str, name: str) -> int:
    """A signed yuan cell ("12.34", "-0.07", "0.07000") → fen; RowError when not a whole number of fen."""
    value = text.strip()
    if not _YUAN.match(value):
        raise RowError(f"{name} is not a yuan amount: {text!r}")
    fen = Decimal(value) * 100
    if fen != fen.to_integral_value():
        raise RowError(f"{name} is not a whole number of fen: {text!r}")
    return int(fen)


def china_time(text: str, fmt: str, name: str) -> datetime:
    """A China wall-clock time cell → aware UTC datetime; RowError when malformed."""
    try:
        return datetime.strptime(text.strip(), fmt).replace(tzinfo=CHINA).astimezone(UTC)
    except ValueError:
        raise RowError(f"{name} is not a time ({fmt}): {text!r}") from None


def required(cells: dict[str, str], name: str) -> str:
    value = cells.get(name, "")
    if not value:
        raise RowError(f"{name} is empty")
    return value
