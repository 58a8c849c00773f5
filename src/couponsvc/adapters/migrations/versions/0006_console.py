"""operator console: operators, sessions, sign-in failures, audit log, dispatch outcomes, token prefixes,
low-stock thresholds, and the indexes the console's lists and counts walk

Revision ID: 0006
Revises: 0008
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("coupon_classes") as batch:
        batch.add_column(sa.Column("low_stock_threshold", sa.Integer(), nullable=True))
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("outcomes", sa.Text(), nullable=True))
    with op.batch_alter_table("access_tokens") as batch:
        batch.add_column(sa.Column("prefix", sa.String(length=16), nullable=True))
    with op.batch_alter_table("developer_tokens") as batch:
        batch.add_column(sa.Column("prefix", sa.String(length=16), nullable=True))
    op.create_index("ix_coupons_class_state_expiry", "coupons", ["class_id", "state", "expires_at"])
    op.create_index("ix_coupons_redemption_date", "coupons", ["redemption_date", "class_id"])
    op.create_index("ix_dispatches_tracking_id", "dispatches", ["tracking_id"])
    op.create_index("ix_dispatches_created_at", "dispatches", ["created_at", "class_id", "allocated"])
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])
    op.create_index("ix_outbox_dispatch_id", "outbox", ["dispatch_id"])
    op.create_index("ix_outbox_recipient", "outbox", ["recipient"])
    op.create_index("ix_access_tokens_user_id", "access_tokens", ["user_id"])
    op.create_index("ix_access_tokens_prefix", "access_tokens", ["prefix"])
    op.create_index("ix_developer_tokens_name", "developer_tokens", ["name"])
    op.create_table(
        "operators",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_operators_name"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("operator_id", Id, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_sessions_operator_id", "console_sessions", ["operator_id"])
    op.create_table(
        "signin_failures",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signin_failures_key_at", "signin_failures", ["key", "at"])
    op.create_table(
        "audit_log",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object", sa.String(length=500), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_index("ix_signin_failures_key_at", table_name="signin_failures")
    op.drop_table("signin_failures")
    op.drop_index("ix_console_sessions_operator_id", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("operators")
    for name, table in [("ix_developer_tokens_name", "developer_tokens"), ("ix_access_tokens_prefix", "access_tokens"),
                        ("ix_access_tokens_user_id", "access_tokens"), ("ix_outbox_recipient", "outbox"),
                        ("ix_outbox_dispatch_id", "outbox"), ("ix_outbox_status_id", "outbox"),
                        ("ix_dispatches_created_at", "dispatches"), ("ix_dispatches_tracking_id", "dispatches"),
                        ("ix_coupons_redemption_date", "coupons"), ("ix_coupons_class_state_expiry", "coupons")]:
        op.drop_index(name, table_name=table)
    for table, column in [("developer_tokens", "prefix"), ("access_tokens", "prefix"), ("dispatches", "outcomes"),
                          ("coupon_classes", "low_stock_threshold")]:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
