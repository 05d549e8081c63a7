"""Closing orders — by the merchant or at expiry — always at the channel first, then locally.

If the channel refuses to close because the trade was paid, the payment is applied instead (never lost) and
the merchant's close answers ORDER_STATE_CONFLICT.
"""

from __future__ import annotations

import logging

from tomato.channel.protocol import ErrorClass, ResultStatus, TradeRef
from tomato.core.errors import ChannelError
from tomato.core.outbox import add_event
from tomato.pay import repository as repo
from tomato.pay.errors import OrderNotFound, OrderStateConflict
from tomato.pay.events import PAY_CLOSED
from tomato.pay.models import PayAttempt, PayOrder
from tomato.pay.schemas import PayOrderView
from tomato.pay.service.confirm import Outcome, PaymentReport, apply_report
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.holds import release_order_holds
from tomato.pay.service.views import order_payload, order_view
from tomato.pay.states import OrderEvent, OrderStatus

log = logging.getLogger(__name__)
NEVER_SENT = frozenset({ErrorClass.CONNECT.value, ErrorClass.BREAKER_OPEN.value})


async def close_order(deps: PayDeps, app_id: str, order_no: str) -> PayOrderView:
    async with deps.db.uow() as uow:
        order = await repo.get_for_app(uow.session, app_id, order_no)
    if order is None:
        raise OrderNotFound(f"order {order_no} not found")
    if order.status == OrderStatus.CLOSED:
        return order_view(order)
    if order.status in (OrderStatus.SUCCEEDED, OrderStatus.FAILED):
        raise OrderStateConflict(f"order {order_no} is {order.status}")
    closed = await close_everywhere(deps, order)
    if closed.status != OrderStatus.CLOSED:
        raise OrderStateConflict(f"order {order_no} is {closed.status}")
    return order_view(closed)


async def close_everywhere(deps: PayDeps, order: PayOrder) -> PayOrder:
    """Closes every channel trade the order may have, then the order; returns the order as it now stands."""
    async with deps.db.uow() as uow:
        attempts = await repo.attempts_of(uow.session, order.order_no)
    accounts = {a.channel_account_id: a.channel for a in attempts if _may_exist_at_channel(a)}
    for account_id in accounts:
        adapter = await deps.channels.adapter_for(account_id, order.mch_no)
        ref = TradeRef(order.order_no, order.channel_trade_no, order.amount, order.created_at)
        result = await adapter.close(ref)
        if result.status is ResultStatus.SUCCESS:
            continue
        # could not close: find out whether it was paid (then apply it) before giving up
        query = await adapter.query(ref)
        if query.settles_query:
            outcome = await apply_report(
                deps,
                PaymentReport(
                    order.order_no,
                    account_id,
                    query.status,
                    query.amount,
                    query.channel_trade_no,
                    query.paid_at,
                    source="close",
                ),
            )
            if query.status is ResultStatus.SUCCESS or outcome is Outcome.REJECTED:
                return await _reload(deps, order.order_no)  # paid (or refused as paid otherwise): not closed
            continue
        raise ChannelError(f"the channel could not close the trade ({result.code or result.error.value})")
    closed = await close_locally(deps, order)
    return closed if closed is not None else await _reload(deps, order.order_no)


def _may_exist_at_channel(attempt: PayAttempt) -> bool:
    """Whether the attempt may have made a trade at the channel: it was not refused, and it was sent (a connect
    failure or an open breaker never reached the channel, so there is nothing there to close)."""
    return attempt.status != "FAIL" and attempt.error_class not in NEVER_SENT


async def close_locally(deps: PayDeps, order: PayOrder) -> PayOrder | None:
    """The order as this close left it, or None when it was no longer open (paid or failed meanwhile). A payment
    applied right after our commit does not change what the close did: it answers CLOSED, and the payment is
    paid after close."""
    now = deps.clock.now()
    fresh = None
    async with deps.db.uow() as uow:
        moved = await repo.transition(
            uow.session,
            order.order_no,
            OrderEvent.CLOSED,
            {"status": OrderStatus.CLOSED.value, "closed_at": now, "next_query_at": None, "updated_at": now},
            only_from=[OrderStatus.CREATED, OrderStatus.PAYING],
        )
        if moved:
            fresh = await repo.get(uow.session, order.order_no)
            assert fresh is not None
            await uow.session.refresh(fresh)
            add_event(
                uow.session,
                deps.ids,
                event_type=PAY_CLOSED,
                aggregate_type="pay_order",
                aggregate_id=order.order_no,
                data=order_payload(fresh),
                app_id=order.app_id,
            )
        await uow.commit()
    if moved:
        deps.wake_relay()
        await release_order_holds(deps, order.order_no)  # closed unpaid: its daily-limit room is free again
    return fresh


async def _reload(deps: PayDeps, order_no: str) -> PayOrder:
    async with deps.db.uow() as uow:
        order = await repo.get(uow.session, order_no)
    assert order is not None
    return order
