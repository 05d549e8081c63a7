"""Tables of the reconciliation context (private to it): raw statement files kept for audit; one batch per channel
account and business date; the statement's lines and our own rows staged for set-based matching; the discrepancies
found; a suspense pool for rows near midnight; finance's anomaly resolutions and an audit trail of every action.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tomato.core.db import Base


class StatementFile(Base):
    """One raw statement fetched for a channel account and business date, kept for audit (docs/reconciliation.md).

    The file itself lives in the statement store under its sha256; a date fetched again with other content gets a
    second row (the newest `fetched_at` is the current one), the same content again only a newer `fetched_at`.
    """

    __tablename__ = "statement_files"

    channel_account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    business_date: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, the channel's date
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReconBatch(Base):
    """The run of one channel account and business date; a re-run updates this row (same id)."""

    __tablename__ = "recon_batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "RB…"
    channel_account_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    business_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD in the business time zone
    status: Mapped[str] = mapped_column(String(16))  # RUNNING | MATCHED | DISCREPANCIES | ERROR
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON: channel_rows, local_rows, matched, per type…
    summary: Mapped[str] = mapped_column(Text, default="{}")  # JSON: counts and amounts per side (summary.csv)
    discrepancies: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1000))
    runs: Mapped[int] = mapped_column(Integer, default=0)
    settled_event_id: Mapped[str | None] = mapped_column(String(32))  # the reconciliation.settled event, once
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("channel_account_id", "business_date", name="uq_recon_batches_account_date"),
        Index("ix_recon_batches_date", "business_date", "id"),
    )


class ReconLine(Base):
    """A statement line staged for matching (replaced on every run of its batch). `ref` is the order_no of a
    payment, the refund_no of a refund."""

    __tablename__ = "recon_lines"

    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # PAYMENT | REFUND
    ref: Mapped[str] = mapped_column(String(64))
    order_no: Mapped[str | None] = mapped_column(String(64))
    channel_trade_no: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # no index but the primary key: every query reads a batch by its batch_id prefix and matches by hash; an index
    # on (batch_id, kind, ref) cost a fifth of the COPY (random inserts into a btree) and no plan used it


class ReconLocal(Base):
    """Our SUCCEEDED payments and refunds of the batch's account and date, staged from pay's read model."""

    __tablename__ = "recon_local"

    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int | None] = mapped_column(BigInteger)  # the channel fee we expect (payment) or expect back (refund)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReconDiscrepancy(Base):
    __tablename__ = "recon_discrepancies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "RD…"
    batch_id: Mapped[str] = mapped_column(String(32))
    # what the difference is about within its batch: a re-run finds the same key and keeps its resolution
    match_key: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(24))
    kind: Mapped[str] = mapped_column(String(8))  # PAYMENT | REFUND
    status: Mapped[str] = mapped_column(String(16))  # OPEN | AUTO_RESOLVED | RESOLVED
    order_no: Mapped[str | None] = mapped_column(String(64))
    refund_no: Mapped[str | None] = mapped_column(String(64))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))
    local_amount: Mapped[int | None] = mapped_column(BigInteger)
    channel_amount: Mapped[int | None] = mapped_column(BigInteger)
    local_fee: Mapped[int | None] = mapped_column(BigInteger)
    channel_fee: Mapped[int | None] = mapped_column(BigInteger)
    channel_status: Mapped[str | None] = mapped_column(String(32))
    resolution_action: Mapped[str | None] = mapped_column(String(16))
    resolution_note: Mapped[str | None] = mapped_column(String(500))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("batch_id", "match_key", name="uq_recon_discrepancies_batch_key"),
        Index("ix_recon_discrepancies_status", "status", "id"),
    )


class ReconSuspense(Base):
    """A row near midnight seen on one side only: re-matched by the next two days' runs before it is declared
    missing. `side` is the side that has it (CHANNEL: on the statement; LOCAL: in our books)."""

    __tablename__ = "recon_suspense"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # "RS…"
    channel_account_id: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(8))
    ref: Mapped[str] = mapped_column(String(64))
    order_no: Mapped[str | None] = mapped_column(String(64))
    channel_trade_no: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    business_date: Mapped[str] = mapped_column(String(10))  # the date whose run put it here
    origin_batch_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8))  # WAITING | MATCHED | EXPIRED
    closed_batch_id: Mapped[str | None] = mapped_column(String(32))  # the run that matched or expired it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("channel_account_id", "side", "kind", "ref", name="uq_recon_suspense_row"),
        Index("ix_recon_suspense_waiting", "channel_account_id", "status"),
    )


class AnomalyResolution(Base):
    """Finance's decision on one of pay's anomalies (pay keeps the anomaly; this context keeps the workflow)."""

    __tablename__ = "recon_anomaly_resolutions"

    anomaly_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(String(500))
    resolved_by: Mapped[str] = mapped_column(String(64))
    resolved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str | None] = mapped_column(String(32))  # the outbox event that moves the money, if any


class ReconAudit(Base):
    """Every action on a discrepancy or anomaly: who, when, what, and the item before and after."""

    __tablename__ = "recon_audit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    subject_type: Mapped[str] = mapped_column(String(16))  # discrepancy | anomaly
    subject_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(500))
    before: Mapped[str] = mapped_column(Text)
    after: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_recon_audit_subject", "subject_type", "subject_id", "id"),)
