"""fee plans, channel cost rates, the fee snapshot on orders and refunds

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 07:00:00.000000

Written by hand. `fee_plans` are immutable (a merchant changes plan by being assigned another through
`merchants.fee_plan_id`); `channel_accounts.cost_ppm` is what the channel charges us. A paid order keeps the fee
snapshot it was paid under (`fee_ppm`, `fee`, `refund_fee_rule`, `channel_cost_ppm`, `channel_cost`: NULL for orders
paid before this revision, read as 0) and counts what its refunds gave back (`fee_returned_total`, each refund's
share in `refunds.fee_returned`). The booking facts pay writes from the snapshot go in `outbox_events.facts` (0008).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fee_plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("rates", sa.Text(), nullable=False),
        sa.Column("min_fee", sa.BigInteger(), nullable=False),
        sa.Column("refund_fee", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_plans")),
    )
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_plan_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("channel_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost_ppm", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_ppm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("fee", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("refund_fee_rule", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("channel_cost_ppm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("channel_cost", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("fee_returned_total", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fee_returned", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("fee_returned")
    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.drop_column("fee_returned_total")
        batch_op.drop_column("channel_cost")
        batch_op.drop_column("channel_cost_ppm")
        batch_op.drop_column("refund_fee_rule")
        batch_op.drop_column("fee")
        batch_op.drop_column("fee_ppm")
    with op.batch_alter_table("channel_accounts", schema=None) as batch_op:
        batch_op.drop_column("cost_ppm")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_column("fee_plan_id")
    op.drop_table("fee_plans")
