"""Read-only queries for metrics and /health: outbox backlog and coupons by class and state.

Both are single GROUP BY queries over indexes (``ix_outbox_status_next``, ``ix_coupons_class_state_id``),
so a scrape costs one index scan per table, and the caller caches the answer for a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from couponsvc.adapters import schema as t

OUTBOX_STATUSES = ("queued", "sending", "sent", "failed")
COUPON_STATES = ("available", "dispatched", "distributed", "redeemed")  # as ck_coupons_state allows


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    by_status: dict[str, int]
    oldest_queued_seconds: float | None  # the oldest message not yet sent (queued or being sent)


@dataclass(frozen=True, slots=True)
class ClassCount:
    customer_id: int
    class_name: str
    state: str
    count: int


def outbox_backlog(conn: Connection, now: datetime, *, with_sent: bool = True) -> OutboxBacklog:
    """``with_sent=False`` (for /health, polled often) leaves out the ever-growing ``sent`` rows: the index
    on status then only visits the backlog itself."""
    o = t.outbox.c
    query = select(o.status, func.count()).group_by(o.status)
    if not with_sent:
        query = query.where(o.status.in_(["queued", "sending", "failed"]))
    counts = {str(s): int(n) for s, n in conn.execute(query)}
    oldest = conn.scalar(select(func.min(o.queued_at)).where(o.status.in_(["queued", "sending"])))
    return OutboxBacklog(
        {s: counts.get(s, 0) for s in OUTBOX_STATUSES},
        None if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )


def coupons_by_class_and_state(conn: Connection) -> list[ClassCount]:
    c, k = t.coupons.c, t.coupon_classes.c
    per_class = (select(c.class_id, c.state, func.count().label("n"))
                 .group_by(c.class_id, c.state).subquery())
    stmt = (select(k.customer_id, k.name, per_class.c.state, per_class.c.n)
            .select_from(per_class.join(t.coupon_classes, k.id == per_class.c.class_id))
            .order_by(k.customer_id, k.name, per_class.c.state))
    found = [ClassCount(int(r.customer_id), str(r.name), str(r.state), int(r.n)) for r in conn.execute(stmt)]
    # every class shows every state (0 included), so that an alert on "available < X" sees an empty pool
    seen = {(f.customer_id, f.class_name, f.state) for f in found}
    for cid, name in conn.execute(select(k.customer_id, k.name)):
        for state in COUPON_STATES:
            if (int(cid), str(name), state) not in seen:
                found.append(ClassCount(int(cid), str(name), state, 0))
    return found
