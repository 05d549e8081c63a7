"""Tables of the account context: journals, their lines, and per-account balances (bucketed for hot accounts).

Journals and lines are append-only: nothing updates or deletes them; a correction is a new journal. A balance row
holds Σ of its account's lines for one bucket, moved in the same transaction as the lines.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class Journal(Base):
    __tablename__ = "ledger_journals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "J…"
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # the snowflake: newest-first paging
    source_type: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(80))
    leg: Mapped[str] = mapped_column(String(32))
    lines_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the lines: a replay must match it
    kind: Mapped[str] = mapped_column(String(24))
    mch_no: Mapped[str | None] = mapped_column(String(32))
    order_no: Mapped[str | None] = mapped_column(String(32))
    refund_no: Mapped[str | None] = mapped_column(String(32))
    payout_no: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[int | None] = mapped_column(BigInteger)  # merchant view, signed from the merchant's side
    fee: Mapped[int | None] = mapped_column(BigInteger)  # merchant view: what the platform charged
    business_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD in the business time zone
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("source_type", "source_id", "leg", name="uq_ledger_journals_source"),
        Index("ix_ledger_journals_mch_seq", "mch_no", "seq"),
        Index("ix_ledger_journals_order_no", "order_no"),
        Index("ix_ledger_journals_business_date", "business_date"),
    )


class Line(Base):
    __tablename__ = "ledger_lines"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    journal_id: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(80))
    bucket: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)  # debit > 0, credit < 0
    business_date: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_ledger_lines_journal_id", "journal_id"),
        Index("ix_ledger_lines_account_date", "account", "business_date", "id"),
    )


class Balance(Base):
    __tablename__ = "ledger_balances"

    account: Mapped[str] = mapped_column(String(80), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_type: Mapped[str] = mapped_column(String(32))
    balance: Mapped[int] = mapped_column(BigInteger)  # raw: Σ of the bucket's lines
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_ledger_balances_type", "account_type"),)


class BookedEvent(Base):
    """The booking consumer's inbox: one row per outbox event it has handled, written in the same transaction as
    the journal it booked (or the reason it booked none), so an event seen again is recognised and skipped."""

    __tablename__ = "ledger_booked_events"

    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    position: Mapped[int | None] = mapped_column(BigInteger)  # the event's outbox position when booked
    outcome: Mapped[str] = mapped_column(String(16))  # booked | duplicate | skipped | rejected
    journal_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(500))  # why nothing was booked (skipped, rejected)
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_ledger_booked_events_outcome", "outcome", "booked_at"),)


class BookingCursor(Base):
    """How far a consumer has read the outbox, by commit-order position (core.positions): every event at or
    below `position` has a row in `ledger_booked_events`."""

    __tablename__ = "ledger_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
