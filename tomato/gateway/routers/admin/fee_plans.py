"""Operator endpoints for fee plans: create, list (paged like every list), read, and assign one to a merchant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from tomato.gateway.audit_trail import audited
from tomato.gateway.deps import admin_route, container
from tomato.gateway.paging import Cursor, Limit, check_limit, decode_cursor, page
from tomato.merchant.schemas import FeePlanAssign, FeePlanCreate, FeePlanList, FeePlanView, MerchantView

router = APIRouter(prefix="/admin", tags=["admin: fee plans"], route_class=admin_route("operator"))

PlanId = Annotated[str, Path(pattern=r"^FP[0-9]{1,20}$", description="a fee plan id, FP…")]
MchNo = Annotated[str, Path(pattern=r"^M[0-9]{1,20}$", description="a merchant number, M…")]

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "no, unknown or revoked bearer token (UNAUTHENTICATED)"},
    403: {"description": "a token without the operator role (FORBIDDEN)"},
}
_BAD_QUERY: dict[int | str, dict[str, Any]] = {
    422: {"description": "a query or path parameter is invalid; `details` name it (INVALID_REQUEST)"},
}
_BAD_INPUT: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON (INVALID_REQUEST)"},
    422: {"description": "a field, query or path parameter is invalid; `details` name it (INVALID_REQUEST)"},
}


@router.post("/fee-plans", status_code=201, response_model=FeePlanView, responses={**_AUTH, **_BAD_INPUT})
async def create_fee_plan(cmd: FeePlanCreate, request: Request) -> FeePlanView:
    """A plan: parts per million per pay method (absent: 0), a minimum fee per payment, the refund-fee rule.
    Plans never change; put a merchant on another plan instead."""
    created = await container(request).merchants.create_fee_plan(cmd)
    await audited(request, "fee_plan.create", created.id, after=created)
    return created


@router.get("/fee-plans", response_model=FeePlanList, responses={**_AUTH, **_BAD_QUERY})
async def list_fee_plans(request: Request, limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    n = check_limit(limit)
    items = await container(request).merchants.list_fee_plans(decode_cursor(cursor), n + 1)
    return page(items, n, lambda p: p.id, lambda p: p.model_dump(mode="json"))


@router.get(
    "/fee-plans/{plan_id}",
    response_model=FeePlanView,
    responses={**_AUTH, **_BAD_QUERY, 404: {"description": "no such fee plan (FEE_PLAN_NOT_FOUND)"}},
)
async def get_fee_plan(plan_id: PlanId, request: Request) -> FeePlanView:
    return await container(request).merchants.get_fee_plan(plan_id)


@router.post(
    "/merchants/{mch_no}/fee-plan",
    response_model=MerchantView,
    responses={
        **_AUTH,
        **_BAD_INPUT,
        404: {"description": "no such merchant (MERCHANT_NOT_FOUND) or fee plan (FEE_PLAN_NOT_FOUND)"},
    },
)
async def assign_fee_plan(mch_no: MchNo, cmd: FeePlanAssign, request: Request) -> MerchantView:
    """Puts the merchant on the plan for its payments from now on (`null`: no plan, charged 0); orders already
    paid keep the fee snapshot they were paid under."""
    svc = container(request).merchants
    before = await svc.get_merchant(mch_no)
    after = await svc.assign_fee_plan(mch_no, cmd)
    await audited(request, "fee_plan.assign", mch_no, before=before, after=after)
    return after
