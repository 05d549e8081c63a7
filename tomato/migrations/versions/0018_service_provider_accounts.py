"""service-provider accounts: account mode, merchants' identities under a provider, the order's funds mode

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 13:00:00.000000

Written by hand. `channel_accounts.mode` says whether an account pays for itself (`direct`) or as a service
provider for sub-merchants (`isv` on Alipay, `partner` on WeChat Pay); `channel_identities` holds each merchant's
identity under such an account (one ACTIVE per account and merchant: a partial unique index); and
`pay_orders.service_provider` records, in the PAID snapshot, that the channel settled the money straight to the
merchant, so the ledger books it as a shadow entry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("channel_accounts", sa.Column("mode", sa.String(16), nullable=False, server_default="direct"))
    op.add_column("pay_orders", sa.Column("service_provider", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "channel_identities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("channel_account_id", sa.String(32), nullable=False),
        sa.Column("mch_no", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("auth_app_id", sa.String(64)),
        sa.Column("sub_mchid", sa.String(32)),
        sa.Column("sub_appid", sa.String(64)),
        sa.Column("secret_ciphertext", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_channel_identities_account_mch", "channel_identities", ["channel_account_id", "mch_no"])
    op.create_index(
        "uq_channel_identities_active",
        "channel_identities",
        ["channel_account_id", "mch_no"],
        unique=True,
        postgresql_where=sa.text("status = 'ACTIVE'"),
        sqlite_where=sa.text("status = 'ACTIVE'"),
    )


def downgrade() -> None:
    op.drop_index("uq_channel_identities_active", table_name="channel_identities")
    op.drop_index("ix_channel_identities_account_mch", table_name="channel_identities")
    op.drop_table("channel_identities")
    with op.batch_alter_table("pay_orders") as batch:
        batch.drop_column("service_provider")
    with op.batch_alter_table("channel_accounts") as batch:
        batch.drop_column("mode")
