"""Read models of the account context: the merchant's balance and balance transactions, and finance's views."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from tomato.core.clock import UtcDateTime

TransactionType = Literal["payment", "refund", "settlement", "payout", "adjustment"]


class BalanceView(BaseModel):
    currency: Literal["CNY"] = "CNY"
    pending: int  # fen: collected, not yet settled
    available: int  # fen: settled, can be paid out


class BalanceTransaction(BaseModel):
    id: str  # the journal id "J…"
    type: TransactionType
    amount: int  # signed from the merchant's side: payment +, refund and payout −
    fee: int  # what the platform charged (a refund's returned fee is negative)
    net: int  # amount − fee
    order_no: str | None
    refund_no: str | None
    payout_no: str | None
    created_at: UtcDateTime


class BalanceTransactionPage(BaseModel):
    data: list[BalanceTransaction]
    next_cursor: str | None


class AccountBalance(BaseModel):
    account: str  # the account code, e.g. "merchant_pending:M…"
    account_type: str
    owner: str | None  # the merchant or channel account; None for platform-wide accounts
    balance: int  # normal side: what a person reads (a merchant's pending as a positive figure)
    raw: int  # signed: debit > 0, credit < 0


class AccountBalancePage(BaseModel):
    data: list[AccountBalance]
    next_cursor: str | None


class LedgerLineView(BaseModel):
    account: str
    bucket: int
    amount: int  # debit > 0, credit < 0


class JournalView(BaseModel):
    id: str
    source_type: str
    source_id: str
    leg: str
    kind: str
    mch_no: str | None
    order_no: str | None
    refund_no: str | None
    payout_no: str | None
    amount: int | None
    fee: int | None
    business_date: str
    created_at: UtcDateTime
    lines: list[LedgerLineView]


class JournalPage(BaseModel):
    data: list[JournalView]
    next_cursor: str | None


class TrialBalanceRow(BaseModel):
    account_type: str
    accounts: int  # how many accounts of this type have a balance row
    normal_balance: int  # Σ of the type's balances as a person reads them
    raw: int  # Σ signed


class TrialBalance(BaseModel):
    types: list[TrialBalanceRow]
    total_raw: int  # Σ of every balance: 0 when the ledger is whole
    balanced: bool
