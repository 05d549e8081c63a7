"""UnionPay ACP 5.1.0 wire values (docs/channels.md): fen strings, Beijing times, `k=v&…` bodies, forms.

Pure functions shared by the adapter and the simulator, so both read and write the bank's wire format the same
way: amounts stay integer fen, times never lose their zone, and nested `{…}`/`[…]` values survive parsing.
"""

from __future__ import annotations

import base64
import binascii
import csv
import html
import io
import re
import secrets
import zipfile
import zlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from html.parser import HTMLParser
from urllib.parse import parse_qsl

from tomato.core import urlform

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y%m%d%H%M%S"  # txnTime / payTimeout: yyyyMMddHHmmss, Beijing wall clock
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"
VERSION = "5.1.0"
ENCODING = "UTF-8"
SIGN_METHOD_RSA = "01"
CURRENCY_CNY = "156"

SUCCESS_CODES = frozenset({"00", "A6"})  # A6: "success with defects", treated as success by UnionPay's demos
PENDING_CODES = frozenset({"03", "04", "05"})  # outcome not known yet: query later (§C4)
NOT_FOUND_CODE = "34"

# 代付 (real-time payout): txnType 12, txnSubType 00, bizType 000401, POSTed to backTransReq.do. UnionPay's payout
# demo treats these answer codes (sync respCode, or a query's origRespCode) as "not final yet: query again".
PAYOUT_TXN = ("12", "00", "000401")
PAYOUT_PENDING_CODES = frozenset({"01", "03", "04", "05", "12", "34", "60"})
ACC_TYPE_CARD = "01"  # accType: a bank card (04 would be a corporate account)
_FULL_WIDTH = str.maketrans({"&": "＆", "=": "＝", "{": "｛", "}": "｝", "[": "【", "]": "】"})

_ORDER_ID = re.compile(r"^[0-9A-Za-z]{8,40}$")
_FEN = re.compile(r"^[0-9]{1,15}$")
_OPENERS = {"{": "}", "[": "]"}
_ECHO = (
    "version",
    "encoding",
    "signMethod",
    "txnType",
    "txnSubType",
    "bizType",
    "accessType",
    "merId",
    "orderId",
    "txnTime",
)
_ECHO_SAFE = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._-")
STATEMENT_COLUMNS = (
    "queryId",
    "traceNo",
    "orderId",
    "txnTime",
    "txnType",
    "txnAmt",
    "settleDate",
    "settleAmt",
    "fee",
    "respCode",
)


# --- amounts and identifiers ----------------------------------------------------------------------------


def fen_text(fen: int) -> str:
    """1234 → "1234": `txnAmt` is integer fen as a decimal string (§F7)."""
    if not isinstance(fen, int) or isinstance(fen, bool) or fen < 0:
        raise TypeError("fen must be a non-negative int")
    return str(fen)


def parse_fen(text: str) -> int:
    """ "1234" → 1234; refuses signs, decimals, blanks and anything else rather than guessing."""
    if not isinstance(text, str) or not _FEN.match(text):
        raise ValueError(f"not a fen amount: {text!r}")
    return int(text)


def valid_order_id(value: str) -> bool:
    """ACP orderId: 8–40 letters and digits (no `-` or `_`)."""
    return bool(_ORDER_ID.match(value))


def new_query_id(now: datetime) -> str:
    """21 digits like UnionPay's `queryId` (and our simulated `tn`): Beijing yyMMddHHmmss + 9 random digits."""
    return format_time(now)[2:] + f"{secrets.randbelow(10**9):09d}"


# --- times ----------------------------------------------------------------------------------------------


def _digits(text: str, length: int) -> bool:
    """Exactly `length` ASCII digits: `str.isdigit()` passes '²' and full-width or Arabic-Indic digits, which
    `int()` and `strptime` partly read, so a field with one would be read as another date or refused for the
    wrong reason."""
    return len(text) == length and text.isascii() and text.isdigit()


def format_time(value: datetime) -> str:
    """An aware datetime as `yyyyMMddHHmmss` Beijing wall clock (naive means UTC, as stored times are)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return aware.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """`yyyyMMddHHmmss` Beijing → aware UTC; raises ValueError when malformed."""
    if not _digits(text, 14):
        raise ValueError(f"not a yyyyMMddHHmmss time: {text!r}")
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)


def parse_trace_time(trace_time: str, txn_time: datetime) -> datetime:
    """`traceTime` is `MMddHHmmss` without a year: take the year of `txnTime`, the next one across New Year."""
    if not _digits(trace_time, 10):
        raise ValueError(f"not a MMddHHmmss time: {trace_time!r}")
    local = txn_time.astimezone(BEIJING)
    for year in (local.year, local.year + 1):
        try:
            candidate = datetime.strptime(f"{year}{trace_time}", TIME_FORMAT).replace(tzinfo=BEIJING)
        except ValueError:  # 29 February in a common year
            continue
        if candidate >= local - timedelta(days=1):
            return candidate.astimezone(UTC)
    raise ValueError(f"traceTime {trace_time!r} does not follow txnTime")


def settle_date(value: date) -> str:
    """A calendar date as ACP `settleDate` (`MMdd`)."""
    return value.strftime("%m%d")


def beijing_date(value: datetime) -> date:
    return value.astimezone(BEIJING).date()


def resolve_settle_date(mmdd: str, today: date) -> date | None:
    """The latest date on or before `today` with that `MMdd` (settleDate carries no year), None if invalid."""
    if not _digits(mmdd, 4):
        return None
    for year in range(today.year, today.year - 5, -1):
        try:
            day = date(year, int(mmdd[:2]), int(mmdd[2:]))
        except ValueError:
            continue
        if day <= today:
            return day
    return None


# --- k=v&… bodies ---------------------------------------------------------------------------------------


def parse_kv(text: str) -> dict[str, str]:
    """Parse a raw ACP response body `k=v&k=v` (values not URL-encoded).

    Inside a value, `{…}` and `[…]` nest (to any depth) and hide their `&`, so `reqReserved={a=1&b=2}` is one
    field, as UnionPay's `SDKUtil.parseQString` intends. A key is everything up to the first `=`; a closer with
    no opener is a literal. Raises ValueError on an unclosed bracket, a field without `=`, an empty or repeated
    key: a truncated or foreign body must not half-parse into something that looks valid.
    """
    fields: dict[str, str] = {}
    if text == "":
        return fields
    start = 0
    key: str | None = None
    closers: list[str] = []
    for i, char in enumerate(text):
        if key is None:
            if char == "=":
                key = text[start:i]
                start = i + 1
            elif char == "&":
                raise ValueError(f"field without '=' at offset {start}")
            continue
        if closers:
            if char == closers[-1]:
                closers.pop()
            elif char in _OPENERS:
                closers.append(_OPENERS[char])
        elif char in _OPENERS:
            closers.append(_OPENERS[char])
        elif char == "&":
            _put(fields, key, text[start:i])
            key, start = None, i + 1
    if closers:
        raise ValueError(f"unclosed {closers[0]!r}-bracket in field {key!r}")
    if key is None:
        raise ValueError("body ends with a field without '='")
    _put(fields, key, text[start:])
    return fields


def _put(fields: dict[str, str], key: str, value: str) -> None:
    if not key:
        raise ValueError("empty key")
    if key in fields:
        raise ValueError(f"repeated key {key!r}")
    fields[key] = value


def encode_kv(fields: Mapping[str, str]) -> str:
    """The raw `k=v&…` body; refuses values that would not parse back to the same fields."""
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    if parse_kv(body) != dict(fields):
        raise ValueError("a value holds '&' outside brackets or unbalanced brackets")
    return body


def echo(fields: Mapping[str, str]) -> dict[str, str]:
    """The request fields an answer repeats (`_ECHO`), when plain enough to go back into a raw k=v body."""
    return {k: fields[k] for k in _ECHO if k in fields and set(fields[k]) <= _ECHO_SAFE}


def encode_nested(values: Mapping[str, str]) -> str:
    """`{k=v&k=v}`, the ACP format of reserved/risk fields; values must not hold brackets or `&`."""
    for k, v in values.items():
        if any(c in k + v for c in "{}[]&="):
            raise ValueError(f"nested field {k!r} holds a reserved character")
    return "{" + "&".join(f"{k}={v}" for k, v in values.items()) + "}"


def parse_nested(value: str) -> dict[str, str]:
    """`{k=v&k=v}` → dict; ValueError when it is not braced."""
    if len(value) < 2 or value[0] != "{" or value[-1] != "}":
        raise ValueError("not a {…} value")
    return parse_kv(value[1:-1])


def customer_info(name: str) -> str:
    """`customerInfo` = base64(UTF-8 `{customerNm=…}`) (ACP `getCustomerInfo`). The characters that delimit the
    nested value are written full width, as UnionPay's demos advise for free text."""
    nested = "{customerNm=" + name.translate(_FULL_WIDTH) + "}"
    return base64.b64encode(nested.encode("utf-8")).decode("ascii")


def parse_customer_info(value: str) -> dict[str, str]:
    """The fields of a `customerInfo` value; ValueError when it is not base64 of a `{k=v&…}` value."""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"customerInfo does not decode: {exc}") from None
    return parse_nested(text)


# --- form posts -----------------------------------------------------------------------------------------


def encode_form(fields: Mapping[str, str]) -> bytes:
    return urlform.urlencode(fields).encode("utf-8")


def parse_form(body: bytes | str) -> dict[str, str]:
    """An x-www-form-urlencoded body (requests, back-notifies); ValueError on bad UTF-8 or repeated keys."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    result: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key in result:
            raise ValueError(f"repeated parameter {key!r}")
        result[key] = value
    return result


def form_html(action: str, fields: Mapping[str, str]) -> str:
    """The auto-submitting form of `AcpService.createAutoFormHtml`, every attribute HTML-escaped."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>' for k, v in fields.items()
    )
    return (
        '<!doctype html><html><head><meta charset="UTF-8"/><title>Redirecting to the bank</title></head><body>'
        f'<form id="pay_form" name="pay_form" action="{html.escape(action)}" method="post" accept-charset="UTF-8">'
        f'{inputs}<noscript><button type="submit">Continue to the bank</button></noscript></form>'
        '<script>document.getElementById("pay_form").submit();</script></body></html>'
    )


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.forms = 0
        self.repeated = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms += 1
            if self.forms == 1:
                self.action = values.get("action", "")
        elif tag == "input" and self.forms == 1 and values.get("name"):
            name = values["name"]
            self.repeated = self.repeated or name in self.fields
            self.fields[name] = values.get("value", "")


def parse_form_html(text: str) -> tuple[str, dict[str, str]]:
    """(action, fields) of the first form in `text`; ValueError when there is none or a field repeats."""
    reader = _FormReader()
    reader.feed(text)
    reader.close()
    if reader.action is None:
        raise ValueError("no form")
    if reader.repeated:
        raise ValueError("repeated form field")
    return reader.action, reader.fields


# --- reconciliation file (§C5) --------------------------------------------------------------------------


def encode_file_content(zip_bytes: bytes) -> str:
    """`fileContent` = base64(zlib-deflate(zip)), what `AcpService.deCodeFileContent` inflates."""
    return base64.b64encode(zlib.compress(zip_bytes)).decode("ascii")


def decode_file_content(text: str) -> bytes:
    """The zip bytes of `fileContent`; ValueError when it is not base64 of a zlib stream."""
    try:
        return zlib.decompress(base64.b64decode(text, validate=True))
    except (binascii.Error, zlib.error) as exc:
        raise ValueError(f"fileContent does not decode: {exc}") from None


def statement_row(
    query_id: str,
    trace_no: str,
    order_id: str,
    txn_time: str,
    txn_type: str,
    amount: int,
    day: date,
    fee: int,
    resp_code: str = "00",
) -> dict[str, str]:
    """One file row; `amount` is signed (refunds negative), `fee` the fee charged or returned (≥ 0), written with
    the amount's sign as `settleAmt` is."""
    sign = 1 if amount >= 0 else -1
    return {
        "queryId": query_id,
        "traceNo": trace_no,
        "orderId": order_id,
        "txnTime": txn_time,
        "txnType": txn_type,
        "txnAmt": str(abs(amount)),
        "settleDate": settle_date(day),
        "settleAmt": str(amount),
        "fee": str(sign * fee),
        "respCode": resp_code,
    }


def build_statement_zip(name: str, rows: list[dict[str, str]]) -> bytes:
    """Our documented CSV (UTF-8, CRLF, columns `STATEMENT_COLUMNS`, amounts in fen) zipped as `name`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATEMENT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, out.getvalue().encode("utf-8"))
    return buffer.getvalue()


def read_statement(zip_bytes: bytes) -> list[dict[str, str]]:
    """Every row of every CSV in the statement zip; ValueError when the zip or the header is not ours."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a zip: {exc}") from None
    rows: list[dict[str, str]] = []
    with archive:
        for name in archive.namelist():
            reader = csv.DictReader(io.StringIO(archive.read(name).decode("utf-8"), newline=""))
            if tuple(reader.fieldnames or ()) != STATEMENT_COLUMNS:
                raise ValueError(f"{name}: unexpected header {reader.fieldnames}")
            rows.extend(reader)
    return rows
