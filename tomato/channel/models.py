"""Tables of the channel context: channel accounts (credentials encrypted) and routing rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class ChannelAccount(Base):
    __tablename__ = "channel_accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # ACTIVE | DISABLED
    mch_no: Mapped[str | None] = mapped_column(String(32))  # null: shared by every merchant
    config_ciphertext: Mapped[str] = mapped_column(Text)  # the whole config JSON, encrypted
    daily_limit: Mapped[int | None] = mapped_column(BigInteger)  # fen per business day; null: unlimited
    # what the channel charges us per payment, in parts per million of the amount (booked as channel fee expense)
    cost_ppm: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RoutingRule(Base):
    __tablename__ = "routing_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    pay_methods: Mapped[str] = mapped_column(Text)  # JSON list
    app_id: Mapped[str | None] = mapped_column(String(32))
    min_amount: Mapped[int | None] = mapped_column(BigInteger)
    max_amount: Mapped[int | None] = mapped_column(BigInteger)
    candidates: Mapped[str] = mapped_column(Text)  # JSON [{channel_account_id, priority, weight}]
    time_start: Mapped[str | None] = mapped_column(String(5))  # "HH:MM" business time, inclusive
    time_end: Mapped[str | None] = mapped_column(String(5))  # "HH:MM", exclusive; may wrap past midnight
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccountUsage(Base):
    """Amount held per account and business day, for daily limits: Σ of the day's `LimitHold`s still standing.

    Moved only by the guarded statements of `channel/limits.py`, so concurrent orders cannot pass the limit."""

    __tablename__ = "channel_account_usage"

    account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    business_date: Mapped[str] = mapped_column(String(10), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)


class LimitHold(Base):
    """One order's amount held on an account's daily usage, keyed by the caller's id (a pay attempt's): released at
    most once, in the transaction that deletes it."""

    __tablename__ = "channel_limit_holds"

    hold_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(32))
    business_date: Mapped[str] = mapped_column(String(10))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
