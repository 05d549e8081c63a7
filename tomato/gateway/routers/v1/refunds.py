"""Refunds: create, read, find by out_refund_no, list (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from tomato.gateway.deps import container
from tomato.gateway.list_filters import CreatedFrom, CreatedTo, alone, created_window
from tomato.gateway.openapi import errors
from tomato.gateway.paging import Cursor, Limit, Page, check_limit, decode_cursor, page
from tomato.gateway.signed_route import SignedRoute, current_app
from tomato.pay.schemas import RefundCreate, RefundView
from tomato.pay.service import RefundQuery
from tomato.pay.states import RefundStatus

router = APIRouter(prefix="/v1/refunds", route_class=SignedRoute, tags=["merchant: refunds"])
LIST_PARAMS = ("order_no", "status", "created_from", "created_to", "limit", "cursor")


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


@router.get(
    "",
    response_model=RefundView | Page[RefundView],
    responses={
        **errors(404),
        200: {"description": "with `out_refund_no`: that refund; without: a page of refunds, newest first"},
    },
)
async def find_or_list_refunds(
    request: Request,
    out_refund_no: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    order_no: Annotated[str | None, Query(min_length=1, max_length=32, description="only this order's refunds")] = None,
    status: Annotated[RefundStatus | None, Query(description="only refunds in this status")] = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> JSONResponse:
    """With `out_refund_no`: the refund of that number (no other parameter). Without: the app's refunds newest
    first, paged like the order list."""
    app_id = current_app(request).app_id
    pay = container(request).pay
    if out_refund_no is not None:
        alone(request, "out_refund_no", LIST_PARAMS)
        return _json(await pay.find_refund(app_id, out_refund_no))
    n = check_limit(limit)
    window = created_window(created_from, created_to)
    query = RefundQuery(app_id, order_no, status, window.start, window.end)
    rows = await pay.list_refunds(query, decode_cursor(cursor), n + 1)
    return JSONResponse(page(rows, n, lambda r: r.refund_no, lambda r: r.model_dump(mode="json")))


@router.get("/{refund_no}", response_model=RefundView)
async def get_refund(refund_no: str, request: Request) -> JSONResponse:
    return _json(await container(request).pay.get_refund(current_app(request).app_id, refund_no))
