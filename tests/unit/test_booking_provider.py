"""The shadow journals of service-provider payments (tomato/account/booking_provider.py): only the fee, balanced,
keyed like the direct journals; the `service_provider` fact read strictly; the balance's new fields."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.booking import paid_facts, provider, refund_facts
from tomato.account import accounts as acct
from tomato.account import booking_provider
from tomato.account.booking_facts import BadFacts, service_provider
from tomato.account.ledger import EntryRequest
from tomato.account.schemas import BalanceView


def lines(entry: EntryRequest) -> dict[str, int]:
    if entry.lines:
        entry.validate()  # balanced, no zero line, every account in the chart
    return {line.account: line.amount for line in entry.lines}


def test_a_payment_books_the_fee_receivable_and_nothing_of_the_amount() -> None:
    entry = booking_provider.payment_entry(provider(paid_facts("M1", 100_000, order_no="P1")))
    assert lines(entry) == {"merchant_fee_receivable:M1": 600, "platform_fee_income": -600}
    assert (entry.source_type, entry.source_id, entry.leg, entry.kind) == ("order", "P1", "payment", "provider_payment")
    assert (entry.mch_no, entry.order_no, entry.amount, entry.fee) == ("M1", "P1", 100_000, 600)
    assert not any(line.guard for line in entry.lines)


def test_a_refund_gives_the_returned_fee_back() -> None:
    paid = provider(paid_facts("M1", 100_000, order_no="P1"))
    entry = booking_provider.refund_entry(provider(refund_facts(paid, 30_000, refund_no="R1")))
    assert lines(entry) == {"merchant_fee_receivable:M1": -180, "platform_fee_income": 180}
    assert (entry.source_type, entry.source_id, entry.leg, entry.kind) == ("refund", "R1", "refund", "provider_refund")
    assert (entry.order_no, entry.refund_no, entry.amount, entry.fee) == ("P1", "R1", -30_000, -180)


def test_a_zero_fee_makes_an_entry_without_lines() -> None:
    paid = provider(paid_facts("M1", 50, ppm=0, order_no="P1"))
    assert booking_provider.payment_entry(paid).lines == ()
    assert booking_provider.refund_entry(provider(refund_facts(paid, 20))).lines == ()


@pytest.mark.parametrize(
    "change",
    [{"amount": 0}, {"fee": 101, "amount": 100}, {"mch_no": ""}, {"business_date": "2026-02-30"}, {"fee": -1}],
)
def test_facts_that_do_not_add_up_are_bad(change: dict[str, Any]) -> None:
    with pytest.raises(BadFacts):
        booking_provider.payment_entry({**provider(paid_facts("M1", 100_000)), **change})


@pytest.mark.parametrize(("facts", "want"), [({}, False), ({"service_provider": False}, False),
                                            ({"service_provider": True}, True)])  # fmt: skip
def test_the_flag_defaults_to_direct(facts: dict[str, Any], want: bool) -> None:
    assert service_provider(facts) is want


@pytest.mark.parametrize("value", ["true", 1, 0, None, [True]])
def test_a_flag_that_is_not_a_boolean_is_bad(value: object) -> None:
    with pytest.raises(BadFacts):
        service_provider({"service_provider": value})


def test_fee_receivable_is_an_asset_read_on_the_debit_side() -> None:
    code = acct.merchant_fee_receivable("M1")
    assert acct.account_type(code) is acct.AccountType.MERCHANT_FEE_RECEIVABLE
    assert acct.normal_balance(code, 420) == 420 and acct.owner(code) == "M1" and acct.buckets(code) == 1


def test_the_balance_view_defaults_to_direct() -> None:
    assert BalanceView(pending=1, available=2).model_dump(mode="json") == {
        "currency": "CNY", "pending": 1, "available": 2, "mode": "direct",
        "service_provider": {"collected": 0, "fee_receivable": 0},
    }  # fmt: skip
