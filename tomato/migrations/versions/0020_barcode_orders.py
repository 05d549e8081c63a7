"""barcode orders: the payer's code on the order

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 13:10:00.000000

Written by hand. A BARCODE order keeps the code the till scanned (`auth_code`), so a repeated create that resumes a
CREATED order sends the same code again; the code is short-lived and single-use at the channel.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pay_orders", sa.Column("auth_code", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("pay_orders") as batch:
        batch.drop_column("auth_code")
