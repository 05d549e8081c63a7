"""Events the pay context publishes through the outbox. The payload is the API.md order object (pay.*) or the
API.md refund object (refund.*)."""

from __future__ import annotations

PAY_SUCCEEDED = "pay.succeeded"
PAY_FAILED = "pay.failed"
PAY_CLOSED = "pay.closed"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
