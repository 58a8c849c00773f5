"""The SQL store: every query the service layer needs, set-based, on one connection and transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update

from couponsvc.adapters import schema as t
from couponsvc.domain.model import Allocation, CouponClass, CouponRef, CouponState


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

    def keys_already_sent(self, class_id: int, keys: Sequence[str]) -> set[str]:
        """Which of these address keys already hold a coupon of the class (dispatched or redeemed)."""
        if not keys:
            return set()
        c = t.coupons.c
        return set(
            self.conn.scalars(
                select(c.send_to_email_key).where(
                    c.class_id == class_id, c.send_to_email_key.in_(bindparam("keys", expanding=True))
                ),
                {"keys": list(keys)},
            )
        )

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
        c = t.coupons.c

        def query(n: int, exclude: list[int]) -> Any:
            q = (
                select(c.id, c.code)
                .where(
                    c.class_id == class_id,
                    c.state == CouponState.AVAILABLE.value,
                    or_(c.expires_at.is_(None), c.expires_at > now),
                )
                .order_by(c.id)
                .limit(n)
            )
            if exclude:
                q = q.where(c.id.not_in(exclude))
            return q

        if not self._pg:
            return [CouponRef(r.id, r.code) for r in self.conn.execute(query(limit, []))]
        got = [CouponRef(r.id, r.code) for r in self.conn.execute(query(limit, []).with_for_update(skip_locked=True))]
        if len(got) < limit:
            more = self.conn.execute(query(limit - len(got), [g.id for g in got]).with_for_update())
            got += [CouponRef(r.id, r.code) for r in more]
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
        if not allocations:
            return
        c = t.coupons.c
        stmt = (
            update(t.coupons)
            .where(c.id == bindparam("b_id"), c.state == CouponState.AVAILABLE.value)
            .values(
                state=CouponState.DISPATCHED.value,
                send_to_email=bindparam("b_email"),
                send_to_email_key=bindparam("b_key"),
                send_to_date=now,
                dispatch_id=dispatch_id,
            )
        )
        result = self.conn.execute(
            stmt,
            [{"b_id": a.coupon.id, "b_email": a.candidate.address, "b_key": a.candidate.key} for a in allocations],
        )
        if result.rowcount != len(allocations):
            raise ConcurrentUpdate(f"{len(allocations) - result.rowcount} coupons were taken by another call")

    def enqueue(self, entries: Iterable[OutboxEntry], dispatch_id: int, now: datetime,
                holder: str | None = None, lease_until: datetime | None = None) -> None:
        """Queue the messages; with a ``holder`` they start leased to it (the call that delivers them)."""
        status = "queued" if holder is None else "sending"
        rows = [
            {"coupon_id": e.coupon_id, "dispatch_id": dispatch_id, "recipient": e.recipient,
             "message_id": e.message_id, "status": status, "attempts": 0, "lease_owner": holder,
             "lease_until": lease_until, "created_at": now, "queued_at": now, "next_attempt_at": now}
            for e in entries
        ]
        if rows:
            self.conn.execute(insert(t.outbox), rows)

    # --- inventory (used by tests, the CLI and benchmarks) ----------------------------------
    def count_by_state(self, class_id: int) -> dict[str, int]:
        c = t.coupons.c
        rows = self.conn.execute(
            select(c.state, func.count()).where(c.class_id == class_id).group_by(c.state)
        )
        return {state: int(n) for state, n in rows}
