"""reconciliation: batches, staged statement lines and our rows, discrepancies, suspense pool, anomaly resolutions,
audit; an index to read a channel account's paid orders of a day

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 07:40:00.000000

Written by hand. The staging tables (recon_lines, recon_local) are UNLOGGED on PostgreSQL. One batch per
(channel_account_id, business_date): a re-run updates it. A discrepancy is unique per
(batch_id, match_key), so a re-run re-finds the same key and keeps its resolution. The suspense pool holds one row
per (account, side, kind, ref).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recon_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("channel_account_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("discrepancies", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("settled_event_id", sa.String(length=32), nullable=True),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_batches")),
        sa.UniqueConstraint("channel_account_id", "business_date", name="uq_recon_batches_account_date"),
    )
    op.create_index("ix_recon_batches_date", "recon_batches", ["business_date", "id"])
    op.create_table(
        "recon_lines",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("channel_trade_no", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "line_no", name=op.f("pk_recon_lines")),
    )
    op.create_table(
        "recon_local",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=False),
        sa.Column("channel_trade_no", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "kind", "ref", name=op.f("pk_recon_local")),
    )
    op.create_table(
        "recon_discrepancies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("match_key", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("refund_no", sa.String(length=64), nullable=True),
        sa.Column("channel_trade_no", sa.String(length=64), nullable=True),
        sa.Column("local_amount", sa.BigInteger(), nullable=True),
        sa.Column("channel_amount", sa.BigInteger(), nullable=True),
        sa.Column("local_fee", sa.BigInteger(), nullable=True),
        sa.Column("channel_fee", sa.BigInteger(), nullable=True),
        sa.Column("channel_status", sa.String(length=32), nullable=True),
        sa.Column("resolution_action", sa.String(length=16), nullable=True),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_discrepancies")),
        sa.UniqueConstraint("batch_id", "match_key", name="uq_recon_discrepancies_batch_key"),
    )
    op.create_index("ix_recon_discrepancies_status", "recon_discrepancies", ["status", "id"])
    op.create_table(
        "recon_suspense",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("channel_account_id", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("order_no", sa.String(length=64), nullable=True),
        sa.Column("channel_trade_no", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("origin_batch_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("closed_batch_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_suspense")),
        sa.UniqueConstraint("channel_account_id", "side", "kind", "ref", name="uq_recon_suspense_row"),
    )
    op.create_index("ix_recon_suspense_waiting", "recon_suspense", ["channel_account_id", "status"])
    op.create_table(
        "recon_anomaly_resolutions",
        sa.Column("anomaly_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("resolved_by", sa.String(length=64), nullable=False),
        sa.Column("resolved_at", TZ, nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("anomaly_id", name=op.f("pk_recon_anomaly_resolutions")),
    )
    op.create_table(
        "recon_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_audit")),
    )
    op.create_index("ix_recon_audit_subject", "recon_audit", ["subject_type", "subject_id", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # staging rows are rebuilt by every run from the statement and pay's tables: no WAL for them (a crash
        # empties them, and the next run fills them again)
        op.execute("ALTER TABLE recon_lines SET UNLOGGED")
        op.execute("ALTER TABLE recon_local SET UNLOGGED")
    op.create_index("ix_pay_orders_account_paid", "pay_orders", ["channel_account_id", "paid_at"])
    op.create_index("ix_refunds_account_succeeded", "refunds", ["channel_account_id", "succeeded_at"])


def downgrade() -> None:
    op.drop_index("ix_refunds_account_succeeded", table_name="refunds")
    op.drop_index("ix_pay_orders_account_paid", table_name="pay_orders")
    for table in ("recon_audit", "recon_anomaly_resolutions", "recon_suspense", "recon_discrepancies", "recon_local",
                  "recon_lines", "recon_batches"):  # fmt: skip
        op.drop_table(table)
