"""The audit trail for operators and finance alike: every admin action (API, console, CLI), filtered by action,
actor and target, and its CSV export."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tomato.gateway.console.csv_export import csv_response
from tomato.gateway.console.guard import page_route
from tomato.gateway.console.render import html
from tomato.gateway.deps import container
from tomato.gateway.paging import decode_int_cursor, encode_cursor
from tomato.merchant.admin_schemas import AuditEntryView, AuditFilter

router = APIRouter(prefix="/console", route_class=page_route("operator", "finance"), include_in_schema=False)

Action = Annotated[str | None, Query(pattern=r"^([a-z][a-z0-9_.]{0,63})?$")]
Text = Annotated[str | None, Query(max_length=160)]
CursorQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
COLUMNS = ("id", "at", "actor", "actor_token_id", "via", "action", "target", "before", "after", "request_id")
PAGE = 50


def _filter(action: str | None, actor: str | None, target: str | None) -> AuditFilter:
    return AuditFilter(
        action=action or None, actor=(actor or "").strip() or None, target=(target or "").strip() or None
    )


@router.get("/audit")
async def audit_list(
    request: Request, action: Action = None, actor: Text = None, target: Text = None, cursor: CursorQ = None
) -> Response:
    f = _filter(action, actor, target)
    items = await container(request).merchants.list_admin_audit(f, decode_int_cursor(cursor), PAGE + 1)
    shown = items[:PAGE]
    nxt = encode_cursor(shown[-1].id[2:]) if len(items) > PAGE else None
    filters = {"action": f.action or "", "actor": f.actor or "", "target": f.target or ""}
    return html(request, "audit.html", items=shown, filters=filters, next_cursor=nxt, dumps=_json,
                changes=changes)  # fmt: skip


def changes(before: dict[str, object] | None, after: dict[str, object] | None) -> list[str]:
    """The top-level fields whose value differs, as "field: old → new" (lists and objects: "field changed")."""
    if before is None or after is None:
        return []
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new or key in ("updated_at",):
            continue
        if isinstance(old, dict | list) or isinstance(new, dict | list):
            out.append(f"{key} changed")
        else:
            out.append(f"{key}: {old} → {new}")
    return out


def _json(value: object) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _row(e: AuditEntryView) -> list[object]:
    return [e.id, e.at.isoformat(), e.actor, e.actor_token_id, e.via, e.action, e.target, _json(e.before),
            _json(e.after), e.request_id]  # fmt: skip


@router.get("/audit.csv")
async def audit_csv(request: Request, action: Action = None, actor: Text = None, target: Text = None) -> Response:
    rows: list[list[object]] = []
    async for items in container(request).merchants.audit.export(_filter(action, actor, target)):
        rows += [_row(e) for e in items]
    return csv_response("admin-audit.csv", COLUMNS, rows)
