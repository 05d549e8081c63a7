"""Cursor paging shared by every list: `limit` 1–100 (default 20) and an opaque cursor.

A cursor that does not decode to a key this list could have issued is a 422 naming `cursor`, never a 500: numeric
keys go through `decode_int_cursor`, which takes ASCII digits only and nothing a 64-bit column cannot hold."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from tomato.core.errors import InvalidRequest

T = TypeVar("T")

INT64_MAX = 2**63 - 1
_INT = re.compile(r"-?[0-9]{1,19}", re.ASCII)
_KEY = re.compile(r"[A-Za-z0-9_:-]{1,80}", re.ASCII)  # every key a list issues: ids, numbers, "rank:id"


Limit = Annotated[int | None, Query(ge=1, le=100, description="page size, 1-100 (default 20)")]
Cursor = Annotated[
    str | None,
    Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description="`next_cursor` of the page before"),
]


class Page(BaseModel, Generic[T]):
    """Every list's answer: a page of items and the cursor of the next page (null on the last one)."""

    data: list[T] = Field(description="the items of this page")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


def check_limit(limit: int | None) -> int:
    if limit is None:
        return 20
    if not 1 <= limit <= 100:
        raise InvalidRequest.field("limit", "must be between 1 and 100")
    return limit


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"c1:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest.field("cursor", "malformed cursor") from exc
    if not raw.startswith("c1:") or _KEY.fullmatch(raw[3:]) is None:
        raise InvalidRequest.field("cursor", "malformed cursor")
    return raw[3:]


def cursor_int(text: str, low: int = 0, high: int = INT64_MAX) -> int:
    """A cursor key's number: ASCII digits only (`str.isdigit()` passes `²`, `int()` takes Arabic-Indic digits),
    within [low, high], so the database is never asked about a number its column cannot hold."""
    if _INT.fullmatch(text) is None or not low <= (value := int(text)) <= high:
        raise InvalidRequest.field("cursor", "malformed cursor")
    return value


def decode_int_cursor(cursor: str | None) -> int | None:
    """A cursor whose key is one non-negative 64-bit number (a position or sequence number)."""
    key = decode_cursor(cursor)
    return None if key is None else cursor_int(key)


def page(items: Sequence[T], limit: int, key: Callable[[T], str], dump: Callable[[T], Any]) -> dict[str, Any]:
    """`items` was fetched with limit + 1 rows; the extra row only tells that a next page exists."""
    more = len(items) > limit
    shown = items[:limit]
    return {"data": [dump(i) for i in shown], "next_cursor": encode_cursor(key(shown[-1])) if more else None}
