"""provider balances: the memo of what channels paid service-provider merchants directly

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 13:00:00.000000

Written by hand. One row per merchant that has had a service-provider payment (issue 21): `collected` (fen the
channel settled straight to the merchant, net of refunds) and `payments` (how many). Moved by the booking of the
shadow journal in the same unit of work, so `GET /v1/balance` reads it in one primary-key lookup.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_balances",
        sa.Column("mch_no", sa.String(length=32), nullable=False),
        sa.Column("collected", sa.BigInteger(), nullable=False),
        sa.Column("payments", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mch_no", name=op.f("pk_provider_balances")),
    )


def downgrade() -> None:
    op.drop_table("provider_balances")
