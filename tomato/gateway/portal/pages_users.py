"""The owner's pages: the merchant's users (invite, change role, disable) and the merchant's activity trail."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tomato.gateway.console.render import redirect
from tomato.gateway.deps import container
from tomato.gateway.portal import audit
from tomato.gateway.portal.guard import form_of, portal_route, viewer_of
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import OWNERS
from tomato.merchant.admin_schemas import AuditFilter
from tomato.merchant.portal_schemas import PORTAL_ROLES, PortalInvite

router = APIRouter(prefix="/portal", route_class=portal_route(*OWNERS), include_in_schema=False)
ACTIVITY_PAGE = 50


@router.get("/users")
async def users_page(request: Request) -> Response:
    users = await container(request).merchants.users.list_users(viewer_of(request).mch_no)
    return html(request, "users.html", users=users, roles=PORTAL_ROLES, invitation=None)


@router.post("/users")
async def invite(request: Request) -> Response:
    """Shows the invitation link once, on this page: the owner hands it to the person."""
    me = viewer_of(request)
    form = form_of(request)
    users = container(request).merchants.users
    cmd = PortalInvite(email=form.get("email") or "", role=form.get("role") or "")
    invitation = await users.invite(me.mch_no, cmd, invited_by=f"portal:{me.role}:{me.name}")
    await audit.record(request, "portal_user.invite", invitation.user.user_id, after=invitation.user)
    link = f"{request.base_url}portal/invite/{invitation.invite_token}"
    listed = await users.list_users(me.mch_no)
    return html(request, "users.html", status=201, users=listed, roles=PORTAL_ROLES, invitation=invitation, link=link)


@router.post("/users/{user_id}/role")
async def change_role(user_id: str, request: Request) -> Response:
    me = viewer_of(request)
    users = container(request).merchants.users
    before = await users.get_user(me.mch_no, user_id)
    after = await users.set_role(me.mch_no, user_id, form_of(request).get("role") or "")
    await audit.record(request, "portal_user.role", user_id, before=before, after=after)
    return redirect("/portal/users?ok=saved")


@router.post("/users/{user_id}/disable")
async def disable(user_id: str, request: Request) -> Response:
    me = viewer_of(request)
    users = container(request).merchants.users
    before = await users.get_user(me.mch_no, user_id)
    after = await users.disable(me.mch_no, user_id)
    await audit.record(request, "portal_user.disable", user_id, before=before, after=after)
    return redirect("/portal/users?ok=saved")


@router.get("/activity")
async def activity(request: Request) -> Response:
    """The merchant's own trail: every portal action of its users, newest first."""
    me = viewer_of(request)
    entries = await container(request).merchants.list_admin_audit(AuditFilter(mch_no=me.mch_no), None, ACTIVITY_PAGE)
    return html(request, "activity.html", entries=entries)
