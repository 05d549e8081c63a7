"""Tables of the channel context: channel accounts (credentials encrypted) and routing rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, text
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
    # direct | isv (Alipay service provider) | partner (WeChat Pay service provider); also inside the config
    mode: Mapped[str] = mapped_column(String(16), default="direct", server_default="direct")
    daily_limit: Mapped[int | None] = mapped_column(BigInteger)  # fen per business day; null: unlimited
    # what the channel charges us per payment, in parts per million of the amount (booked as channel fee expense)
    cost_ppm: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChannelIdentity(Base):
    """A merchant's identity under a service-provider account: who the provider acts for when it pays for them.

    Alipay ISV: `auth_app_id` and the `app_auth_token` (encrypted in `secret_ciphertext`); WeChat partner:
    `sub_mchid` and `sub_appid`. Never deleted: a disabled identity stops new orders, while the orders made under it
    are still queried, closed, refunded and reconciled with it. One ACTIVE identity per (account, merchant).
    """

    __tablename__ = "channel_identities"
    __table_args__ = (
        Index("ix_channel_identities_account_mch", "channel_account_id", "mch_no"),
        Index(
            "uq_channel_identities_active",
            "channel_account_id",
            "mch_no",
            unique=True,
            postgresql_where=text("status = 'ACTIVE'"),
            sqlite_where=text("status = 'ACTIVE'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_account_id: Mapped[str] = mapped_column(String(32))
    mch_no: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # ACTIVE | DISABLED
    auth_app_id: Mapped[str | None] = mapped_column(String(64))
    sub_mchid: Mapped[str | None] = mapped_column(String(32))
    sub_appid: Mapped[str | None] = mapped_column(String(64))
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)  # the app_auth_token, encrypted
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
