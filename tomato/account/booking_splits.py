"""Booking profit-sharing splits (分账, issue 22): `split.succeeded` and `split.returned` become journals.

A split moves part of a paid order from the channel account straight to each receiver's own account at the channel,
so the platform's claim on the channel shrinks and so does what it owes the merchant. X is the split's total (facts
`amount`), ca the channel account:

- split (kind `split`): merchant_pending +X as far as pending covers it (read, then guarded: a settlement that
  lowered pending meanwhile makes the unit of work retry), the rest merchant_available, UNGUARDED — the channel has
  already paid the receivers, so the ledger records it even if available goes negative (the refund rule, and
  `tomato ledger check` warns about a negative merchant balance); channel_receivable(ca) −X.
- split return (kind `split_return`, money the receivers gave back, which the pay context asks for before a
  refund): merchant_pending −X, channel_receivable(ca) +X. The money goes back to PENDING, not available: it is
  taken back for the refund that follows, and pending cannot be paid out, while the refund's pending-first rule then
  finds it there. Settlement treats the line like a payment's (due by the merchant's cycle) if no refund takes it.

Source keys: `split`/<split_no>/`split` and `split`/<split_no>/<return_no>/`return` (the return number goes in the
source id: the leg column is too short to hold it), so a split books once and each of its returns once, whatever
event ids announce them. The journal's `amount` is signed from the merchant's side (a split negative), its `fee` 0.

A split of a service-provider payment (facts `service_provider` true) moved money the channel had settled straight
to the sub-merchant: nothing passed through the platform, so no account moves. It books a journal WITHOUT lines
(kinds `provider_split`, `provider_split_return`) under the same source key: the event books once, and the split
stays visible to finance. The memo `provider_balances.collected` is not moved: it records what the channel paid the
merchant for payments, net of refunds.
"""

from __future__ import annotations

from typing import Any

from tomato.account import accounts as acct
from tomato.account.booking_facts import BadFacts, business_date, fen, service_provider, text
from tomato.account.ledger import EntryRequest, Line

SPLIT = "split"
SPLIT_RETURN = "split_return"
PROVIDER_SPLIT = "provider_split"
PROVIDER_SPLIT_RETURN = "provider_split_return"
SPLIT_KINDS = frozenset({SPLIT, SPLIT_RETURN})
MEMO_KINDS = frozenset({PROVIDER_SPLIT, PROVIDER_SPLIT_RETURN})  # journals without lines, never listed to merchants
SOURCE_TYPE = "split"


def _number(facts: dict[str, Any], name: str) -> str:
    """A split or return number: it is part of a source id, so a `/` (the separator) is refused."""
    value = text(facts, name)
    if "/" in value:
        raise BadFacts(f"facts.{name} must not contain '/'")
    return value


def return_source_id(split_no: str, return_no: str) -> str:
    return f"{split_no}/{return_no}"


def split_entry(facts: dict[str, Any], pending: int) -> EntryRequest:
    """`pending` is the merchant's pending balance (normal side) as read in the booking unit of work; unused for a
    service-provider split."""
    mch_no, order_no, split_no = text(facts, "mch_no"), text(facts, "order_no"), _number(facts, "split_no")
    ca, amount = text(facts, "channel_account_id", 60), fen(facts, "amount")
    if amount == 0:
        raise BadFacts(f"split {split_no}: amount 0 moves nothing")
    lines: tuple[Line, ...] = ()
    if service_provider(facts):
        kind = PROVIDER_SPLIT
    else:
        from_pending = min(max(pending, 0), amount)
        kind = SPLIT
        lines = tuple(
            line
            for line in (
                Line(acct.merchant_pending(mch_no), from_pending, guard=True),
                Line(acct.merchant_available(mch_no), amount - from_pending),
                Line(acct.channel_receivable(ca), -amount),
            )
            if line.amount != 0
        )
    return EntryRequest(
        source_type=SOURCE_TYPE,
        source_id=split_no,
        leg="split",
        kind=kind,
        lines=lines,
        business_date=business_date(facts),
        mch_no=mch_no,
        order_no=order_no,
        amount=-amount,
        fee=0,
    )


def return_entry(facts: dict[str, Any]) -> EntryRequest:
    """Money the receivers gave back: to the merchant's pending (see the module docstring)."""
    mch_no, order_no, split_no = text(facts, "mch_no"), text(facts, "order_no"), _number(facts, "split_no")
    return_no, ca, amount = _number(facts, "return_no"), text(facts, "channel_account_id", 60), fen(facts, "amount")
    if amount == 0:
        raise BadFacts(f"split return {return_no}: amount 0 moves nothing")
    lines: tuple[Line, ...] = ()
    if service_provider(facts):
        kind = PROVIDER_SPLIT_RETURN
    else:
        kind = SPLIT_RETURN
        lines = (Line(acct.channel_receivable(ca), amount), Line(acct.merchant_pending(mch_no), -amount))
    return EntryRequest(
        source_type=SOURCE_TYPE,
        source_id=return_source_id(split_no, return_no),
        leg="return",
        kind=kind,
        lines=lines,
        business_date=business_date(facts),
        mch_no=mch_no,
        order_no=order_no,
        amount=amount,
        fee=0,
    )
