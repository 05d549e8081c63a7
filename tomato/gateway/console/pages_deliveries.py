"""Operator pages: webhook deliveries (filter, attempts, resend) and orders and refunds found by any of their
numbers (order_no, out_trade_no, channel_trade_no, refund_no, out_refund_no)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from tomato.gateway.console import audit
from tomato.gateway.console.guard import page_route
from tomato.gateway.console.render import html, redirect
from tomato.gateway.deps import container
from tomato.gateway.paging import decode_int_cursor, encode_cursor
from tomato.notice.service import NoticeService

router = APIRouter(prefix="/console", route_class=page_route("operator"), include_in_schema=False)

DeliveryId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Filter = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
Number = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
CursorQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
Status = Literal["", "PENDING", "SUCCEEDED", "FAILED", "SKIPPED"]
PAGE = 50


@router.get("/deliveries")
async def deliveries(
    request: Request,
    mch_no: Filter = None,
    app_id: Filter = None,
    event_id: Filter = None,
    status: Status | None = None,
    cursor: CursorQ = None,
) -> Response:
    given = {"mch_no": mch_no, "app_id": app_id, "event_id": event_id, "status": status}
    filters = {k: v for k, v in given.items() if v}
    items = await NoticeService(container(request).db).list_deliveries(filters, decode_int_cursor(cursor), PAGE + 1)
    shown = items[:PAGE]
    nxt = encode_cursor(shown[-1].id[1:]) if len(items) > PAGE else None
    return html(request, "operator/deliveries.html", deliveries=shown, filters=filters, next_cursor=nxt)


@router.get("/deliveries/{delivery_id}")
async def delivery(delivery_id: DeliveryId, request: Request) -> Response:
    detail = await NoticeService(container(request).db).get_delivery(delivery_id)
    return html(request, "operator/delivery.html", delivery=detail)


@router.post("/deliveries/{delivery_id}/resend")
async def resend(delivery_id: DeliveryId, request: Request) -> Response:
    svc = NoticeService(container(request).db)
    before = await svc.get_delivery(delivery_id)
    after = await svc.resend(delivery_id)
    trim = {"attempt_log"}  # the record keeps the delivery's state, not every response body it received
    before_view, after_view = before.model_dump(mode="json", exclude=trim), after.model_dump(mode="json", exclude=trim)
    await audit.record(request, "delivery.resend", delivery_id, before_view, after_view)
    return redirect(f"/console/deliveries/{delivery_id}?ok=resent")


@router.get("/orders")
async def orders(request: Request, q: Number = None) -> Response:
    found = await container(request).pay.lookup(q) if q else None
    return html(request, "operator/orders.html", q=q or "", found=found)
