"""merchant portal: merchant users, and the merchant an audit record belongs to

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 15:30:00.000000

Written by hand. `merchant_users` are the people who sign in at `/portal`; `admin_audit.mch_no` names the merchant
a portal action was taken for, so a merchant's owner can read the merchant's own trail.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchant_users",
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("mch_no", sa.String(32), nullable=False),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text()),
        sa.Column("totp_secret_ciphertext", sa.Text()),
        sa.Column("totp_enabled", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("invite_token_hash", sa.String(64), unique=True),
        sa.Column("invite_expires_at", sa.DateTime(timezone=True)),
        sa.Column("invited_by", sa.String(160), nullable=False),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_merchant_users_mch", "merchant_users", ["mch_no", "created_at"])
    op.add_column("admin_audit", sa.Column("mch_no", sa.String(32)))
    op.create_index("ix_admin_audit_mch_no", "admin_audit", ["mch_no", "id"])


def downgrade() -> None:
    op.drop_index("ix_admin_audit_mch_no", table_name="admin_audit")
    op.drop_column("admin_audit", "mch_no")
    op.drop_index("ix_merchant_users_mch", table_name="merchant_users")
    op.drop_table("merchant_users")
