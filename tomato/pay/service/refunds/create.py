"""Creating a refund: validate, reserve the amount on the order in the database, commit, then ask the channel.

The reservation is one guarded UPDATE on the order (`refund_reserved + amount <= amount`, `refund_count < max`,
status SUCCEEDED) in the unit of work that inserts the refund: no read-then-write race. PostgreSQL re-checks the
WHERE on the locked row after a concurrent commit; SQLite serialises writers with BEGIN IMMEDIATE. Losing the
insert to a twin request with the same out_refund_no rolls our reservation back with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.core.clock import as_utc
from tomato.merchant.schemas import AppAuth
from tomato.pay import repository as repo
from tomato.pay.errors import (
    OrderNotFound,
    OrderStateConflict,
    OutRefundNoConflict,
    RefundAmountExceeded,
    RefundNotAllowed,
)
from tomato.pay.models import PayOrder, Refund
from tomato.pay.schemas import RefundCreate, RefundView
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.refunds.channel import apply_answer, next_refund_query_at, send_refund
from tomato.pay.service.refunds.views import refund_view, reload_view
from tomato.pay.service.split_returns import carry_with_refund, return_splits_before_refund
from tomato.pay.states import OrderStatus, RefundStatus


@dataclass(frozen=True)
class RefundPolicy:
    """Merchant-facing limits; `max_per_order` is WeChat's (the tightest channel), counting every refund accepted."""

    window_days: int = 365
    max_per_order: int = 50


async def create_refund(
    deps: PayDeps, app: AppAuth, cmd: RefundCreate, policy: RefundPolicy
) -> tuple[RefundView, bool]:
    """Returns the refund and whether it was created now (201) rather than found by out_refund_no (200)."""
    deps.check_notify_url(cmd.notify_url)
    digest = cmd.request_hash()
    async with deps.db.uow() as uow:
        existing = await repo.refund_by_out_refund_no(uow.session, app.app_id, cmd.out_refund_no)
        order = None if existing is not None else await _order_of(uow.session, app.app_id, cmd)
    if existing is not None:
        return _same_request(existing, digest), False
    if order is None:
        raise OrderNotFound(f"order {cmd.order_no or cmd.out_trade_no} not found")
    _check_refundable(deps, order, policy)
    await return_splits_before_refund(deps, order)  # a split order's splits come back first
    refund = _new_refund(deps, app, cmd, order, digest)
    winner: Refund | None = None
    try:
        async with deps.db.uow() as uow:
            s = uow.session
            await carry_with_refund(s, order, refund.refund_no, refund.created_at)  # Alipay: splits ride along
            if await repo.reserve_refund(s, order.order_no, cmd.amount, policy.max_per_order, refund.created_at):
                s.add(refund)
                await uow.commit()
            else:  # a concurrent twin may have taken the remainder under this very out_refund_no
                winner = await repo.refund_by_out_refund_no(s, app.app_id, cmd.out_refund_no)
                if winner is None:
                    raise _not_reserved(await repo.get(s, order.order_no), cmd.amount, policy)
    except IntegrityError:  # a concurrent twin inserted first; our reservation rolled back with our insert
        async with deps.db.uow() as uow:
            winner = await repo.refund_by_out_refund_no(uow.session, app.app_id, cmd.out_refund_no)
        if winner is None:
            raise
    if winner is not None:
        return _same_request(winner, digest), False
    answer = await send_refund(deps, refund, order)
    await apply_answer(deps, refund, answer, source="refund")
    return await reload_view(deps, refund.refund_no), True


async def _order_of(s: AsyncSession, app_id: str, cmd: RefundCreate) -> PayOrder | None:
    if cmd.order_no is not None:
        return await repo.get_for_app(s, app_id, cmd.order_no)
    assert cmd.out_trade_no is not None  # the schema demands exactly one of the two
    return await repo.by_out_trade_no(s, app_id, cmd.out_trade_no)


def _same_request(refund: Refund, digest: str) -> RefundView:
    if refund.request_hash != digest:
        raise OutRefundNoConflict(f"out_refund_no {refund.out_refund_no} was used for a different request")
    return refund_view(refund)


def _check_refundable(deps: PayDeps, order: PayOrder, policy: RefundPolicy) -> None:
    """Status and window; `paid_at` never changes once SUCCEEDED, so checking it before the reservation is safe."""
    if order.status != OrderStatus.SUCCEEDED or order.channel_account_id is None or order.channel is None:
        raise OrderStateConflict(f"order {order.order_no} is {order.status}; only SUCCEEDED orders are refunded")
    paid_at = as_utc(order.paid_at or order.created_at)
    if deps.clock.now() > paid_at + timedelta(days=policy.window_days):
        raise RefundNotAllowed(f"the refund window of {policy.window_days} days after payment has passed")


def _not_reserved(order: PayOrder | None, amount: int, policy: RefundPolicy) -> Exception:
    """Why the guarded reservation matched no row, read in the same transaction."""
    if order is None:
        return OrderNotFound("order not found")
    if order.status != OrderStatus.SUCCEEDED:
        return OrderStateConflict(f"order {order.order_no} is {order.status}; only SUCCEEDED orders are refunded")
    if order.refund_count >= policy.max_per_order:
        return RefundNotAllowed(f"order {order.order_no} already has {order.refund_count} refunds, the most allowed")
    remainder = order.amount - order.refund_reserved - order.split_reserved
    return RefundAmountExceeded(f"amount {amount} exceeds the refundable remainder {remainder}")


def _new_refund(deps: PayDeps, app: AppAuth, cmd: RefundCreate, order: PayOrder, digest: str) -> Refund:
    now = deps.clock.now()
    assert order.channel is not None and order.channel_account_id is not None  # checked by _check_refundable
    return Refund(
        refund_no=deps.ids.next_id("R"),
        order_no=order.order_no,
        app_id=app.app_id,
        mch_no=app.mch_no,
        out_refund_no=cmd.out_refund_no,
        request_hash=digest,
        amount=cmd.amount,
        status=RefundStatus.PENDING.value,
        channel=order.channel,
        channel_account_id=order.channel_account_id,
        reason=cmd.reason,
        notify_url=cmd.notify_url,
        query_count=0,
        # already scheduled: if the process dies before the channel answers, the job still finds it
        next_query_at=next_refund_query_at(deps, now, 0),
        created_at=now,
        updated_at=now,
    )
