"""Orders and refunds of the signed-in user's merchant (every role), and refunding an order (owner, developer,
support) with a confirmation step: the first POST only shows what would happen, the second (confirm=yes) makes the
refund through the same service call and rules as `POST /v1/refunds`, under the order's own app."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from tomato.core.pay_methods import ALL_PAY_METHODS
from tomato.gateway.console.render import redirect
from tomato.gateway.deps import container
from tomato.gateway.paging import decode_cursor
from tomato.gateway.portal import audit
from tomato.gateway.portal.guard import form_of, portal_route, viewer_of
from tomato.gateway.portal.money_forms import (
    PAGE,
    CursorQ,
    DayQ,
    Number,
    NumberQ,
    WordQ,
    cut,
    day_window,
    fen,
    fresh_number,
    one_of,
)
from tomato.gateway.portal.render import html
from tomato.gateway.portal.roles import EVERYONE, REFUNDERS
from tomato.merchant.service import MerchantService
from tomato.pay.schemas import RefundCreate
from tomato.pay.service import OrderQuery, RefundQuery
from tomato.pay.states import OrderStatus, RefundStatus

router = APIRouter(prefix="/portal", route_class=portal_route(*EVERYONE), include_in_schema=False)
refunding = APIRouter(prefix="/portal", route_class=portal_route(*REFUNDERS), include_in_schema=False)

OrderNo = Annotated[str, Path(pattern=Number)]
RefundNo = Annotated[str, Path(pattern=Number)]
ORDER_STATUSES = [s.value for s in OrderStatus]
REFUND_STATUSES = [s.value for s in RefundStatus]
ORDER_REFUNDS = 100  # an order has at most 50 refunds (RefundPolicy.max_per_order)


@router.get("/orders")
async def orders(
    request: Request,
    q: NumberQ = None,
    status: WordQ = None,
    pay_method: WordQ = None,
    created_from: DayQ = None,
    created_to: DayQ = None,
    cursor: CursorQ = None,
) -> Response:
    """The merchant's orders across its apps, newest first; `q` is any of an order's numbers."""
    c = container(request)
    start, end = day_window(created_from, created_to, c.settings.business_timezone)
    query = OrderQuery(
        None,
        status=one_of(status, ORDER_STATUSES, "status"),
        pay_method=one_of(pay_method, ALL_PAY_METHODS, "pay_method"),
        created_from=start,
        created_to=end,
        mch_no=viewer_of(request).mch_no,
        number=q or None,
    )
    rows = await c.pay.list_orders(query, decode_cursor(cursor or None), PAGE + 1)
    shown, nxt = cut(rows, lambda o: o.order_no)
    filters = {"q": q or "", "status": status or "", "pay_method": pay_method or "",
               "created_from": created_from or "", "created_to": created_to or ""}  # fmt: skip
    return html(request, "money/orders.html", orders=shown, next_cursor=nxt, filters=filters,
                statuses=ORDER_STATUSES, pay_methods=ALL_PAY_METHODS)  # fmt: skip


@router.get("/orders/{order_no}")
async def order(order_no: OrderNo, request: Request) -> Response:
    me = viewer_of(request)
    pay = container(request).pay
    found = await pay.merchant_order(me.mch_no, order_no)
    refunds = await pay.list_refunds(RefundQuery(None, order_no=order_no, mch_no=me.mch_no), None, ORDER_REFUNDS)
    return html(request, "money/order.html", order=found, refunds=refunds, can_refund=me.role in REFUNDERS)


@router.get("/refunds")
async def refunds(request: Request, q: NumberQ = None, status: WordQ = None, cursor: CursorQ = None) -> Response:
    """The merchant's refunds across its apps, newest first; `q` is a refund_no, out_refund_no or order_no."""
    query = RefundQuery(
        None, status=one_of(status, REFUND_STATUSES, "status"), mch_no=viewer_of(request).mch_no, number=q or None
    )
    rows = await container(request).pay.list_refunds(query, decode_cursor(cursor or None), PAGE + 1)
    shown, nxt = cut(rows, lambda r: r.refund_no)
    filters = {"q": q or "", "status": status or ""}
    return html(request, "money/refunds.html", refunds=shown, next_cursor=nxt, filters=filters,
                statuses=REFUND_STATUSES)  # fmt: skip


@router.get("/refunds/{refund_no}")
async def refund(refund_no: RefundNo, request: Request) -> Response:
    me = viewer_of(request)
    pay = container(request).pay
    found = await pay.merchant_refund(me.mch_no, refund_no)
    parent = await pay.merchant_order(me.mch_no, found.order_no)
    return html(request, "money/refund.html", refund=found, order=parent)


@refunding.get("/orders/{order_no}/refund")
async def refund_form(order_no: OrderNo, request: Request) -> Response:
    c = container(request)
    found = await c.pay.merchant_order(viewer_of(request).mch_no, order_no)
    values = {"amount": "", "reason": "", "out_refund_no": fresh_number(c.ids, "RF")}
    return html(request, "money/refund_form.html", order=found, values=values)


@refunding.post("/orders/{order_no}/refund")
async def refund_create(order_no: OrderNo, request: Request) -> Response:
    """Without confirm=yes: the confirmation page, nothing written. With it: the refund, as the API makes it."""
    c = container(request)
    form = form_of(request)
    found = await c.pay.merchant_order(viewer_of(request).mch_no, order_no)  # the order is this merchant's, or 404
    cmd = RefundCreate(
        order_no=found.order_no,
        out_refund_no=form.get("out_refund_no") or "",
        amount=fen(form, "amount"),
        reason=form.get("reason"),
    )
    if form.get("confirm") != "yes":
        values = {"amount": form.get("amount") or "", "reason": cmd.reason or "", "out_refund_no": cmd.out_refund_no}
        return html(request, "money/refund_confirm.html", order=found, cmd=cmd, values=values)
    app = await c.merchants.app_auth(found.app_id)  # the order's own app, as if it had called POST /v1/refunds
    MerchantService.ensure_usable(app)
    made, created = await c.pay.create_refund(app, cmd)
    if created:  # the same out_refund_no again answers the refund it made, which changes nothing
        await audit.record(request, "refund.create", made.refund_no, after=made)
    return redirect(f"/portal/refunds/{made.refund_no}?ok=refund_created")
