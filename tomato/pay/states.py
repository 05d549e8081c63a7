"""The pay-order state machine as one transition table (docs/architecture.md); tests walk every entry.

CREATED → SUCCEEDED and CLOSED → SUCCEEDED exist for payments the channel confirms although we never saw the
create succeed (a timed-out create) or already closed the order (the channel's close raced the payer): money
that arrived is never dropped; the CLOSED case is flagged `paid_after_close`.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    PAYING = "PAYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


class OrderEvent(StrEnum):
    CHANNEL_ACCEPTED = "channel_accepted"
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    CLOSED = "closed"


S, E = OrderStatus, OrderEvent

TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (S.CREATED, E.CHANNEL_ACCEPTED): S.PAYING,
    (S.CREATED, E.PAID): S.SUCCEEDED,
    (S.CREATED, E.PAYMENT_FAILED): S.FAILED,
    (S.CREATED, E.CLOSED): S.CLOSED,
    (S.PAYING, E.PAID): S.SUCCEEDED,
    (S.PAYING, E.PAYMENT_FAILED): S.FAILED,
    (S.PAYING, E.CLOSED): S.CLOSED,
    (S.CLOSED, E.PAID): S.SUCCEEDED,
}

FINAL = frozenset({S.SUCCEEDED, S.FAILED})


def sources(event: OrderEvent) -> list[OrderStatus]:
    """The states from which `event` may move an order: the `WHERE status IN (…)` of the compare-and-set."""
    return [src for (src, ev) in TRANSITIONS if ev is event]


def target(current: OrderStatus, event: OrderEvent) -> OrderStatus | None:
    return TRANSITIONS.get((current, event))


class RefundStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class RefundEvent(StrEnum):
    REFUNDED = "refunded"  # the channel says the money went back
    REFUND_FAILED = "refund_failed"  # the channel definitely refused or failed it


RS, RE = RefundStatus, RefundEvent

# The refund state machine (docs/architecture.md): PENDING is queried until final; both final states are final.
REFUND_TRANSITIONS: dict[tuple[RefundStatus, RefundEvent], RefundStatus] = {
    (RS.PENDING, RE.REFUNDED): RS.SUCCEEDED,
    (RS.PENDING, RE.REFUND_FAILED): RS.FAILED,
}


def refund_sources(event: RefundEvent) -> list[RefundStatus]:
    """The states from which `event` may move a refund: the `WHERE status IN (…)` of its compare-and-set."""
    return [src for (src, ev) in REFUND_TRANSITIONS if ev is event]


def refund_target(current: RefundStatus, event: RefundEvent) -> RefundStatus | None:
    return REFUND_TRANSITIONS.get((current, event))
