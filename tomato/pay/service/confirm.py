"""Applying what a channel says about a payment (notify or query) — exactly once, amount-checked.

Every outcome is a compare-and-set on the order's status with its outbox event in the same transaction, so 50
concurrent duplicate notifies make one transition and one event. Money that arrived is never dropped: a payment
for a CLOSED order makes it SUCCEEDED with `paid_after_close`; one for a FAILED order is recorded as an anomaly.
A payment is never acknowledged unrecorded: the PAID compare-and-set takes whichever payable state stands when it
runs (a close may commit between our read and our write), and when it finds none it is applied to what stands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.protocol import ResultStatus
from tomato.core.outbox import add_event
from tomato.pay import repository as repo
from tomato.pay.events import PAY_FAILED, PAY_SUCCEEDED
from tomato.pay.models import PayOrder
from tomato.pay.service import paid_fast
from tomato.pay.service.anomalies import Anomaly, record_anomaly
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.fees import payment_facts, payment_snapshot
from tomato.pay.service.holds import release_order_holds
from tomato.pay.service.views import order_payload
from tomato.pay.states import OrderEvent, OrderStatus

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    APPLIED = "APPLIED"  # this call changed the order
    UNCHANGED = "UNCHANGED"  # already applied, or nothing to do: acknowledge
    REJECTED = "REJECTED"  # wrong order, account or amount: refuse, change nothing


@dataclass(frozen=True)
class PaymentReport:
    """A channel's statement about one order, from a verified notify or an authenticated query."""

    order_no: str
    channel_account_id: str
    status: ResultStatus
    amount: int | None = None
    channel_trade_no: str | None = None
    paid_at: datetime | None = None
    source: str = "notify"


async def apply_report(deps: PayDeps, report: PaymentReport) -> Outcome:
    if await paid_fast.try_apply(deps, report):  # the common case in two statements; else the general path below
        deps.wake_relay()
        return Outcome.APPLIED
    async with deps.db.uow() as uow:
        order = await repo.get(uow.session, report.order_no)
        channel = None if order is None else await _channel_of(uow.session, order, report.channel_account_id)
        if order is None or channel is None:
            log.warning("channel report for unknown order/account %s/%s", report.order_no, report.channel_account_id)
            return Outcome.REJECTED
        if report.status is ResultStatus.SUCCESS:
            outcome = await _paid(deps, uow.session, order, channel, report)
        elif report.status is ResultStatus.FAIL:
            outcome = await _failed(deps, uow.session, order, report)
        else:
            return Outcome.UNCHANGED
        await uow.commit()
    if outcome is Outcome.APPLIED:
        deps.wake_relay()
        if report.status is ResultStatus.FAIL:  # the payment failed: its daily-limit room is free again
            await release_order_holds(deps, report.order_no)
    return outcome


async def _channel_of(s: AsyncSession, order: PayOrder, account_id: str) -> str | None:
    """The channel of `account_id` if the order was ever submitted to that account, else None (refuse)."""
    for attempt in await repo.attempts_of(s, order.order_no):
        if attempt.channel_account_id == account_id:
            return attempt.channel
    return None


async def _paid(deps: PayDeps, s: AsyncSession, order: PayOrder, channel: str, report: PaymentReport) -> Outcome:
    if report.amount != order.amount:
        note = f"channel says {report.amount}, order is {order.amount}"
        await _anomaly(deps, s, order, channel, "amount_mismatch", report, note)
        log.error("ALERT amount mismatch on %s: channel %s vs order %s", order.order_no, report.amount, order.amount)
        return Outcome.REJECTED
    if order.status not in (OrderStatus.SUCCEEDED, OrderStatus.FAILED):
        snapshot = await payment_snapshot(s, order, report.channel_account_id)
        after_close = await repo.mark_paid(
            s,
            order.order_no,
            {
                **snapshot,
                "channel": channel,
                "channel_account_id": report.channel_account_id,
                "channel_trade_no": report.channel_trade_no,
                "paid_at": report.paid_at or deps.clock.now(),
                "next_query_at": None,
                "updated_at": deps.clock.now(),
            },
        )
        if after_close is not None:
            return await _succeeded(deps, s, order, channel, report, after_close)
        # it became SUCCEEDED or FAILED between our read and our write: apply the payment against that
        await s.refresh(order)
    return await _paid_again(deps, s, order, channel, report)


async def _succeeded(
    deps: PayDeps, s: AsyncSession, order: PayOrder, channel: str, report: PaymentReport, after_close: bool
) -> Outcome:
    if after_close:
        note = "payment confirmed after the order was closed"
        await _anomaly(deps, s, order, channel, "paid_after_close", report, note)
    await s.refresh(order)
    add_event(
        s,
        deps.ids,
        event_type=PAY_SUCCEEDED,
        aggregate_type="pay_order",
        aggregate_id=order.order_no,
        data=order_payload(order),
        app_id=order.app_id,
        facts=payment_facts(deps, order),
    )
    return Outcome.APPLIED


async def _paid_again(deps: PayDeps, s: AsyncSession, order: PayOrder, channel: str, report: PaymentReport) -> Outcome:
    """A payment reported for an order that is already final: a duplicate, or money finance must act on (an
    anomaly and its `pay.anomaly` event, once per channel trade: APPLIED the first time, UNCHANGED after)."""
    if order.status == OrderStatus.SUCCEEDED:
        if report.channel_trade_no and order.channel_trade_no not in (None, report.channel_trade_no):
            note = "paid again under another channel trade"
            new = await _anomaly(deps, s, order, channel, "second_payment", report, note)
            return Outcome.APPLIED if new else Outcome.UNCHANGED
        return Outcome.UNCHANGED
    note = "the channel confirmed a payment for a FAILED order"
    new = await _anomaly(deps, s, order, channel, "paid_after_failed", report, note)
    log.error("ALERT payment for FAILED order %s", order.order_no)
    return Outcome.APPLIED if new else Outcome.UNCHANGED


async def _failed(deps: PayDeps, s: AsyncSession, order: PayOrder, report: PaymentReport) -> Outcome:
    if order.status not in (OrderStatus.CREATED, OrderStatus.PAYING):
        return Outcome.UNCHANGED
    moved = await repo.transition(
        s,
        order.order_no,
        OrderEvent.PAYMENT_FAILED,
        {"status": OrderStatus.FAILED.value, "next_query_at": None, "updated_at": deps.clock.now()},
        only_from=[OrderStatus(order.status)],
    )
    if not moved:
        return Outcome.UNCHANGED
    await s.refresh(order)
    add_event(
        s,
        deps.ids,
        event_type=PAY_FAILED,
        aggregate_type="pay_order",
        aggregate_id=order.order_no,
        data=order_payload(order),
        app_id=order.app_id,
    )
    return Outcome.APPLIED


async def _anomaly(
    deps: PayDeps, s: AsyncSession, order: PayOrder, channel: str, kind: str, report: PaymentReport, note: str
) -> bool:
    anomaly = Anomaly(
        kind=kind,
        order_no=order.order_no,
        app_id=order.app_id,
        mch_no=order.mch_no,
        channel=channel,
        channel_account_id=report.channel_account_id,
        channel_trade_no=report.channel_trade_no,
        amount=report.amount,
        source=report.source,
        note=note,
    )
    return await record_anomaly(deps, s, anomaly)
