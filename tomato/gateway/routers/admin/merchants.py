"""Operator endpoints: merchants, apps, keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

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
    return await container(request).merchants.create_merchant(cmd)


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
    return await container(request).merchants.set_merchant_frozen(mch_no, True)


@router.post("/merchants/{mch_no}/unfreeze", response_model=MerchantView)
async def unfreeze_merchant(mch_no: str, request: Request) -> MerchantView:
    return await container(request).merchants.set_merchant_frozen(mch_no, False)


@router.post(
    "/merchants/{mch_no}/settlement-cycle",
    response_model=MerchantView,
    responses={404: {"description": "MERCHANT_NOT_FOUND"}, 422: {"description": "a bad `cycle`"}},
)
async def set_settlement_cycle(mch_no: str, cmd: SettleCycleUpdate, request: Request) -> MerchantView:
    """`D+0`, `T+1` (the default) or `T+N` (N = 1–30 working days); applies to every line not yet settled."""
    return await container(request).merchants.set_settle_cycle(mch_no, cmd)


@router.post("/merchants/{mch_no}/apps", status_code=201, response_model=AppCreated)
async def create_app(mch_no: str, cmd: AppCreate, request: Request) -> AppCreated:
    return await container(request).merchants.create_app(mch_no, cmd)


@router.get("/apps/{app_id}", response_model=AppView)
async def get_app(app_id: str, request: Request) -> AppView:
    return await container(request).merchants.get_app(app_id)


@router.patch("/apps/{app_id}", response_model=AppView)
async def update_app(app_id: str, cmd: AppUpdate, request: Request) -> AppView:
    return await container(request).merchants.update_app(app_id, cmd)


@router.post("/apps/{app_id}/freeze", response_model=AppView)
async def freeze_app(app_id: str, request: Request) -> AppView:
    return await container(request).merchants.set_app_frozen(app_id, True)


@router.post("/apps/{app_id}/unfreeze", response_model=AppView)
async def unfreeze_app(app_id: str, request: Request) -> AppView:
    return await container(request).merchants.set_app_frozen(app_id, False)


@router.post("/apps/{app_id}/keys", status_code=201, response_model=AppCreated, responses=errors(409))
async def rotate_key(app_id: str, cmd: KeyRotate, request: Request) -> AppCreated:
    """Adds a key (at most two active); the old key keeps working until it is deleted."""
    return await container(request).merchants.rotate_key(app_id, cmd)


@router.delete("/apps/{app_id}/keys/{key_id}", response_model=AppView, responses=errors(409))
async def remove_key(app_id: str, key_id: str, request: Request) -> AppView:
    return await container(request).merchants.remove_key(app_id, key_id)
