"""The SQL store: every query the service layer needs, set-based, on one connection and transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from couponsvc.adapters import schema as t
from couponsvc.domain.model import Allocation, CouponClass, CouponRef


@dataclass(frozen=True, slots=True)
class AccessTokenRow:
    user_id: int
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    coupon_id: int
    recipient: str
    message_id: str


class ConcurrentUpdate(Exception):
    """Rows changed under us between read and write; the caller retries the transaction."""


class SqlStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # --- authentication -------------------------------------------------------------------
    def developer_token_enabled(self, token_hash: str) -> bool | None:
        row = self.conn.execute(
            select(t.developer_tokens.c.enabled).where(t.developer_tokens.c.token_hash == token_hash)
        ).first()
        return None if row is None else bool(row.enabled)

    def access_token(self, token_hash: str) -> AccessTokenRow | None:
        c = t.access_tokens.c
        row = self.conn.execute(
            select(c.user_id, c.expires_at, c.revoked_at).where(c.token_hash == token_hash)
        ).first()
        return None if row is None else AccessTokenRow(row.user_id, row.expires_at, row.revoked_at)

    def user_customer_ids(self, user_id: int) -> frozenset[int]:
        c = t.user_customers.c
        return frozenset(self.conn.scalars(select(c.customer_id).where(c.user_id == user_id)))

    # --- dispatch ---------------------------------------------------------------------------
    def coupon_class(self, customer_id: int, name_key: str) -> CouponClass | None:
        c = t.coupon_classes.c
        row = self.conn.execute(
            select(t.coupon_classes).where(c.customer_id == customer_id, c.name_key == name_key)
        ).first()
        if row is None:
            return None
        return CouponClass(
            id=row.id,
            customer_id=row.customer_id,
            name=row.name,
            coupon_type=row.coupon_type,
            amount=row.amount,
            currency_code=row.currency_code,
            spend_threshold=row.spend_threshold,
            percent_off=row.percent_off,
            active_duration=row.active_duration,
            start_date=row.start_date,
            end_date=row.end_date,
            expiration_date=row.expiration_date,
        )

    # The four statements below are the hot path of DispatchCoupons (1000 rows each).  They bypass
    # SQLAlchemy's per-row parameter processing: one parameter (a JSON array on SQLite, arrays on
    # PostgreSQL) carries all rows to one set-based statement, and timestamps are formatted once per call
    # exactly as SQLAlchemy stores them (``_ts``), so every other query reads what it always read.
    def _ts(self, value: datetime | None) -> Any:
        """A datetime bound as SQLAlchemy binds it for this dialect (SQLite: its fixed-width text form)."""
        if value is None or self._pg:
            return value
        return _sqlite_datetime(value)

    def keys_already_sent(self, class_id: int, keys: Sequence[str]) -> set[str]:
        """Which of these address keys already hold a coupon of the class (dispatched or redeemed)."""
        if not keys:
            return set()
        if self._pg:
            sql = "SELECT send_to_email_key FROM coupons WHERE class_id = %s AND send_to_email_key = ANY(%s::text[])"
            params: Any = (class_id, list(keys))
        else:
            sql = ("SELECT send_to_email_key FROM coupons WHERE class_id = ? "
                   "AND send_to_email_key IN (SELECT value FROM json_each(?))")
            params = (class_id, json.dumps(list(keys)))
        return set(self.conn.exec_driver_sql(sql, params).scalars())

    def oldest_available(self, class_id: int, now: datetime, limit: int) -> list[CouponRef]:
        """Up to ``limit`` available, unexpired coupons of the class, oldest first, locked for this transaction.

        SQLite: the write transaction already excludes every other writer.  PostgreSQL: rows locked by
        concurrent calls are skipped (SKIP LOCKED) so that calls do not queue behind each other.  When that
        finds too few, the rest is read again *waiting* for those locks: a concurrent call may roll back and
        release its coupons, so "none left" (3004) is only ever concluded from an answer that skipped nothing.
        The order is then only approximately oldest-first across concurrent calls.
        """
        if limit <= 0:
            return []
        if not self._pg:
            rows = self.conn.exec_driver_sql(
                "SELECT id, code FROM coupons WHERE class_id = ? AND state = 'available' "
                "AND (expires_at IS NULL OR expires_at > ?) ORDER BY id LIMIT ?",
                (class_id, self._ts(now), limit))
            return [CouponRef(i, code) for i, code in rows]
        base = ("SELECT id, code FROM coupons WHERE class_id = %s AND state = 'available' "
                "AND (expires_at IS NULL OR expires_at > %s)")
        got = [CouponRef(i, code) for i, code in self.conn.exec_driver_sql(
            base + " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (class_id, now, limit))]
        if len(got) < limit:
            more = self.conn.exec_driver_sql(
                base + " AND NOT (id = ANY(%s::bigint[])) ORDER BY id LIMIT %s FOR UPDATE",
                (class_id, now, [g.id for g in got], limit - len(got)))
            got += [CouponRef(i, code) for i, code in more]
        return got

    def create_dispatch(
        self, *, tracking_id: str, customer_id: int, class_id: int, user_id: int | None,
        requested: int, allocated: int, now: datetime, outcomes: str | None = None,
    ) -> int:
        result = self.conn.execute(
            insert(t.dispatches).values(
                tracking_id=tracking_id, customer_id=customer_id, class_id=class_id, user_id=user_id,
                requested=requested, allocated=allocated, created_at=now, outcomes=outcomes,
            ).returning(t.dispatches.c.id)
        )
        return int(result.scalar_one())

    def mark_dispatched(self, allocations: Sequence[Allocation], dispatch_id: int, now: datetime) -> None:
        """One UPDATE for all allocations; only coupons still available change (else ConcurrentUpdate)."""
        if not allocations:
            return
        if self._pg:
            sql = ("UPDATE coupons SET state = 'dispatched', send_to_email = u.email, send_to_email_key = u.key, "
                   "send_to_date = %s, dispatch_id = %s "
                   "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS u(id, email, key) "
                   "WHERE coupons.id = u.id AND coupons.state = 'available'")
            params: Any = (now, dispatch_id, [a.coupon.id for a in allocations],
                           [a.candidate.address for a in allocations], [a.candidate.key for a in allocations])
        else:
            # json_extract (SQLite 3.38's ->> is not everywhere yet); UPDATE ... FROM needs SQLite 3.33
            sql = ("UPDATE coupons SET state = 'dispatched', send_to_email = json_extract(j.value, '$[1]'), "
                   "send_to_email_key = json_extract(j.value, '$[2]'), send_to_date = ?, dispatch_id = ? "
                   "FROM json_each(?) AS j "
                   "WHERE coupons.id = json_extract(j.value, '$[0]') AND coupons.state = 'available'")
            params = (self._ts(now), dispatch_id,
                      json.dumps([(a.coupon.id, a.candidate.address, a.candidate.key) for a in allocations]))
        rowcount = self.conn.exec_driver_sql(sql, params).rowcount
        if rowcount != len(allocations):
            raise ConcurrentUpdate(f"{len(allocations) - rowcount} coupons were taken by another call")

    def enqueue(self, entries: Iterable[OutboxEntry], dispatch_id: int, now: datetime,
                holder: str | None = None, lease_until: datetime | None = None) -> None:
        """Queue the messages; with a ``holder`` they start leased to it (the call that delivers them)."""
        status = "queued" if holder is None else "sending"
        lease = lease_until
        rows = list(entries)
        if not rows:
            return
        columns = ("(coupon_id, dispatch_id, recipient, message_id, status, attempts, lease_owner, lease_until, "
                   "created_at, queued_at, next_attempt_at)")
        if self._pg:
            sql = (f"INSERT INTO outbox {columns} SELECT u.coupon_id, %s, u.recipient, u.message_id, %s, 0, %s, %s, "
                   "%s, %s, %s FROM unnest(%s::bigint[], %s::text[], %s::text[]) WITH ORDINALITY "
                   "AS u(coupon_id, recipient, message_id, n) ORDER BY u.n")
            params: Any = (dispatch_id, status, holder, lease, now, now, now, [e.coupon_id for e in rows],
                           [e.recipient for e in rows], [e.message_id for e in rows])
        else:
            ts = self._ts(now)
            sql = (f"INSERT INTO outbox {columns} SELECT json_extract(j.value, '$[0]'), ?, "
                   "json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), ?, 0, ?, ?, ?, ?, ? "
                   "FROM json_each(?) AS j ORDER BY j.key")
            params = (dispatch_id, status, holder, self._ts(lease), ts, ts, ts,
                      json.dumps([(e.coupon_id, e.recipient, e.message_id) for e in rows]))
        self.conn.exec_driver_sql(sql, params)

    # --- inventory (used by tests, the CLI and benchmarks) ----------------------------------
    def count_by_state(self, class_id: int) -> dict[str, int]:
        c = t.coupons.c
        rows = self.conn.execute(
            select(c.state, func.count()).where(c.class_id == class_id).group_by(c.state)
        )
        return {state: int(n) for state, n in rows}


def _sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME stores (``2030-01-02 03:04:05.000006``), so that comparisons
    and reads of values written here and values written by SQLAlchemy agree."""
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:"
            f"{value.second:02d}.{value.microsecond:06d}")
