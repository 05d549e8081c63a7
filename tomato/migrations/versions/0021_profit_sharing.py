"""profit sharing: split receivers, splits, and the order's split reservation

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 13:30:00.000000

Written by hand. `pay_orders.profit_sharing` marks an order made to be split; `split_reserved` holds the amount of
its PENDING and SUCCEEDED splits not returned (moved only by guarded UPDATEs, like `refund_reserved`), and
`split_finished` that the rest was released to the merchant.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_orders", sa.Column("profit_sharing", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("pay_orders", sa.Column("split_reserved", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("pay_orders", sa.Column("split_finished", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "split_receivers",
        sa.Column("receiver_id", sa.String(32), primary_key=True),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("mch_no", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("account_type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_split_receivers_mch", "split_receivers", ["mch_no", "channel"])
    op.create_table(
        "splits",
        sa.Column("split_no", sa.String(32), primary_key=True),
        sa.Column("order_no", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("mch_no", sa.String(32), nullable=False),
        sa.Column("out_split_no", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("shares", sa.Text(), nullable=False),
        sa.Column("channel_account_id", sa.String(32), nullable=False),
        sa.Column("returned_amount", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("return_refund_no", sa.String(32)),
        sa.Column("query_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_query_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("app_id", "out_split_no", name="uq_splits_app_out_split_no"),
    )
    op.create_index("ix_splits_order", "splits", ["order_no"])
    op.create_index("ix_splits_status_next_query", "splits", ["status", "next_query_at"])
    op.create_index("ix_splits_return_refund", "splits", ["return_refund_no"])


def downgrade() -> None:
    op.drop_table("splits")
    op.drop_table("split_receivers")
    with op.batch_alter_table("pay_orders") as batch:
        batch.drop_column("split_finished")
        batch.drop_column("split_reserved")
        batch.drop_column("profit_sharing")
