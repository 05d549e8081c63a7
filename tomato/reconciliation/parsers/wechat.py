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
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any, BinaryIO, cast

from tomato.reconciliation.parsers.lines import (
    MAX_LINE_BYTES,
    LineKind,
    MalformedRow,
    Parsed,
    Record,
    RowError,
    StatementLine,
    StatementRejected,
    china_time,
    required,
    seekable,
    staging_row,
    yuan_fen,
)
from tomato.reconciliation.parsers.wechat_blocks import CopyBlocks

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
BLOCK = 64 * 1024  # read and decoded a block at a time, cut at line ends (memory: a few blocks)
CACHE_MAX = 2048  # remembered amount and time cells, forgotten when full (memory stays bounded)
CHINA_OFFSET = timedelta(hours=8)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")

RECORDS_CHUNK = 10_000  # staging rows handed to the loader at a time
Item = Record | list[Record] | bytes | StatementLine | MalformedRow


def parse(stream: BinaryIO, expected_sha1: str | None = None) -> Parsed:
    """The normalised lines of a bill (the public statement interface)."""
    for item in _read(stream, expected_sha1, None, copy_text=False):
        if isinstance(item, tuple):
            # (batch_id, line_no, kind, ref, order_no, channel_trade_no, amount, fee, status, occurred_at)
            yield StatementLine(item[1], LineKind.PAYMENT, item[5], item[4], None, item[6], item[7], item[8], item[9])
        else:  # without a batch the rows come one by one, never as lists
            yield cast(StatementLine | MalformedRow, item)


def records(
    stream: BinaryIO, batch_id: str, expected_sha1: str | None = None, *, copy_text: bool = False
) -> Iterator[list[Record] | bytes | MalformedRow]:
    """The bill as lists of up to RECORDS_CHUNK staging rows of `batch_id` (`lines.staging_row`) and its
    malformed rows: the loader's fast path, with the same checks and the same rows as `parse`, without an object
    per line. With `copy_text`, blocks of plain payment rows come as PostgreSQL COPY text instead (`bytes`, the
    columns of `lines.staging_row` tab-separated, `wechat_blocks`)."""
    return cast(Iterator[list[Record] | bytes | MalformedRow], _read(stream, expected_sha1, batch_id, copy_text))


def _read(stream: BinaryIO, expected_sha1: str | None, batch_id: str | None, copy_text: bool) -> Iterator[Item]:
    source = seekable(stream)
    head = source.read(2)
    source.seek(0)
    text: IO[bytes] = cast(IO[bytes], gzip.open(source, "rb")) if head == b"\x1f\x8b" else source
    digest = hashlib.sha1() if expected_sha1 is not None else None  # noqa: S324 - WeChat's integrity check
    try:
        yield from _bill(text, digest, batch_id, copy_text)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise StatementRejected(f"wechat bill gzip is corrupt: {exc}") from None
    if digest is not None and expected_sha1 is not None:
        if not hmac.compare_digest(digest.hexdigest(), expected_sha1.strip().lower()):
            raise StatementRejected("wechat bill SHA1 does not match hash_value")


def _cells(line: str) -> list[str]:
    return [cell[1:] if cell.startswith("`") else cell for cell in line.split(",")]


class _Block:
    """About `BLOCK` bytes of the bill, cut at a line end: its first line's number, its number of lines, and its
    text as decoded (line ends as in the file; "" when some line is not UTF-8). `lines` are the lines without their
    `\\r\\n` or `\\n`, a line that is not UTF-8 as bytes (`clean` is then False); split only when asked, as the COPY
    text path reads the text whole."""

    __slots__ = ("first", "count", "text", "_lines", "clean")

    def __init__(self, first: int, count: int, text: str, lines: list[Any] | None = None, clean: bool = True) -> None:
        self.first, self.count, self.text, self._lines, self.clean = first, count, text, lines, clean

    @property
    def lines(self) -> list[Any]:
        if self._lines is None:
            text = self.text
            if "\r" in text:  # every "\r\n" is a line end; a "\r" elsewhere stays
                text = text.replace("\r\n", "\n")
                if text.endswith("\r"):
                    text = text[:-1]
            self._lines = text.split("\n")
        return self._lines


def _blocks(text: IO[bytes], digest: hashlib._Hash | None) -> Iterator[_Block]:
    """The bill's blocks. `digest` sees every byte. A line longer than MAX_LINE_BYTES refuses the file, as
    `lines.iter_lines` does."""
    line_no = 1
    pending = b""
    while True:
        chunk = text.read(BLOCK)
        if digest is not None and chunk:
            digest.update(chunk)
        data = pending + chunk if pending else chunk
        if not chunk:
            if data:  # a last line without its end
                if len(data) > MAX_LINE_BYTES:
                    raise StatementRejected(f"line {line_no} is longer than {MAX_LINE_BYTES} bytes")
                lines, clean = _decoded([data])
                yield _Block(line_no, 1, "", lines, clean)
            return
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) > MAX_LINE_BYTES:
                raise StatementRejected(f"line {line_no} is longer than {MAX_LINE_BYTES} bytes")
            pending = data
            continue
        pending, body = data[cut + 1 :], data[:cut]
        if len(body) + 1 > MAX_LINE_BYTES:  # a shorter block cannot hold a line too long: not split to look
            for n, line in enumerate(body.split(b"\n")):
                if len(line) + 1 > MAX_LINE_BYTES:
                    raise StatementRejected(f"line {line_no + n} is longer than {MAX_LINE_BYTES} bytes")
        count = body.count(b"\n") + 1
        try:
            block = _Block(line_no, count, body.decode("utf-8"))
        except UnicodeDecodeError:
            raw = body.split(b"\n")
            lines, clean = _decoded([line[:-1] if line.endswith(b"\r") else line for line in raw])
            block = _Block(line_no, count, "", lines, clean)
        yield block
        line_no += count


def _decoded(raw: list[bytes]) -> tuple[list[Any], bool]:
    lines: list[Any] = []
    for line in raw:
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line)
    return lines, all(isinstance(line, str) for line in lines)


def _fen(text: str, cache: dict[str, int] | None, key: str | None = None) -> int | None:
    """`lines.yuan_fen` of a cell ("" is 0), or None when it is not a whole number of fen (the slow path then
    words the error); remembered under `key` (the cell as read, `text` stripped) or `text`, as the same amounts
    recur."""
    body = text[1:] if text[:1] == "-" else text
    whole, dot, frac = body.partition(".")
    if not (0 < len(whole) <= 16 and whole.isascii() and whole.isdigit()):
        return 0 if text == "" else None
    fen = int(whole) * 100
    if dot:
        if not (0 < len(frac) <= 5 and frac.isascii() and frac.isdigit()) or frac[2:].strip("0"):
            return None
        fen += int(frac[:2]) * (10 if len(frac) == 1 else 1)
    if body is not text:
        fen = -fen
    if cache is None:
        return fen
    if len(cache) >= CACHE_MAX:
        cache.clear()
    cache[text if key is None else key] = fen
    return fen


def _utc(text: str, cache: dict[str, datetime], key: str) -> datetime | None:
    """A `YYYY-MM-DD HH:MM:SS` China time as UTC by arithmetic, or None (the slow path then uses strptime);
    remembered under `key` (the cell as read, `text` stripped), as a second holds many rows."""
    if len(text) != 19 or not _TIME.fullmatch(text):
        return None
    try:
        at = datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                      int(text[17:19]), tzinfo=UTC) - CHINA_OFFSET  # fmt: skip
    except (ValueError, OverflowError):
        return None
    if len(cache) >= CACHE_MAX:
        cache.clear()
    cache[key] = at
    return at


def _bill(text: IO[bytes], digest: hashlib._Hash | None, batch_id: str | None, copy_text: bool) -> Iterator[Item]:  # noqa: C901, PLR0912, PLR0915 - one pass, small state machine, the hot loop inline
    header: list[str] | None = None
    summary_header: list[str] | None = None
    summary: dict[str, str] | None = None
    malformed = rows = paid = refunded = fees = 0
    at_of: dict[str, datetime] = {}
    batch: list[Record] = []  # staging rows not yet handed over (records mode)
    copy: CopyBlocks | None = None  # with copy_text, once the header is read
    copied: list[bytes] = []  # COPY text not yet handed over, and its rows
    copied_rows = 0
    fen_of: dict[str, int] = {}
    commas = i_time = i_trade = i_order = i_state = i_settled = i_refund = i_fee = i_total = 0
    for block in _blocks(text, digest):
        line_no = block.first - 1
        fast = block.clean and header is not None and summary_header is None
        if fast and copy is not None and block.text:
            done = copy.convert(block.text, block.first, block.count)
            if done is not None:
                data, settled_total, fee_total = done
                rows += block.count
                paid += settled_total
                fees += fee_total
                copied.append(data)
                copied_rows += block.count
                if copied_rows >= RECORDS_CHUNK:
                    yield b"".join(copied)
                    copied, copied_rows = [], 0
                continue
        lines, clean = block.lines, block.clean
        for line in lines:
            line_no += 1
            if fast:
                # a plain payment row: the same checks as `_row`, on the cells it needs; anything else (refunds,
                # errors, odd layouts) takes the general path below, which words the errors
                # every cell backticked and no comma inside one: the cells are the pieces between ",`", as many as
                # the line has commas plus one
                cells = line[1:].split(",`") if line[:1] == "`" else ()
                if len(cells) == commas + 1 and line.count(",") == commas:
                    state = cells[i_state].strip()
                    if state and state != "REFUND" and len(state) <= 32:
                        order = cells[i_order].strip()
                        trade = cells[i_trade].strip()
                        # the other cells as read: a cache hit or plain digits need no strip (else it is stripped)
                        when = cells[i_time]
                        fee_s = cells[i_fee]
                        refund_s = cells[i_refund]
                        settled_s = cells[i_settled]
                        total_s = cells[i_total]
                        fee = fen_of.get(fee_s)  # fees and refund totals repeat: remembered
                        if fee is None:
                            fee = _fen(fee_s.strip(), fen_of, fee_s)
                        refund = fen_of.get(refund_s)
                        if refund is None:
                            refund = _fen(refund_s.strip(), fen_of, refund_s)
                        whole, _, cents = settled_s.partition(".")
                        if len(cents) == 2 and whole.isdigit() and cents.isdigit() and settled_s.isascii():
                            settled: int | None = int(whole) * 100 + int(cents) if len(whole) <= 16 else None
                        else:
                            settled = _fen(settled_s.strip(), None)
                        if total_s == settled_s:
                            amount = settled
                        else:
                            amount = _fen(total_s.strip(), None)
                        at = at_of.get(when)
                        if at is None:
                            at = _utc(when.strip(), at_of, when)
                        if (
                            0 < len(order) <= 64 and 0 < len(trade) <= 64 and at is not None
                            and fee is not None and fee >= 0 and settled is not None and refund is not None
                            and amount is not None and amount > 0
                        ):  # fmt: skip
                            rows += 1
                            paid += settled
                            refunded += refund
                            fees += fee
                            row = (batch_id, line_no, "PAYMENT", order, order, trade, amount, fee, state, at)
                            if batch_id is None:
                                yield row
                            else:
                                batch.append(row)
                                if len(batch) >= RECORDS_CHUNK:
                                    yield batch
                                    batch = []
                            continue
            if line_no == 1 and isinstance(line, str) and line.startswith("\ufeff"):
                line = line[1:]
            if isinstance(line, bytes):
                if line_no == 1 and line.startswith(_BOM):
                    try:
                        line = line[len(_BOM) :].decode("utf-8")
                    except UnicodeDecodeError:
                        pass
                if isinstance(line, bytes):
                    if header is None or summary_header is not None:
                        raise StatementRejected(f"line {line_no} is not UTF-8 text")
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
                commas = len(header) - 1
                # the last of a repeated name, as `_row`'s dict keeps it
                col = {name: n for n, name in enumerate(header)}
                i_time, i_trade, i_order, i_state = (
                    col["交易时间"],
                    col["微信订单号"],
                    col["商户订单号"],
                    col["交易状态"],
                )
                i_settled, i_refund, i_fee, i_total = (
                    col["应结订单金额"],
                    col["退款金额"],
                    col["手续费"],
                    col["订单金额"],
                )
                fast = clean
                if copy_text and batch_id is not None:
                    copy = CopyBlocks(header, batch_id)
                continue
            if summary_header is None:
                if line.split(",")[0].strip() == SUMMARY_FIRST:
                    summary_header = [cell.strip() for cell in line.split(",")]
                    fast = False
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
                if batch_id is None:
                    yield parsed
                else:
                    batch.append(staging_row(batch_id, parsed))
                continue
            if summary is not None:
                raise StatementRejected(f"line {line_no}: data after the summary row")
            cells = _cells(line)
            if len(cells) != len(summary_header):
                raise StatementRejected(f"line {line_no}: summary row has {len(cells)} cells")
            summary = dict(zip(summary_header, cells, strict=True))
    if batch:
        yield batch
    if copied:
        yield b"".join(copied)
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
