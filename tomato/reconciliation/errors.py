"""Errors of the reconciliation context (codes in docs/api.md)."""

from __future__ import annotations

from tomato.core.errors import ChannelError, Conflict, NotFound


class BatchNotFound(NotFound):
    code = "BATCH_NOT_FOUND"


class DiscrepancyNotFound(NotFound):
    code = "DISCREPANCY_NOT_FOUND"


class AnomalyNotFound(NotFound):
    code = "ANOMALY_NOT_FOUND"


class AlreadyResolved(Conflict):
    """A discrepancy or anomaly that is already resolved (or auto-resolved) cannot be resolved again."""

    code = "ORDER_STATE_CONFLICT"


class StatementFailed(ChannelError):
    """The statement could not be fetched or failed its checks: the batch is ERROR with the reason."""


class StatementUnavailable(Exception):
    """Raised by a statement source when it cannot produce the statement (the reason is the message)."""
