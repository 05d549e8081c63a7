"""The journals of profit-sharing splits (tomato/account/booking_splits.py): a split takes from pending first and
the rest from available, a return goes back to pending, a service-provider split books no line; facts read strictly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.booking import paid_facts, provider
from tests.fixtures.splits import return_facts, split_facts
from tomato.account import booking_splits
from tomato.account.booking_facts import BadFacts
from tomato.account.ledger import EntryRequest
from tomato.account.schemas import BalanceTransaction
from tomato.pay import events

PAID = paid_facts("M1", 100_000, order_no="P1", channel_account_id="CA7")


def lines(entry: EntryRequest) -> dict[str, tuple[int, bool]]:
    entry.validate()  # balanced, no zero line, every account in the chart, guards on single-bucket accounts
    return {line.account: (line.amount, line.guard) for line in entry.lines}


def test_a_split_that_pending_covers_takes_it_all_from_pending_guarded() -> None:
    entry = booking_splits.split_entry(split_facts(PAID, 30_000, split_no="S1"), pending=99_400)
    assert lines(entry) == {"merchant_pending:M1": (30_000, True), "channel_receivable:CA7": (-30_000, False)}
    assert (entry.source_type, entry.source_id, entry.leg, entry.kind) == ("split", "S1", "split", "split")
    assert (entry.mch_no, entry.order_no, entry.amount, entry.fee, entry.business_date) == (
        "M1", "P1", -30_000, 0, "2026-12-06",
    )  # fmt: skip


def test_a_split_takes_what_pending_lacks_from_available_unguarded() -> None:
    entry = booking_splits.split_entry(split_facts(PAID, 30_000), pending=10_000)
    assert lines(entry) == {
        "merchant_pending:M1": (10_000, True), "merchant_available:M1": (20_000, False),
        "channel_receivable:CA7": (-30_000, False),
    }  # fmt: skip
    settled = booking_splits.split_entry(split_facts(PAID, 30_000), pending=-5)  # a negative pending covers nothing
    assert lines(settled) == {"merchant_available:M1": (30_000, False), "channel_receivable:CA7": (-30_000, False)}


def test_a_return_goes_back_to_pending() -> None:
    split = split_facts(PAID, 30_000, split_no="S1")
    entry = booking_splits.return_entry(return_facts(split, 12_000, return_no="B1"))
    assert lines(entry) == {"merchant_pending:M1": (-12_000, False), "channel_receivable:CA7": (12_000, False)}
    assert (entry.source_type, entry.source_id, entry.leg, entry.kind) == ("split", "S1/B1", "return", "split_return")
    assert (entry.order_no, entry.amount, entry.fee) == ("P1", 12_000, 0)


def test_a_service_provider_split_and_return_book_no_line() -> None:
    split = split_facts(provider(PAID), 30_000, split_no="S1")
    entry = booking_splits.split_entry(split, pending=0)
    assert (entry.lines, entry.kind, entry.source_id, entry.amount) == ((), "provider_split", "S1", -30_000)
    back = booking_splits.return_entry(return_facts(split, 30_000, return_no="B1"))
    assert (back.lines, back.kind, back.source_id, back.amount) == ((), "provider_split_return", "S1/B1", 30_000)


@pytest.mark.parametrize(
    "change",
    [{"amount": 0}, {"amount": -1}, {"amount": 1.5}, {"split_no": ""}, {"split_no": "S/1"}, {"mch_no": None},
     {"channel_account_id": "x" * 61}, {"business_date": "2026-02-30"}, {"service_provider": "false"}],
)  # fmt: skip
def test_facts_that_make_no_split_are_bad(change: dict[str, Any]) -> None:
    with pytest.raises(BadFacts):
        booking_splits.split_entry({**split_facts(PAID, 30_000), **change}, pending=100_000)


@pytest.mark.parametrize("change", [{"return_no": None}, {"return_no": "B/1"}, {"amount": 0}, {"order_no": 7}])
def test_facts_that_make_no_return_are_bad(change: dict[str, Any]) -> None:
    with pytest.raises(BadFacts):
        booking_splits.return_entry({**return_facts(split_facts(PAID, 30_000), 1_000), **change})


def test_the_longest_numbers_fit_the_source_columns() -> None:
    split = split_facts(PAID, 30_000, split_no="S" * 32)
    entry = booking_splits.return_entry(return_facts(split, 1, return_no="B" * 32))
    assert len(entry.source_id) <= 80 and len(entry.leg) <= 32 and len(entry.kind) <= 24


def test_the_event_types_and_transaction_types_exist() -> None:
    assert (events.SPLIT_SUCCEEDED, events.SPLIT_FAILED, events.SPLIT_RETURNED) == (
        "split.succeeded", "split.failed", "split.returned",
    )  # fmt: skip
    for kind in ("split", "split_return"):
        row = BalanceTransaction(id="J1", type=kind, amount=-1, fee=0, net=-1, order_no="P1", refund_no=None,
                                 payout_no=None, created_at="2026-12-06T00:00:00Z")  # fmt: skip
        assert row.type == kind
