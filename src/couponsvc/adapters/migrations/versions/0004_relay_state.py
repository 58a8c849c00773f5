"""relay state: the mail relay as the delivery processes last saw it (for /health)

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_state",
        sa.Column("relay", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("state in ('ok', 'failing')", name="ck_relay_state_state"),
        sa.PrimaryKeyConstraint("relay"),
    )


def downgrade() -> None:
    op.drop_table("relay_state")
