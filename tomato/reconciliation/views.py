"""Read models of batches and discrepancies, and what accepting the channel's figure changes (adjustment facts)."""

from __future__ import annotations

import json
from typing import Any

from tomato.reconciliation.models import ReconBatch, ReconDiscrepancy
from tomato.reconciliation.schemas import BatchView, DiscrepancyView, Resolution


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def batch_view(b: ReconBatch) -> BatchView:
    return BatchView(
        id=b.id,
        channel_account_id=b.channel_account_id,
        date=b.business_date,
        status=b.status,
        counts=json.loads(b.counts or "{}"),
        discrepancies=b.discrepancies,
        error=b.error,
        started_at=b.started_at,
        finished_at=b.finished_at,
    )


def discrepancy_view(d: ReconDiscrepancy) -> DiscrepancyView:
    resolution = None
    if d.resolution_action is not None and d.resolved_at is not None:
        resolution = Resolution(
            action=d.resolution_action, note=d.resolution_note or "", by=d.resolved_by or "", at=d.resolved_at
        )
    return DiscrepancyView(
        id=d.id,
        batch_id=d.batch_id,
        type=d.type,
        status=d.status,
        order_no=d.order_no,
        refund_no=d.refund_no,
        channel_trade_no=d.channel_trade_no,
        local_amount=d.local_amount,
        channel_amount=d.channel_amount,
        local_fee=d.local_fee,
        channel_fee=d.channel_fee,
        resolution=resolution,
    )


def snapshot(d: ReconDiscrepancy) -> dict[str, Any]:
    return discrepancy_view(d).model_dump(mode="json")


def adjustment_facts(d: ReconDiscrepancy, account_id: str, business_date: str) -> dict[str, Any] | None:
    """What accepting the channel's figure changes: what the channel owes us (receivable_delta) and the channel's
    fee expense (fee_delta), in fen and signed; None when it changes nothing."""
    sign = 1 if d.kind == "PAYMENT" else -1  # a refund moves money the other way
    c_amount, l_amount = d.channel_amount or 0, d.local_amount or 0
    c_fee, l_fee = d.channel_fee or 0, d.local_fee or 0
    if d.type in ("MISSING_LOCAL", "DUPLICATE"):
        receivable, fee = c_amount, c_fee
    elif d.type in ("MISSING_CHANNEL", "STATUS_MISMATCH"):
        receivable, fee = -l_amount, -l_fee
    elif d.type == "AMOUNT_MISMATCH":
        receivable, fee = c_amount - l_amount, (c_fee - l_fee) if d.local_fee is not None else 0
    else:  # FEE_MISMATCH
        receivable, fee = 0, c_fee - l_fee
    if receivable == 0 and fee == 0:
        return None
    return {
        "discrepancy_id": d.id,
        "batch_id": d.batch_id,
        "type": d.type,
        "kind": d.kind,
        "channel_account_id": account_id,
        "business_date": business_date,
        "order_no": d.order_no,
        "refund_no": d.refund_no,
        "receivable_delta": sign * receivable,
        "fee_delta": sign * fee,
    }
