"""coupon family: account emails, feature-adoption classes, the distributed state, one coupon of a class per account

Revision ID: 0007
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD_STATES = "state in ('available', 'dispatched', 'redeemed')"
NEW_STATES = "state in ('available', 'dispatched', 'distributed', 'redeemed')"


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    with op.batch_alter_table("coupon_classes") as batch:
        batch.add_column(sa.Column("feature_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), server_default="dispatch", nullable=False))
    # SQLite cannot change a CHECK constraint in place: batch mode rebuilds the table with the new ones.
    with op.batch_alter_table("coupons", recreate="auto") as batch:
        batch.add_column(sa.Column("distributed_account_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("distributed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("claim_date", sa.DateTime(), nullable=True))
        batch.create_foreign_key("fk_coupons_distributed_account", "accounts", ["distributed_account_id"], ["id"])
        batch.create_unique_constraint("uq_coupons_class_account", ["class_id", "distributed_account_id"])
        batch.drop_constraint("ck_coupons_state", type_="check")
        batch.create_check_constraint("ck_coupons_state", NEW_STATES)
        batch.create_check_constraint("ck_coupons_distributed_has_account",
                                      "state <> 'distributed' OR distributed_account_id IS NOT NULL")
    op.create_index("ix_coupons_distributed_account", "coupons", ["distributed_account_id"])


def downgrade() -> None:
    op.drop_index("ix_coupons_distributed_account", table_name="coupons")
    with op.batch_alter_table("coupons", recreate="auto") as batch:
        batch.drop_constraint("ck_coupons_distributed_has_account", type_="check")
        batch.drop_constraint("ck_coupons_state", type_="check")
        batch.create_check_constraint("ck_coupons_state", OLD_STATES)
        batch.drop_constraint("uq_coupons_class_account", type_="unique")
        batch.drop_constraint("fk_coupons_distributed_account", type_="foreignkey")
        batch.drop_column("claim_date")
        batch.drop_column("distributed_at")
        batch.drop_column("distributed_account_id")
    with op.batch_alter_table("dispatches") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("coupon_classes") as batch:
        batch.drop_column("feature_id")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("email")
