"""throttling: the sliding-window log of admitted calls (and of 3006 answers) shared by every server

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# PostgreSQL: the whole admission in one round trip (see adapters/throttle_store.py for the rules).
# Buckets are locked in key order (no deadlocks: the bucket row's lock), by the database's own clock (one
# clock for every server).  Returns '0' (admitted, and written to every counted bucket) or
# '<1-based index>:<seconds until a slot frees>' (nothing written).
ADMIT_FUNCTION = """
CREATE OR REPLACE FUNCTION couponsvc_throttle_admit(
    buckets text[], calls integer[], windows double precision[], counted boolean[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    now_s double precision := extract(epoch FROM clock_timestamp());
    n integer := array_length(buckets, 1);
    counts integer[] := array_fill(0, ARRAY[n]);
    i integer;
    dropped integer;
    c integer;
    nth double precision;
    worst integer := 0;
    worst_wait double precision := 0;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR i IN SELECT j FROM generate_subscripts(buckets, 1) j ORDER BY buckets[j] LOOP
        INSERT INTO throttle_buckets AS t (bucket, inside) VALUES (buckets[i], 0)
            ON CONFLICT (bucket) DO UPDATE SET inside = t.inside RETURNING t.inside INTO c;
        counts[i] := c;
    END LOOP;
    FOR i IN 1 .. n LOOP
        DELETE FROM throttle_events WHERE bucket = buckets[i] AND at <= now_s - windows[i];
        GET DIAGNOSTICS dropped = ROW_COUNT;
        counts[i] := greatest(counts[i] - dropped, 0);
        IF counts[i] >= calls[i] THEN
            -- full by the counter: count exactly (this also repairs a counter that drifted)
            SELECT count(*) INTO c FROM throttle_events WHERE bucket = buckets[i];
            counts[i] := c;
        END IF;
        IF counts[i] >= calls[i] THEN
            SELECT at INTO nth FROM throttle_events WHERE bucket = buckets[i]
                ORDER BY at OFFSET counts[i] - calls[i] LIMIT 1;
            IF greatest(nth + windows[i] - now_s, 0.001) > worst_wait THEN
                worst := i;
                worst_wait := greatest(nth + windows[i] - now_s, 0.001);
            END IF;
        END IF;
    END LOOP;
    IF worst = 0 THEN
        INSERT INTO throttle_events (bucket, at)
            SELECT buckets[j], now_s FROM generate_subscripts(buckets, 1) j WHERE counted[j];
        FOR i IN 1 .. n LOOP
            IF counted[i] THEN
                counts[i] := counts[i] + 1;
            END IF;
        END LOOP;
    END IF;
    UPDATE throttle_buckets AS t SET inside = v.c
        FROM unnest(buckets, counts) AS v(b, c) WHERE t.bucket = v.b;
    IF worst > 0 THEN
        RETURN worst || ':' || worst_wait;
    END IF;
    RETURN '0';
END
$$
"""

RECORD_FUNCTION = """
CREATE OR REPLACE FUNCTION couponsvc_throttle_record(b text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO throttle_buckets AS t (bucket, inside) VALUES (b, 1)
        ON CONFLICT (bucket) DO UPDATE SET inside = t.inside + 1;
    INSERT INTO throttle_events (bucket, at) VALUES (b, extract(epoch FROM clock_timestamp()));
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "throttle_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_throttle_events_bucket_at", "throttle_events", ["bucket", "at"])
    op.create_table(
        "throttle_buckets",
        sa.Column("bucket", sa.String(length=100), nullable=False),
        sa.Column("inside", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ADMIT_FUNCTION)
        op.execute(RECORD_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS couponsvc_throttle_admit(text[], integer[], double precision[], boolean[])")
        op.execute("DROP FUNCTION IF EXISTS couponsvc_throttle_record(text)")
    op.drop_table("throttle_buckets")
    op.drop_index("ix_throttle_events_bucket_at", table_name="throttle_events")
    op.drop_table("throttle_events")
