"""Fee arithmetic in integer fen: what the platform charges on a payment and gives back on refunds.

Pure functions, no I/O, so pay (the snapshot at payment time) and account (booking) compute the same figures.
Rates are parts per million (ppm): 6,000 ppm = 0.60 %.

- A payment of `amount` pays `(amount × ppm + 500,000) // 1,000,000` (half up to the fen), at least `min_fee`,
  and never more than the amount itself.
- With the `proportional` refund-fee rule, refunds totalling R of a payment of amount A and fee F have returned
  `(2·F·R + A) // (2·A)` of the fee in all (F·R/A half up). Each refund returns the difference between the total
  after it and the total before it, so the shares of any split of a full refund sum to exactly F and never pass it.
- With `none`, refunds return nothing.
"""

from __future__ import annotations

from typing import Literal

PPM = 1_000_000
RefundFeeRule = Literal["proportional", "none"]
REFUND_FEE_RULES: tuple[str, ...] = ("proportional", "none")


def proportional(amount: int, ppm: int) -> int:
    """`amount × ppm / 1,000,000` rounded half up to the fen (amount ≥ 0, ppm within 0..1,000,000)."""
    if amount < 0 or not 0 <= ppm <= PPM:
        raise ValueError("amount must be ≥ 0 and ppm within 0..1,000,000")
    return (amount * ppm + PPM // 2) // PPM


def payment_fee(amount: int, ppm: int, min_fee: int = 0) -> int:
    """The platform's fee on a payment: the proportional fee, at least `min_fee`, never above the amount."""
    if min_fee < 0:
        raise ValueError("min_fee must be ≥ 0")
    return min(amount, max(min_fee, proportional(amount, ppm)))


def refund_fee_total(order_amount: int, order_fee: int, refunded_total: int) -> int:
    """The fee returned in all once refunds total `refunded_total` of a payment (proportional rule)."""
    if order_amount <= 0 or not 0 <= order_fee <= order_amount or not 0 <= refunded_total <= order_amount:
        raise ValueError("need 0 < order_amount, 0 ≤ order_fee ≤ order_amount, 0 ≤ refunded_total ≤ order_amount")
    return (2 * order_fee * refunded_total + order_amount) // (2 * order_amount)


def refund_fee_share(
    rule: str | None, order_amount: int, order_fee: int, refunded_before: int, refund_amount: int
) -> int:
    """What one refund of `refund_amount` returns when `refunded_before` was refunded before it: the total after
    minus the total before (0 with the `none` rule, or when the order carries no fee snapshot)."""
    if rule != "proportional" or order_fee == 0:
        return 0
    after = refund_fee_total(order_amount, order_fee, refunded_before + refund_amount)
    return after - refund_fee_total(order_amount, order_fee, refunded_before)
