"""Events the pay context publishes through the outbox. The payload is the API order object (pay.*) or the
API refund object (refund.*); `pay.anomaly` carries an anomaly (see `service/anomalies.py`). `split.succeeded` and
`split.returned` carry booking facts the ledger books (account.booking_splits); `split.failed` moved no money."""

from __future__ import annotations

PAY_SUCCEEDED = "pay.succeeded"
PAY_FAILED = "pay.failed"
PAY_CLOSED = "pay.closed"
PAY_ANOMALY = "pay.anomaly"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
SPLIT_SUCCEEDED = "split.succeeded"  # data: the API split object
SPLIT_FAILED = "split.failed"
SPLIT_RETURNED = "split.returned"  # the receivers gave a split back before a refund: the ledger's, not merchants'

# For the platform's own consumers only (the ledger books the cash into suspense, finance acts on it): never sent
# to a merchant as a webhook nor listed by `GET /v1/events`.
INTERNAL_EVENTS = frozenset({PAY_ANOMALY, SPLIT_RETURNED})
