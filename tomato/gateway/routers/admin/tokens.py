"""Operator endpoints for admin tokens: create (the token shown once), list (never a secret or hash), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import Cursor, Limit, check_limit, decode_cursor, page
from tomato.merchant.admin_schemas import (
    TOKEN_ID_PATTERN,
    AdminTokenCreate,
    AdminTokenCreated,
    AdminTokenPage,
    AdminTokenView,
)

router = APIRouter(prefix="/admin/tokens", tags=["admin: tokens"], route_class=admin_route("operator"))

TokenId = Annotated[str, Path(pattern=TOKEN_ID_PATTERN, description="a token id, tok_ + 16 hex digits")]

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "no, unknown or revoked bearer token (UNAUTHENTICATED)"},
    403: {"description": "a token without the operator role (FORBIDDEN)"},
}


@router.post(
    "",
    status_code=201,
    response_model=AdminTokenCreated,
    responses={**_AUTH, 422: {"description": "a bad `role` or `name`; `details` name it (INVALID_REQUEST)"}},
)
async def create_token(cmd: AdminTokenCreate, request: Request) -> AdminTokenCreated:
    """A new token of `role`; `token` in this answer is the only time it is shown. Audited as `token.create`."""
    created = await container(request).merchants.issue_admin_token(cmd.role, cmd.name)
    await audited(request, "token.create", created.id, after=AdminTokenView(**created.model_dump()))
    return created


@router.get(
    "",
    response_model=AdminTokenPage,
    responses={**_AUTH, 422: {"description": "a bad `limit` or `cursor`; `details` name it (INVALID_REQUEST)"}},
)
async def list_tokens(request: Request, limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    """Every token, revoked ones too (with `revoked_at`), oldest first."""
    n = check_limit(limit)
    items = await container(request).merchants.list_admin_tokens(decode_cursor(cursor), n + 1)
    return page(items, n, lambda t: t.id, lambda t: t.model_dump(mode="json"))


@router.post(
    "/{token_id}/revoke",
    response_model=AdminTokenView,
    responses={
        **_AUTH,
        404: {"description": "no such token (TOKEN_NOT_FOUND)"},
        409: {"description": "the token is already revoked (ORDER_STATE_CONFLICT)"},
        422: {"description": "the id is not tok_ + 16 hex digits; `details` name `token_id` (INVALID_REQUEST)"},
    },
)
async def revoke_token(token_id: TokenId, request: Request) -> AdminTokenView:
    """Revokes the token: its very next request gets `401` (a token may revoke itself). Audited as `token.revoke`."""
    svc = container(request).merchants
    before = await svc.get_admin_token(token_id)
    after = await svc.revoke_admin_token(token_id)
    await audited(request, "token.revoke", token_id, before=before, after=after)
    return after
