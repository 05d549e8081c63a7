"""Barcode payments (付款码): the till scans the payer's code and must know within seconds whether the money moved.

The rules (docs/merchant-guide.md, "Barcode payments at a till"):
- The code's shape names the channel (`core.pay_methods.barcode_channel`); only that channel's candidates are tried.
- Any answer the channel gives to the pay request except a refusal of the request itself (the account cannot take
  barcodes, a connect failure) puts the order `PAYING`: paid → `SUCCEEDED` at once; the payer refused or could not
  pay → `FAILED`; confirming on the phone, or an unknown outcome (the payer may have paid) → polled.
- The create waits up to `barcode_wait_s` for a final answer, asking the channel every `barcode_poll_s`.
- After that the scheduler's `pay.barcode` job asks every `barcode_poll_s`; an order still not paid
  `barcode_confirm_s` after its creation is reversed at the channel (`cancel`) and closed — never left
  paid-but-unknown. A payment the channel reports after the reversal is kept by the paid-after-close rule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.protocol import ChannelResult, ErrorClass, ResultStatus, TradeRef
from tomato.channel.service import Route
from tomato.core.clock import as_utc
from tomato.core.pay_methods import PayMethod, barcode_channel
from tomato.pay import repository as repo
from tomato.pay.models import PayOrder
from tomato.pay.schemas import PayOrderView
from tomato.pay.service.close import close_locally
from tomato.pay.service.confirm import Outcome, PaymentReport, apply_report
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.views import order_view
from tomato.pay.states import FINAL, OrderStatus

log = logging.getLogger(__name__)
BATCH = 200
# refusals of the request by the account, not of the payer: another account of the channel may take the order
ACCOUNT_REFUSALS = frozenset({"BARCODE_NOT_SUPPORTED", "SUB_MERCHANT_REQUIRED"})
NEVER_SENT = frozenset({ErrorClass.CONNECT, ErrorClass.BREAKER_OPEN})


def is_barcode(order: PayOrder) -> bool:
    return order.pay_method == PayMethod.BARCODE


def routes_for(routes: list[Route], auth_code: str) -> list[Route]:
    """The candidates of the channel the code belongs to."""
    channel = barcode_channel(auth_code)
    return [r for r in routes if r.channel == channel]


def accepted(result: ChannelResult) -> bool:
    """Whether the pay request may have reached the payer: then the order is PAYING and its outcome is followed."""
    if result.error in NEVER_SENT:
        return False
    return not (result.status is ResultStatus.FAIL and result.code in ACCOUNT_REFUSALS)


def next_poll(deps: PayDeps) -> datetime:
    return deps.clock.now() + timedelta(seconds=deps.barcode_poll_s)


async def apply_answer(deps: PayDeps, order: PayOrder, account_id: str, result: ChannelResult, source: str) -> None:
    """A final answer about the payer's payment (paid, or definitely not) applied as any channel report is."""
    refused = result.status is ResultStatus.FAIL and result.code not in ACCOUNT_REFUSALS
    if result.status is ResultStatus.SUCCESS or refused:
        # the amount is the channel's (none assumed): a payment of another amount is an anomaly as for any report
        report = PaymentReport(
            order.order_no, account_id, result.status, result.amount, result.channel_trade_no, result.paid_at,
            source=source,
        )  # fmt: skip
        outcome = await apply_report(deps, report)
        if outcome is Outcome.REJECTED:
            log.error("ALERT barcode answer for %s refused (%s %s)", order.order_no, result.status, result.code)


async def wait_final(deps: PayDeps, order_no: str) -> PayOrderView:
    """The order once final, or as it stands after `barcode_wait_s` (asking the channel every `barcode_poll_s`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.barcode_wait_s
    while True:
        async with deps.db.uow() as uow:
            order = await repo.get(uow.session, order_no)
        assert order is not None
        left = deadline - loop.time()
        if OrderStatus(order.status) in FINAL or order.status == OrderStatus.CLOSED or left <= 0:
            return order_view(order)
        await asyncio.sleep(min(deps.barcode_poll_s, left))
        await _ask(deps, order)


async def poll_barcodes(deps: PayDeps) -> int:
    """The `pay.barcode` job: ask about open barcode orders, reverse those past their confirmation window."""
    now = deps.clock.now()
    async with deps.db.uow() as uow:
        due = list(await _due(uow.session, now))
    for order in due:
        try:
            await _follow(deps, order)
        except Exception:
            log.exception("barcode follow-up failed for %s", order.order_no)
    return len(due)


async def _follow(deps: PayDeps, order: PayOrder) -> None:
    if await _ask(deps, order):
        return
    if deps.clock.now() >= as_utc(order.created_at) + timedelta(seconds=deps.barcode_confirm_s):
        if await _reverse(deps, order):
            return
    async with deps.db.uow() as uow:
        fields = {"next_query_at": next_poll(deps), "query_count": order.query_count + 1}
        await repo.set_fields(uow.session, order.order_no, OrderStatus(order.status), fields)
        await uow.commit()


async def _ask(deps: PayDeps, order: PayOrder) -> bool:
    """Queries the channel; True when the order is final afterwards."""
    if order.channel_account_id is None:
        return False
    adapter = await deps.channels.adapter_for(order.channel_account_id, order.mch_no)
    result = await adapter.query(_ref(order))
    if result.settles_query:
        await apply_answer(deps, order, order.channel_account_id, result, "query")
    async with deps.db.uow() as uow:
        now = await repo.get(uow.session, order.order_no)
    return now is not None and now.status not in (OrderStatus.CREATED, OrderStatus.PAYING)


async def _reverse(deps: PayDeps, order: PayOrder) -> bool:
    """Reverses the trade at the channel and closes the order; True when done (False: try again next round)."""
    if order.channel_account_id is None:
        return False
    adapter = await deps.channels.adapter_for(order.channel_account_id, order.mch_no)
    result = await adapter.cancel(_ref(order))
    if result.status is not ResultStatus.SUCCESS:
        log.warning("barcode reversal of %s not done yet: %s %s", order.order_no, result.status, result.code)
        return False
    await close_locally(deps, order)  # pay.closed, holds released; a later payment is paid after close
    return True


async def _due(s: AsyncSession, now: datetime) -> Sequence[PayOrder]:
    """PAYING barcode orders whose next look is due (the status index, then the method)."""
    q = (
        select(PayOrder)
        .where(PayOrder.status == OrderStatus.PAYING.value, PayOrder.next_query_at <= now)
        .where(PayOrder.pay_method == PayMethod.BARCODE.value)
        .order_by(PayOrder.next_query_at)
        .limit(BATCH)
    )
    return (await s.scalars(q)).all()


def _ref(order: PayOrder) -> TradeRef:
    return TradeRef(order.order_no, order.channel_trade_no, order.amount, order.created_at, pay_method=order.pay_method)
