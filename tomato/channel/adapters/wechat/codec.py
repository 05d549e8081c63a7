"""WeChat Pay v3 wire values: RFC 3339 Beijing times, compact JSON, URL paths and the trade bill (§B4, §B9).

Pure functions shared by the adapter and the simulator, so both sides write and read the wire the same way:
amounts are integer fen in JSON, yuan strings only inside bill files; times never lose their zone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from tomato.core.money import fen_to_yuan

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
MAX_BILL_BYTES = 64 * 1024 * 1024  # a decompressed bill larger than this is refused (gzip bombs)

TRADE_TYPES = {"WECHAT_NATIVE": "native", "WECHAT_JSAPI": "jsapi", "WECHAT_H5": "h5"}  # pay_method → path segment
# path segment → `trade_type`; "micropay": payment-code trades (v2, barcode.py)
WIRE_TRADE_TYPES = {"native": "NATIVE", "jsapi": "JSAPI", "h5": "MWEB", "micropay": "MICROPAY"}


def path_segment(value: str) -> str:
    """One URL path segment, percent-encoded as httpx would send it."""
    return quote(value, safe="")


def format_time(value: datetime) -> str:
    """RFC 3339 with the Beijing offset, e.g. `2024-01-01T10:30:00+08:00` (naive means UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return aware.astimezone(BEIJING).replace(microsecond=0).isoformat()


def parse_time(text: str) -> datetime:
    """RFC 3339 with an offset → aware UTC; ValueError when malformed or without a zone."""
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        raise ValueError(f"time without an offset: {text!r}")
    return parsed.astimezone(UTC)


def beijing_date(value: datetime) -> date:
    return value.astimezone(BEIJING).date()


def dumps(value: Mapping[str, Any]) -> bytes:
    """Compact JSON, raw UTF-8: the exact bytes that are signed and sent."""
    return json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads_object(data: bytes) -> dict[str, Any]:
    """A JSON object (floats kept exact as Decimal, so a fractional amount is caught); ValueError otherwise."""
    value = json.loads(data.decode("utf-8"), parse_float=Decimal)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def fen_field(obj: Mapping[str, Any], name: str) -> int:
    """An integer-fen field (`amount.total`, `amount.refund`); ValueError for floats, strings, bools or negatives."""
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} is not an integer fen amount: {value!r}")
    return value


def gunzip(data: bytes, limit: int = MAX_BILL_BYTES) -> bytes:
    """Decompress a gzip stream with a size cap; ValueError when corrupt or too large."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"not a gzip stream: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ValueError("decompressed bill is too large")
    if not inflater.eof:
        raise ValueError("truncated gzip stream")
    return out


def bill_hash(text: bytes) -> str:
    """SHA1 hex of the decompressed bill: WeChat's integrity check (not a security hash)."""
    return hashlib.sha1(text).hexdigest()


def checked_bill(gzipped: bytes, hash_value: str) -> bytes:
    """The decompressed bill whose SHA1 equals `hash_value` (case-insensitive); ValueError otherwise."""
    text = gunzip(gzipped)
    if not hmac.compare_digest(bill_hash(text), hash_value.strip().lower()):
        raise ValueError("bill hash_value mismatch")
    return text


# --- trade bill (bill_type=ALL) -------------------------------------------------------------------------

BILL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)
BILL_SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


@dataclass(frozen=True)
class BillLine:
    """One payment (`refund` None) or one refund row of a trade bill; amounts in fen, `fee` signed."""

    time: datetime
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_type: str
    description: str
    amount: int  # the order amount (payment rows) or the refund amount (refund rows)
    fee: int  # platform fee charged (+) or returned (−)
    fee_rate: str = "0.60%"
    refund_id: str | None = None
    out_refund_no: str | None = None
    succeeded: bool = True  # False writes a payment as REVOKED, a refund as PROCESSING
    sub_mchid: str = "0"  # 特约商户号: the sub-merchant in a service provider's bill, "0" for a direct merchant


def fee_rate(ppm: int) -> str:
    """3800 → "0.38%": the `费率` cell."""
    return f"{(Decimal(ppm) / 10_000).quantize(Decimal('0.01'))}%"


def _fee(fen: int) -> str:
    """Fees carry five decimals (`0.07000`), signed."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{fen_to_yuan(abs(fen))}000"


def format_trade_bill(lines: Sequence[BillLine]) -> bytes:
    """The UTF-8 ALL bill: header, backtick-prefixed rows, summary header and row, `\\r\\n` endings."""
    rows = [BILL_HEADER]
    paid = refunded = fees = 0
    for line in lines:
        is_refund = line.refund_id is not None
        paid += 0 if is_refund else line.amount
        refunded += line.amount if is_refund else 0
        fees += line.fee
        money, zero = fen_to_yuan(line.amount), "0.00"
        cells = [
            line.time.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            line.appid,
            line.mchid,
            line.sub_mchid,
            "",
            line.transaction_id,
            line.out_trade_no,
            line.openid,
            line.trade_type,
            "REFUND" if is_refund else ("SUCCESS" if line.succeeded else "REVOKED"),
            "OTHERS",
            "CNY",
            zero if is_refund else money,
            zero,
            line.refund_id or "0",
            line.out_refund_no or "0",
            money if is_refund else zero,
            zero,
            "ORIGINAL" if is_refund else "",
            ("SUCCESS" if line.succeeded else "PROCESSING") if is_refund else "",
            line.description,
            "",
            _fee(line.fee),
            line.fee_rate,
            zero if is_refund else money,
            money if is_refund else zero,
            "",
        ]
        rows.append(",".join("`" + cell.replace(",", "，") for cell in cells))
    rows.append(BILL_SUMMARY_HEADER)
    summary = [
        str(len(lines)),
        fen_to_yuan(paid),
        fen_to_yuan(refunded),
        "0.00",
        _fee(fees),
        fen_to_yuan(paid),
        fen_to_yuan(refunded),
    ]
    rows.append(",".join("`" + cell for cell in summary))
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")


@dataclass(frozen=True)
class TradeBill:
    rows: list[dict[str, str]]  # header name → cell, backticks stripped
    summary: dict[str, str]


def parse_trade_bill(data: bytes) -> TradeBill:
    """Read a trade bill (any of ALL/SUCCESS/REFUND: the header names the columns); `\\n` or `\\r\\n` endings."""
    lines = [line for line in data.decode("utf-8-sig").splitlines() if line.strip()]
    if len(lines) < 3:
        raise ValueError("a trade bill has a header, a summary header and a summary row")
    header = lines[0].split(",")
    summary_header = lines[-2].split(",")
    rows = [_cells(header, line) for line in lines[1:-2]]
    return TradeBill(rows=rows, summary=_cells(summary_header, lines[-1]))


def _cells(header: list[str], line: str) -> dict[str, str]:
    cells = [cell[1:] if cell.startswith("`") else cell for cell in line.split(",")]
    if len(cells) != len(header):
        raise ValueError(f"bill row has {len(cells)} cells, header has {len(header)}")
    return dict(zip(header, cells, strict=True))
