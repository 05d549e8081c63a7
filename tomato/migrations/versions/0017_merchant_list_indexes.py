"""merchant list indexes: orders and refunds by app newest first, events by app and type

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 12:00:00.000000

Written by hand. The merchant read APIs page an app's orders and refunds newest first by the keyset
(created_at, number) and its events by type in feed order; each index leads with the app id, the key every
merchant query carries, so a page is one range scan however many rows the other merchants have.
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_pay_orders_app_created", "pay_orders", ["app_id", "created_at", "order_no"]),
    ("ix_refunds_app_created", "refunds", ["app_id", "created_at", "refund_no"]),
    ("ix_outbox_app_type_position", "outbox_events", ["app_id", "event_type", "position"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
