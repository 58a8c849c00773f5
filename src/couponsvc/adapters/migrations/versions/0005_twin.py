"""twin control plane: the shared clock, injected faults and the call journal

Revision ID: 0005
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "twin_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("frozen_at", sa.DateTime(), nullable=True),
        sa.Column("offset_seconds", sa.Float(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "twin_faults",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("operation", sa.String(length=100), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("retry_after", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Float(), server_default="1", nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("smtp", sa.String(length=8), nullable=True),
        sa.Column("recipient", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind in ('api', 'mail')", name="ck_twin_faults_kind"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "twin_calls",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("tracking_id", sa.String(length=36), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("operation", sa.String(length=100), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_codes", sa.String(length=1000), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("request_headers", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_twin_calls_tracking_id", "twin_calls", ["tracking_id"])


def downgrade() -> None:
    op.drop_index("ix_twin_calls_tracking_id", table_name="twin_calls")
    op.drop_table("twin_calls")
    op.drop_table("twin_faults")
    op.drop_table("twin_clock")
