"""lookup indexes: orders and refunds found by any of their numbers, and orders by creation time

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 11:00:00.000000

Written by hand. The console searches orders and refunds by every number they carry (ours, the merchant's, the
channel's) across merchants, and charts the last 24 hours of orders by creation time; without these each was a full
scan of the table.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_pay_orders_created_at", "pay_orders", ["created_at"]),
    ("ix_pay_orders_out_trade_no", "pay_orders", ["out_trade_no"]),
    ("ix_pay_orders_channel_trade_no", "pay_orders", ["channel_trade_no"]),
    ("ix_refunds_out_refund_no", "refunds", ["out_refund_no"]),
    ("ix_refunds_channel_refund_no", "refunds", ["channel_refund_no"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
