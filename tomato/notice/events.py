"""The notice context publishes no events. It consumes the merchant-facing ones (docs/webhooks.md) from the bus."""

from __future__ import annotations

from enum import StrEnum

from tomato.pay.events import INTERNAL_EVENTS

CONSUMED_PATTERNS = ("pay.#", "refund.#", "payout.#", "split.#")
# matched by the patterns but for the platform only (pay.anomaly): never delivered, never listed to merchants
EXCLUDED_TYPES = INTERNAL_EVENTS


def merchant_facing(event_type: str) -> bool:
    return event_type not in EXCLUDED_TYPES


class EventType(StrEnum):
    """Every type a merchant's event can have (docs/webhooks.md): the values `GET /v1/events?type=` takes."""

    PAY_SUCCEEDED = "pay.succeeded"
    PAY_FAILED = "pay.failed"
    PAY_CLOSED = "pay.closed"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    PAYOUT_SUCCEEDED = "payout.succeeded"
    PAYOUT_FAILED = "payout.failed"
    SPLIT_SUCCEEDED = "split.succeeded"
    SPLIT_FAILED = "split.failed"
