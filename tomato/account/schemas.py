"""Read models of the account context: the merchant's balance and balance transactions, and finance's views."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tomato.core.clock import UtcDateTime

TransactionType = Literal["payment", "refund", "settlement", "payout", "adjustment", "split", "split_return"]


BalanceMode = Literal["direct", "service_provider", "mixed"]


class ServiceProviderBalance(BaseModel):
    """Money of payments through service-provider accounts: the channel paid it straight to the merchant, so it is
    in neither `pending` nor `available` and is never settled or paid out by the platform."""

    collected: int = Field(
        default=0, description="fen the channels paid straight to the merchant, net of refunds (a memo)"
    )
    fee_receivable: int = Field(default=0, description="fen of fees on those payments the merchant owes the platform")


class BalanceView(BaseModel):
    currency: Literal["CNY"] = Field(default="CNY", description="ISO 4217 currency (CNY)")
    pending: int = Field(description="fen collected and not yet settled")  # fen: collected, not yet settled
    available: int = Field(description="fen settled and available for payouts")  # fen: settled, can be paid out
    mode: BalanceMode = Field(
        default="direct",
        description="which kinds of payment the merchant has had: `direct` (the platform collects; also when none), "
        "`service_provider` (only through service-provider accounts) or `mixed`",
    )
    service_provider: ServiceProviderBalance = Field(
        default_factory=ServiceProviderBalance,
        description="payments the channels settled straight to the merchant (not in `pending`/`available`)",
    )


class BalanceTransaction(BaseModel):
    id: str = Field(description="the journal entry (`J…`) behind the transaction")  # the journal id "J…"
    type: TransactionType = Field(
        description="`payment`, `refund`, `settlement`, `payout`, `adjustment`, `split` (part of a payment the "
        "channel paid to profit-sharing receivers) or `split_return` (what receivers gave back)"
    )
    amount: int = Field(
        description="fen, signed from the merchant's side: payments and split returns positive, refunds, payouts "
        "and splits negative"
    )  # signed from the merchant's side: payment +, refund, payout and split −
    fee: int = Field(
        description="fen the platform charged (a refund's returned fee is negative)"
    )  # what the platform charged (a refund's returned fee is negative)
    net: int = Field(description="amount − fee, in fen")  # amount − fee
    order_no: str | None = Field(description="the order concerned, if any")
    refund_no: str | None = Field(description="the refund concerned, if any")
    payout_no: str | None = Field(description="the payout concerned, if any")
    created_at: UtcDateTime = Field(description="when it was booked (RFC 3339 UTC)")


class BalanceTransactionPage(BaseModel):
    data: list[BalanceTransaction] = Field(description="the transactions of this page, newest first")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


class AccountBalance(BaseModel):
    account: str = Field(
        description="the ledger account's code, e.g. `merchant_pending:M…`"
    )  # the account code, e.g. "merchant_pending:M…"
    account_type: str = Field(
        description="the kind of account, e.g. `merchant_pending`, `channel_receivable`, `fee_income`"
    )
    owner: str | None = Field(
        description="the merchant or channel account owning it; null for platform-wide accounts"
    )  # the merchant or channel account; None for platform-wide accounts
    balance: int = Field(
        description="fen on the account's normal side, as a person reads it"
    )  # normal side: what a person reads (a merchant's pending as a positive figure)
    raw: int = Field(description="signed fen: debit positive, credit negative")  # signed: debit > 0, credit < 0


class AccountBalancePage(BaseModel):
    data: list[AccountBalance] = Field(description="the account balances of this page")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


class LedgerLineView(BaseModel):
    account: str = Field(description="the ledger account the line posts to")
    bucket: int = Field(
        description="which of the account's hot-row buckets took the line (spreads concurrent postings)"
    )
    amount: int = Field(description="signed fen: debit positive, credit negative")  # debit > 0, credit < 0


class JournalView(BaseModel):
    id: str = Field(description="the journal entry's id (`J…`)")
    source_type: str = Field(description="what caused it: an event type, a settlement, a payout, an adjustment")
    source_id: str = Field(description="the id of that cause (event id, batch id, …); one entry per source and leg")
    leg: str = Field(description="which part of the source it books (a source may book several legs)")
    kind: str = Field(description="the kind of movement, e.g. payment, refund, settlement")
    mch_no: str | None = Field(description="the merchant concerned, if any")
    order_no: str | None = Field(description="the order concerned, if any")
    refund_no: str | None = Field(description="the refund concerned, if any")
    payout_no: str | None = Field(description="the payout concerned, if any")
    amount: int | None = Field(description="the business amount in fen, if the entry has one")
    fee: int | None = Field(description="the fee in fen, if the entry has one")
    business_date: str = Field(description="the business date the entry belongs to (YYYY-MM-DD, business time zone)")
    created_at: UtcDateTime = Field(description="when it was booked (RFC 3339 UTC)")
    lines: list[LedgerLineView] = Field(description="the entry's lines; they sum to zero")


class JournalPage(BaseModel):
    data: list[JournalView] = Field(description="the journal entries of this page")
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


class TrialBalanceRow(BaseModel):
    account_type: str = Field(description="the kind of account")
    accounts: int = Field(
        description="how many accounts of this type have a balance"
    )  # how many accounts of this type have a balance row
    normal_balance: int = Field(
        description="sum of their balances on the normal side, in fen"
    )  # Σ of the type's balances as a person reads them
    raw: int = Field(description="sum of their signed balances, in fen")  # Σ signed


class TrialBalance(BaseModel):
    types: list[TrialBalanceRow] = Field(description="one row per account type")
    total_raw: int = Field(
        description="sum of every signed balance in fen: 0 when the ledger is whole"
    )  # Σ of every balance: 0 when the ledger is whole
    balanced: bool = Field(description="true when `total_raw` is 0")
