"""Operator endpoints for routing rules: create, list (paged like every list), delete."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response

from tomato.channel.schemas import RoutingRuleCreate, RoutingRuleView
from tomato.core.errors import InvalidRequest
from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, cursor_int, decode_cursor, page

router = APIRouter(prefix="/admin", tags=["admin: routing"], route_class=admin_route("operator"))

# the cursor's key: the last rule's rank and id, the list's sort key (rank descending, then id)
_KEY = re.compile(r"(-?[0-9]{1,7}):(RR[0-9]{1,20})", re.ASCII)


def _after(cursor: str | None) -> tuple[int, str] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    match = _KEY.fullmatch(key)
    if match is None:
        raise InvalidRequest.field("cursor", "malformed cursor")
    return cursor_int(match[1], -1_000_000, 1_000_000), match[2]  # a rank the rules can have


@router.post("/routing-rules", status_code=201, response_model=RoutingRuleView)
async def create_rule(cmd: RoutingRuleCreate, request: Request) -> RoutingRuleView:
    created = await container(request).channels.create_rule(cmd)
    await audited(request, "routing_rule.create", created.id, after=created)
    return created


@router.get("/routing-rules", response_model=Page[RoutingRuleView])
async def list_rules(request: Request, limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    """Highest rank first, the order in which an order's rule is chosen."""
    n = check_limit(limit)
    rules = await container(request).channels.list_rules(_after(cursor), n + 1)
    return page(rules, n, lambda r: f"{r.rank}:{r.id}", lambda r: r.model_dump(mode="json"))


@router.delete("/routing-rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: str, request: Request) -> Response:
    await container(request).channels.delete_rule(rule_id)
    await audited(request, "routing_rule.delete", rule_id)
    return Response(status_code=204)
