"""Timed work on orders: ask the channel about PAYING orders whose notify has not come, close expired ones."""

from __future__ import annotations

import logging

from tomato.channel.protocol import TradeRef
from tomato.pay import repository as repo
from tomato.pay.models import PayOrder
from tomato.pay.service.close import close_everywhere
from tomato.pay.service.compensation import next_close_at, next_query_at
from tomato.pay.service.confirm import Outcome, PaymentReport, apply_report
from tomato.pay.service.deps import PayDeps
from tomato.pay.states import OrderStatus

log = logging.getLogger(__name__)
BATCH = 200
OPEN = (OrderStatus.CREATED, OrderStatus.PAYING)


async def query_stuck_orders(deps: PayDeps) -> int:
    """One round of compensation queries; returns how many orders were asked about."""
    now = deps.clock.now()
    async with deps.db.uow() as uow:
        due = list(await repo.due_for_query(uow.session, now, BATCH))
    for order in due:
        if order.channel_account_id is None:
            continue
        try:
            adapter = await deps.channels.adapter_for(order.channel_account_id, order.mch_no)
            result = await adapter.query(
                TradeRef(order.order_no, order.channel_trade_no, order.amount, order.created_at)
            )
        except Exception:
            log.exception("compensation query failed for %s", order.order_no)
            result = None
        if result is not None and result.settles_query:
            outcome = await apply_report(
                deps,
                PaymentReport(
                    order.order_no,
                    order.channel_account_id,
                    result.status,
                    result.amount,
                    result.channel_trade_no,
                    result.paid_at,
                    source="query",
                ),
            )
            if outcome is not Outcome.REJECTED:
                continue
            # a refused answer (another amount) leaves the order PAYING: ask again on the backoff, not every round
        count = order.query_count + 1
        async with deps.db.uow() as uow:
            await repo.set_fields(
                uow.session,
                order.order_no,
                OrderStatus.PAYING,
                {
                    "query_count": count,
                    "next_query_at": next_query_at(
                        order.created_at, order.expire_at, count, deps.compensation_time_scale
                    ),
                },
            )
            await uow.commit()
    return len(due)


async def close_expired_orders(deps: PayDeps) -> int:
    """Closes orders past `expire_at`: at the channel first, then locally. One the channel will not let us close
    (its account is down, it reports the trade paid with another amount) is tried again on a backoff of its own, so
    it never takes a place in the batch from orders that can be closed."""
    async with deps.db.uow() as uow:
        expired = list(await repo.expired(uow.session, deps.clock.now(), BATCH))
    for order in expired:
        try:
            still_open = (await close_everywhere(deps, order)).status in OPEN
        except Exception:
            log.warning("could not close expired order %s yet", order.order_no, exc_info=True)
            still_open = True
        if still_open:
            await _close_later(deps, order)
    return len(expired)


async def _close_later(deps: PayDeps, order: PayOrder) -> None:
    failures = order.close_failures + 1
    async with deps.db.uow() as uow:
        await repo.set_fields(
            uow.session,
            order.order_no,
            OrderStatus(order.status),
            {
                "close_failures": failures,
                "next_close_at": next_close_at(deps.clock.now(), failures, deps.compensation_time_scale),
            },
        )
        await uow.commit()
