"""The refund compensation job: every PENDING refund is asked about on the tiered schedule until it is final."""

from __future__ import annotations

import logging
from typing import Any

from tomato.channel.protocol import ResultStatus
from tomato.channel.refusals import refund_cannot_be_made
from tomato.pay import repository as repo
from tomato.pay.models import PayOrder, Refund
from tomato.pay.service.confirm import Outcome
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.refunds.apply import apply_refund_report
from tomato.pay.service.refunds.channel import next_refund_query_at, query_refund, report_of, send_refund
from tomato.pay.states import RefundStatus

log = logging.getLogger(__name__)
BATCH = 200


async def query_pending_refunds(deps: PayDeps) -> int:
    """One round; returns how many PENDING refunds were looked at."""
    async with deps.db.uow() as uow:
        due = list(await repo.refunds_due_for_query(uow.session, deps.clock.now(), BATCH))
        orders = {no: await repo.get(uow.session, no) for no in {r.order_no for r in due}}
    for refund in due:
        try:
            await _compensate(deps, refund, orders.get(refund.order_no))
        except Exception:
            log.exception("refund compensation failed for %s; it is due again next round", refund.refund_no)
    return len(due)


async def _compensate(deps: PayDeps, refund: Refund, order: PayOrder | None) -> None:
    """Query first. A query FAIL counts only as a status answer (error NONE); a refused query (REJECTED) says
    nothing about the refund. A request the channel never acknowledged is sent again once the channel answered the
    query with nothing final — a refund_no is deduplicated by every channel, so a resend never refunds twice.
    A refusal of the resend fails the refund only when it says the refund cannot exist or be made
    (`channel.refusals`): the first request may have been carried out, so a "not now" proves nothing."""
    result = await query_refund(deps, refund, order)
    accepted = refund.accepted_at is not None
    channel_refund_no = result.channel_refund_no
    if result.settles_query:
        if await apply_refund_report(deps, report_of(refund, result, "query")) is not Outcome.REJECTED:
            return
    elif result.status is ResultStatus.WAITING and not accepted and order is not None:
        answer = await send_refund(deps, refund, order)
        if answer.status is ResultStatus.SUCCESS or refund_cannot_be_made(refund.channel, answer):
            if await apply_refund_report(deps, report_of(refund, answer, "resend")) is not Outcome.REJECTED:
                return
        elif answer.status is ResultStatus.FAIL:  # "not now" (rate limit, …): says nothing of the first request
            log.warning("refund %s: resend refused (%s); left PENDING", refund.refund_no, answer.code)
        accepted = answer.status is ResultStatus.WAITING
        channel_refund_no = answer.channel_refund_no or channel_refund_no
    # not final (or refused as inconsistent, which finance sees as an anomaly): ask again on the schedule
    count = refund.query_count + 1
    values: dict[str, Any] = {
        "query_count": count,
        "next_query_at": next_refund_query_at(deps, refund.created_at, count),
        "updated_at": deps.clock.now(),
    }
    if accepted and refund.accepted_at is None:
        values["accepted_at"] = deps.clock.now()
    if channel_refund_no:
        values["channel_refund_no"] = channel_refund_no
    async with deps.db.uow() as uow:
        await repo.set_refund_fields(uow.session, refund.refund_no, RefundStatus.PENDING, values)
        await uow.commit()
