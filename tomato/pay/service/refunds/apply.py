"""Applying what a channel says about a refund (notify, query, or the answer to the request) — exactly once.

Every outcome is a compare-and-set on the refund's status, with the order's books and the outbox event in the
same transaction: SUCCEEDED counts the amount in `refunded_amount`/`refund_status` and the fee it gives back (from
the order's fee snapshot, cumulative: service/fees.py) in `refunds.fee_returned`/`fee_returned_total`, with the
booking facts on its `refund.succeeded` row; FAILED gives it back to the refundable remainder. Duplicates and late
reports change nothing and are acknowledged; a report with another amount, order or account is refused and changes
nothing but an anomaly row for finance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.protocol import ChannelNotify, ResultStatus
from tomato.core.outbox import add_event
from tomato.merchant.fees import refund_fee_share
from tomato.pay import repository as repo
from tomato.pay.events import REFUND_FAILED, REFUND_SUCCEEDED
from tomato.pay.models import Refund
from tomato.pay.service.anomalies import Anomaly, record_anomaly
from tomato.pay.service.confirm import Outcome
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.fees import refund_facts
from tomato.pay.service.refunds.views import refund_payload
from tomato.pay.service.split_returns import settle_carried
from tomato.pay.states import RefundEvent, RefundStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefundReport:
    """A channel's statement about one refund: from a verified notify, a query, or the answer to the request."""

    refund_no: str
    order_no: str
    channel_account_id: str
    status: ResultStatus
    amount: int | None = None
    channel_refund_no: str | None = None
    failure_reason: str | None = None
    succeeded_at: datetime | None = None
    source: str = "notify"


async def apply_refund_notify(deps: PayDeps, channel_account_id: str, notify: ChannelNotify) -> Outcome:
    """A verified refund notify. One that names no refund (Alipay may send only the order's cumulative refund)
    cannot be applied safely; it makes the order's PENDING refunds due for a query now and is acknowledged."""
    if notify.refund_no is None:
        async with deps.db.uow() as uow:
            await repo.make_pending_refunds_due(uow.session, notify.order_no, channel_account_id, deps.clock.now())
            await uow.commit()
        return Outcome.UNCHANGED
    report = RefundReport(
        refund_no=notify.refund_no,
        order_no=notify.order_no,
        channel_account_id=channel_account_id,
        status=notify.status,
        amount=notify.amount,
        channel_refund_no=notify.channel_refund_no,
        failure_reason="the channel reported the refund failed" if notify.status is ResultStatus.FAIL else None,
        succeeded_at=notify.paid_at,
    )
    return await apply_refund_report(deps, report)


async def apply_refund_report(deps: PayDeps, report: RefundReport) -> Outcome:
    async with deps.db.uow() as uow:
        s = uow.session
        refund = await repo.get_refund(s, report.refund_no)
        if (
            refund is None
            or refund.order_no != report.order_no
            or refund.channel_account_id != report.channel_account_id
        ):
            log.warning("refund report for unknown refund/order/account %s/%s/%s",
                        report.refund_no, report.order_no, report.channel_account_id)  # fmt: skip
            return Outcome.REJECTED
        if report.status is ResultStatus.SUCCESS:
            outcome = await _refunded(deps, s, refund, report)
        elif report.status is ResultStatus.FAIL:
            outcome = await _refund_failed(deps, s, refund, report)
        else:
            return Outcome.UNCHANGED
        await uow.commit()
    if outcome is Outcome.APPLIED:
        deps.wake_relay()
    return outcome


async def _refunded(deps: PayDeps, s: AsyncSession, refund: Refund, report: RefundReport) -> Outcome:
    if report.amount is not None and report.amount != refund.amount:
        await _anomaly(deps, s, refund, "refund_amount_mismatch", report, f"channel says {report.amount}")
        log.error("ALERT refund %s: channel says %s, refund is %s", refund.refund_no, report.amount, refund.amount)
        return Outcome.REJECTED
    if refund.status == RefundStatus.SUCCEEDED:
        return Outcome.UNCHANGED
    if refund.status == RefundStatus.FAILED:
        await _anomaly(deps, s, refund, "refund_succeeded_after_failed", report, "the channel refunded a FAILED refund")
        log.error("ALERT channel confirms refund %s that we hold FAILED", refund.refund_no)
        return Outcome.APPLIED
    now = deps.clock.now()
    values: dict[str, Any] = {
        "status": RefundStatus.SUCCEEDED.value,
        "succeeded_at": report.succeeded_at or now,
        "finished_at": now,
        "next_query_at": None,
        "updated_at": now,
    }
    if report.channel_refund_no:
        values["channel_refund_no"] = report.channel_refund_no
    if refund.accepted_at is None:
        values["accepted_at"] = now
    if not await repo.refund_transition(s, refund.refund_no, RefundEvent.REFUNDED, values):
        return Outcome.UNCHANGED  # someone else finished it between our read and write
    refunded_total = await repo.add_refunded(s, refund.order_no, refund.amount, now)
    if refunded_total is None:
        await _anomaly(
            deps, s, refund, "refund_books_inconsistent", report, "refunded_amount would pass the reservation"
        )
        log.error("ALERT order %s: refunded_amount would exceed refund_reserved", refund.order_no)
    order = await repo.get(s, refund.order_no)
    assert order is not None
    share = 0
    if refunded_total is not None:  # the fee returned follows the order's snapshot, never the merchant's plan now
        before = refunded_total - refund.amount
        share = refund_fee_share(order.refund_fee_rule, order.amount, order.fee or 0, before, refund.amount)
    await repo.add_fee_returned(s, refund.order_no, refund.refund_no, share)
    if order.profit_sharing:  # splits that came back within this refund (Alipay) are returned now
        await settle_carried(deps, s, refund.refund_no, True, now)
    await s.refresh(order)
    await s.refresh(refund)
    _event(deps, s, refund, REFUND_SUCCEEDED, facts=refund_facts(deps, refund, order))
    return Outcome.APPLIED


async def _refund_failed(deps: PayDeps, s: AsyncSession, refund: Refund, report: RefundReport) -> Outcome:
    if refund.status == RefundStatus.FAILED:
        return Outcome.UNCHANGED
    if refund.status == RefundStatus.SUCCEEDED:
        await _anomaly(
            deps, s, refund, "refund_failed_after_succeeded", report, "the channel says a SUCCEEDED refund failed"
        )
        log.error("ALERT channel reports refund %s failed, which we hold SUCCEEDED", refund.refund_no)
        return Outcome.UNCHANGED
    now = deps.clock.now()
    values = {
        "status": RefundStatus.FAILED.value,
        "failure_reason": (report.failure_reason or "refused by the channel")[:256],
        "finished_at": now,
        "next_query_at": None,
        "updated_at": now,
    }
    if not await repo.refund_transition(s, refund.refund_no, RefundEvent.REFUND_FAILED, values):
        return Outcome.UNCHANGED
    if not await repo.release_refund(s, refund.order_no, refund.amount, now):
        await _anomaly(
            deps, s, refund, "refund_books_inconsistent", report, "reservation smaller than the failed refund"
        )
        log.error("ALERT order %s: could not release the reservation of %s", refund.order_no, refund.refund_no)
    await settle_carried(deps, s, refund.refund_no, False, now)  # splits it carried are the receivers' again
    await s.refresh(refund)
    _event(deps, s, refund, REFUND_FAILED)
    return Outcome.APPLIED


def _event(
    deps: PayDeps, s: AsyncSession, refund: Refund, event_type: str, facts: dict[str, Any] | None = None
) -> None:
    add_event(
        s,
        deps.ids,
        event_type=event_type,
        aggregate_type="refund",
        aggregate_id=refund.refund_no,
        data=refund_payload(refund),
        app_id=refund.app_id,
        facts=facts,
    )


async def _anomaly(deps: PayDeps, s: AsyncSession, refund: Refund, kind: str, report: RefundReport, note: str) -> None:
    anomaly = Anomaly(
        kind=kind,
        order_no=refund.order_no,
        app_id=refund.app_id,
        mch_no=refund.mch_no,
        channel=refund.channel,
        channel_account_id=report.channel_account_id,
        channel_trade_no=None,
        amount=report.amount,
        source=report.source,
        note=note,
        refund_no=refund.refund_no,
        details={"channel_refund_no": report.channel_refund_no},
    )
    await record_anomaly(deps, s, anomaly)
