"""Every query of the pay context. Never commits; every state change is a compare-and-set on `status`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.pay.models import PayAnomaly, PayAttempt, PayOrder
from tomato.pay.states import OrderEvent, OrderStatus, sources


async def get(s: AsyncSession, order_no: str) -> PayOrder | None:
    return await s.get(PayOrder, order_no)


async def get_for_app(s: AsyncSession, app_id: str, order_no: str) -> PayOrder | None:
    q = select(PayOrder).where(PayOrder.order_no == order_no, PayOrder.app_id == app_id)
    return (await s.scalars(q)).first()


async def by_out_trade_no(s: AsyncSession, app_id: str, out_trade_no: str) -> PayOrder | None:
    q = select(PayOrder).where(PayOrder.app_id == app_id, PayOrder.out_trade_no == out_trade_no)
    return (await s.scalars(q)).first()


async def by_cashier_token(s: AsyncSession, token: str) -> PayOrder | None:
    return (await s.scalars(select(PayOrder).where(PayOrder.cashier_token == token))).first()


async def transition(
    s: AsyncSession,
    order_no: str,
    event: OrderEvent,
    values: dict[str, Any],
    *,
    only_from: Sequence[OrderStatus] | None = None,
) -> bool:
    """Moves the order if (and only if) its current status allows `event`; True when this call moved it."""
    allowed = [st.value for st in (only_from if only_from is not None else sources(event))]
    res = await s.execute(
        update(PayOrder)
        .where(PayOrder.order_no == order_no, PayOrder.status.in_(allowed))
        .values(**values, version=PayOrder.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def set_fields(s: AsyncSession, order_no: str, status: OrderStatus, values: dict[str, Any]) -> bool:
    """Updates non-state fields while the order is still in `status` (e.g. query bookkeeping)."""
    res = await s.execute(
        update(PayOrder)
        .where(PayOrder.order_no == order_no, PayOrder.status == status.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def due_for_query(s: AsyncSession, now: datetime, limit: int) -> Sequence[PayOrder]:
    q = (
        select(PayOrder)
        .where(PayOrder.status == OrderStatus.PAYING.value, PayOrder.next_query_at <= now)
        .order_by(PayOrder.next_query_at)
        .limit(limit)
    )
    return (await s.scalars(q)).all()


async def expired(s: AsyncSession, now: datetime, limit: int) -> Sequence[PayOrder]:
    q = (
        select(PayOrder)
        .where(
            or_(PayOrder.status == OrderStatus.PAYING.value, PayOrder.status == OrderStatus.CREATED.value),
            PayOrder.expire_at <= now,
        )
        .order_by(PayOrder.expire_at)
        .limit(limit)
    )
    return (await s.scalars(q)).all()


async def attempts_of(s: AsyncSession, order_no: str) -> Sequence[PayAttempt]:
    q = select(PayAttempt).where(PayAttempt.order_no == order_no).order_by(PayAttempt.created_at)
    return (await s.scalars(q)).all()


def add_anomaly(s: AsyncSession, anomaly: PayAnomaly) -> None:
    s.add(anomaly)
