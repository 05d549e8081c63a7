"""Operator endpoints: channel accounts (credentials write-only) and their health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tomato.channel.schemas import (
    AccountHealth,
    ChannelAccountCreate,
    ChannelAccountUpdate,
    ChannelAccountView,
)
from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, decode_cursor, page

router = APIRouter(prefix="/admin", tags=["admin: channels"], route_class=admin_route("operator"))


@router.post("/channel-accounts", status_code=201, response_model=ChannelAccountView)
async def create_account(cmd: ChannelAccountCreate, request: Request) -> ChannelAccountView:
    created = await container(request).channels.create_account(cmd)
    await audited(request, "channel_account.create", created.id, after=created)  # the view never has the config
    return created


@router.get("/channel-accounts", response_model=Page[ChannelAccountView])
async def list_accounts(request: Request, limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    n = check_limit(limit)
    items = await container(request).channels.list_accounts(decode_cursor(cursor), n + 1)
    return page(items, n, lambda a: a.id, lambda a: a.model_dump(mode="json"))


@router.get("/channel-accounts/{account_id}", response_model=ChannelAccountView)
async def get_account(account_id: str, request: Request) -> ChannelAccountView:
    return await container(request).channels.get_account(account_id)


@router.patch("/channel-accounts/{account_id}", response_model=ChannelAccountView)
async def update_account(account_id: str, cmd: ChannelAccountUpdate, request: Request) -> ChannelAccountView:
    svc = container(request).channels
    before = await svc.get_account(account_id)
    after = await svc.update_account(account_id, cmd)
    await audited(request, "channel_account.update", account_id, before=before, after=after)
    return after


@router.get("/channel-health", response_model=Page[AccountHealth])
async def channel_health(request: Request) -> dict[str, Any]:
    """Every account's breaker state and last-5-minute success rate and latency."""
    items = await container(request).channels.health_of()
    return {"data": [h.model_dump(mode="json") for h in items], "next_cursor": None}


@router.get("/channel-accounts/{account_id}/health", response_model=AccountHealth)
async def account_health(account_id: str, request: Request) -> AccountHealth:
    return (await container(request).channels.health_of(account_id))[0]


@router.post("/channel-accounts/{account_id}/disable", response_model=ChannelAccountView)
async def disable_account(account_id: str, request: Request) -> ChannelAccountView:
    return await _set_status(request, account_id, "DISABLED", "channel_account.disable")


@router.post("/channel-accounts/{account_id}/enable", response_model=ChannelAccountView)
async def enable_account(account_id: str, request: Request) -> ChannelAccountView:
    return await _set_status(request, account_id, "ACTIVE", "channel_account.enable")


async def _set_status(request: Request, account_id: str, status: str, action: str) -> ChannelAccountView:
    svc = container(request).channels
    before = await svc.get_account(account_id)
    after = await svc.set_status(account_id, status)
    await audited(request, action, account_id, before=before, after=after)
    return after
