"""Tables of the account context: journals, their lines, and per-account balances (bucketed for hot accounts).

Journals and lines are append-only: nothing updates or deletes them; a correction is a new journal. A balance row
holds Σ of its account's lines for one bucket, moved in the same transaction as the lines.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, UniqueConstraint
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


class CalendarDay(Base):
    """The holiday calendar: a date whose working status differs from the default (weekends off, weekdays on) —
    a public holiday on a weekday (`working` false), or a weekend day worked in exchange (调休, `working` true)."""

    __tablename__ = "business_calendar"

    date: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    working: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SettlementBatch(Base):
    """One move of a merchant's due lines from pending to available on a run for a business date: the journal that
    moved `amount` and the `line_count` lines it settled. A rerun of the date makes another only for lines that were
    not yet booked (or due) at the earlier run; each line settles once (`SettlementItem`)."""

    __tablename__ = "settlement_batches"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # snowflake; shown "SB…"
    mch_no: Mapped[str] = mapped_column(String(32))
    date: Mapped[str] = mapped_column(String(10))  # the run's business date
    amount: Mapped[int] = mapped_column(BigInteger)  # fen moved, > 0
    line_count: Mapped[int] = mapped_column(Integer)
    journal_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_settlement_batches_mch_date", "mch_no", "date"),
        Index("ix_settlement_batches_date", "date", "id"),
    )


class SettlementItem(Base):
    """A pending line that a batch settled. The primary key makes a line settle once, whatever runs race."""

    __tablename__ = "settlement_items"

    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_settlement_items_batch_id", "batch_id"),)


class SettlementRun(Base):
    """A business date the settlement has completed a run for (the daily job catches up from the latest one)."""

    __tablename__ = "settlement_runs"

    date: Mapped[str] = mapped_column(String(10), primary_key=True)
    settled_count: Mapped[int] = mapped_column(BigInteger)  # Σ line_count of the date's batches
    settled_amount: Mapped[int] = mapped_column(BigInteger)  # Σ amount of the date's batches
    completed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))



class ProviderBalance(Base):
    """A merchant's service-provider money, a memo beside the ledger (docs/finance.md): what channels paid the
    merchant directly through service-provider accounts, net of refunds, and how many such payments it had. None of
    it passes through the platform, so no ledger account holds it; the booking that posts a service-provider journal
    moves this row in the same unit of work, once per journal (account.booking_provider)."""

    __tablename__ = "provider_balances"

    mch_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    collected: Mapped[int] = mapped_column(BigInteger)  # fen: Σ payments − Σ refunds
    payments: Mapped[int] = mapped_column(BigInteger)  # service-provider payments booked
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
