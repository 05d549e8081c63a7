"""Operator reads for the console: orders and refunds found by any of their numbers, and hourly volume per channel
(both read-only; the console shows them, nothing here changes an order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tomato.core.clock import as_utc
from tomato.pay import repository as repo
from tomato.pay.schemas import HourlyVolume, OrderLookup
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.refunds.views import refund_view
from tomato.pay.service.views import order_view


async def lookup(deps: PayDeps, number: str, limit: int) -> OrderLookup:
    async with deps.db.uow() as uow:
        orders = await repo.orders_by_number(uow.session, number, limit)
        refunds = await repo.refunds_by_number(uow.session, number, [o.order_no for o in orders], limit)
        known = {o.order_no for o in orders}
        missing = sorted({r.order_no for r in refunds} - known)
        for order_no in missing[:limit]:  # a refund's number was given: show its order too
            order = await repo.get(uow.session, order_no)
            if order is not None:
                orders = [*orders, order]
    return OrderLookup(orders=[order_view(o) for o in orders], refunds=[refund_view(r) for r in refunds])


async def hourly_volume(deps: PayDeps, hours: int) -> list[HourlyVolume]:
    """The last `hours` whole UTC hours up to and including the current one."""
    now = as_utc(deps.clock.now())
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    async with deps.db.uow() as uow:
        rows = await repo.hourly_volume(uow.session, since)
    out = []
    for hour, channel, orders, succeeded, amount in rows:
        at = datetime.fromisoformat(hour) if isinstance(hour, str) else hour
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        out.append(HourlyVolume(at, str(channel), int(orders), int(succeeded or 0), int(amount or 0)))
    return sorted(out, key=lambda v: (v.hour, v.channel))
