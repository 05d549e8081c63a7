"""The creation-time window every merchant list takes: `created_from` (inclusive) and `created_to` (exclusive), each
an RFC 3339 time with an offset (docs/api.md, "Lists and statements").

Parsed here rather than by pydantic, whose datetime also takes Unix numbers and times without an offset: a list
filtered by a time the merchant did not mean is worse than a 422 naming the parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, Request

from tomato.core.errors import InvalidRequest

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII
)
_EXAMPLE = "2026-12-06T00:00:00+08:00"

CreatedFrom = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=40,
        description="only rows created at or after this instant (inclusive), RFC 3339 with an offset, e.g. "
        f"`{_EXAMPLE}`",
    ),
]
CreatedTo = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=40,
        description="only rows created before this instant (exclusive), RFC 3339 with an offset; not before "
        "`created_from`",
    ),
]


@dataclass(frozen=True)
class CreatedWindow:
    """[start, end) in UTC; None leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None


def instant(text: str, field: str) -> datetime:
    """An RFC 3339 time with an offset, as UTC, else 422 naming `field`. A `+` sent unencoded in a query arrives
    as a space; in the offset's place it can only have meant `+`."""
    if len(text) > 6 and text[-6] == " ":
        text = f"{text[:-6]}+{text[-5:]}"
    issue = f"must be an RFC 3339 time with an offset, e.g. {_EXAMPLE}"
    if _RFC3339.fullmatch(text) is None:
        raise InvalidRequest.field(field, issue)
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # 2026-02-30, an offset of 24:00, a year the UTC instant leaves
        raise InvalidRequest.field(field, issue) from exc


def created_window(created_from: str | None, created_to: str | None) -> CreatedWindow:
    start = None if created_from is None else instant(created_from, "created_from")
    end = None if created_to is None else instant(created_to, "created_to")
    if start is not None and end is not None and start > end:
        raise InvalidRequest.field("created_from", "must not be after created_to")
    return CreatedWindow(start, end)


def alone(request: Request, name: str, list_params: tuple[str, ...]) -> None:
    """`name` finds one row: a list parameter beside it would be silently ignored, so it is a 422 naming it."""
    given = [p for p in list_params if p in request.query_params]
    if given:
        raise InvalidRequest.field(given[0], f"not allowed with {name}")
