"""Operator and finance reads of the admin audit trail: a paged list and a streamed CSV export, with the same filters.

A filter that is malformed — or not one of these — is a `422` naming it, never silently ignored: a misspelt
`?acton=` must not answer every record as if it had matched."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from tomato.core.errors import InvalidRequest
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import Cursor, Limit, check_limit, decode_int_cursor, encode_cursor
from tomato.merchant.admin_schemas import AuditEntryView, AuditFilter, AuditPage

router = APIRouter(prefix="/admin", tags=["admin: audit"], route_class=admin_route("operator", "finance"))

_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})", re.ASCII
)
_KNOWN = frozenset({"action", "actor", "target", "since", "until", "limit", "cursor"})
_TIME_ISSUE = "must be an RFC 3339 date-time with a time zone, e.g. 2026-12-01T00:00:00Z (send '+' as %2B)"
COLUMNS = ("id", "at", "actor", "actor_token_id", "via", "action", "target", "before", "after", "request_id")

Action = Annotated[
    str | None,
    Query(pattern=r"^[a-z][a-z0-9_.]{0,63}$", description="exact action, e.g. `app.freeze` (docs/audit.md)"),
]
Actor = Annotated[
    str | None, Query(min_length=1, max_length=160, description="a token id (tok_…) or the actor's role:name")
]
Target = Annotated[str | None, Query(min_length=1, max_length=128, description="exact target, e.g. an app id")]
Since = Annotated[str | None, Query(max_length=40, description="records at or after this RFC 3339 time")]
Until = Annotated[str | None, Query(max_length=40, description="records before this RFC 3339 time")]

_READ: dict[int | str, dict[str, Any]] = {
    401: {"description": "no, unknown or revoked bearer token (UNAUTHENTICATED)"},
    403: {"description": "a token of neither the operator nor the finance role (FORBIDDEN)"},
    422: {"description": "a filter is malformed or unknown; `details` name it (INVALID_REQUEST)"},
}


def _time(field: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    if _TIME.fullmatch(value) is None:
        raise InvalidRequest.field(field, _TIME_ISSUE)
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest.field(field, "not a time in the calendar") from exc


def _filter(
    request: Request, action: str | None, actor: str | None, target: str | None, since: str | None, until: str | None
) -> AuditFilter:
    for name in request.query_params:
        if name not in _KNOWN:
            raise InvalidRequest.field(name, f"unknown filter (one of {', '.join(sorted(_KNOWN))})")
    f = AuditFilter(action=action, actor=actor, target=target, since=_time("since", since), until=_time("until", until))
    if f.since is not None and f.until is not None and f.until <= f.since:
        raise InvalidRequest.field("until", "must be after since")
    return f


@router.get("/audit", response_model=AuditPage, responses=_READ)
async def list_audit(
    request: Request,
    action: Action = None,
    actor: Actor = None,
    target: Target = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AuditPage:
    """Admin actions that succeeded, newest first: who, when, through what (`api`, `console`, `cli`), what, on
    what, and the target before and after (secrets redacted). Every filter given must match."""
    f = _filter(request, action, actor, target, since, until)
    n = check_limit(limit)
    items = await container(request).merchants.list_admin_audit(f, decode_int_cursor(cursor), n + 1)
    shown = items[:n]
    return AuditPage(data=shown, next_cursor=encode_cursor(shown[-1].id[2:]) if len(items) > n else None)


@router.get(
    "/audit.csv",
    response_class=StreamingResponse,
    responses={**_READ, 200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with a BOM, a header row"}},
)
async def export_audit(
    request: Request,
    action: Action = None,
    actor: Actor = None,
    target: Target = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    """Every record the same filters select, newest first, streamed: a header row (`id, at, actor,
    actor_token_id, via, action, target, before, after, request_id`), then one row each; before/after as JSON."""
    for name in ("limit", "cursor"):
        if name in request.query_params:
            raise InvalidRequest.field(name, "the export has every matching record; no paging")
    f = _filter(request, action, actor, target, since, until)
    pages = container(request).merchants.audit.export(f)
    return StreamingResponse(
        _csv(pages),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="admin-audit.csv"'},
    )


async def _csv(pages: AsyncIterator[list[AuditEntryView]]) -> AsyncIterator[str]:
    yield "\ufeff" + _lines([list(COLUMNS)])
    async for items in pages:
        yield _lines([_row(e) for e in items])


def _row(e: AuditEntryView) -> list[str]:
    dumped = e.model_dump(mode="json")
    return [_cell(dumped[c]) for c in COLUMNS]


def _cell(value: Any) -> str:
    """JSON for views, "" for null; a cell a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _lines(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()
