"""Alipay wire fields: yuan strings, Beijing wall-clock times, biz_content JSON and the request envelope.

Everything here is pure; the adapter and the simulator both build and read Alipay's wire values through it so
money never passes through a float and times never lose their zone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

from tomato.core import urlform
from tomato.core.money import fen_to_yuan, yuan_to_fen

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_PADDED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=utf-8"

# Common request parameters (A2): they travel in the URL query of a POST, everything else in the form body.
COMMON_PARAMS = frozenset(
    {
        "app_id",
        "method",
        "format",
        "charset",
        "sign_type",
        "sign",
        "timestamp",
        "version",
        "notify_url",
        "return_url",
        "app_auth_token",
        "app_cert_sn",
        "alipay_root_cert_sn",
    }
)


def yuan(fen: int) -> str:
    """1234 → "12.34": Alipay amounts are yuan strings with exactly two decimals."""
    return fen_to_yuan(fen)


def fen(yuan_text: str) -> int:
    """ "12.34" → 1234; raises MoneyFormatError (a ValueError) on anything that is not a yuan amount."""
    return yuan_to_fen(yuan_text)


def format_beijing(value: datetime) -> str:
    """An aware datetime as Alipay's `yyyy-MM-dd HH:mm:ss` Beijing wall-clock time (naive means UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return aware.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_beijing(text: str) -> datetime:
    """Alipay's Beijing wall-clock time → aware UTC datetime; raises ValueError when malformed.

    The zero-padded `yyyy-MM-dd HH:mm:ss` Alipay sends is read by slicing (strptime costs ~10 × as much on every
    notify); anything else goes to strptime, which decides as before."""
    t = text.strip()
    if _PADDED.fullmatch(t):
        h, m, sec = int(t[11:13]), int(t[14:16]), int(t[17:19])
        wall = datetime(int(t[0:4]), int(t[5:7]), int(t[8:10]), h, m, sec, tzinfo=BEIJING)
        return wall.astimezone(UTC)
    return datetime.strptime(t, TIME_FORMAT).replace(tzinfo=BEIJING).astimezone(UTC)


def format_bill_date(value: date) -> str:
    return value.strftime("%Y-%m-%d")


def biz_content(fields: Mapping[str, Any]) -> str:
    """Compact JSON, raw UTF-8: the exact string that is signed and sent."""
    return json.dumps(dict(fields), separators=(",", ":"), ensure_ascii=False)


def common_params(
    app_id: str,
    method: str,
    now: datetime,
    *,
    notify_url: str | None = None,
    return_url: str | None = None,
    app_auth_token: str | None = None,
) -> dict[str, str]:
    """The A2 envelope; optional URLs and the ISV's `app_auth_token` are only sent when non-empty."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": "json",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": format_beijing(now),
        "version": "1.0",
    }
    if notify_url:
        params["notify_url"] = notify_url
    if return_url:
        params["return_url"] = return_url
    if app_auth_token:
        params["app_auth_token"] = app_auth_token
    return params


def split_for_post(params: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(URL query, form body) per A1: common params in the query, biz_content and the rest in the body."""
    query = {k: v for k, v in params.items() if k in COMMON_PARAMS}
    form = {k: v for k, v in params.items() if k not in COMMON_PARAMS}
    return query, form


def encode_form(params: Mapping[str, str]) -> bytes:
    return urlform.urlencode(params).encode("utf-8")


def with_query(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` appended as its query (encoded once here: httpx re-parses `params=` at ~4× the cost)."""
    return f"{url}{'&' if '?' in url else '?'}{urlform.urlencode(params)}"


def parse_form(body: bytes | str) -> dict[str, str]:
    """Decode an x-www-form-urlencoded body or query; raises ValueError on bad UTF-8 or repeated keys."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    result: dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"repeated parameter {key!r}")
        result[key] = value
    return result


def redirect_url(gateway_url: str, params: Mapping[str, str]) -> str:
    """The browser URL of a page/wap pay: the gateway with every signed param URL-encoded in the query."""
    sep = "&" if "?" in gateway_url else "?"
    return gateway_url + sep + urlform.urlencode(params)


def response_key(method: str) -> str:
    """alipay.trade.query → alipay_trade_query_response."""
    return method.replace(".", "_") + "_response"
