"""The database schema (SQLAlchemy Core).  Alembic migrations create exactly these tables.

Invariants the database enforces by itself, whatever the code does:
- a coupon code exists once (``uq_coupons_code``);
- one address holds at most one coupon of a class (``uq_coupons_class_email``: the address key is
  NULL while a coupon is available, and NULLs do not collide);
- one outbox message per coupon and dispatch (``uq_outbox_coupon_dispatch``);
- one account holds at most one distributed coupon of a class (``uq_coupons_class_account``: NULL while
  the coupon was not distributed), and a ``distributed`` coupon always names its account.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)

metadata = MetaData()

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (autoincrementing); PostgreSQL gets bigint.
Id = BigInteger().with_variant(Integer(), "sqlite")

customers = Table(
    "customers",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(255), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False, index=True),
    Column("number", String(100), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("email", String(254)),  # where DistributeCoupons notifications go (optional)
)

coupon_classes = Table(
    "coupon_classes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("name_key", String(255), nullable=False),
    Column("coupon_type", String(100)),
    Column("amount", Float),
    Column("currency_code", String(3)),
    Column("spend_threshold", Float),
    Column("percent_off", Float),
    Column("active_duration", Integer),
    Column("start_date", DateTime),
    Column("end_date", DateTime),
    Column("expiration_date", DateTime),
    Column("template", Text),
    Column("low_stock_threshold", Integer),  # console warning below this many available (NULL: 10 % of the pool)
    Column("feature_id", Integer),  # a feature-adoption (FAC) class: DistributeCoupons leaves coupons `distributed`
    UniqueConstraint("customer_id", "name_key", name="uq_coupon_classes_customer_name"),
)

coupons = Table(
    "coupons",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # load order
    Column("class_id", Id, ForeignKey("coupon_classes.id"), nullable=False),
    Column("code", String(100), nullable=False),
    Column("state", String(16), nullable=False, server_default="available"),
    Column("origin", String(16), nullable=False, server_default="import"),
    Column("expires_at", DateTime),
    Column("send_to_email", String(254)),
    Column("send_to_email_key", String(254)),
    Column("send_to_date", DateTime),
    Column("dispatch_id", Id, ForeignKey("dispatches.id")),
    Column("redeemed_account_id", BigInteger, ForeignKey("accounts.id")),
    Column("redemption_date", DateTime),
    Column("usable_until", DateTime),
    Column("balance", Float),
    Column("created_at", DateTime, nullable=False),
    Column("distributed_account_id", BigInteger, ForeignKey("accounts.id")),  # DistributeCoupons' account
    Column("distributed_at", DateTime),
    Column("claim_date", DateTime),  # ClaimFeatureAdoptionCoupons
    UniqueConstraint("code", name="uq_coupons_code"),
    UniqueConstraint("class_id", "send_to_email_key", name="uq_coupons_class_email"),
    UniqueConstraint("class_id", "distributed_account_id", name="uq_coupons_class_account"),
    CheckConstraint("state in ('available', 'dispatched', 'distributed', 'redeemed')", name="ck_coupons_state"),
    CheckConstraint("state <> 'distributed' OR distributed_account_id IS NOT NULL",
                    name="ck_coupons_distributed_has_account"),
    CheckConstraint(
        "state <> 'available' OR (send_to_email_key IS NULL AND redemption_date IS NULL)",
        name="ck_coupons_available_is_unsent",
    ),
)
Index("ix_coupons_class_state_id", coupons.c.class_id, coupons.c.state, coupons.c.id)
Index("ix_coupons_class_id", coupons.c.class_id, coupons.c.id)  # a class's coupons in load order (search pages)
Index("ix_coupons_email_key", coupons.c.send_to_email_key)  # SearchCoupons by SendToEmail, across classes
Index("ix_coupons_redeemed_account", coupons.c.redeemed_account_id)  # GetCouponInfo
# console: inventory counts (expired = available past the code's own expiry) and redemptions per day
Index("ix_coupons_class_state_expiry", coupons.c.class_id, coupons.c.state, coupons.c.expires_at)
Index("ix_coupons_redemption_date", coupons.c.redemption_date, coupons.c.class_id)  # covering: per day
Index("ix_coupons_distributed_account", coupons.c.distributed_account_id)  # feature-adoption eligibility

dispatches = Table(
    "dispatches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tracking_id", String(36), nullable=False),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), nullable=False),
    Column("class_id", Id, ForeignKey("coupon_classes.id"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id")),
    Column("requested", Integer, nullable=False),
    Column("allocated", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("outcomes", Text),  # the call's PartialErrors as JSON (3005s added by delivery); NULL: none
    # 'dispatch' (DispatchCoupons) or 'distribution' (DistributeCoupons: its notifications use the outbox too)
    Column("kind", String(16), nullable=False, server_default="dispatch"),
)
Index("ix_dispatches_tracking_id", dispatches.c.tracking_id)
Index("ix_dispatches_created_at", dispatches.c.created_at, dispatches.c.class_id, dispatches.c.allocated)  # covering

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("coupon_id", Id, ForeignKey("coupons.id"), nullable=False),
    Column("dispatch_id", Id, ForeignKey("dispatches.id"), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime, nullable=False),
    Column("queued_at", DateTime, nullable=False),  # start of the give-up lifetime (reset by `mail retry`)
    Column("next_attempt_at", DateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime),
    Column("sent_at", DateTime),
    Column("last_error", Text),
    UniqueConstraint("coupon_id", "dispatch_id", name="uq_outbox_coupon_dispatch"),
    UniqueConstraint("message_id", name="uq_outbox_message_id"),
    CheckConstraint("status in ('queued', 'sending', 'sent', 'failed')", name="ck_outbox_status"),
)
Index("ix_outbox_status_next", outbox.c.status, outbox.c.next_attempt_at)
Index("ix_outbox_status_id", outbox.c.status, outbox.c.id)  # console: the outbox by status, newest first
Index("ix_outbox_dispatch_id", outbox.c.dispatch_id)  # console: one call's addresses
Index("ix_outbox_recipient", outbox.c.recipient)  # console: ?to=

developer_tokens = Table(
    "developer_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", DateTime, nullable=False),
    Column("prefix", String(16)),  # the secret's first characters, shown at creation (NULL for seeded tokens)
    UniqueConstraint("token_hash", name="uq_developer_tokens_hash"),
)
Index("ix_developer_tokens_name", developer_tokens.c.name)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    UniqueConstraint("name", name="uq_users_name"),
)

user_customers = Table(
    "user_customers",
    metadata,
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("customer_id", BigInteger, ForeignKey("customers.id"), primary_key=True),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("prefix", String(16)),  # the secret's first characters, shown at issue (NULL for seeded tokens)
    UniqueConstraint("token_hash", name="uq_access_tokens_hash"),
)
Index("ix_access_tokens_user_id", access_tokens.c.user_id)
Index("ix_access_tokens_prefix", access_tokens.c.prefix)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", Id, ForeignKey("outbox.id"), nullable=False, index=True),
    Column("attempted_at", DateTime, nullable=False),
    Column("worker", String(100), nullable=False),
    Column("outcome", String(16), nullable=False),  # sent | temporary | relay | permanent | gave_up | requeued
    Column("smtp_code", Integer),
    Column("detail", Text),
)

# --- operator console ------------------------------------------------------------------------------
operators = Table(
    "operators",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("name", name="uq_operators_name"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the cookie value: a stolen table opens nothing
    Column("operator_id", Id, ForeignKey("operators.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

signin_failures = Table(
    "signin_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False),  # "name:<operator name>" or "client:<address>"
    Column("at", DateTime, nullable=False),
)
Index("ix_signin_failures_key_at", signin_failures.c.key, signin_failures.c.at)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("actor", String(300), nullable=False),  # "operator:NAME" (console) or "cli:USER"
    Column("action", String(64), nullable=False),
    Column("object", String(500), nullable=False),
    Column("detail", Text),
)

# Throttling (COUPONSVC_THROTTLE_*): one row per admitted call (or 3006 answer) per bucket, e.g. ``user:42``;
# ``at`` is Unix time in seconds.  Rows older than their window are deleted when the bucket is next checked.
throttle_events = Table(
    "throttle_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bucket", String(100), nullable=False),
    Column("at", Float, nullable=False),
)
Index("ix_throttle_events_bucket_at", throttle_events.c.bucket, throttle_events.c.at)
# Per bucket, how many of its rows are inside the window: the row's lock serialises the bucket's callers,
# and the count spares scanning the window on every call (it is recounted whenever it says "full").
throttle_buckets = Table(
    "throttle_buckets",
    metadata,
    Column("bucket", String(100), primary_key=True),
    Column("inside", Integer, nullable=False),
)

# The mail relay as the delivery processes last saw it (one row per relay, written on a change of state or
# at most about once a second per process): what every server's /health reports.
relay_state = Table(
    "relay_state",
    metadata,
    Column("relay", String(255), primary_key=True),  # smtp://host:port or maildir://PATH, never credentials
    Column("state", String(16), nullable=False),  # ok | failing
    Column("last_code", Integer),
    Column("last_reply", Text),
    Column("since", DateTime, nullable=False),  # when the relay entered this state
    Column("updated_at", DateTime, nullable=False),  # when this row was last written
    CheckConstraint("state in ('ok', 'failing')", name="ck_relay_state_state"),
)
