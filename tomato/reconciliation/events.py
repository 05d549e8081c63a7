"""Events the reconciliation context writes to the outbox. None is for merchants (no app, no webhook): the account
context books them from their `facts` (tomato/account/booking_reconciliation.py builds the entries).

- `reconciliation.adjustment` — finance accepted the channel's figure for a discrepancy. facts: discrepancy_id,
  batch_id, type, kind (PAYMENT | REFUND), channel_account_id, business_date, order_no, refund_no,
  receivable_delta (what the channel owes us changes by this, fen, signed), fee_delta (the channel fee expense
  changes by this, fen, signed).
- `reconciliation.settled` — a MATCHED statement: the channel settles the day to our bank. facts: batch_id,
  channel_account_id, business_date, payments, refunds, fees, fees_returned (fen, ≥ 0), net = payments − refunds −
  fees + fees_returned.
- `reconciliation.anomaly_resolved` — finance resolved a pay anomaly. facts: anomaly_id, kind, action
  (RELEASE_TO_MERCHANT | REFUND_PAYER | WRITE_OFF), amount (fen or null), mch_no, order_no, channel_account_id,
  business_date.
"""

from __future__ import annotations

ADJUSTMENT = "reconciliation.adjustment"
SETTLED = "reconciliation.settled"
ANOMALY_RESOLVED = "reconciliation.anomaly_resolved"

# the pay anomaly kinds whose money the ledger holds in suspense (cash arrived for no order to take it)
MONEY_IN_ANOMALIES = frozenset({"amount_mismatch", "second_payment", "paid_after_failed"})
