"""Refunds: create, read, find by out_refund_no (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from tomato.gateway.deps import container
from tomato.gateway.openapi import errors
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.pay.schemas import RefundCreate, RefundView

router = APIRouter(prefix="/v1/refunds", route_class=SignedRoute, tags=["merchant: refunds"])


def _json(view: RefundView, status: int = 200) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=status)


@router.post(
    "",
    status_code=201,
    response_model=RefundView,
    responses={
        200: {"model": RefundView, "description": "the same request again: the existing refund"},
        **errors(404, 502),
    },
)
async def create_refund(cmd: RefundCreate, request: Request) -> JSONResponse:
    """201 when created now, 200 for a repeat of the same request under the same out_refund_no."""
    view, created = await container(request).pay.create_refund(current_app(request), cmd)
    return _json(view, 201 if created else 200)


@router.get("", response_model=RefundView, responses=errors(404))
async def find_refund(
    request: Request, out_refund_no: Annotated[str, Query(min_length=1, max_length=64)]
) -> JSONResponse:
    return _json(await container(request).pay.find_refund(current_app(request).app_id, out_refund_no))


@router.get("/{refund_no}", response_model=RefundView)
async def get_refund(refund_no: str, request: Request) -> JSONResponse:
    return _json(await container(request).pay.get_refund(current_app(request).app_id, refund_no))
