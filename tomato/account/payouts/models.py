"""The payouts table. The bank account number is stored as the merchant gave it, is never logged and never shown
(the API's payout object has no bank account)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class PayoutStatus(StrEnum):
    PENDING = "PENDING"  # held: the amount is in payout_in_transit
    SUCCEEDED = "SUCCEEDED"  # posted: paid out by the bank
    FAILED = "FAILED"  # voided: the amount is back in available


class Payout(Base):
    __tablename__ = "payouts"

    payout_no: Mapped[str] = mapped_column(String(32), primary_key=True)  # "W…", the bank's orderId
    app_id: Mapped[str] = mapped_column(String(32))
    mch_no: Mapped[str] = mapped_column(String(32), index=True)
    out_payout_no: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    account_name: Mapped[str] = mapped_column(String(64))
    account_number: Mapped[str] = mapped_column(String(32))
    bank_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(String(256))
    channel_account_id: Mapped[str] = mapped_column(String(32))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))  # the bank's queryId
    # when the bank acknowledged the request (respCode 00); NULL: it may never have arrived, so the query job
    # sends it again (same orderId and txnTime) once a query finds nothing at the bank
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    query_count: Mapped[int] = mapped_column(Integer, default=0)
    next_query_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("app_id", "out_payout_no", name="uq_payouts_app_out_payout_no"),
        Index("ix_payouts_status_next_query", "status", "next_query_at"),
        Index("ix_payouts_mch_created", "mch_no", "created_at", "payout_no"),  # the portal's list (migration 0023)
    )

    def __repr__(self) -> str:  # never print the account number
        return f"Payout({self.payout_no!r}, {self.status}, amount={self.amount})"
