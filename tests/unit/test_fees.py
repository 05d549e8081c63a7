"""Fee arithmetic (tomato/merchant/fees.py): the payment fee, the proportional refund fee, and property L2 of the
ledger scenarios — shares of partial refunds sum to the fee on a full refund and never pass it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tomato.core.clock import business_date
from tomato.merchant.fees import payment_fee, proportional, refund_fee_share, refund_fee_total


def test_half_up_to_the_fen() -> None:
    assert payment_fee(100_000, 6_000) == 600
    assert proportional(100_000, 3_800) == 380
    assert payment_fee(250, 6_000) == 2  # 1.5 → 2 (half up)
    assert payment_fee(249, 6_000) == 1  # 1.494 → 1
    assert payment_fee(83, 6_000) == 0  # 0.498 → 0
    assert payment_fee(1, 1_000_000) == 1
    assert payment_fee(12_345, 0) == 0


def test_min_fee_applies_but_never_above_the_amount() -> None:
    assert payment_fee(1_000, 6_000, min_fee=10) == 10  # 6 < 10
    assert payment_fee(100_000, 6_000, min_fee=10) == 600
    assert payment_fee(5, 6_000, min_fee=10) == 5  # a fee never takes more than the payment


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        payment_fee(100, 1_000_001)
    with pytest.raises(ValueError):
        payment_fee(100, -1)
    with pytest.raises(ValueError):
        payment_fee(100, 10, min_fee=-1)
    with pytest.raises(ValueError):
        refund_fee_total(100, 10, 101)


def test_proportional_refunds_of_the_demo_order() -> None:
    # 100,000 fen at 6,000 ppm: fee 600; refunds of 30,000 then 70,000 return 180 then 420
    assert refund_fee_share("proportional", 100_000, 600, 0, 30_000) == 180
    assert refund_fee_share("proportional", 100_000, 600, 30_000, 70_000) == 420
    assert refund_fee_total(100_000, 600, 100_000) == 600


def test_cumulative_rounding_keeps_the_sum() -> None:
    # fee 1 on 3 fen: three refunds of 1 fen return 0, 1, 0 (totals 0.33 → 0, 0.67 → 1, 1 → 1)
    shares = [refund_fee_share("proportional", 3, 1, before, 1) for before in range(3)]
    assert shares == [0, 1, 0]


def test_none_rule_and_no_snapshot_return_nothing() -> None:
    assert refund_fee_share("none", 100_000, 600, 0, 100_000) == 0
    assert refund_fee_share(None, 100_000, 600, 0, 100_000) == 0
    assert refund_fee_share("proportional", 100_000, 0, 0, 100_000) == 0


@st.composite
def refund_splits(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """An amount, a rate and a split of the whole amount into at most 50 refunds (each ≥ 1 fen)."""
    amount = draw(st.integers(min_value=1, max_value=10**10))
    ppm = draw(st.integers(min_value=0, max_value=10**6))
    parts = draw(st.integers(min_value=1, max_value=min(50, amount)))
    cuts = (
        sorted(draw(st.sets(st.integers(min_value=1, max_value=amount - 1), max_size=parts - 1))) if amount > 1 else []
    )
    bounds = [0, *cuts, amount]
    return amount, ppm, [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=10_000, deadline=None)  # ledger scenario L2: 0 counterexamples in 10,000
@given(refund_splits(), st.integers(min_value=0, max_value=10**6))
def test_l2_shares_sum_to_the_fee_and_never_pass_it(case: tuple[int, int, list[int]], min_fee: int) -> None:
    amount, ppm, refunds = case
    fee = payment_fee(amount, ppm, min_fee)
    assert fee == min(amount, max(min_fee, (amount * ppm + 500_000) // 1_000_000))  # half up, min, capped
    assert 0 <= fee <= amount
    returned = 0
    for i, part in enumerate(refunds):
        share = refund_fee_share("proportional", amount, fee, sum(refunds[:i]), part)
        assert share >= 0
        returned += share
        assert returned <= fee
    assert returned == fee  # the refunds cover the whole amount


def test_business_date_is_in_the_business_zone_whatever_the_host() -> None:
    # Fri 23:59:59 and Sat 00:00:00 in Asia/Shanghai (UTC+8)
    assert business_date(datetime(2026, 12, 4, 15, 59, 59, tzinfo=UTC), "Asia/Shanghai") == "2026-12-04"
    assert business_date(datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC), "Asia/Shanghai") == "2026-12-05"
    assert business_date(datetime(2026, 12, 4, 16, 0, 0), "Asia/Shanghai") == "2026-12-05"  # naive = UTC
    assert business_date(datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC), "UTC") == "2026-12-04"
