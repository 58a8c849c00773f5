"""search indexes: coupons by class in load order, by address, by redeeming account

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_coupons_class_id", "coupons", ["class_id", "id"])
    op.create_index("ix_coupons_email_key", "coupons", ["send_to_email_key"])
    op.create_index("ix_coupons_redeemed_account", "coupons", ["redeemed_account_id"])


def downgrade() -> None:
    op.drop_index("ix_coupons_redeemed_account", table_name="coupons")
    op.drop_index("ix_coupons_email_key", table_name="coupons")
    op.drop_index("ix_coupons_class_id", table_name="coupons")
