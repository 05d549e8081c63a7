"""Pay orders: create, read, find by out_trade_no, list, close (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from tomato.core.pay_methods import PayMethod
from tomato.gateway.deps import container
from tomato.gateway.list_filters import CreatedFrom, CreatedTo, alone, created_window
from tomato.gateway.openapi import errors
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, decode_cursor, page
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.pay.schemas import CloseOrder, PayOrderCreate, PayOrderView
from tomato.pay.service import OrderQuery
from tomato.pay.states import OrderStatus

router = APIRouter(prefix="/v1/pay/orders", route_class=SignedRoute, tags=["merchant: pay orders"])
LIST_PARAMS = ("status", "pay_method", "created_from", "created_to", "limit", "cursor")


def _json(view: PayOrderView, status: int = 200) -> Response:
    """The same compact UTF-8 JSON as JSONResponse, encoded by pydantic-core in one step."""
    return Response(view.model_dump_json(), status_code=status, media_type="application/json")


@router.post(
    "",
    status_code=201,
    response_model=PayOrderView,
    responses={
        200: {"model": PayOrderView, "description": "the same request again: the existing order"},
        **errors(502),
    },
)
async def create_order(cmd: PayOrderCreate, request: Request) -> Response:
    view, created = await container(request).pay.create_order(current_app(request), cmd)
    return _json(view, 201 if created else 200)


OutTradeNo = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get(
    "",
    response_model=PayOrderView | Page[PayOrderView],
    responses={
        **errors(404),
        200: {"description": "with `out_trade_no`: that order; without: a page of orders, newest first"},
    },
)
async def find_or_list_orders(
    request: Request,
    out_trade_no: OutTradeNo = None,
    status: Annotated[OrderStatus | None, Query(description="only orders in this status")] = None,
    pay_method: Annotated[PayMethod | None, Query(description="only orders of this pay method")] = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response:
    """With `out_trade_no`: the order of that number (no other parameter). Without: the app's orders newest first;
    following `next_cursor` never shows a row twice and never skips one that existed when the first page was read."""
    app_id = current_app(request).app_id
    pay = container(request).pay
    if out_trade_no is not None:
        alone(request, "out_trade_no", LIST_PARAMS)
        return _json(await pay.find_order(app_id, out_trade_no))
    n = check_limit(limit)
    window = created_window(created_from, created_to)
    query = OrderQuery(app_id, status, pay_method, window.start, window.end)
    rows = await pay.list_orders(query, decode_cursor(cursor), n + 1)
    return JSONResponse(page(rows, n, lambda o: o.order_no, lambda o: o.model_dump(mode="json")))


@router.get("/{order_no}", response_model=PayOrderView)
async def get_order(order_no: str, request: Request) -> Response:
    return _json(await container(request).pay.get_order(current_app(request).app_id, order_no))


@router.post("/{order_no}/close", response_model=PayOrderView, responses=errors(502))
async def close_order(order_no: str, request: Request, _body: Annotated[CloseOrder | None, Body()] = None) -> Response:
    """Empty body or `{}` (any member is a 422 naming it); closes at the channel first. A CLOSED order answers 200
    again with no new event."""
    return _json(await container(request).pay.close_order(current_app(request).app_id, order_no))
