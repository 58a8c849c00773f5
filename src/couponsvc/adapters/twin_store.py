"""SQL for the twin control plane: the shared clock row, fault rules, the outbox as the mail view, reset.

Everything lives in the database so that every server and worker on one database sees the same clock,
the same rules and the same journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, update

from couponsvc.adapters import schema as t

CLOCK_ROW = 1


# --- clock ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClockState:
    frozen_at: datetime | None = None
    offset_seconds: float = 0.0

    @property
    def is_real(self) -> bool:
        return self.frozen_at is None and self.offset_seconds == 0.0


def read_clock(conn: Connection) -> ClockState:
    c = t.twin_clock.c
    row = conn.execute(select(c.frozen_at, c.offset_seconds).where(c.id == CLOCK_ROW)).first()
    return ClockState() if row is None else ClockState(row.frozen_at, float(row.offset_seconds))


def write_clock(conn: Connection, state: ClockState) -> None:
    conn.execute(delete(t.twin_clock))
    if not state.is_real:
        conn.execute(insert(t.twin_clock).values(id=CLOCK_ROW, frozen_at=state.frozen_at,
                                                 offset_seconds=state.offset_seconds))


# --- fault rules --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FaultRow:
    id: int
    kind: str
    operation: str | None
    error_code: int | None
    latency_ms: int | None
    retry_after: int | None
    probability: float
    remaining: int | None
    smtp: str | None
    recipient: str | None


_f = t.twin_faults.c


def add_fault(conn: Connection, values: dict[str, Any], now: datetime) -> int:
    result = conn.execute(insert(t.twin_faults).values(**values, created_at=now).returning(_f.id))
    return int(result.scalar_one())


def list_faults(conn: Connection, kind: str | None = None) -> list[FaultRow]:
    q = select(_f.id, _f.kind, _f.operation, _f.error_code, _f.latency_ms, _f.retry_after, _f.probability,
               _f.remaining, _f.smtp, _f.recipient).order_by(_f.id)
    if kind is not None:
        q = q.where(_f.kind == kind)
    return [FaultRow(r.id, r.kind, r.operation, r.error_code, r.latency_ms, r.retry_after, float(r.probability),
                     r.remaining, r.smtp, r.recipient) for r in conn.execute(q)]


def use_fault(conn: Connection, fault_id: int) -> bool:
    """Take one use of a counted rule (atomically: two servers never share the last use); False if none left.
    A rule whose last use this was is removed."""
    taken = conn.execute(update(t.twin_faults).where(_f.id == fault_id, _f.remaining > 0)
                         .values(remaining=_f.remaining - 1)).rowcount
    conn.execute(delete(t.twin_faults).where(_f.id == fault_id, _f.remaining <= 0))
    return taken == 1


def delete_faults(conn: Connection, fault_id: int | None = None) -> int:
    stmt = delete(t.twin_faults)
    if fault_id is not None:
        stmt = stmt.where(_f.id == fault_id)
    return int(conn.execute(stmt).rowcount)


# --- mail (the outbox as the twin shows it) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MailRow:
    outbox_id: int
    message_id: str
    recipient: str
    status: str
    attempts: int
    queued_at: datetime
    sent_at: datetime | None
    last_error: str | None
    tracking_id: str
    code: str
    expires_at: datetime | None
    customer_id: int
    class_name: str
    amount: float | None
    currency_code: str | None
    percent_off: float | None
    spend_threshold: float | None
    active_duration: int | None
    end_date: datetime | None
    expiration_date: datetime | None
    template: str | None
    kind: str  # dispatch | distribution (a DistributeCoupons notification)
    account_number: str | None


def list_mail(conn: Connection, *, to: str | None, class_name_key: str | None, limit: int) -> list[MailRow]:
    o, c, k, d = t.outbox.c, t.coupons.c, t.coupon_classes.c, t.dispatches.c
    q = (
        select(o.id, o.message_id, o.recipient, o.status, o.attempts, o.queued_at, o.sent_at, o.last_error,
               d.tracking_id, c.code, c.expires_at, k.customer_id, k.name, k.amount, k.currency_code,
               k.percent_off, k.spend_threshold, k.active_duration, k.end_date, k.expiration_date, k.template,
               d.kind, t.accounts.c.number)
        .join(t.coupons, c.id == o.coupon_id)
        .join(t.coupon_classes, k.id == c.class_id)
        .join(t.dispatches, d.id == o.dispatch_id)
        .outerjoin(t.accounts, t.accounts.c.id == c.distributed_account_id)
        .order_by(o.id.desc())
        .limit(limit)
    )
    if to is not None:
        q = q.where(func.lower(o.recipient) == to.strip().lower())
    if class_name_key is not None:
        q = q.where(k.name_key == class_name_key)
    return [MailRow(*tuple(r)) for r in conn.execute(q)]


def outbox_counts(conn: Connection) -> dict[str, int]:
    o = t.outbox.c
    counts = {s: int(n) for s, n in conn.execute(select(o.status, func.count()).group_by(o.status))}
    return {"queued": counts.get("queued", 0) + counts.get("sending", 0), "failed": counts.get("failed", 0)}


# --- reset -----------------------------------------------------------------------------------------------------
def tables_to_clear(keep: Sequence[str]) -> list[Table]:
    """Every table of the schema but ``keep``, dependents first (so foreign keys never object)."""
    return [table for table in reversed(t.metadata.sorted_tables) if table.name not in keep]


def clear_tables(conn: Connection, tables: Sequence[Table]) -> None:
    for table in tables:
        conn.execute(delete(table))
