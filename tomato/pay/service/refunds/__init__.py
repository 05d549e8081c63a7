"""Refunds: reserve in the database, ask the channel outside any transaction, then apply what it said.

Money rules, in the order they are enforced:
- The refundable remainder lives on the order (`refund_reserved` = Σ PENDING + SUCCEEDED). One guarded UPDATE takes
  it in the unit of work that inserts the refund, so concurrent refunds cannot reserve more than the order amount
  (`create`).
- A refund leaves PENDING only by a compare-and-set with its outbox event in the same transaction: SUCCEEDED also
  counts it on the order (`refunded_amount`, `refund_status`); FAILED gives its amount back (`apply`).
- FAILED needs a definite answer: the channel refused the refund request, or reported the refund itself failed.
  A timeout, 5xx or unreadable answer leaves it PENDING for the compensation job, which queries first and sends the
  request again (same refund_no, deduplicated by every channel) only when the channel answered the query with
  nothing final and never acknowledged the refund — so a refund is never lost between our commit and the channel
  (`channel`, `jobs`). A refusal of such a resend fails the refund only when it says the refund cannot exist or
  cannot be made (`tomato.channel.refusals`); a rate limit or any other "not now" leaves it PENDING.
"""

from tomato.pay.service.refunds.apply import RefundReport, apply_refund_notify, apply_refund_report
from tomato.pay.service.refunds.create import RefundPolicy, create_refund
from tomato.pay.service.refunds.jobs import query_pending_refunds
from tomato.pay.service.refunds.views import find_refund, get_refund, refund_notify_url, refund_payload, refund_view

__all__ = [
    "RefundPolicy",
    "RefundReport",
    "apply_refund_notify",
    "apply_refund_report",
    "create_refund",
    "find_refund",
    "get_refund",
    "query_pending_refunds",
    "refund_notify_url",
    "refund_payload",
    "refund_view",
]
