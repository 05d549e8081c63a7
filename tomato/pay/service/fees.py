"""The fee snapshot of a paid order, the fee a refund gives back, and the booking facts pay writes beside its events.

The snapshot is taken in the unit of work of the PAID compare-and-set (`repository.mark_paid`, the one place an
order becomes SUCCEEDED, whichever report got it there), from the merchant's fee plan and the channel account's cost
rate as they stand then; refunds use the snapshot, never the plan of the day. The arithmetic is
`tomato.merchant.fees`.

Booking facts are what the ledger needs to book an event without reading pay's tables (docs/finance.md); they are
stored on the outbox row (`outbox_events.facts`) and never sent to merchants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tomato.channel.service import ChannelService
from tomato.core.clock import as_utc, business_date, rfc3339
from tomato.merchant.fees import payment_fee, proportional, refund_fee_share
from tomato.merchant.schemas import FeeTerms
from tomato.merchant.service import MerchantService
from tomato.pay.models import PayOrder, Refund
from tomato.pay.service.deps import PayDeps

NO_PLAN_RULE = "none"


async def payment_snapshot(s: AsyncSession, order: PayOrder, channel_account_id: str) -> dict[str, Any]:
    """The order columns of the fee snapshot for a payment of `order` through `channel_account_id`, read in the
    caller's unit of work. A merchant without a plan pays 0 (and has nothing to get back on refunds)."""
    terms = await MerchantService.fee_terms(s, order.mch_no)
    cost_ppm = await ChannelService.cost_ppm(s, channel_account_id)
    service_provider = await ChannelService.settles_to_merchant(s, channel_account_id)
    return snapshot_of(order.amount, order.pay_method, terms, cost_ppm, service_provider)


def snapshot_of(
    amount: int, pay_method: str, terms: FeeTerms | None, cost_ppm: int, service_provider: bool
) -> dict[str, Any]:
    """The snapshot columns from what was read (shared by the notify path, which reads them in one statement)."""
    if terms is None:
        ppm, fee, rule = 0, 0, NO_PLAN_RULE
    else:
        ppm = terms.rate_of(pay_method)
        fee, rule = payment_fee(amount, ppm, terms.min_fee), terms.refund_fee
    return {
        "fee_ppm": ppm,
        "fee": fee,
        "refund_fee_rule": rule,
        "channel_cost_ppm": cost_ppm,
        "channel_cost": proportional(amount, cost_ppm),
        "service_provider": service_provider,
    }


def payment_facts(deps: PayDeps, order: PayOrder) -> dict[str, Any]:
    """The booking facts of `pay.succeeded`, from the order as the PAID compare-and-set left it."""
    paid_at = as_utc(order.paid_at or deps.clock.now())
    return {
        "mch_no": order.mch_no,
        "app_id": order.app_id,
        "order_no": order.order_no,
        "channel": order.channel,
        "channel_account_id": order.channel_account_id,
        "pay_method": order.pay_method,
        "amount": order.amount,
        "fee": order.fee or 0,
        "fee_ppm": order.fee_ppm or 0,
        "refund_fee_rule": order.refund_fee_rule or NO_PLAN_RULE,
        "channel_cost": order.channel_cost or 0,
        "channel_cost_ppm": order.channel_cost_ppm or 0,
        # the channel settled straight to the merchant: the ledger books a shadow entry (docs/finance.md)
        "service_provider": bool(order.service_provider),
        "paid_at": rfc3339(paid_at),
        "business_date": business_date(paid_at, deps.business_tz),
    }


def refund_facts(deps: PayDeps, refund: Refund, order: PayOrder) -> dict[str, Any]:
    """The booking facts of `refund.succeeded`, from the refund and its order after the refund was counted."""
    succeeded_at = as_utc(refund.succeeded_at or deps.clock.now())
    return {
        "mch_no": refund.mch_no,
        "app_id": refund.app_id,
        "order_no": refund.order_no,
        "refund_no": refund.refund_no,
        "channel_account_id": refund.channel_account_id,
        "amount": refund.amount,
        "fee_returned": refund.fee_returned or 0,
        "fee_returned_total": order.fee_returned_total,
        "refunded_total": order.refunded_amount,
        "order_amount": order.amount,
        "order_fee": order.fee or 0,
        "order_channel_cost": order.channel_cost or 0,
        "service_provider": bool(order.service_provider),
        # channels give their cost back pro rata on refunds, cumulatively like the merchant fee (docs/finance.md)
        "channel_cost_returned": refund_fee_share(
            "proportional", order.amount, order.channel_cost or 0, order.refunded_amount - refund.amount, refund.amount
        ),
        "succeeded_at": rfc3339(succeeded_at),
        "business_date": business_date(succeeded_at, deps.business_tz),
    }


def anomaly_facts(deps: PayDeps, data: dict[str, Any], recorded_at: datetime) -> dict[str, Any]:
    """The booking facts of `pay.anomaly`: the anomaly itself and the business date it was recorded on."""
    return {**data, "business_date": business_date(recorded_at, deps.business_tz)}
