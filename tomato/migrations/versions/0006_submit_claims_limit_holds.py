"""submission claims on pay orders, and daily-limit holds on channel accounts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 04:30:00.000000

Written by hand. `pay_orders.submit_claim`/`submit_claim_until`: the lease one submission of a CREATED order takes
(a guarded UPDATE), so a retried create or a second cashier opening never sends the order to a channel twice at
once. `channel_limit_holds`: the amount each attempt holds on its account's business-day usage, released once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submit_claim", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("submit_claim_until", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "channel_limit_holds",
        sa.Column("hold_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hold_id", name=op.f("pk_channel_limit_holds")),
    )


def downgrade() -> None:
    op.drop_table("channel_limit_holds")
    with op.batch_alter_table("pay_orders", schema=None) as batch_op:
        batch_op.drop_column("submit_claim_until")
        batch_op.drop_column("submit_claim")
