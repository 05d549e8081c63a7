"""Talking to the channel about a refund — always outside any unit of work — and what its answers mean.

The request's answer: SUCCESS and FAIL are final; WAITING means the channel has the refund and is working on it;
UNKNOWN (timeout, 5xx, bad signature, connect error) says nothing, so the refund stays PENDING for the query job
and is never failed on it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from tomato.channel.protocol import ChannelResult, ErrorClass, RefundRef, RefundRequest, ResultStatus
from tomato.core.clock import as_utc
from tomato.pay import repository as repo
from tomato.pay.models import PayOrder, Refund
from tomato.pay.service.compensation import STEADY_S, next_query_at
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.refunds.apply import RefundReport, apply_refund_report
from tomato.pay.service.split_returns import carried_returns
from tomato.pay.states import RefundStatus

log = logging.getLogger(__name__)

# Refunds are queried on the pay orders' tiers, then every 30 min until final. They never give up (a refund nobody
# asks about would stay PENDING forever), so the "expiry" handed to the shared schedule is far away.
QUERY_HORIZON = timedelta(days=3650)


def next_refund_query_at(deps: PayDeps, created_at: datetime, count: int) -> datetime:
    """When to ask the channel about a PENDING refund for the (count + 1)-th time."""
    scale = deps.compensation_time_scale
    at = next_query_at(created_at, as_utc(created_at) + QUERY_HORIZON, count, scale)
    return at if at is not None else deps.clock.now() + timedelta(seconds=STEADY_S / scale)


async def send_refund(deps: PayDeps, refund: Refund, order: PayOrder) -> ChannelResult:
    """The refund request under our refund_no; an adapter bug is an unknown outcome, never a failure."""
    request = RefundRequest(
        order_no=refund.order_no,
        refund_no=refund.refund_no,
        amount=refund.amount,
        total_amount=order.amount,
        notify_url=deps.callback_url(refund.channel, refund.channel_account_id),
        reason=refund.reason,
        channel_trade_no=order.channel_trade_no,
        order_created_at=order.created_at,
        created_at=refund.created_at,
    )
    try:
        if order.profit_sharing:  # split money the receivers give back within this refund (Alipay)
            request = replace(request, split_returns=await carried_returns(deps, refund.refund_no, order))
        adapter = await deps.channels.adapter_for(refund.channel_account_id, refund.mch_no)
        return await adapter.refund(request)
    except Exception:
        log.exception("adapter refund failed for %s", refund.refund_no)
        return ChannelResult.unknown(ErrorClass.MALFORMED, "adapter error")


async def query_refund(deps: PayDeps, refund: Refund, order: PayOrder | None) -> ChannelResult:
    ref = RefundRef(
        order_no=refund.order_no,
        refund_no=refund.refund_no,
        amount=refund.amount,
        channel_trade_no=order.channel_trade_no if order is not None else None,
        created_at=refund.created_at,
    )
    try:
        adapter = await deps.channels.adapter_for(refund.channel_account_id, refund.mch_no)
        return await adapter.query_refund(ref)
    except Exception:
        log.exception("adapter query_refund failed for %s", refund.refund_no)
        return ChannelResult.unknown(ErrorClass.MALFORMED, "adapter error")


async def apply_answer(deps: PayDeps, refund: Refund, answer: ChannelResult, *, source: str) -> None:
    """Applies the answer to a refund request (from the create path or a resend by the job)."""
    if answer.status in (ResultStatus.SUCCESS, ResultStatus.FAIL):
        await apply_refund_report(deps, report_of(refund, answer, source))
        return
    values: dict[str, Any] = {"updated_at": deps.clock.now()}
    if answer.status is ResultStatus.WAITING:
        values["accepted_at"] = deps.clock.now()
    if answer.channel_refund_no:
        values["channel_refund_no"] = answer.channel_refund_no
    if answer.status is ResultStatus.UNKNOWN:
        log.warning("refund %s: outcome unknown (%s %s); left PENDING", refund.refund_no, answer.error, answer.message)
    async with deps.db.uow() as uow:
        await repo.set_refund_fields(uow.session, refund.refund_no, RefundStatus.PENDING, values)
        await uow.commit()


def report_of(refund: Refund, result: ChannelResult, source: str) -> RefundReport:
    reason = None
    if result.status is ResultStatus.FAIL:
        reason = ": ".join(p for p in (result.code, result.message) if p) or result.error.value
    return RefundReport(
        refund_no=refund.refund_no,
        order_no=refund.order_no,
        channel_account_id=refund.channel_account_id,
        status=result.status,
        amount=result.amount,
        channel_refund_no=result.channel_refund_no,
        failure_reason=reason,
        succeeded_at=result.paid_at,
        source=source,
    )
