"""ledger booking: the consumer's inbox of handled outbox events and its read cursor

Revision ID: 0011
Revises: 0013
Create Date: 2026-12-06 07:00:00.000000

Written by hand. `ledger_booked_events` dedupes outbox events by id in the transaction that books them;
`ledger_cursors` remembers the outbox position read up to.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_booked_events",
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("journal_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_ledger_booked_events")),
    )
    op.create_index("ix_ledger_booked_events_outcome", "ledger_booked_events", ["outcome", "booked_at"])
    op.create_table(
        "ledger_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_cursors")),
    )


def downgrade() -> None:
    op.drop_table("ledger_cursors")
    op.drop_index("ix_ledger_booked_events_outcome", table_name="ledger_booked_events")
    op.drop_table("ledger_booked_events")
