"""Order rows → the API order object (also the payload of every pay.* event)."""

from __future__ import annotations

import json
from typing import Any

from tomato.core.clock import rfc3339
from tomato.pay.models import PayOrder
from tomato.pay.schemas import PayDataView, PayOrderView


def order_view(o: PayOrder) -> PayOrderView:
    """Built without validation (`model_construct`): every field comes from our own row, in its declared type — the
    stored pay data, the one JSON a channel shaped, is still validated."""
    pay_data = PayDataView.model_validate(json.loads(o.pay_data)) if o.pay_data else None
    return PayOrderView.model_construct(
        order_no=o.order_no,
        app_id=o.app_id,
        out_trade_no=o.out_trade_no,
        status=o.status,
        paid_after_close=bool(o.paid_after_close),
        amount=o.amount,
        currency=o.currency,
        subject=o.subject,
        body=o.body,
        pay_method=o.pay_method,
        channel=o.channel,
        channel_trade_no=o.channel_trade_no,
        pay_data=pay_data,
        refunded_amount=o.refunded_amount,
        refund_status=o.refund_status,
        expire_at=rfc3339(o.expire_at) or "",
        paid_at=rfc3339(o.paid_at),
        created_at=rfc3339(o.created_at) or "",
        metadata=json.loads(o.metadata_json or "{}"),
    )


def order_payload(o: PayOrder) -> dict[str, Any]:
    return order_view(o).model_dump(mode="json")
