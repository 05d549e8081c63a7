"""What the portal's money pages share: yuan typed into a form as integer fen (never through a float), a business
date range as a UTC window, fresh merchant numbers for prefilled forms, and cutting a page off a list read one row
long (that row only tells that a next page exists)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import Query

from tomato.account.service import business_day_bounds
from tomato.core.errors import InvalidRequest
from tomato.core.ids import Snowflake
from tomato.core.money import yuan_to_fen
from tomato.gateway.console.forms import Form
from tomato.gateway.paging import encode_cursor
from tomato.gateway.statements import business_date

T = TypeVar("T")
PAGE = 20
_YUAN = re.compile(r"[0-9]{1,15}(\.[0-9]{1,2})?", re.ASCII)

CursorQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")]
DayQ = Annotated[str | None, Query(max_length=10, pattern=r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
NumberQ = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
WordQ = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z_]*$")]
Number = r"^[A-Za-z0-9_-]{1,64}$"  # a path's order_no, refund_no, payout_no


def fen(form: Form, field: str) -> int:
    """The yuan amount typed into `field` ("12.34", "5") as fen; anything else is a 422 naming the field."""
    text = form.get(field)
    if text is None:
        raise InvalidRequest.field(field, "required")
    if _YUAN.fullmatch(text) is None:
        raise InvalidRequest.field(field, "must be an amount in yuan with at most two decimals, e.g. 12.34")
    return yuan_to_fen(text)


def one_of(value: str | None, allowed: Sequence[str], field: str) -> str | None:
    """An optional filter that must name one of `allowed` (blank: no filter)."""
    if not value:
        return None
    if value not in allowed:
        raise InvalidRequest.field(field, f"must be one of {', '.join(allowed)}")
    return value


def day_window(start: str | None, end: str | None, tz: str) -> tuple[datetime | None, datetime | None]:
    """Business dates [start, end] (both inclusive, either open) as the UTC window [from, to)."""
    lo = business_day_bounds(business_date(start, "created_from"), tz)[0] if start else None
    hi = business_day_bounds(business_date(end, "created_to"), tz)[1] if end else None
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidRequest.field("created_to", "must not be before created_from")
    return lo, hi


def fresh_number(ids: Snowflake, prefix: str) -> str:
    """A new merchant-side number for a prefilled form (`out_refund_no`, `out_payout_no`)."""
    return ids.next_id(prefix)


def cut(rows: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """The first PAGE rows and the next page's cursor (None on the last page)."""
    shown = list(rows[:PAGE])
    return shown, encode_cursor(key(shown[-1])) if len(rows) > PAGE else None
