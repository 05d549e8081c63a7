"""Errors of payouts, with their stable API codes (INSUFFICIENT_BALANCE is the ledger's own error)."""

from __future__ import annotations

from tomato.core.errors import Conflict, NotFound


class PayoutNotFound(NotFound):
    code = "PAYOUT_NOT_FOUND"


class OutPayoutNoConflict(Conflict):
    """The out_payout_no names an earlier payout made with another request."""

    code = "OUT_PAYOUT_NO_CONFLICT"
