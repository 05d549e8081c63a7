"""The merchant's order and refund lists: a page of API objects after a cursor (the number of the last row shown),
and the merchant portal's reads over all of a merchant's apps (one order or refund, today's volume per method).

A cursor names a row in the query's scope (the app, or the merchant); any other number is a 422 naming `cursor`, so
a cursor of another app or merchant or a made-up one never reads as "the end" or as the first page. An order or
refund of another merchant is not found, exactly like one that does not exist."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from tomato.core.clock import as_utc
from tomato.core.errors import InvalidRequest
from tomato.pay import list_queries as q
from tomato.pay.errors import OrderNotFound, RefundNotFound
from tomato.pay.schemas import MethodVolume, PayOrderView, RefundView
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.refunds.views import refund_view
from tomato.pay.service.views import order_view


def _unknown_cursor() -> InvalidRequest:
    return InvalidRequest.field("cursor", "unknown cursor")


async def list_orders(deps: PayDeps, query: q.OrderQuery, after: str | None, limit: int) -> list[PayOrderView]:
    """Newest first, `limit` rows after the order `after` (ask for one more to know whether a next page exists)."""
    async with deps.db.uow() as uow:
        key = None
        if after is not None and (key := await q.order_key(uow.session, query, after)) is None:
            raise _unknown_cursor()
        rows = await q.orders_page(uow.session, query, key, limit)
    return [order_view(o) for o in rows]


async def list_refunds(deps: PayDeps, query: q.RefundQuery, after: str | None, limit: int) -> list[RefundView]:
    """Newest first, `limit` rows after the refund `after` (ask for one more to know whether a next page exists)."""
    async with deps.db.uow() as uow:
        key = None
        if after is not None and (key := await q.refund_key(uow.session, query, after)) is None:
            raise _unknown_cursor()
        rows = await q.refunds_page(uow.session, query, key, limit)
    return [refund_view(r) for r in rows]


async def merchant_order(deps: PayDeps, mch_no: str, order_no: str) -> PayOrderView:
    async with deps.db.uow() as uow:
        order = await q.merchant_order(uow.session, mch_no, order_no)
    if order is None:
        raise OrderNotFound(f"order {order_no} not found")
    return order_view(order)


async def merchant_refund(deps: PayDeps, mch_no: str, refund_no: str) -> RefundView:
    async with deps.db.uow() as uow:
        refund = await q.merchant_refund(uow.session, mch_no, refund_no)
    if refund is None:
        raise RefundNotFound(f"refund {refund_no} not found")
    return refund_view(refund)


def start_of_business_day(deps: PayDeps) -> datetime:
    """Midnight of today's business date (TOMATO_BUSINESS_TIMEZONE), as a UTC instant."""
    tz = ZoneInfo(deps.business_tz)
    today = as_utc(deps.clock.now()).astimezone(tz).date()
    return as_utc(datetime.combine(today, time(0), tz))


async def today_by_method(deps: PayDeps, mch_no: str) -> list[MethodVolume]:
    """The merchant's orders created since the start of today's business date, per pay method, by method name."""
    async with deps.db.uow() as uow:
        rows = await q.volume_by_method(uow.session, mch_no, start_of_business_day(deps))
    out = [MethodVolume(str(m), int(n), int(ok or 0), int(amount or 0)) for m, n, ok, amount in rows]
    return sorted(out, key=lambda v: v.pay_method)
