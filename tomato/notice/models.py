"""Tables of the notice context (private to it): one delivery per event and target URL, and its attempts.

The delivery row is the source of truth for scheduling: `next_attempt_at` says when the next attempt is due, the
queue messages are only wake-ups. A row with an empty `url` (status SKIPPED) records that the event was seen but
had nowhere to go; it also makes the row double as the consumer's dedupe ("inbox") entry for the event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class Delivery(Base):
    __tablename__ = "notice_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "D" + seq
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # snowflake: time order, paging key
    event_id: Mapped[str] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str] = mapped_column(String(64))
    mch_no: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(512))  # "" when the event has no target (SKIPPED)
    status: Mapped[str] = mapped_column(String(16))  # PENDING | SUCCEEDED | FAILED | SKIPPED
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # attempts made, all rounds
    round_start: Mapped[int] = mapped_column(Integer, default=0)  # `attempts` when this schedule round began
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a worker is attempting
    claim_token: Mapped[str | None] = mapped_column(String(32))
    swept_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # last re-enqueue by the sweeper
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # resend not yet picked up
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(64))
    event_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("event_id", "url", name="uq_notice_deliveries_event_url"),
        Index("ix_notice_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notice_deliveries_requested", "requested_at"),
        Index("ix_notice_deliveries_mch", "mch_no", "status", "created_at"),
        Index("ix_notice_deliveries_app", "app_id", "seq"),
    )


class DeliveryAttempt(Base):
    """One POST to the merchant: when, what came back, how long it took (append-only)."""

    __tablename__ = "notice_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    delivery_id: Mapped[str] = mapped_column(String(32))
    attempt_no: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[int] = mapped_column(Integer)
    http_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)  # first 1 KiB, undecodable bytes replaced
    error_class: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(256))
    succeeded: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_notice_attempts_delivery", "delivery_id", "attempt_no"),)
