"""portal list indexes: a merchant's orders, refunds and payouts newest first across its apps

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 16:00:00.000000

Written by hand. The merchant portal lists every order, refund and payout of a merchant (all its apps) newest
first by the keyset (created_at, number); each index leads with the merchant's number, the key every portal query
carries, so a page is one range scan however many rows the other merchants have.
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_pay_orders_mch_created", "pay_orders", ["mch_no", "created_at", "order_no"]),
    ("ix_refunds_mch_created", "refunds", ["mch_no", "created_at", "refund_no"]),
    ("ix_payouts_mch_created", "payouts", ["mch_no", "created_at", "payout_no"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
