"""one anomaly per (order, kind, trade) with its channel account and trade; the expiry job's close backoff

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 04:30:00.000000

Written by hand. Anomalies recorded before this revision keep a key of their own (`ref` = 'legacy:' + id), so
duplicates the old code wrote stay as they are and never block a new row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("close_failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("next_close_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("pay_anomalies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("channel_account_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("channel_trade_no", sa.String(length=64), nullable=True))
    op.execute("UPDATE pay_anomalies SET ref = 'legacy:' || id")
    with op.batch_alter_table("pay_anomalies", schema=None) as batch_op:
        batch_op.alter_column("ref", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_pay_anomalies_order_kind_ref", ["order_no", "kind", "ref"])


def downgrade() -> None:
    with op.batch_alter_table("pay_anomalies", schema=None) as batch_op:
        batch_op.drop_constraint("uq_pay_anomalies_order_kind_ref", type_="unique")
        batch_op.drop_column("channel_trade_no")
        batch_op.drop_column("channel_account_id")
        batch_op.drop_column("ref")

    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.drop_column("next_close_at")
        batch_op.drop_column("close_failures")
