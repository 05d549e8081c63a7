"""Entries for the reconciliation context's events, built from their `facts` (tomato/reconciliation/events.py).
Pure functions: facts dict → EntryRequest (or None when the event moves no money); the booking consumer posts them.

- `reconciliation.adjustment` (finance accepted the channel's figure): channel_receivable(ca)
  +(receivable_delta − fee_delta), channel_fee_expense(ca) +fee_delta, suspense −receivable_delta. The difference
  waits in suspense until finance settles it with the party it concerns; zero lines are left out.
- `reconciliation.settled` (a MATCHED statement): bank +net, channel_receivable(ca) −net. The refund entries
  already book the channel cost the channel gives back (facts.channel_cost_returned), so the day's receivable is
  exactly what the statement nets.
- `reconciliation.anomaly_resolved` (cash of a pay anomaly held in suspense): suspense +amount against
  merchant_available (RELEASE_TO_MERCHANT), channel_receivable (REFUND_PAYER: the channel sends it back) or
  platform_fee_income (WRITE_OFF: the platform keeps it).
"""

from __future__ import annotations

from typing import Any

from tomato.account import accounts
from tomato.account.ledger import EntryRequest, Line


def _lines(*pairs: tuple[str, int]) -> tuple[Line, ...]:
    return tuple(Line(account, amount) for account, amount in pairs if amount != 0)


def adjustment_entry(facts: dict[str, Any]) -> EntryRequest | None:
    ca = str(facts["channel_account_id"])
    receivable, fee = int(facts["receivable_delta"]), int(facts["fee_delta"])
    lines = _lines(
        (accounts.channel_receivable(ca), receivable - fee),
        (accounts.channel_fee_expense(ca), fee),
        (accounts.SUSPENSE, -receivable),
    )
    if not lines:
        return None
    return EntryRequest(
        source_type="adjustment",
        source_id=str(facts["discrepancy_id"]),
        leg="reconciliation",
        kind="adjustment",
        lines=lines,
        business_date=str(facts["business_date"]),
        order_no=facts.get("order_no"),
        refund_no=facts.get("refund_no"),
    )


def settled_entry(facts: dict[str, Any]) -> EntryRequest | None:
    ca = str(facts["channel_account_id"])
    net = int(facts["net"])
    lines = _lines((accounts.BANK, net), (accounts.channel_receivable(ca), -net))
    if not lines:
        return None
    return EntryRequest(
        source_type="channel_settlement",
        source_id=f"{ca}:{facts['business_date']}",
        leg="settle",
        kind="channel_settlement",
        lines=lines,
        business_date=str(facts["business_date"]),
    )


ANOMALY_COUNTERPART = {
    "RELEASE_TO_MERCHANT": "merchant",
    "REFUND_PAYER": "channel",
    "WRITE_OFF": "income",
}


def anomaly_resolved_entry(facts: dict[str, Any]) -> EntryRequest | None:
    amount = facts.get("amount")
    action = str(facts["action"])
    if not isinstance(amount, int) or amount <= 0 or action not in ANOMALY_COUNTERPART:
        return None
    mch_no = facts.get("mch_no")
    if action == "RELEASE_TO_MERCHANT":
        if not mch_no:
            return None
        counterpart = accounts.merchant_available(str(mch_no))
    elif action == "REFUND_PAYER":
        counterpart = accounts.channel_receivable(str(facts["channel_account_id"]))
    else:
        counterpart = accounts.PLATFORM_FEE_INCOME
    release = action == "RELEASE_TO_MERCHANT"
    return EntryRequest(
        source_type="anomaly",
        source_id=str(facts["anomaly_id"]),
        leg=action.lower(),
        kind="adjustment" if release else "anomaly",
        lines=_lines((accounts.SUSPENSE, amount), (counterpart, -amount)),
        business_date=str(facts["business_date"]),
        mch_no=str(mch_no) if release else None,
        order_no=facts.get("order_no"),
        amount=amount if release else None,
        fee=0 if release else None,
    )


BUILDERS = {
    "reconciliation.adjustment": adjustment_entry,
    "reconciliation.settled": settled_entry,
    "reconciliation.anomaly_resolved": anomaly_resolved_entry,
}
