"""Payouts: create, read, find by out_payout_no (docs/api.md "Payouts")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from tomato.account.payouts.schemas import PayoutCreate, PayoutView
from tomato.gateway.deps import container
from tomato.gateway.signed_route import SignedRoute, current_app

router = APIRouter(prefix="/v1/payouts", route_class=SignedRoute, tags=["merchant: payouts"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "PAYOUT_NOT_FOUND"}}


def _json(view: PayoutView, status: int = 200) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=status)


@router.post(
    "",
    status_code=201,
    response_model=PayoutView,
    responses={
        200: {"model": PayoutView, "description": "the same request again under its out_payout_no"},
        409: {"description": "INSUFFICIENT_BALANCE (nothing written), OUT_PAYOUT_NO_CONFLICT"},
        503: {"description": "NO_CHANNEL_AVAILABLE: no active bank channel account"},
    },
)
async def create_payout(cmd: PayoutCreate, request: Request) -> JSONResponse:
    """201 when made now (the amount left `available`), 200 for a repeat of the same request."""
    view, created = await container(request).payouts.create(current_app(request), cmd)
    return _json(view, 201 if created else 200)


@router.get("", response_model=PayoutView, responses=_NOT_FOUND)
async def find_payout(
    request: Request, out_payout_no: Annotated[str, Query(min_length=1, max_length=64)]
) -> JSONResponse:
    return _json(await container(request).payouts.find(current_app(request).app_id, out_payout_no))


@router.get("/{payout_no}", response_model=PayoutView, responses=_NOT_FOUND)
async def get_payout(payout_no: str, request: Request) -> JSONResponse:
    return _json(await container(request).payouts.get(current_app(request).app_id, payout_no))
