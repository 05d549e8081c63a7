"""Events payouts publish; the data of each is the payout object (`schemas.PayoutView`), as the webhook sends it."""

from __future__ import annotations

AGGREGATE = "payout"
PAYOUT_SUCCEEDED = "payout.succeeded"
PAYOUT_FAILED = "payout.failed"
