"""payouts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 07:00:00.000000

Written by hand. A payout's amount is held in the ledger (merchant_available → payout_in_transit) in the
transaction that inserts its row; `status` only leaves PENDING by a compare-and-set, with the ledger's post or void
in the same transaction. `account_number` is stored as given and never shown or logged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("payout_no", sa.String(length=32), nullable=False),
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("mch_no", sa.String(length=32), nullable=False),
        sa.Column("out_payout_no", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("account_name", sa.String(length=64), nullable=False),
        sa.Column("account_number", sa.String(length=32), nullable=False),
        sa.Column("bank_name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.String(length=256), nullable=True),
        sa.Column("channel_account_id", sa.String(length=32), nullable=False),
        sa.Column("channel_trade_no", sa.String(length=64), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("query_count", sa.Integer(), nullable=False),
        sa.Column("next_query_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("payout_no", name=op.f("pk_payouts")),
        sa.UniqueConstraint("app_id", "out_payout_no", name="uq_payouts_app_out_payout_no"),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_mch_no"), ["mch_no"], unique=False)
        batch_op.create_index("ix_payouts_status_next_query", ["status", "next_query_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index("ix_payouts_status_next_query")
        batch_op.drop_index(batch_op.f("ix_payouts_mch_no"))
    op.drop_table("payouts")
