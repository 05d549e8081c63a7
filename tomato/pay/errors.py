"""Errors of the pay context, with their stable API codes."""

from __future__ import annotations

from tomato.core.errors import Conflict, NotFound


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"


class OutTradeNoConflict(Conflict):
    code = "OUT_TRADE_NO_CONFLICT"


class OrderStateConflict(Conflict):
    code = "ORDER_STATE_CONFLICT"


class RefundNotFound(NotFound):
    code = "REFUND_NOT_FOUND"


class OutRefundNoConflict(Conflict):
    code = "OUT_REFUND_NO_CONFLICT"


class RefundAmountExceeded(Conflict):
    """More than the order's refundable remainder (amount minus its PENDING and SUCCEEDED refunds)."""

    code = "REFUND_AMOUNT_EXCEEDED"


class RefundNotAllowed(Conflict):
    """The refund window has passed, or the order already has the most refunds a channel takes."""

    code = "REFUND_NOT_ALLOWED"


class SplitAmountExceeded(Conflict):
    """More than the order can still share: its amount minus its fee, refunds and splits, within the channel's
    limit (WeChat Pay: 30 % of the amount)."""

    code = "SPLIT_AMOUNT_EXCEEDED"


class OutSplitNoConflict(Conflict):
    code = "OUT_SPLIT_NO_CONFLICT"
