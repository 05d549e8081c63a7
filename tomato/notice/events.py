"""The notice context publishes no events. It consumes the merchant-facing ones (docs/webhooks.md) from the bus."""

from __future__ import annotations

from tomato.pay.events import INTERNAL_EVENTS

CONSUMED_PATTERNS = ("pay.#", "refund.#", "payout.#")
# matched by the patterns but for the platform only (pay.anomaly): never delivered, never listed to merchants
EXCLUDED_TYPES = INTERNAL_EVENTS


def merchant_facing(event_type: str) -> bool:
    return event_type not in EXCLUDED_TYPES
