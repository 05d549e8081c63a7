"""The notice context publishes no events. It consumes the merchant-facing ones (API.md §2) from the bus."""

from __future__ import annotations

CONSUMED_PATTERNS = ("pay.#", "refund.#", "payout.#")
