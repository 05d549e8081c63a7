"""Operator page for admin tokens: list them (never a secret), create one (its plaintext shown once, on the answer to
the form), revoke one (refused from its very next request on, this console's sessions included)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from tomato.gateway.console import audit, reveal
from tomato.gateway.console.audit import view
from tomato.gateway.console.guard import form_of, page_route, viewer_of
from tomato.gateway.console.render import html, redirect
from tomato.gateway.deps import container
from tomato.merchant.admin_schemas import AdminTokenCreate, AdminTokenView

router = APIRouter(prefix="/console", route_class=page_route("operator"), include_in_schema=False)

TokenId = Annotated[str, Path(pattern=r"^tok_[0-9a-f]{16}$")]


@router.get("/tokens")
async def tokens(request: Request) -> Response:
    listed = await container(request).merchants.list_admin_tokens(None, 1000)
    return html(request, "operator/tokens.html", tokens=listed, mine=viewer_of(request).token_id)


@router.post("/tokens")
async def create_token(request: Request) -> Response:
    form = form_of(request)
    cmd = AdminTokenCreate.model_validate({"role": form.get("role") or "", "name": form.get("name") or ""})
    created = await container(request).merchants.issue_admin_token(cmd.role, cmd.name)
    shown = AdminTokenView(**created.model_dump(exclude={"token"}))
    await audit.record(request, "token.create", created.id, None, view(shown))
    secret = {
        "kind": "token",
        "token_id": created.id,
        "role": created.role,
        "name": created.name,
        "secret": created.token,
    }
    return reveal.redirect_to_reveal(request, secret)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: TokenId, request: Request) -> Response:
    svc = container(request).merchants
    before = await svc.get_admin_token(token_id)
    after = await svc.revoke_admin_token(token_id)
    await audit.record(request, "token.revoke", token_id, view(before), view(after))
    return redirect("/console/tokens?ok=token_revoked")
