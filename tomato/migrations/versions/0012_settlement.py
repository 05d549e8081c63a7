"""settlement: merchants' settlement cycle, the holiday calendar, settlement batches, items and runs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 07:00:00.000000

Written by hand. A settlement batch is one journal moving a merchant's due lines on a run for a business date;
`settlement_items` is keyed by the ledger line it settles, so a line settles once whatever runs race.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settle_cycle", sa.String(length=8), server_default="T+1", nullable=False))
    op.create_table(
        "business_calendar",
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("working", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", name=op.f("pk_business_calendar")),
    )
    op.create_table(
        "settlement_batches",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("mch_no", sa.String(length=32), nullable=False),
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("journal_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_batches")),
    )
    op.create_index("ix_settlement_batches_date", "settlement_batches", ["date", "id"])
    op.create_index("ix_settlement_batches_mch_date", "settlement_batches", ["mch_no", "date"])
    op.create_table(
        "settlement_items",
        sa.Column("line_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_settlement_items")),
    )
    op.create_index("ix_settlement_items_batch_id", "settlement_items", ["batch_id"])
    op.create_table(
        "settlement_runs",
        sa.Column("date", sa.String(length=10), nullable=False),
        sa.Column("settled_count", sa.BigInteger(), nullable=False),
        sa.Column("settled_amount", sa.BigInteger(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", name=op.f("pk_settlement_runs")),
    )


def downgrade() -> None:
    op.drop_table("settlement_runs")
    op.drop_index("ix_settlement_items_batch_id", table_name="settlement_items")
    op.drop_table("settlement_items")
    op.drop_index("ix_settlement_batches_mch_date", table_name="settlement_batches")
    op.drop_index("ix_settlement_batches_date", table_name="settlement_batches")
    op.drop_table("settlement_batches")
    op.drop_table("business_calendar")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("settle_cycle")
