"""The queries behind the merchant's order and refund lists (`GET /v1/pay/orders`, `GET /v1/refunds`).

Newest first by the keyset (created_at, number), never OFFSET: a row inserted while a merchant pages sorts above
the cursor or below it, so no row is shown twice and none that existed is skipped. Every query is scoped by the
app (the distribution key a Citus deployment would shard on); migration 0017 indexes (app_id, created_at, number).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.pay.models import PayOrder, Refund


@dataclass(frozen=True)
class OrderQuery:
    """An app's orders, optionally by status, pay method and a creation window [created_from, created_to)."""

    app_id: str
    status: str | None = None
    pay_method: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class RefundQuery:
    """An app's refunds, optionally of one order, by status and a creation window [created_from, created_to)."""

    app_id: str
    order_no: str | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


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


async def order_key(s: AsyncSession, app_id: str, order_no: str) -> tuple[datetime, str] | None:
    """The keyset of one of the app's orders (what a cursor names), None when it is not the app's."""
    stmt = select(PayOrder.created_at).where(PayOrder.app_id == app_id, PayOrder.order_no == order_no)
    at = (await s.execute(stmt)).scalar_one_or_none()
    return None if at is None else (at, order_no)


async def orders_page(
    s: AsyncSession, q: OrderQuery, after: tuple[datetime, str] | None, limit: int
) -> Sequence[PayOrder]:
    stmt = select(PayOrder).where(PayOrder.app_id == q.app_id)
    if q.status is not None:
        stmt = stmt.where(PayOrder.status == q.status)
    if q.pay_method is not None:
        stmt = stmt.where(PayOrder.pay_method == q.pay_method)
    stmt = _window(stmt, PayOrder.created_at, q.created_from, q.created_to)
    stmt = _before(stmt, PayOrder.created_at, PayOrder.order_no, after)
    return (await s.execute(stmt.limit(limit))).scalars().all()


async def refund_key(s: AsyncSession, app_id: str, refund_no: str) -> tuple[datetime, str] | None:
    stmt = select(Refund.created_at).where(Refund.app_id == app_id, Refund.refund_no == refund_no)
    at = (await s.execute(stmt)).scalar_one_or_none()
    return None if at is None else (at, refund_no)


async def refunds_page(
    s: AsyncSession, q: RefundQuery, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Refund]:
    stmt = select(Refund).where(Refund.app_id == q.app_id)
    if q.order_no is not None:
        stmt = stmt.where(Refund.order_no == q.order_no)
    if q.status is not None:
        stmt = stmt.where(Refund.status == q.status)
    stmt = _window(stmt, Refund.created_at, q.created_from, q.created_to)
    stmt = _before(stmt, Refund.created_at, Refund.refund_no, after)
    return (await s.execute(stmt.limit(limit))).scalars().all()
