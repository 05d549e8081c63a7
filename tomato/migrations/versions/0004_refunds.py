"""refunds, and the refund reservation on pay orders

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 17:40:00.000000

Written by hand. `pay_orders.refund_reserved` is Σ amount of the order's PENDING and SUCCEEDED refunds; it is
only ever moved by guarded UPDATEs, so the database itself keeps refunds within the order amount.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_reserved", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("refund_count", sa.Integer(), server_default="0", nullable=False))

    op.create_table(
        "refunds",
        sa.Column("refund_no", sa.String(length=32), nullable=False),
        sa.Column("order_no", sa.String(length=32), nullable=False),
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("mch_no", sa.String(length=32), nullable=False),
        sa.Column("out_refund_no", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("channel_account_id", sa.String(length=32), nullable=False),
        sa.Column("channel_refund_no", sa.String(length=64), nullable=True),
        sa.Column("failure_reason", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.Column("notify_url", sa.String(length=512), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("query_count", sa.Integer(), nullable=False),
        sa.Column("next_query_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("refund_no", name=op.f("pk_refunds")),
        sa.UniqueConstraint("app_id", "out_refund_no", name="uq_refunds_app_out_refund_no"),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_order_no"), ["order_no"], unique=False)
        batch_op.create_index("ix_refunds_status_next_query", ["status", "next_query_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_status_next_query")
        batch_op.drop_index(batch_op.f("ix_refunds_order_no"))

    op.drop_table("refunds")
    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.drop_column("refund_count")
        batch_op.drop_column("refund_reserved")
