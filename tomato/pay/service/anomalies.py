"""Recording what finance must look at (a notify with another amount, a payment after close, …) in the caller's
unit of work, so the anomaly lands exactly when the state change it explains does.

One anomaly per (order, kind, channel trade) — per refund for refund anomalies — however often the channel repeats
itself (notifies, queries, closes, concurrently too): the table's unique key decides, and only the first writes
the internal `pay.anomaly` outbox event, from which the ledger books the cash into suspense and finance acts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tomato.core.clock import rfc3339
from tomato.core.outbox import add_event
from tomato.pay import repository as repo
from tomato.pay.events import PAY_ANOMALY
from tomato.pay.service.deps import PayDeps
from tomato.pay.service.fees import anomaly_facts


@dataclass(frozen=True)
class Anomaly:
    """What happened, to which order, and which channel account and trade the report came from."""

    kind: str
    order_no: str
    app_id: str
    mch_no: str
    channel: str | None
    channel_account_id: str | None
    channel_trade_no: str | None  # as the channel reported it (None: it named none)
    amount: int | None  # fen, the channel's figure
    source: str  # notify | query | close | request
    note: str
    refund_no: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping

    @property
    def ref(self) -> str:
        """What the anomaly is about within its order and kind: the refund, else the channel trade ('' if none)."""
        return self.refund_no or self.channel_trade_no or ""


async def record_anomaly(deps: PayDeps, s: AsyncSession, anomaly: Anomaly) -> bool:
    """Records the anomaly and its `pay.anomaly` event unless it is already recorded; True when new."""
    now = deps.clock.now()
    anomaly_id = deps.ids.next_id("AN")
    details = {"note": anomaly.note, "source": anomaly.source, "amount": anomaly.amount, **anomaly.details}
    if anomaly.refund_no is not None:
        details["refund_no"] = anomaly.refund_no
    new = await repo.add_anomaly(
        s,
        {
            "id": anomaly_id,
            "order_no": anomaly.order_no,
            "kind": anomaly.kind,
            "ref": anomaly.ref,
            "channel_account_id": anomaly.channel_account_id,
            "channel_trade_no": anomaly.channel_trade_no,
            "details": json.dumps(details, sort_keys=True),
            "created_at": now,
        },
    )
    if new:
        data = {
            "anomaly_id": anomaly_id,
            "kind": anomaly.kind,
            "order_no": anomaly.order_no,
            "refund_no": anomaly.refund_no,
            "app_id": anomaly.app_id,
            "mch_no": anomaly.mch_no,
            "channel": anomaly.channel,
            "channel_account_id": anomaly.channel_account_id,
            "channel_trade_no": anomaly.channel_trade_no,
            "amount": anomaly.amount,
            "source": anomaly.source,
            "note": anomaly.note,
            "created_at": rfc3339(now),
        }
        add_event(
            s,
            deps.ids,
            event_type=PAY_ANOMALY,
            aggregate_type="pay_anomaly",
            aggregate_id=anomaly_id,
            data=data,
            app_id=anomaly.app_id,
            facts=anomaly_facts(deps, data, now),
        )
    return new
