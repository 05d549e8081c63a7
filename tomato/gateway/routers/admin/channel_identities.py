"""Operator endpoints: merchants' identities under service-provider accounts (tokens write-only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from tomato.channel.schemas import ChannelIdentityCreate, ChannelIdentityView
from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import Page

MchNo = Annotated[str, Path(pattern=r"^M[0-9]{1,20}$", description="a merchant number, M…")]
IdentityId = Annotated[str, Path(pattern=r"^CI[0-9]{1,20}$", description="a channel identity id, CI…")]
router = APIRouter(prefix="/admin", tags=["admin: channels"], route_class=admin_route("operator"))


@router.post("/merchants/{mch_no}/channel-identities", status_code=201, response_model=ChannelIdentityView)
async def create_identity(mch_no: MchNo, cmd: ChannelIdentityCreate, request: Request) -> ChannelIdentityView:
    """Lets a service-provider account act for the merchant; 409 while the merchant has an active one on it."""
    c = container(request)
    await c.merchants.get_merchant(mch_no)  # 404 MERCHANT_NOT_FOUND first
    created = await c.channels.create_identity(mch_no, cmd)
    await audited(request, "channel_identity.create", created.id, after=created)  # the view never has the token
    return created


@router.get("/merchants/{mch_no}/channel-identities", response_model=Page[ChannelIdentityView])
async def list_identities(mch_no: MchNo, request: Request) -> dict[str, Any]:
    """Every identity of the merchant, active or disabled, oldest first (a merchant has a handful: one page)."""
    c = container(request)
    await c.merchants.get_merchant(mch_no)
    items = await c.channels.list_identities(mch_no)
    return {"data": [i.model_dump(mode="json") for i in items], "next_cursor": None}


@router.post("/channel-identities/{identity_id}/disable", response_model=ChannelIdentityView)
async def disable_identity(identity_id: IdentityId, request: Request) -> ChannelIdentityView:
    """New orders stop routing to the account for this merchant; its orders there are still followed up."""
    before, after = await container(request).channels.disable_identity(identity_id)
    await audited(request, "channel_identity.disable", identity_id, before=before, after=after)
    return after
