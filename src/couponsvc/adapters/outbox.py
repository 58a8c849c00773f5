"""The outbox in SQL: claiming messages under a lease, recording outcomes, returning refused coupons.

Every statement is set-based (one round trip per batch, not per message).  A worker only changes a
message it still holds (``lease_owner``); a worker that died loses its lease after ``lease_until``
and another worker picks its messages up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from couponsvc.adapters import schema as t
from couponsvc.adapters.store import _sqlite_datetime
from couponsvc.domain.delivery import DeliveryResult, Outcome, RetryPolicy


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    outbox_id: int
    coupon_id: int
    dispatch_id: int
    recipient: str
    message_id: str
    attempts: int
    queued_at: datetime
    created_at: datetime
    code: str
    class_name: str
    amount: float | None
    currency_code: str | None
    percent_off: float | None
    spend_threshold: float | None
    active_duration: int | None
    redeem_by: datetime | None
    template: str | None
    kind: str = "dispatch"  # or "distribution": a DistributeCoupons notification ("added to your account")
    account_number: str | None = None  # distribution: the account that holds the coupon


@dataclass(frozen=True, slots=True)
class Settled:
    sent: int
    retried: int
    failed_coupons: list[int]  # refused permanently or given up: these coupons are available again


o = t.outbox.c
c = t.coupons.c
k = t.coupon_classes.c


def _details(conn: Connection, ids: Sequence[int]) -> list[ClaimedMessage]:
    if not ids:
        return []
    rows = conn.execute(
        select(o.id, o.coupon_id, o.dispatch_id, o.recipient, o.message_id, o.attempts, o.queued_at, o.created_at,
               c.code, c.expires_at, k.name, k.amount, k.currency_code, k.percent_off, k.spend_threshold,
               k.active_duration, k.end_date, k.expiration_date, k.template, t.dispatches.c.kind,
               t.accounts.c.number.label("account_number"))
        .join(t.coupons, c.id == o.coupon_id).join(t.coupon_classes, k.id == c.class_id)
        .join(t.dispatches, t.dispatches.c.id == o.dispatch_id)
        .outerjoin(t.accounts, t.accounts.c.id == c.distributed_account_id)
        .where(o.id.in_(bindparam("ids", expanding=True))).order_by(o.id),
        {"ids": list(ids)},
    )
    out = []
    for r in rows:
        limits = [d for d in (r.end_date, r.expiration_date, r.expires_at) if d is not None]
        out.append(ClaimedMessage(
            r.id, r.coupon_id, r.dispatch_id, r.recipient, r.message_id, r.attempts, r.queued_at, r.created_at,
            r.code, r.name, r.amount, r.currency_code, r.percent_off, r.spend_threshold, r.active_duration,
            min(limits) if limits else None, r.template, r.kind, r.account_number,
        ))
    return out


def claim_due(conn: Connection, worker: str, now: datetime, lease: timedelta, limit: int) -> list[ClaimedMessage]:
    """Take up to ``limit`` due messages (queued and due, or held under an expired lease)."""
    due = (
        select(o.id)
        .where(or_(and_(o.status == "queued", o.next_attempt_at <= now),
                   and_(o.status == "sending", o.lease_until < now)))
        .order_by(o.next_attempt_at, o.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.scalars(
        update(t.outbox).where(o.id.in_(due.scalar_subquery()))
        .values(status="sending", lease_owner=worker, lease_until=now + lease)
        .returning(o.id)
    ))
    return _details(conn, ids)


def claim_dispatch(conn: Connection, worker: str, dispatch_id: int, now: datetime,
                   lease: timedelta) -> list[ClaimedMessage]:
    """The messages a dispatch wrote (still held by the dispatching call), re-leased to ``worker``."""
    ids = list(conn.scalars(
        update(t.outbox)
        .where(o.dispatch_id == dispatch_id, o.status == "sending", o.lease_owner == worker)
        .values(lease_until=now + lease)
        .returning(o.id)
    ))
    return _details(conn, ids)


def renew(conn: Connection, worker: str, ids: Sequence[int], now: datetime, lease: timedelta) -> None:
    if ids:
        conn.execute(
            update(t.outbox).where(o.id.in_(bindparam("ids", expanding=True)), o.lease_owner == worker,
                                   o.status == "sending").values(lease_until=now + lease),
            {"ids": list(ids)},
        )


def release(conn: Connection, worker: str, ids: Sequence[int], now: datetime) -> None:
    """Give messages back to the queue untried (e.g. the call's delivery time ran out)."""
    if ids:
        conn.execute(
            update(t.outbox).where(o.id.in_(bindparam("ids", expanding=True)), o.lease_owner == worker,
                                   o.status == "sending")
            .values(status="queued", lease_owner=None, lease_until=None, next_attempt_at=now),
            {"ids": list(ids)},
        )


def defer(conn: Connection, worker: str, claimed: Sequence[ClaimedMessage], now: datetime, delay: timedelta,
          reason: str, policy: RetryPolicy) -> list[int]:
    """Put back messages that were not tried because the relay refused the session or our sender: queued
    again after ``delay`` without counting an attempt (the relay was not asked about them), except those
    whose lifetime is over, which are given up like any other.  Returns the coupons given back."""
    held = _held(conn, worker, [m.outbox_id for m in claimed])
    later: list[tuple[int, datetime, str]] = []
    expired: list[ClaimedMessage] = []
    for m in claimed:
        if m.outbox_id not in held:
            continue
        end = m.queued_at + policy.lifetime
        if now >= end:
            expired.append(m)
        else:
            later.append((m.outbox_id, min(now + delay, end), f"not tried: {reason}"[:2000]))
    if later:
        _update_held(conn, worker, "status = 'queued', next_attempt_at = {c1}, last_error = {c2}", [], later,
                     ("bigint", "timestamp", "text"))
    if not expired:
        return []
    gave_up = [DeliveryResult(m.outbox_id, Outcome.TEMPORARY, None, f"not tried: {reason}") for m in expired]
    return settle(conn, worker, expired, gave_up, now, policy, count=False).failed_coupons


def _held(conn: Connection, worker: str, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` ``worker`` still holds (locked on PostgreSQL until the end of the transaction)."""
    if not ids:
        return set()
    query = select(o.id).where(o.id.in_(bindparam("ids", expanding=True)), o.lease_owner == worker,
                               o.status == "sending")
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return set(conn.scalars(query, {"ids": list(ids)}))


class _Rows:
    """Many rows as ONE statement parameter: a JSON array read with ``json_each`` on SQLite, one array per
    column read with ``unnest`` on PostgreSQL (as ``adapters/store.py`` does for dispatch).  This avoids
    SQLAlchemy's per-row parameter processing of an executemany; timestamps are bound as SQLAlchemy binds
    them, so every other query reads what it always read."""

    def __init__(self, conn: Connection, rows: Sequence[tuple[Any, ...]], types: Sequence[str]) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self.mark = "%s" if self.pg else "?"
        # SQLite: a unary + keeps the planner off the status indexes, so that it walks the listed rows and
        # finds each by its primary key (else it may scan every 'sending' row once per listed row)
        self.noindex = "" if self.pg else "+"
        names = [f"c{i}" for i in range(len(types))]
        if self.pg:
            self.source = ("unnest(" + ", ".join(f"%s::{ty}[]" for ty in types) + ") WITH ORDINALITY AS u("
                           + ", ".join(names) + ", n)")
            self.cols = [f"u.{n}" for n in names]
            self.order = "u.n"
            self.params: list[Any] = [list(col) for col in zip(*rows, strict=True)]
        else:
            self.source = "json_each(?) AS j"
            self.cols = [f"json_extract(j.value, '$[{i}]')" for i in range(len(types))]
            self.order = "j.key"
            self.params = [json.dumps([[self.ts(v) if isinstance(v, datetime) else v for v in r] for r in rows])]

    def ts(self, value: datetime) -> Any:
        return value if self.pg else _sqlite_datetime(value)


def _update_held(conn: Connection, worker: str, assignments: str, scalars: Sequence[Any],
                 rows: Sequence[tuple[Any, ...]], types: Sequence[str]) -> int:
    """One UPDATE of the outbox rows listed (first column: the id), only those ``worker`` still holds; the
    lease is given up with the change.  ``assignments`` names scalar parameters ``{0}``, ``{1}``... and the
    rows' columns ``{c1}``, ``{c2}``...; returns how many rows changed."""
    src = _Rows(conn, rows, types)
    sets = assignments.format(*([src.mark] * len(scalars)), **{f"c{i}": col for i, col in enumerate(src.cols)})
    sql = (f"UPDATE outbox SET {sets}, lease_owner = NULL, lease_until = NULL FROM {src.source} "
           f"WHERE outbox.id = {src.cols[0]} AND {src.noindex}outbox.lease_owner = {src.mark} "
           f"AND {src.noindex}outbox.status = 'sending'")
    params = [src.ts(v) if isinstance(v, datetime) else v for v in scalars]
    return int(conn.exec_driver_sql(sql, (*params, *src.params, worker)).rowcount)


def settle(conn: Connection, worker: str, claimed: Sequence[ClaimedMessage], results: Sequence[DeliveryResult],
           now: datetime, policy: RetryPolicy, *, count: bool = True) -> Settled:
    """Record what happened to each message; refused and given-up coupons become available again.

    TEMPORARY and RELAY results are retried with backoff (RELAY: the relay refused the session, the
    sender or the transaction; never the address) until the lifetime is over.  Only messages ``worker``
    still holds change: one whose lease lapsed may have been taken over, and even sent, by another worker
    meanwhile, so a late failure here must neither mark it failed nor hand its coupon back (the attempt
    still goes into the history).  ``count=False``: the results are no attempts (see ``defer``).
    """
    by_id = {m.outbox_id: m for m in claimed}
    still_held = _held(conn, worker, [r.outbox_id for r in results])
    sent: list[dict[str, Any]] = []
    retry: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for r in results:
        m = by_id[r.outbox_id]
        attempts = m.attempts + 1 if count else m.attempts
        outcome = r.outcome.value
        if m.outbox_id not in still_held:
            pass  # only the history records this attempt
        elif r.outcome is Outcome.SENT:
            sent.append({"b_id": m.outbox_id, "b_attempts": attempts})
        elif r.outcome is Outcome.TEMPORARY or r.outcome is Outcome.RELAY:
            at = policy.next_attempt(m.queued_at, max(1, attempts), now)
            if at is None:
                outcome = "gave_up"
                failed.append({"b_id": m.outbox_id, "b_attempts": attempts, "b_error": f"gave up: {r.detail}",
                               "b_coupon": m.coupon_id, "b_dispatch": m.dispatch_id})
            else:
                retry.append({"b_id": m.outbox_id, "b_attempts": attempts, "b_next": at,
                              "b_error": r.detail if r.smtp_code is None else f"{r.smtp_code} {r.detail}"})
        else:
            failed.append({"b_id": m.outbox_id, "b_attempts": attempts, "b_error": f"{r.smtp_code} {r.detail}",
                           "b_coupon": m.coupon_id, "b_dispatch": m.dispatch_id})
        if not count and outcome != "gave_up":
            continue
        history.append({"outbox_id": m.outbox_id, "attempted_at": now, "worker": worker, "outcome": outcome,
                        "smtp_code": r.smtp_code, "detail": r.detail[:2000]})

    done = 0
    if sent:
        done = _update_held(conn, worker, "status = 'sent', sent_at = {0}, attempts = {c1}, last_error = NULL",
                            [now], [(f["b_id"], f["b_attempts"]) for f in sent], ("bigint", "int"))
    if retry:
        _update_held(conn, worker, "status = 'queued', attempts = {c1}, next_attempt_at = {c2}, last_error = {c3}",
                     [], [(f["b_id"], f["b_attempts"], f["b_next"], f["b_error"]) for f in retry],
                     ("bigint", "int", "timestamp", "text"))
    if failed:
        _update_held(conn, worker, "status = 'failed', attempts = {c1}, last_error = {c2}",
                     [], [(f["b_id"], f["b_attempts"], f["b_error"]) for f in failed], ("bigint", "int", "text"))
        rows = _Rows(conn, [(f["b_coupon"], f["b_dispatch"]) for f in failed], ("bigint", "bigint"))
        conn.exec_driver_sql(
            "UPDATE coupons SET state = 'available', send_to_email = NULL, send_to_email_key = NULL, "
            f"send_to_date = NULL, dispatch_id = NULL FROM {rows.source} WHERE coupons.id = {rows.cols[0]} "
            f"AND {rows.noindex}coupons.state = 'dispatched' AND coupons.dispatch_id = {rows.cols[1]}",
            tuple(rows.params))
    if history:
        rows = _Rows(conn, [(h["outbox_id"], h["outcome"], h["smtp_code"], h["detail"]) for h in history],
                     ("bigint", "text", "int", "text"))
        mark = rows.mark
        conn.exec_driver_sql(
            "INSERT INTO delivery_attempts (outbox_id, attempted_at, worker, outcome, smtp_code, detail) "
            f"SELECT {rows.cols[0]}, {mark}, {mark}, {rows.cols[1]}, {rows.cols[2]}, {rows.cols[3]} "
            f"FROM {rows.source} ORDER BY {rows.order}", (rows.ts(now), worker, *rows.params))
    return Settled(done, len(retry), [f["b_coupon"] for f in failed])


# --- operator views -------------------------------------------------------------------------------
def status_counts(conn: Connection, now: datetime) -> dict[str, Any]:
    counts = {s: int(n) for s, n in conn.execute(select(o.status, func.count()).group_by(o.status))}
    oldest = conn.scalar(select(func.min(o.queued_at)).where(o.status.in_(["queued", "sending"])))
    return {
        "queued": counts.get("queued", 0) + counts.get("sending", 0),
        "sending": counts.get("sending", 0),
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "oldest_queued_seconds": None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    }


def requeue_failed(conn: Connection, now: datetime, only: int | None = None,
                   by: str = "cli") -> tuple[int, int]:
    """Queue failed messages again whose coupon is still free; re-dispatch that coupon to the same address.
    A failed DistributeCoupons notification is queued again as it is (its coupon is the account's).

    Returns (requeued, skipped): a message is skipped when its coupon went to someone else meanwhile, or
    its address has received another coupon of the class since.
    """
    only_this = [o.id == only] if only is not None else []  # the console retries one message
    rows = conn.execute(
        select(o.id, o.coupon_id, o.dispatch_id, o.recipient, c.class_id)
        .join(t.coupons, c.id == o.coupon_id)
        .where(o.status == "failed", c.state == "available", *only_this)
    ).all()
    requeued = skipped = 0
    for r in rows:
        key = r.recipient.strip().lower()
        taken = conn.scalar(select(c.id).where(c.class_id == r.class_id, c.send_to_email_key == key))
        if taken is not None:
            skipped += 1
            continue
        given = conn.execute(update(t.coupons).where(c.id == r.coupon_id, c.state == "available").values(
            state="dispatched", send_to_email=r.recipient, send_to_email_key=key, send_to_date=now,
            dispatch_id=r.dispatch_id)).rowcount
        if given != 1:  # a concurrent dispatch took the coupon since we looked (counted as skipped below)
            continue
        conn.execute(update(t.outbox).where(o.id == r.id).values(
            status="queued", queued_at=now, next_attempt_at=now, attempts=0, lease_owner=None, lease_until=None))
        conn.execute(insert(t.delivery_attempts).values(
            outbox_id=r.id, attempted_at=now, worker=by, outcome="requeued",
            detail="couponsvc mail retry" if by == "cli" else f"retry by {by}"))
        requeued += 1
    # DistributeCoupons notifications: the coupon stays the account's whatever became of the mail, so a failed
    # notification is simply queued again (it never took a coupon back to the pool).
    d = t.dispatches.c
    notes = list(conn.scalars(select(o.id).join(t.dispatches, d.id == o.dispatch_id)
                              .where(o.status == "failed", d.kind == "distribution", *only_this)))
    if notes:
        conn.execute(update(t.outbox).where(o.id.in_(bindparam("ids", expanding=True))).values(
            status="queued", queued_at=now, next_attempt_at=now, attempts=0, lease_owner=None, lease_until=None),
            {"ids": notes})
        conn.execute(insert(t.delivery_attempts), [
            {"outbox_id": i, "attempted_at": now, "worker": by, "outcome": "requeued",
             "detail": "couponsvc mail retry" if by == "cli" else f"retry by {by}"} for i in notes])
        requeued += len(notes)
    skipped += conn.scalar(
        select(func.count()).select_from(t.outbox).join(t.coupons, c.id == o.coupon_id)
        .join(t.dispatches, d.id == o.dispatch_id)
        .where(o.status == "failed", c.state != "available", d.kind != "distribution", *only_this)
    ) or 0
    return requeued, skipped


def history(conn: Connection, *, recipient: str | None = None, code: str | None = None,
            message_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    a = t.delivery_attempts.c
    query = (
        select(o.id, o.message_id, o.recipient, o.status, c.code, a.attempted_at, a.worker, a.outcome, a.smtp_code,
               a.detail)
        .join(t.coupons, c.id == o.coupon_id)
        .join(t.delivery_attempts, a.outbox_id == o.id, isouter=True)
        .order_by(o.id, a.id)
        .limit(limit)
    )
    if recipient:
        query = query.where(func.lower(o.recipient) == recipient.strip().lower())
    if code:
        query = query.where(c.code == code)
    if message_id:
        query = query.where(o.message_id == message_id)
    return [dict(r._mapping) for r in conn.execute(query)]
