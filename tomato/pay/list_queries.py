"""The queries behind the merchant's order and refund lists (`GET /v1/pay/orders`, `GET /v1/refunds`, and the
merchant portal's lists across all of a merchant's apps).

Newest first by the keyset (created_at, number), never OFFSET: a row inserted while a merchant pages sorts above
the cursor or below it, so no row is shown twice and none that existed is skipped. Every query is scoped by the
app or by the merchant (the keys a Citus deployment would shard on); migrations 0017 and 0023 index
(app_id | mch_no, created_at, number).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.pay.models import PayOrder, Refund
from tomato.pay.states import OrderStatus


@dataclass(frozen=True)
class OrderQuery:
    """An app's orders (`app_id`) or every order of one merchant's apps (`mch_no`: the portal), optionally by
    status, pay method, a creation window [created_from, created_to) and `number` (order_no, out_trade_no or
    channel_trade_no)."""

    app_id: str | None
    status: str | None = None
    pay_method: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    mch_no: str | None = None
    number: str | None = None

    def __post_init__(self) -> None:
        if (self.app_id is None) == (self.mch_no is None):
            raise ValueError("an order query is scoped by exactly one of app_id and mch_no")


@dataclass(frozen=True)
class RefundQuery:
    """An app's refunds (`app_id`) or one merchant's (`mch_no`), optionally of one order, by status, a creation
    window [created_from, created_to) and `number` (refund_no, out_refund_no or order_no)."""

    app_id: str | None
    order_no: str | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    mch_no: str | None = None
    number: str | None = None

    def __post_init__(self) -> None:
        if (self.app_id is None) == (self.mch_no is None):
            raise ValueError("a refund query is scoped by exactly one of app_id and mch_no")


def _scope(model: type[PayOrder] | type[Refund], q: OrderQuery | RefundQuery) -> ColumnElement[bool]:
    return model.app_id == q.app_id if q.app_id is not None else model.mch_no == q.mch_no


def _window(stmt: Select[Any], column: Any, start: datetime | None, end: datetime | None) -> Select[Any]:
    if start is not None:
        stmt = stmt.where(column >= start)
    if end is not None:
        stmt = stmt.where(column < end)
    return stmt


def _before(stmt: Select[Any], at: Any, number: Any, key: tuple[datetime, str] | None) -> Select[Any]:
    """Rows strictly after `key` in newest-first order, i.e. (created_at, number) < key as a row comparison."""
    stmt = stmt.order_by(at.desc(), number.desc())
    if key is None:
        return stmt
    return stmt.where(tuple_(at, number) < tuple_(literal(key[0], at.type), literal(key[1], number.type)))


async def order_key(s: AsyncSession, q: OrderQuery, order_no: str) -> tuple[datetime, str] | None:
    """The keyset of one order in the query's scope (what a cursor names), None when it is not in it."""
    stmt = select(PayOrder.created_at).where(_scope(PayOrder, q), PayOrder.order_no == order_no)
    at = (await s.execute(stmt)).scalar_one_or_none()
    return None if at is None else (at, order_no)


async def orders_page(
    s: AsyncSession, q: OrderQuery, after: tuple[datetime, str] | None, limit: int
) -> Sequence[PayOrder]:
    stmt = select(PayOrder).where(_scope(PayOrder, q))
    if q.status is not None:
        stmt = stmt.where(PayOrder.status == q.status)
    if q.pay_method is not None:
        stmt = stmt.where(PayOrder.pay_method == q.pay_method)
    if q.number is not None:
        n = q.number
        stmt = stmt.where(or_(PayOrder.order_no == n, PayOrder.out_trade_no == n, PayOrder.channel_trade_no == n))
    stmt = _window(stmt, PayOrder.created_at, q.created_from, q.created_to)
    stmt = _before(stmt, PayOrder.created_at, PayOrder.order_no, after)
    return (await s.execute(stmt.limit(limit))).scalars().all()


async def refund_key(s: AsyncSession, q: RefundQuery, refund_no: str) -> tuple[datetime, str] | None:
    stmt = select(Refund.created_at).where(_scope(Refund, q), Refund.refund_no == refund_no)
    at = (await s.execute(stmt)).scalar_one_or_none()
    return None if at is None else (at, refund_no)


async def refunds_page(
    s: AsyncSession, q: RefundQuery, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Refund]:
    stmt = select(Refund).where(_scope(Refund, q))
    if q.order_no is not None:
        stmt = stmt.where(Refund.order_no == q.order_no)
    if q.status is not None:
        stmt = stmt.where(Refund.status == q.status)
    if q.number is not None:
        n = q.number
        stmt = stmt.where(or_(Refund.refund_no == n, Refund.out_refund_no == n, Refund.order_no == n))
    stmt = _window(stmt, Refund.created_at, q.created_from, q.created_to)
    stmt = _before(stmt, Refund.created_at, Refund.refund_no, after)
    return (await s.execute(stmt.limit(limit))).scalars().all()


async def merchant_order(s: AsyncSession, mch_no: str, order_no: str) -> PayOrder | None:
    stmt = select(PayOrder).where(PayOrder.mch_no == mch_no, PayOrder.order_no == order_no)
    return (await s.execute(stmt)).scalar_one_or_none()


async def merchant_refund(s: AsyncSession, mch_no: str, refund_no: str) -> Refund | None:
    stmt = select(Refund).where(Refund.mch_no == mch_no, Refund.refund_no == refund_no)
    return (await s.execute(stmt)).scalar_one_or_none()


async def volume_by_method(s: AsyncSession, mch_no: str, since: datetime) -> Sequence[Any]:
    """(pay_method, orders, succeeded, amount) of the merchant's orders created since `since`; `amount` is the
    succeeded orders' fen."""
    ok = PayOrder.status == OrderStatus.SUCCEEDED.value
    stmt = (
        select(
            PayOrder.pay_method,
            func.count().label("orders"),
            func.sum(case((ok, 1), else_=0)).label("succeeded"),
            func.sum(case((ok, PayOrder.amount), else_=0)).label("amount"),
        )
        .where(PayOrder.mch_no == mch_no, PayOrder.created_at >= since)
        .group_by(PayOrder.pay_method)
    )
    rows: Sequence[Any] = (await s.execute(stmt)).all()
    return rows
