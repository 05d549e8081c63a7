"""outbox positions: commit-order numbering for the merchant events feed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 04:10:00.000000

Written by hand. `outbox_events.position` is assigned after commit, in commit order (`tomato.core.positions`);
`GET /v1/events` pages by it instead of `seq`, which is taken before commit. Existing rows are numbered here in
`seq` order; `ix_outbox_app_seq` served only the old feed and gives way to `ix_outbox_app_position`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE outbox_events SET position = numbered.n"
        " FROM (SELECT id, row_number() OVER (ORDER BY seq) AS n FROM outbox_events) AS numbered"
        " WHERE outbox_events.id = numbered.id"
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_app_seq")
        batch_op.create_index("ix_outbox_position", ["position"], unique=True)
        batch_op.create_index("ix_outbox_app_position", ["app_id", "position"], unique=False)
        batch_op.create_index(
            "ix_outbox_unpositioned",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("position IS NULL"),
            sqlite_where=sa.text("position IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unpositioned")
        batch_op.drop_index("ix_outbox_app_position")
        batch_op.drop_index("ix_outbox_position")
        batch_op.create_index("ix_outbox_app_seq", ["app_id", "seq"], unique=False)
        batch_op.drop_column("position")
