"""Pay orders: create, read, find by out_trade_no, close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from tomato.gateway.deps import container
from tomato.gateway.openapi import errors
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.pay.schemas import CloseOrder, PayOrderCreate, PayOrderView

router = APIRouter(prefix="/v1/pay/orders", route_class=SignedRoute, tags=["merchant: pay orders"])


def _json(view: PayOrderView, status: int = 200) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=status)


@router.post(
    "",
    status_code=201,
    response_model=PayOrderView,
    responses={
        200: {"model": PayOrderView, "description": "the same request again: the existing order"},
        **errors(502),
    },
)
async def create_order(cmd: PayOrderCreate, request: Request) -> JSONResponse:
    view, created = await container(request).pay.create_order(current_app(request), cmd)
    return _json(view, 201 if created else 200)


@router.get("", response_model=PayOrderView, responses=errors(404))
async def find_order(
    request: Request, out_trade_no: Annotated[str, Query(min_length=1, max_length=64)]
) -> JSONResponse:
    return _json(await container(request).pay.find_order(current_app(request).app_id, out_trade_no))


@router.get("/{order_no}", response_model=PayOrderView)
async def get_order(order_no: str, request: Request) -> JSONResponse:
    return _json(await container(request).pay.get_order(current_app(request).app_id, order_no))


@router.post("/{order_no}/close", response_model=PayOrderView, responses=errors(502))
async def close_order(
    order_no: str, request: Request, _body: Annotated[CloseOrder | None, Body()] = None
) -> JSONResponse:
    """Empty body or `{}` (any member is a 422 naming it); closes at the channel first. A CLOSED order answers 200
    again with no new event."""
    return _json(await container(request).pay.close_order(current_app(request).app_id, order_no))
