"""Tables of the merchant context (private to it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class Merchant(Base):
    __tablename__ = "merchants"

    mch_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # ACTIVE | FROZEN
    # when pending money becomes available: "D+0", "T+1" (default) or "T+N", N = 1..30 working days
    settle_cycle: Mapped[str] = mapped_column(String(8), default="T+1", server_default="T+1")
    fee_plan_id: Mapped[str | None] = mapped_column(String(32))  # null: charged nothing
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeePlan(Base):
    """What the platform charges a merchant: a rate per pay method (ppm), a minimum fee per payment, and whether
    refunds give the fee back. Never changed once created: a merchant changes plan by being assigned another, and
    every paid order keeps the snapshot it was paid under."""

    __tablename__ = "fee_plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    rates: Mapped[str] = mapped_column(Text)  # JSON {pay_method: ppm}; a method absent is charged 0
    min_fee: Mapped[int] = mapped_column(BigInteger)
    refund_fee: Mapped[str] = mapped_column(String(16))  # proportional | none
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class App(Base):
    __tablename__ = "merchant_apps"

    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    mch_no: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # ACTIVE | FROZEN
    sign_type: Mapped[str] = mapped_column(String(16))  # HMAC-SHA256 | RSA-SHA256
    notify_url: Mapped[str | None] = mapped_column(String(512))
    pay_methods: Mapped[str] = mapped_column(Text)  # JSON list
    amount_limit: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AppKey(Base):
    """An app's signing key: an encrypted HMAC secret or the merchant's RSA public key."""

    __tablename__ = "merchant_app_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32))
    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # ACTIVE | REVOKED
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_merchant_app_keys_app_status", "app_id", "status"),)


class AdminToken(Base):
    """Admin bearer tokens, stored as SHA-256 hashes only; `token_id` (tok_…) is the public name that lists, audit
    rows and revocation use, so neither the secret nor its hash ever has to be shown."""

    __tablename__ = "admin_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AdminAudit(Base):
    """One admin action that succeeded: who (token id and "role:name" at the time), through what, on what, and the
    target's views before and after (JSON, secrets redacted before they get here). Rows are only ever inserted."""

    __tablename__ = "admin_audit"
    __table_args__ = (Index("ix_admin_audit_mch_no", "mch_no", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # snowflake: time-ordered
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(160))
    actor_token_id: Mapped[str | None] = mapped_column(String(32), index=True)
    via: Mapped[str] = mapped_column(String(16))  # api | console | cli
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(128), index=True)
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    mch_no: Mapped[str | None] = mapped_column(String(32))  # the merchant a portal action was taken for


class PlatformKey(Base):
    """The platform's RSA key that signs responses and webhooks for RSA apps (private half encrypted)."""

    __tablename__ = "platform_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    private_key_ciphertext: Mapped[str] = mapped_column(Text)
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
