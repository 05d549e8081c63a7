"""admin audit: a public id per admin token, and the audit trail of admin actions

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 10:00:00.000000

Written by hand. `admin_tokens.token_id` (tok_ + 16 hex digits) names a token in lists, audit rows and revocation
without showing its secret or hash; existing tokens get a random one here. `admin_audit` holds one row per admin
action that succeeded, newest first by its snowflake id.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("admin_tokens", sa.Column("token_id", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    hashes = conn.execute(sa.text("SELECT token_hash FROM admin_tokens")).scalars().all()
    for token_hash in hashes:
        conn.execute(
            sa.text("UPDATE admin_tokens SET token_id = :token_id WHERE token_hash = :token_hash"),
            {"token_id": f"tok_{secrets.token_hex(8)}", "token_hash": token_hash},
        )
    with op.batch_alter_table("admin_tokens") as batch:
        batch.alter_column("token_id", existing_type=sa.String(length=32), nullable=False)
    op.create_index(op.f("ix_admin_tokens_token_id"), "admin_tokens", ["token_id"], unique=True)

    op.create_table(
        "admin_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("actor_token_id", sa.String(length=32), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    op.create_index(op.f("ix_admin_audit_at"), "admin_audit", ["at"])
    op.create_index(op.f("ix_admin_audit_actor_token_id"), "admin_audit", ["actor_token_id"])
    op.create_index(op.f("ix_admin_audit_action"), "admin_audit", ["action"])
    op.create_index(op.f("ix_admin_audit_target"), "admin_audit", ["target"])


def downgrade() -> None:
    op.drop_index(op.f("ix_admin_audit_target"), table_name="admin_audit")
    op.drop_index(op.f("ix_admin_audit_action"), table_name="admin_audit")
    op.drop_index(op.f("ix_admin_audit_actor_token_id"), table_name="admin_audit")
    op.drop_index(op.f("ix_admin_audit_at"), table_name="admin_audit")
    op.drop_table("admin_audit")
    op.drop_index(op.f("ix_admin_tokens_token_id"), table_name="admin_tokens")
    with op.batch_alter_table("admin_tokens") as batch:
        batch.drop_column("token_id")
