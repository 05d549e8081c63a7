"""Tables of the pay context (private to it): orders, attempts, refunds, and anomalies finance must see."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class PayOrder(Base):
    __tablename__ = "pay_orders"

    order_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32))
    mch_no: Mapped[str] = mapped_column(String(32))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    paid_after_close: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    subject: Mapped[str] = mapped_column(String(128))
    body: Mapped[str | None] = mapped_column(String(512))
    pay_method: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    channel_account_id: Mapped[str | None] = mapped_column(String(32))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))
    pay_data: Mapped[str | None] = mapped_column(Text)  # JSON {type, value}
    notify_url: Mapped[str | None] = mapped_column(String(512))
    return_url: Mapped[str | None] = mapped_column(String(512))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    payer_openid: Mapped[str | None] = mapped_column(String(128))
    auth_code: Mapped[str | None] = mapped_column(String(32))  # BARCODE: the payer's code (short-lived, one use)
    # profit sharing: the order may be split; Σ of its PENDING and SUCCEEDED splits not returned (guarded UPDATEs);
    # finished: the rest was released to the merchant, no more splits
    profit_sharing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    split_reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    split_finished: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    cashier_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_status: Mapped[str] = mapped_column(String(8), default="NONE")
    # Σ amount of the order's PENDING and SUCCEEDED refunds: moved only by guarded UPDATEs (repository)
    refund_reserved: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    refund_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # refunds ever accepted
    # the fee snapshot, taken in the PAID compare-and-set from the merchant's plan and the channel account (NULL
    # until paid); refunds use it, never the plan of the day (tomato/merchant/fees.py)
    fee_ppm: Mapped[int | None] = mapped_column(Integer)
    fee: Mapped[int | None] = mapped_column(BigInteger)
    refund_fee_rule: Mapped[str | None] = mapped_column(String(16))  # proportional | none
    channel_cost_ppm: Mapped[int | None] = mapped_column(Integer)
    channel_cost: Mapped[int | None] = mapped_column(BigInteger)
    # paid through a service-provider account: the channel settles to the merchant, our books are a shadow ledger
    service_provider: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Σ fee given back by the order's SUCCEEDED refunds: moved with `refunded_amount`, in the same guarded UPDATE
    fee_returned_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    expire_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    query_count: Mapped[int] = mapped_column(Integer, default=0)
    next_query_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # who is submitting the CREATED order to a channel, and until when the claim holds (a dead holder's lapses)
    submit_claim: Mapped[str | None] = mapped_column(String(32))
    submit_claim_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the expiry job's close of this order failed `close_failures` times; not tried again before `next_close_at`
    close_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_close_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("app_id", "out_trade_no", name="uq_pay_orders_app_out_trade_no"),
        Index("ix_pay_orders_status_next_query", "status", "next_query_at"),
        Index("ix_pay_orders_status_expire", "status", "expire_at"),
        Index("ix_pay_orders_account_paid", "channel_account_id", "paid_at"),  # reconciliation's day of an account
        # the console: orders by any of their numbers across merchants, and the last hours' orders (migration 0016)
        Index("ix_pay_orders_created_at", "created_at"),
        Index("ix_pay_orders_out_trade_no", "out_trade_no"),
        Index("ix_pay_orders_channel_trade_no", "channel_trade_no"),
        # the merchant's order list, newest first by keyset (migration 0017)
        Index("ix_pay_orders_app_created", "app_id", "created_at", "order_no"),
        # the merchant portal's order list across the merchant's apps (migration 0023)
        Index("ix_pay_orders_mch_created", "mch_no", "created_at", "order_no"),
    )


class PayAttempt(Base):
    """One try of an order on one channel account; an order may have several (routing fallbacks)."""

    __tablename__ = "pay_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    channel_account_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # CALLING | SUCCESS | FAIL | UNKNOWN
    error_class: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(512))
    pay_data: Mapped[str | None] = mapped_column(Text)  # what the channel returned (the cashier redirects with it)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PayAnomaly(Base):
    """Something finance must look at: a notify with another amount, a payment after close, … One row per
    (order, kind, ref): a channel repeating the same report adds nothing."""

    __tablename__ = "pay_anomalies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_no: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    # the refund number for refund anomalies, else the channel trade number ('' when the channel named none)
    ref: Mapped[str] = mapped_column(String(64))
    channel_account_id: Mapped[str | None] = mapped_column(String(32))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("order_no", "kind", "ref", name="uq_pay_anomalies_order_kind_ref"),)


class Refund(Base):
    """One refund of a SUCCEEDED order; its amount is reserved on the order from creation until it FAILS."""

    __tablename__ = "refunds"

    refund_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    order_no: Mapped[str] = mapped_column(String(32), index=True)
    app_id: Mapped[str] = mapped_column(String(32))
    mch_no: Mapped[str] = mapped_column(String(32))
    out_refund_no: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    channel_account_id: Mapped[str] = mapped_column(String(32))
    channel_refund_no: Mapped[str | None] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(String(256))
    notify_url: Mapped[str | None] = mapped_column(String(512))
    # when the channel acknowledged the request with a signed answer; NULL: it may never have arrived, so the
    # compensation job sends it again (same refund_no, which every channel deduplicates) once a query finds nothing
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    query_count: Mapped[int] = mapped_column(Integer, default=0)
    next_query_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the part of the order's fee this refund gave back (set when it SUCCEEDS, from the order's snapshot)
    fee_returned: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("app_id", "out_refund_no", name="uq_refunds_app_out_refund_no"),
        Index("ix_refunds_status_next_query", "status", "next_query_at"),
        Index("ix_refunds_account_succeeded", "channel_account_id", "succeeded_at"),
        # refunds by any of their numbers (migration 0016)
        Index("ix_refunds_out_refund_no", "out_refund_no"),
        Index("ix_refunds_channel_refund_no", "channel_refund_no"),
        # the merchant's refund list, newest first by keyset (migration 0017)
        Index("ix_refunds_app_created", "app_id", "created_at", "refund_no"),
        # the merchant portal's refund list across the merchant's apps (migration 0023)
        Index("ix_refunds_mch_created", "mch_no", "created_at", "refund_no"),
    )
