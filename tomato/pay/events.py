"""Events the pay context publishes through the outbox. The payload is the API.md order object."""

from __future__ import annotations

PAY_SUCCEEDED = "pay.succeeded"
PAY_FAILED = "pay.failed"
PAY_CLOSED = "pay.closed"
