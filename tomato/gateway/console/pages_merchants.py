"""Operator pages: merchants (list, create, freeze, fee plan), apps (create, freeze, keys: a new secret is shown
once, on the answer to the form that made it, and never again)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from tomato.core.pay_methods import ALL_PAY_METHODS
from tomato.gateway.console import audit, reveal
from tomato.gateway.console.audit import view
from tomato.gateway.console.guard import form_of, page_route, viewer_of
from tomato.gateway.console.render import html, redirect
from tomato.gateway.deps import container
from tomato.gateway.paging import decode_cursor, encode_cursor
from tomato.merchant.portal_schemas import PORTAL_ROLES, PortalInvite
from tomato.merchant.schemas import AppCreate, AppCreated, FeePlanAssign, KeyRotate, MerchantCreate

router = APIRouter(prefix="/console", route_class=page_route("operator"), include_in_schema=False)

MchNo = Annotated[str, Path(pattern=r"^M[0-9]{1,20}$")]
AppId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
KeyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
CursorQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
PAGE = 50


@router.get("/merchants")
async def merchants(request: Request, cursor: CursorQ = None) -> Response:
    items = await container(request).merchants.list_merchants(decode_cursor(cursor), PAGE + 1)
    shown = items[:PAGE]
    nxt = encode_cursor(shown[-1].mch_no) if len(items) > PAGE else None
    return html(request, "operator/merchants.html", merchants=shown, next_cursor=nxt)


@router.post("/merchants")
async def create_merchant(request: Request) -> Response:
    cmd = MerchantCreate(name=form_of(request).get("name") or "")
    created = await container(request).merchants.create_merchant(cmd)
    await audit.record(request, "merchant.create", created.mch_no, None, view(created))
    return redirect(f"/console/merchants/{created.mch_no}?ok=merchant_created")


@router.get("/merchants/{mch_no}")
async def merchant(mch_no: MchNo, request: Request) -> Response:
    return await _merchant_page(request, mch_no)


async def _merchant_page(request: Request, mch_no: str, status: int = 200, invite_link: str | None = None) -> Response:
    c = container(request)
    m = await c.merchants.get_merchant(mch_no)
    plans = await c.merchants.list_fee_plans(None, 100)
    users = await c.merchants.users.list_users(mch_no)
    return html(request, "operator/merchant.html", status=status, merchant=m, plans=plans, pay_methods=ALL_PAY_METHODS,
                portal_users=users, roles=PORTAL_ROLES, invite_link=invite_link)  # fmt: skip


@router.post("/merchants/{mch_no}/portal-users")
async def invite_portal_user(mch_no: MchNo, request: Request) -> Response:
    """The merchant's first owner (or anyone else): the invitation link is shown once, on this answer."""
    form = form_of(request)
    cmd = PortalInvite(email=form.get("email") or "", role=form.get("role") or "")
    invitation = await container(request).merchants.users.invite(mch_no, cmd, f"console:{viewer_of(request).name}")
    await audit.record(request, "portal_user.invite", invitation.user.user_id, None, view(invitation.user))
    link = f"{request.base_url}portal/invite/{invitation.invite_token}"
    return await _merchant_page(request, mch_no, 201, link)


@router.post("/merchants/{mch_no}/freeze")
async def freeze_merchant(mch_no: MchNo, request: Request) -> Response:
    return await _set_merchant_frozen(request, mch_no, True)


@router.post("/merchants/{mch_no}/unfreeze")
async def unfreeze_merchant(mch_no: MchNo, request: Request) -> Response:
    return await _set_merchant_frozen(request, mch_no, False)


async def _set_merchant_frozen(request: Request, mch_no: str, frozen: bool) -> Response:
    svc = container(request).merchants
    before = await svc.get_merchant(mch_no)
    after = await svc.set_merchant_frozen(mch_no, frozen)
    action = "merchant.freeze" if frozen else "merchant.unfreeze"
    await audit.record(request, action, mch_no, view(before), view(after))
    return redirect(f"/console/merchants/{mch_no}?ok={action.replace('.', '_')}")


@router.post("/merchants/{mch_no}/fee-plan")
async def assign_fee_plan(mch_no: MchNo, request: Request) -> Response:
    svc = container(request).merchants
    cmd = FeePlanAssign(fee_plan_id=form_of(request).get("fee_plan_id"))
    before = await svc.get_merchant(mch_no)
    after = await svc.assign_fee_plan(mch_no, cmd)
    await audit.record(request, "fee_plan.assign", mch_no, view(before), view(after))
    return redirect(f"/console/merchants/{mch_no}?ok=fee_plan_assigned")


@router.post("/merchants/{mch_no}/apps")
async def create_app(mch_no: MchNo, request: Request) -> Response:
    form = form_of(request)
    key = form.get("public_key_pem")
    fields: dict[str, object] = {
        "name": form.get("name") or "default",
        "notify_url": form.get("notify_url"),
        "sign_type": "RSA-SHA256" if key else "HMAC-SHA256",
        "public_key_pem": key,
    }
    if methods := form.getlist("pay_methods"):
        fields["pay_methods"] = methods
    if (limit := form.int("amount_limit")) is not None:
        fields["amount_limit"] = limit
    created = await container(request).merchants.create_app(mch_no, AppCreate.model_validate(fields))
    await audit.record(request, "app.create", created.app.app_id, None, view(created.app))
    return _reveal(request, created, "app")


@router.get("/apps/{app_id}")
async def app(app_id: AppId, request: Request) -> Response:
    found = await container(request).merchants.get_app(app_id)
    return html(request, "operator/app.html", app=found)


@router.post("/apps/{app_id}/freeze")
async def freeze_app(app_id: AppId, request: Request) -> Response:
    return await _set_app_frozen(request, app_id, True)


@router.post("/apps/{app_id}/unfreeze")
async def unfreeze_app(app_id: AppId, request: Request) -> Response:
    return await _set_app_frozen(request, app_id, False)


async def _set_app_frozen(request: Request, app_id: str, frozen: bool) -> Response:
    svc = container(request).merchants
    before = await svc.get_app(app_id)
    after = await svc.set_app_frozen(app_id, frozen)
    action = "app.freeze" if frozen else "app.unfreeze"
    await audit.record(request, action, app_id, view(before), view(after))
    return redirect(f"/console/apps/{app_id}?ok={action.replace('.', '_')}")


@router.post("/apps/{app_id}/keys")
async def rotate_key(app_id: AppId, request: Request) -> Response:
    svc = container(request).merchants
    before = await svc.get_app(app_id)
    created = await svc.rotate_key(app_id, KeyRotate(public_key_pem=form_of(request).get("public_key_pem")))
    await audit.record(request, "app.key_add", app_id, view(before), view(created.app))
    return _reveal(request, created, "key")


def _reveal(request: Request, created: AppCreated, kind: str) -> Response:
    """To the page that shows the new key once (an RSA app's key has no secret: straight to the app)."""
    if created.secret is None:
        return redirect(f"/console/apps/{created.app.app_id}?ok=key_added")
    shown = {"kind": kind, "app_id": created.app.app_id, "key_id": created.key_id, "secret": created.secret}
    return reveal.redirect_to_reveal(request, shown)


@router.get("/reveal")
async def reveal_page(request: Request) -> Response:
    """The new secret, once: a reload (or any later visit) finds the cookie gone and says so."""
    shown = reveal.take(request)
    response = html(request, "operator/secret.html", status=200 if shown else 410, shown=shown)
    reveal.forget(response, request)
    return response


@router.post("/apps/{app_id}/keys/{key_id}/revoke")
async def revoke_key(app_id: AppId, key_id: KeyId, request: Request) -> Response:
    svc = container(request).merchants
    before = await svc.get_app(app_id)
    after = await svc.remove_key(app_id, key_id)
    await audit.record(request, "app.key_remove", app_id, view(before), view(after))
    return redirect(f"/console/apps/{app_id}?ok=key_revoked")
