"""ledger booking: the consumer's inbox of handled outbox events and its read cursor

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 07:00:00.000000

Written by hand. `ledger_booked_events` dedupes outbox events by id in the transaction that books them;
`ledger_cursors` remembers the outbox position read up to. On PostgreSQL `ledger_balances` gets fillfactor 50 so the
in-place balance updates of every posting stay HOT.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
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
    if op.get_bind().dialect.name == "postgresql":
        # every posting updates its accounts' balance rows in place: room on the page keeps those updates HOT (no
        # index entries, pruned without vacuum), which matters for the hot accounts' buckets
        op.execute("ALTER TABLE ledger_balances SET (fillfactor = 50)")
    op.create_table(
        "ledger_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_cursors")),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ledger_balances RESET (fillfactor)")
    op.drop_table("ledger_cursors")
    op.drop_index("ix_ledger_booked_events_outcome", table_name="ledger_booked_events")
    op.drop_table("ledger_booked_events")
