"""throttling: the sliding-window log of admitted calls (and of 3006 answers) shared by every server

Revision ID: 0008
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "throttle_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_throttle_events_bucket_at", "throttle_events", ["bucket", "at"])


def downgrade() -> None:
    op.drop_index("ix_throttle_events_bucket_at", table_name="throttle_events")
    op.drop_table("throttle_events")
