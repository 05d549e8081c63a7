"""The entries reconciliation's events book (tomato/account/booking_reconciliation.py): balanced, signed the way
docs/finance.md reads, keyed so a replay is the same journal, and nothing for an event that moves no money."""

from __future__ import annotations

from typing import Any

import pytest

from tomato.account import accounts as acct
from tomato.account.booking_reconciliation import (
    BUILDERS,
    adjustment_entry,
    anomaly_resolved_entry,
    settled_entry,
)
from tomato.account.ledger import EntryRequest


def lines(entry: EntryRequest | None) -> dict[str, int]:
    assert entry is not None
    assert sum(line.amount for line in entry.lines) == 0
    assert all(line.amount != 0 for line in entry.lines)
    return {line.account: line.amount for line in entry.lines}


def adjustment(**facts: Any) -> dict[str, Any]:
    base = {"discrepancy_id": "RD1", "batch_id": "RB1", "type": "AMOUNT_MISMATCH", "kind": "PAYMENT",
            "channel_account_id": "CA1", "business_date": "2026-12-05", "order_no": "P1"}  # fmt: skip
    return {**base, **facts}


def test_an_accepted_channel_amount_moves_the_receivable_against_suspense() -> None:
    entry = adjustment_entry(adjustment(receivable_delta=1, fee_delta=0))
    assert lines(entry) == {acct.channel_receivable("CA1"): 1, acct.SUSPENSE: -1}
    assert entry is not None
    assert (entry.source_type, entry.source_id, entry.leg, entry.kind) == ("adjustment", "RD1", "reconciliation",
                                                                            "adjustment")  # fmt: skip
    assert entry.business_date == "2026-12-05" and entry.order_no == "P1"


def test_an_accepted_channel_fee_moves_fee_expense_against_the_receivable() -> None:
    entry = adjustment_entry(adjustment(type="FEE_MISMATCH", receivable_delta=0, fee_delta=1))
    assert lines(entry) == {acct.channel_receivable("CA1"): -1, acct.channel_fee_expense("CA1"): 1}


def test_a_payment_the_channel_does_not_have_leaves_the_receivable() -> None:
    entry = adjustment_entry(adjustment(type="MISSING_CHANNEL", receivable_delta=-10_000, fee_delta=-38))
    assert lines(entry) == {
        acct.channel_receivable("CA1"): -10_000 + 38,
        acct.channel_fee_expense("CA1"): -38,
        acct.SUSPENSE: 10_000,
    }


def test_an_adjustment_of_nothing_books_nothing() -> None:
    assert adjustment_entry(adjustment(receivable_delta=0, fee_delta=0)) is None


def test_a_matched_day_settles_the_receivable_to_the_bank() -> None:
    facts = {"batch_id": "RB1", "channel_account_id": "CA1", "business_date": "2026-12-05", "payments": 102_345,
             "refunds": 100_000, "fees": 389, "fees_returned": 380, "net": 102_345 - 100_000 - 389 + 380}  # fmt: skip
    entry = settled_entry(facts)
    # the refunds' own entries booked the 380 of cost the channel gave back: the receivable is the statement's net
    assert lines(entry) == {acct.BANK: 2_336, acct.channel_receivable("CA1"): -2_336}
    assert entry is not None
    assert (entry.source_type, entry.source_id, entry.leg) == ("channel_settlement", "CA1:2026-12-05", "settle")
    assert settled_entry({**facts, "net": 0}) is None


@pytest.mark.parametrize(
    ("action", "counterpart"),
    [
        ("RELEASE_TO_MERCHANT", acct.merchant_available("M1")),
        ("REFUND_PAYER", acct.channel_receivable("CA1")),
        ("WRITE_OFF", acct.PLATFORM_FEE_INCOME),
    ],
)
def test_a_resolved_anomaly_empties_its_suspense(action: str, counterpart: str) -> None:
    facts = {"anomaly_id": "AN1", "kind": "second_payment", "action": action, "amount": 1_234, "mch_no": "M1",
             "order_no": "P1", "channel_account_id": "CA1", "business_date": "2026-12-05"}  # fmt: skip
    entry = anomaly_resolved_entry(facts)
    assert lines(entry) == {acct.SUSPENSE: 1_234, counterpart: -1_234}
    assert entry is not None and (entry.source_type, entry.source_id) == ("anomaly", "AN1")
    assert (entry.mch_no == "M1") is (action == "RELEASE_TO_MERCHANT")


def test_an_anomaly_without_money_books_nothing() -> None:
    facts = {"anomaly_id": "AN1", "kind": "second_payment", "action": "WRITE_OFF", "amount": None, "mch_no": "M1",
             "order_no": "P1", "channel_account_id": "CA1", "business_date": "2026-12-05"}  # fmt: skip
    assert anomaly_resolved_entry(facts) is None


def test_every_reconciliation_event_has_a_builder() -> None:
    from tomato.reconciliation.events import ADJUSTMENT, ANOMALY_RESOLVED, SETTLED

    assert set(BUILDERS) == {ADJUSTMENT, SETTLED, ANOMALY_RESOLVED}
