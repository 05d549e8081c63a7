"""The chart of accounts: account codes, their types, and which side of the ledger each type normally sits on.

A code is `<type>` for a platform-wide account or `<type>:<owner>` (a merchant's `mch_no`, a channel account's id).
Balances are stored raw and signed — debits positive, credits negative — so every journal sums to zero and so do
all balances together; `normal_balance` turns a raw figure into the one a person reads.
"""

from __future__ import annotations

from enum import StrEnum


class AccountType(StrEnum):
    MERCHANT_PENDING = "merchant_pending"  # collected for the merchant, not yet settled
    MERCHANT_AVAILABLE = "merchant_available"  # settled, can be paid out
    MERCHANT_RESERVE = "merchant_reserve"  # held back (rolling reserve)
    PAYOUT_IN_TRANSIT = "payout_in_transit"  # accepted payouts the bank has not confirmed
    MERCHANT_FEE_RECEIVABLE = "merchant_fee_receivable"  # fees a service-provider merchant owes (shadow ledger)
    CHANNEL_RECEIVABLE = "channel_receivable"  # what a channel account owes the platform
    CHANNEL_FEE_EXPENSE = "channel_fee_expense"  # what a channel account charged
    PLATFORM_FEE_INCOME = "platform_fee_income"  # what the platform charged merchants
    SUSPENSE = "suspense"  # money a channel moved that belongs to no order yet
    BANK = "bank"  # the platform's own bank account


DEBIT_NORMAL = frozenset(
    {
        AccountType.CHANNEL_RECEIVABLE,
        AccountType.CHANNEL_FEE_EXPENSE,
        AccountType.BANK,
        AccountType.MERCHANT_FEE_RECEIVABLE,
    }
)

# Written by nearly every payment: spread over buckets so concurrent postings do not queue on one row. Never
# balance-checked, so a bucketed balance (Σ of its buckets) is as good as one row.
HOT = frozenset(
    {
        AccountType.CHANNEL_RECEIVABLE,
        AccountType.CHANNEL_FEE_EXPENSE,
        AccountType.PLATFORM_FEE_INCOME,
        AccountType.SUSPENSE,
        AccountType.BANK,
    }
)
HOT_BUCKETS = 256  # 32 groups of 8 by connection (account.ledger._plan): concurrent writers do not collide

PLATFORM_FEE_INCOME = AccountType.PLATFORM_FEE_INCOME.value
SUSPENSE = AccountType.SUSPENSE.value
BANK = AccountType.BANK.value


def merchant_pending(mch_no: str) -> str:
    return f"{AccountType.MERCHANT_PENDING}:{mch_no}"


def merchant_available(mch_no: str) -> str:
    return f"{AccountType.MERCHANT_AVAILABLE}:{mch_no}"


def merchant_reserve(mch_no: str) -> str:
    return f"{AccountType.MERCHANT_RESERVE}:{mch_no}"


def payout_in_transit(mch_no: str) -> str:
    return f"{AccountType.PAYOUT_IN_TRANSIT}:{mch_no}"


def merchant_fee_receivable(mch_no: str) -> str:
    """What a merchant paid through a service-provider account owes the platform in fees: the channel settled the
    whole payment to the merchant, so the fee is collected from the merchant apart (docs/finance.md)."""
    return f"{AccountType.MERCHANT_FEE_RECEIVABLE}:{mch_no}"


def channel_receivable(channel_account_id: str) -> str:
    return f"{AccountType.CHANNEL_RECEIVABLE}:{channel_account_id}"


def channel_fee_expense(channel_account_id: str) -> str:
    return f"{AccountType.CHANNEL_FEE_EXPENSE}:{channel_account_id}"


def account_type(code: str) -> AccountType:
    """The type of an account code; ValueError for a code outside the chart."""
    return AccountType(code.split(":", 1)[0])


def owner(code: str) -> str | None:
    """The merchant or channel account an account belongs to (None for platform-wide accounts)."""
    _, _, rest = code.partition(":")
    return rest or None


def credit_normal(kind: AccountType) -> bool:
    return kind not in DEBIT_NORMAL


def normal_balance(code: str, raw: int) -> int:
    """The balance as its owner reads it: what a merchant is owed, what a channel owes us."""
    return -raw if credit_normal(account_type(code)) else raw


def buckets(code: str) -> int:
    return HOT_BUCKETS if account_type(code) in HOT else 1
