"""Operator endpoints: a merchant's portal users (the operator invites the first owner; owners invite the rest)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from tomato.gateway.audit_trail import audited, bearer_token
from tomato.gateway.deps import admin_route, container
from tomato.gateway.openapi import errors
from tomato.gateway.paging import Page
from tomato.merchant.portal_schemas import PortalInvitation, PortalInvite, PortalUserView

MchNo = Annotated[str, Path(pattern=r"^M[0-9]{1,20}$", description="a merchant number, M…")]
UserId = Annotated[str, Path(pattern=r"^U[0-9]{1,20}$", description="a portal user id, U…")]
router = APIRouter(prefix="/admin", tags=["admin: merchants"], route_class=admin_route("operator"))


@router.post(
    "/merchants/{mch_no}/portal-users", status_code=201, response_model=PortalInvitation, responses=errors(404, 409)
)
async def invite_user(mch_no: MchNo, cmd: PortalInvite, request: Request) -> PortalInvitation:
    """An invitation: the person opens `/portal/invite/<invite_token>` within 7 days to set a password (and TOTP,
    which an owner must turn on). The token is shown only here; 409 USER_CONFLICT when the email has an account."""
    c = container(request)
    who = await c.merchants.admin_name(bearer_token(request))
    invitation = await c.merchants.users.invite(mch_no, cmd, invited_by=who or "operator")
    await audited(request, "portal_user.invite", invitation.user.user_id, after=invitation.user)
    return invitation


@router.get("/merchants/{mch_no}/portal-users", response_model=Page[PortalUserView], responses=errors(404))
async def list_users(mch_no: MchNo, request: Request) -> dict[str, Any]:
    c = container(request)
    await c.merchants.get_merchant(mch_no)
    users = await c.merchants.users.list_users(mch_no)
    return {"data": [u.model_dump(mode="json") for u in users], "next_cursor": None}


@router.post(
    "/merchants/{mch_no}/portal-users/{user_id}/disable", response_model=PortalUserView, responses=errors(404, 409)
)
async def disable_user(mch_no: MchNo, user_id: UserId, request: Request) -> PortalUserView:
    """Ends the user's sessions at once; 409 USER_CONFLICT when already disabled."""
    users = container(request).merchants.users
    before = await users.get_user(mch_no, user_id)
    after = await users.disable(mch_no, user_id)
    await audited(request, "portal_user.disable", user_id, before=before, after=after)
    return after
