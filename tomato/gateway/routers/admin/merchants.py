"""Operator endpoints: merchants, apps, keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.openapi import errors
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, decode_cursor, page
from tomato.merchant.schemas import (
    AppCreate,
    AppCreated,
    AppUpdate,
    AppView,
    KeyRotate,
    MerchantCreate,
    MerchantView,
    SettleCycleUpdate,
)

router = APIRouter(prefix="/admin", tags=["admin: merchants"], route_class=admin_route("operator"))


@router.post("/merchants", status_code=201, response_model=MerchantView)
async def create_merchant(cmd: MerchantCreate, request: Request) -> MerchantView:
    created = await container(request).merchants.create_merchant(cmd)
    await audited(request, "merchant.create", created.mch_no, after=created)
    return created


@router.get("/merchants", response_model=Page[MerchantView])
async def list_merchants(request: Request, limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    n = check_limit(limit)
    items = await container(request).merchants.list_merchants(decode_cursor(cursor), n + 1)
    return page(items, n, lambda m: m.mch_no, lambda m: m.model_dump(mode="json"))


@router.get("/merchants/{mch_no}", response_model=MerchantView)
async def get_merchant(mch_no: str, request: Request) -> MerchantView:
    return await container(request).merchants.get_merchant(mch_no)


@router.post("/merchants/{mch_no}/freeze", response_model=MerchantView)
async def freeze_merchant(mch_no: str, request: Request) -> MerchantView:
    return await _set_merchant_frozen(request, mch_no, True)


@router.post("/merchants/{mch_no}/unfreeze", response_model=MerchantView)
async def unfreeze_merchant(mch_no: str, request: Request) -> MerchantView:
    return await _set_merchant_frozen(request, mch_no, False)


async def _set_merchant_frozen(request: Request, mch_no: str, frozen: bool) -> MerchantView:
    svc = container(request).merchants
    before = await svc.get_merchant(mch_no)
    after = await svc.set_merchant_frozen(mch_no, frozen)
    await audited(request, "merchant.freeze" if frozen else "merchant.unfreeze", mch_no, before=before, after=after)
    return after


@router.post(
    "/merchants/{mch_no}/settlement-cycle",
    response_model=MerchantView,
    responses={404: {"description": "MERCHANT_NOT_FOUND"}, 422: {"description": "a bad `cycle`"}},
)
async def set_settlement_cycle(mch_no: str, cmd: SettleCycleUpdate, request: Request) -> MerchantView:
    """`D+0`, `T+1` (the default) or `T+N` (N = 1–30 working days); applies to every line not yet settled."""
    svc = container(request).merchants
    before = await svc.get_merchant(mch_no)
    after = await svc.set_settle_cycle(mch_no, cmd)
    await audited(request, "merchant.settlement_cycle", mch_no, before=before, after=after)
    return after


@router.post("/merchants/{mch_no}/apps", status_code=201, response_model=AppCreated)
async def create_app(mch_no: str, cmd: AppCreate, request: Request) -> AppCreated:
    created = await container(request).merchants.create_app(mch_no, cmd)
    await audited(request, "app.create", created.app.app_id, after=created)  # the secret is redacted
    return created


@router.get("/apps/{app_id}", response_model=AppView)
async def get_app(app_id: str, request: Request) -> AppView:
    return await container(request).merchants.get_app(app_id)


@router.patch("/apps/{app_id}", response_model=AppView)
async def update_app(app_id: str, cmd: AppUpdate, request: Request) -> AppView:
    svc = container(request).merchants
    before = await svc.get_app(app_id)
    after = await svc.update_app(app_id, cmd)
    await audited(request, "app.update", app_id, before=before, after=after)
    return after


@router.post("/apps/{app_id}/freeze", response_model=AppView)
async def freeze_app(app_id: str, request: Request) -> AppView:
    return await _set_app_frozen(request, app_id, True)


@router.post("/apps/{app_id}/unfreeze", response_model=AppView)
async def unfreeze_app(app_id: str, request: Request) -> AppView:
    return await _set_app_frozen(request, app_id, False)


async def _set_app_frozen(request: Request, app_id: str, frozen: bool) -> AppView:
    svc = container(request).merchants
    before = await svc.get_app(app_id)
    after = await svc.set_app_frozen(app_id, frozen)
    await audited(request, "app.freeze" if frozen else "app.unfreeze", app_id, before=before, after=after)
    return after


@router.post("/apps/{app_id}/keys", status_code=201, response_model=AppCreated, responses=errors(409))
async def rotate_key(app_id: str, cmd: KeyRotate, request: Request) -> AppCreated:
    """Adds a key (at most two active); the old key keeps working until it is deleted."""
    svc = container(request).merchants
    before = await svc.get_app(app_id)
    created = await svc.rotate_key(app_id, cmd)
    await audited(request, "app.key_add", app_id, before=before, after=created)  # the secret is redacted
    return created


@router.delete("/apps/{app_id}/keys/{key_id}", response_model=AppView, responses=errors(409))
async def remove_key(app_id: str, key_id: str, request: Request) -> AppView:
    svc = container(request).merchants
    before = await svc.get_app(app_id)
    after = await svc.remove_key(app_id, key_id)
    await audited(request, "app.key_remove", app_id, before=before, after=after)
    return after
