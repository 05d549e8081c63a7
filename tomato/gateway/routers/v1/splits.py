"""Profit sharing: split receivers, and the splits of a paid order (docs/merchant-guide.md, "Profit sharing")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse

from tomato.gateway.deps import container
from tomato.gateway.openapi import errors
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.pay.schemas import CloseOrder, PayOrderView
from tomato.pay.split_schemas import SplitCreate, SplitList, SplitReceiverCreate, SplitReceiverView, SplitView

router = APIRouter(prefix="/v1", route_class=SignedRoute, tags=["merchant: profit sharing"])
OrderNo = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{1,32}$", description="the order's number (`P…`)")]


@router.post("/split-receivers", status_code=201, response_model=SplitReceiverView, responses=errors(502))
async def create_receiver(cmd: SplitReceiverCreate, request: Request) -> SplitReceiverView:
    """Registers a receiver and binds it at the channel (on every account of that channel the merchant uses)."""
    return await container(request).pay.create_split_receiver(current_app(request), cmd)


@router.post(
    "/pay/orders/{order_no}/splits",
    status_code=201,
    response_model=SplitView,
    responses={200: {"model": SplitView, "description": "the same request again: the split"}, **errors(404, 409, 502)},
)
async def create_split(order_no: OrderNo, cmd: SplitCreate, request: Request) -> JSONResponse:
    """201 when made now (PENDING until the channel's result, or already final); 200 for a repeat."""
    view, created = await container(request).pay.create_split(current_app(request), order_no, cmd)
    return JSONResponse(view.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/pay/orders/{order_no}/splits", response_model=SplitList, responses=errors(404))
async def list_splits(order_no: OrderNo, request: Request) -> SplitList:
    return SplitList(data=await container(request).pay.list_splits(current_app(request).app_id, order_no))


@router.post("/pay/orders/{order_no}/splits/finish", response_model=PayOrderView, responses=errors(404, 409, 502))
async def finish_splits(
    order_no: OrderNo, request: Request, _body: Annotated[CloseOrder | None, Body()] = None
) -> PayOrderView:
    """Releases what is left of the order to the merchant; no split after it (again: 200, nothing sent)."""
    return await container(request).pay.finish_splits(current_app(request), order_no)
