"""ledger: journals, lines and bucketed balances of the account context

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 07:10:00.000000

Written by hand. Journals are unique per (source_type, source_id, leg) — the ledger's idempotency key — and, with
their lines, never updated. `ledger_balances` holds Σ of an account's lines per bucket (hot platform accounts have
16 buckets, merchant accounts one). `outbox_events.facts` carries what the ledger books from an event beyond the
merchant-facing body.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("facts", sa.Text(), nullable=True))
    op.create_table(
        "ledger_journals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("source_type", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=80), nullable=False),
        sa.Column("leg", sa.String(length=32), nullable=False),
        sa.Column("lines_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("mch_no", sa.String(length=32), nullable=True),
        sa.Column("order_no", sa.String(length=32), nullable=True),
        sa.Column("refund_no", sa.String(length=32), nullable=True),
        sa.Column("payout_no", sa.String(length=32), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_journals")),
        sa.UniqueConstraint("seq", name=op.f("uq_ledger_journals_seq")),
        sa.UniqueConstraint("source_type", "source_id", "leg", name="uq_ledger_journals_source"),
    )
    op.create_index("ix_ledger_journals_mch_seq", "ledger_journals", ["mch_no", "seq"])
    op.create_index("ix_ledger_journals_order_no", "ledger_journals", ["order_no"])
    op.create_index("ix_ledger_journals_business_date", "ledger_journals", ["business_date"])
    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("journal_id", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_lines")),
    )
    op.create_index("ix_ledger_lines_journal_id", "ledger_lines", ["journal_id"])
    op.create_index("ix_ledger_lines_account_date", "ledger_lines", ["account", "business_date", "id"])
    op.create_table(
        "ledger_balances",
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("bucket", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_type", sa.String(length=32), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account", "bucket", name=op.f("pk_ledger_balances")),
    )
    op.create_index("ix_ledger_balances_type", "ledger_balances", ["account_type"])


def downgrade() -> None:
    op.drop_index("ix_ledger_balances_type", table_name="ledger_balances")
    op.drop_table("ledger_balances")
    op.drop_index("ix_ledger_lines_account_date", table_name="ledger_lines")
    op.drop_index("ix_ledger_lines_journal_id", table_name="ledger_lines")
    op.drop_table("ledger_lines")
    op.drop_index("ix_ledger_journals_business_date", table_name="ledger_journals")
    op.drop_index("ix_ledger_journals_order_no", table_name="ledger_journals")
    op.drop_index("ix_ledger_journals_mch_seq", table_name="ledger_journals")
    op.drop_table("ledger_journals")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_column("facts")
