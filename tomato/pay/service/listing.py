"""The merchant's order and refund lists: a page of API objects after a cursor (the number of the last row shown).

A cursor names a row of the caller's app; any other number is a 422 naming `cursor`, so a cursor of another app
or a made-up one never reads as "the end" or as the first page."""

from __future__ import annotations

from tomato.core.errors import InvalidRequest
from tomato.pay import list_queries as q
from tomato.pay.schemas import PayOrderView, RefundView
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.refunds.views import refund_view
from tomato.pay.service.views import order_view


def _unknown_cursor() -> InvalidRequest:
    return InvalidRequest.field("cursor", "unknown cursor")


async def list_orders(deps: PayDeps, query: q.OrderQuery, after: str | None, limit: int) -> list[PayOrderView]:
    """Newest first, `limit` rows after the order `after` (ask for one more to know whether a next page exists)."""
    async with deps.db.uow() as uow:
        key = None
        if after is not None and (key := await q.order_key(uow.session, query.app_id, after)) is None:
            raise _unknown_cursor()
        rows = await q.orders_page(uow.session, query, key, limit)
    return [order_view(o) for o in rows]


async def list_refunds(deps: PayDeps, query: q.RefundQuery, after: str | None, limit: int) -> list[RefundView]:
    """Newest first, `limit` rows after the refund `after` (ask for one more to know whether a next page exists)."""
    async with deps.db.uow() as uow:
        key = None
        if after is not None and (key := await q.refund_key(uow.session, query.app_id, after)) is None:
            raise _unknown_cursor()
        rows = await q.refunds_page(uow.session, query, key, limit)
    return [refund_view(r) for r in rows]
