"""statement_files: raw channel statements kept for audit (reconciliation)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 07:00:00.000000

Written by hand. One row per (channel account, business date, sha256 of the raw file); the file lives in the
content-addressed statement directory (docs/reconciliation.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "statement_files",
        sa.Column("channel_account_id", sa.String(length=32), nullable=False),
        sa.Column("business_date", sa.String(length=10), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel_account_id", "business_date", "sha256", name=op.f("pk_statement_files")),
    )


def downgrade() -> None:
    op.drop_table("statement_files")
