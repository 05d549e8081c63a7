"""Cursor paging shared by every list: `limit` 1–100 (default 20) and an opaque cursor."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tomato.core.errors import InvalidRequest

T = TypeVar("T")


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
    if not raw.startswith("c1:") or len(raw) < 4:
        raise InvalidRequest.field("cursor", "malformed cursor")
    return raw[3:]


def page(items: Sequence[T], limit: int, key: Callable[[T], str], dump: Callable[[T], Any]) -> dict[str, Any]:
    """`items` was fetched with limit + 1 rows; the extra row only tells that a next page exists."""
    more = len(items) > limit
    shown = items[:limit]
    return {"data": [dump(i) for i in shown], "next_cursor": encode_cursor(key(shown[-1])) if more else None}
