"""SQL behind the operator views (console and CLI): every list is one page on an index, every count an
index range, so that the pages stay fast at a million codes and a hundred thousand dispatches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from couponsvc.adapters import schema as t
from couponsvc.adapters.coupon_queries import _prefix_upper_bound
from couponsvc.domain.emails import address_key
from couponsvc.domain.model import class_is_expired

c = t.coupons.c
k = t.coupon_classes.c
d = t.dispatches.c
o = t.outbox.c
cu = t.customers.c
u = t.users.c
a = t.accounts.c
att = t.delivery_attempts.c


@dataclass(frozen=True, slots=True)
class ClassRow:
    id: int
    customer_id: int
    customer_name: str
    name: str
    coupon_type: str | None
    amount: float | None
    currency_code: str | None
    spend_threshold: float | None
    percent_off: float | None
    active_duration: int | None
    start_date: datetime | None
    end_date: datetime | None
    expiration_date: datetime | None
    template: str | None
    low_stock_threshold: int | None

    def expired(self, now: datetime) -> bool:
        return class_is_expired(self.end_date, self.expiration_date, now)


_CLASS_COLUMNS = (k.id, k.customer_id, cu.name.label("customer_name"), k.name, k.coupon_type, k.amount,
                  k.currency_code, k.spend_threshold, k.percent_off, k.active_duration, k.start_date, k.end_date,
                  k.expiration_date, k.template, k.low_stock_threshold)


def _class(r: Any) -> ClassRow:
    return ClassRow(*(getattr(r, col.name) for col in _CLASS_COLUMNS))


def classes(conn: Connection, customer_ids: Iterable[int] | None = None, *, limit: int = 200,
            offset: int = 0) -> list[ClassRow]:
    q = (select(*_CLASS_COLUMNS).join(t.customers, cu.id == k.customer_id)
         .order_by(k.customer_id, k.name_key).limit(limit).offset(offset))
    if customer_ids is not None:
        q = q.where(k.customer_id.in_(list(customer_ids)))
    return [_class(r) for r in conn.execute(q)]


def count_classes(conn: Connection) -> int:
    return int(conn.scalar(select(func.count()).select_from(t.coupon_classes)) or 0)


def coupon_class(conn: Connection, customer_id: int, name_key: str) -> ClassRow | None:
    r = conn.execute(select(*_CLASS_COLUMNS).join(t.customers, cu.id == k.customer_id)
                     .where(k.customer_id == customer_id, k.name_key == name_key)).first()
    return None if r is None else _class(r)


def state_counts(conn: Connection, class_ids: Sequence[int], now: datetime) -> dict[int, dict[str, int]]:
    """Per class: coupons by state, and ``expired_codes``: available ones past their own expiry.

    Each number is one index range, counted without touching the table: the class's size on the narrow
    ``ix_coupons_class_id``, the dispatched, distributed (feature-adoption) and redeemed ones on
    ``ix_coupons_class_state_expiry``, and available = size - the others.  (One GROUP BY over the wide
    index was three times slower at 1M codes.)"""
    out: dict[int, dict[str, int]] = {}
    for cid in class_ids:
        total = int(conn.scalar(select(func.count()).select_from(t.coupons).where(c.class_id == cid)) or 0)
        n = {state: int(conn.scalar(select(func.count()).select_from(t.coupons)
                                    .where(c.class_id == cid, c.state == state)) or 0)
             for state in ("dispatched", "distributed", "redeemed")}
        expired = int(conn.scalar(
            select(func.count()).select_from(t.coupons)
            .where(c.class_id == cid, c.state == "available", c.expires_at.is_not(None), c.expires_at <= now)) or 0)
        out[cid] = {"available": total - sum(n.values()), **n, "expired_codes": expired}
    return out


def dispatched_per_day(conn: Connection, days: Sequence[datetime], class_id: int | None = None) -> list[int]:
    """Coupons allocated in each day starting at ``days[i]`` (24 h each): one covering-index range per day
    (cheaper than a GROUP BY on a computed day, which sorts every row of the month)."""
    out = []
    for start in days:
        q = select(func.coalesce(func.sum(d.allocated), 0)).where(
            d.created_at >= start, d.created_at < start + timedelta(days=1))
        if class_id is not None:  # `+ 0`: filter on the covering (created_at, class_id, allocated) entries
            q = q.where(d.class_id + 0 == class_id)
        out.append(int(conn.scalar(q) or 0))
    return out


def redeemed_per_day(conn: Connection, days: Sequence[datetime], class_id: int | None = None) -> list[int]:
    out = []
    for start in days:
        q = select(func.count()).select_from(t.coupons).where(
            c.redemption_date >= start, c.redemption_date < start + timedelta(days=1))
        if class_id is not None:  # `+ 0`: walk (redemption_date, class_id), not the class's whole pool
            q = q.where(c.class_id + 0 == class_id)
        out.append(int(conn.scalar(q) or 0))
    return out


def outbox_counts(conn: Connection) -> dict[str, int]:
    """Messages per status: one equality range of ``ix_outbox_status_id`` each."""
    return {s: int(conn.scalar(select(func.count()).select_from(t.outbox).where(o.status == s)) or 0)
            for s in ("queued", "sending", "sent", "failed")}


def oldest_queued(conn: Connection) -> datetime | None:
    oldest: datetime | None = conn.scalar(select(func.min(o.queued_at)).where(o.status.in_(["queued", "sending"])))
    return oldest


# --- codes of a class ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CodeRow:
    id: int
    code: str
    state: str
    expires_at: datetime | None
    send_to_email: str | None
    send_to_date: datetime | None
    redemption_date: datetime | None
    dispatch_id: int | None


def codes_page(conn: Connection, class_id: int, *, after_id: int = 0, limit: int = 50, search: str | None = None,
               state: str | None = None) -> list[CodeRow]:
    """One page of the class's codes in load order after ``after_id``.  ``search``: an address (has ``@``,
    case-insensitive, exact) or the start of a code (case-sensitive), both on an index."""
    q = (select(c.id, c.code, c.state, c.expires_at, c.send_to_email, c.send_to_date, c.redemption_date,
                c.dispatch_id)
         .where(c.class_id == class_id, c.id > after_id).order_by(c.id).limit(limit))
    if state:
        q = q.where(c.state == state)
    if search:
        if "@" in search:
            q = q.where(c.send_to_email_key == search.strip().lower())
        else:
            upper = _prefix_upper_bound(search)
            q = q.where(c.code >= search, func.substr(c.code, 1, len(search)) == search)
            if upper is not None:
                q = q.where(c.code < upper)
    return [CodeRow(*r) for r in conn.execute(q)]


def any_available_with_expiry(conn: Connection, class_id: int) -> bool:
    return conn.scalar(select(c.id).where(c.class_id == class_id, c.state == "available",
                                          c.expires_at.is_not(None)).limit(1)) is not None


def available_codes_page(conn: Connection, class_id: int, now: datetime, after_id: int,
                         limit: int) -> tuple[list[tuple[str, datetime | None]], int | None, bool]:
    """Up to ``limit`` available coupons after ``after_id`` in load order (``ix_coupons_class_state_id``):
    (the codes not past their own expiry, the last id walked or None, whether more may follow)."""
    rows = conn.execute(select(c.id, c.code, c.expires_at)
                        .where(c.class_id == class_id, c.state == "available", c.id > after_id)
                        .order_by(c.id).limit(limit)).all()
    codes = [(str(r.code), r.expires_at) for r in rows if r.expires_at is None or r.expires_at > now]
    return codes, (int(rows[-1].id) if rows else None), len(rows) == limit


def set_threshold(conn: Connection, class_id: int, threshold: int | None) -> None:
    conn.execute(update(t.coupon_classes).where(k.id == class_id).values(low_stock_threshold=threshold))


def set_template(conn: Connection, class_id: int, template: str | None) -> None:
    conn.execute(update(t.coupon_classes).where(k.id == class_id).values(template=template))


def sample_code(conn: Connection, class_id: int) -> str | None:
    return conn.scalar(select(c.code).where(c.class_id == class_id).order_by(c.id).limit(1))


# --- dispatches ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DispatchRow:
    id: int
    tracking_id: str
    created_at: datetime
    customer_id: int
    class_name: str
    user: str | None
    requested: int
    allocated: int
    outcomes: str | None
    kind: str = "dispatch"  # or "distribution": a DistributeCoupons call (its notifications use the outbox too)

    @property
    def operation(self) -> str:
        return "DistributeCoupons" if self.kind == "distribution" else "DispatchCoupons"


_DISPATCH_COLUMNS = (d.id, d.tracking_id, d.created_at, d.customer_id, k.name, u.name.label("user"), d.requested,
                     d.allocated, d.outcomes, d.kind)


def _dispatch_query() -> Any:
    return (select(*_DISPATCH_COLUMNS).select_from(
        t.dispatches.join(t.coupon_classes, k.id == d.class_id).outerjoin(t.users, u.id == d.user_id)))


def dispatches_page(conn: Connection, *, before_id: int | None = None, limit: int = 50,
                    tracking_id: str | None = None) -> list[DispatchRow]:
    q = _dispatch_query().order_by(d.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(d.id < before_id)
    if tracking_id:
        q = q.where(d.tracking_id == tracking_id.strip().lower())
    return [DispatchRow(*r) for r in conn.execute(q)]


def dispatch(conn: Connection, dispatch_id: int) -> DispatchRow | None:
    r = conn.execute(_dispatch_query().where(d.id == dispatch_id)).first()
    return None if r is None else DispatchRow(*r)


def dispatch_outcomes(conn: Connection, dispatch_id: int) -> str | None:
    return conn.scalar(select(d.outcomes).where(d.id == dispatch_id))


def set_dispatch_outcomes(conn: Connection, dispatch_id: int, outcomes: str | None) -> None:
    conn.execute(update(t.dispatches).where(d.id == dispatch_id).values(outcomes=outcomes))


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    dispatch_id: int
    coupon_id: int
    recipient: str
    code: str
    class_name: str
    customer_id: int
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    message_id: str


_MESSAGE_COLUMNS = (o.id, o.dispatch_id, o.coupon_id, o.recipient, c.code, k.name, k.customer_id, o.status,
                    o.attempts, o.created_at, o.next_attempt_at, o.sent_at, o.last_error, o.message_id)


def _message_query() -> Any:
    return (select(*_MESSAGE_COLUMNS).select_from(
        t.outbox.join(t.coupons, c.id == o.coupon_id).join(t.coupon_classes, k.id == c.class_id)))


def dispatch_messages(conn: Connection, dispatch_id: int, limit: int = 1000) -> list[MessageRow]:
    q = _message_query().where(o.dispatch_id == dispatch_id).order_by(o.id).limit(limit)
    return [MessageRow(*r) for r in conn.execute(q)]


# --- the outbox ------------------------------------------------------------------------------------
def messages_page(conn: Connection, *, status: str | None = None, to: str | None = None,
                  before_id: int | None = None, limit: int = 50) -> list[MessageRow]:
    """Newest first.  ``to``: any case of the address.  A coupon's message is found by its coupon's address key
    (``ix_coupons_email_key``, then the outbox's ``(coupon_id, …)`` unique index), whatever case it was sent
    in; a notification (no address on its coupon) by the address as given or in lower case
    (``ix_outbox_recipient``)."""
    q = _message_query().order_by(o.id.desc()).limit(limit)
    if status:
        q = q.where(o.status == status)
    if to:
        wanted = to.strip()
        by_key = select(t.coupons.c.id).where(t.coupons.c.send_to_email_key == address_key(wanted))
        q = q.where(or_(o.recipient.in_(sorted({wanted, wanted.lower()})), o.coupon_id.in_(by_key)))
    if before_id is not None:
        q = q.where(o.id < before_id)
    return [MessageRow(*r) for r in conn.execute(q)]


def message(conn: Connection, outbox_id: int) -> MessageRow | None:
    r = conn.execute(_message_query().where(o.id == outbox_id)).first()
    return None if r is None else MessageRow(*r)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    attempted_at: datetime
    worker: str
    outcome: str
    smtp_code: int | None
    detail: str | None


def attempts(conn: Connection, outbox_id: int, limit: int = 200) -> list[AttemptRow]:
    q = (select(att.attempted_at, att.worker, att.outcome, att.smtp_code, att.detail)
         .where(att.outbox_id == outbox_id).order_by(att.id).limit(limit))
    return [AttemptRow(*r) for r in conn.execute(q)]


# --- redemptions -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RedemptionRow:
    redemption_date: datetime
    code: str
    customer_id: int
    class_name: str
    account_id: int | None
    account_number: str | None
    send_to_email: str | None


def redemptions_page(conn: Connection, *, offset: int = 0, limit: int = 50) -> list[RedemptionRow]:
    q = (select(c.redemption_date, c.code, k.customer_id, k.name, c.redeemed_account_id, a.number, c.send_to_email)
         .select_from(t.coupons.join(t.coupon_classes, k.id == c.class_id)
                      .outerjoin(t.accounts, a.id == c.redeemed_account_id))
         .where(c.redemption_date.is_not(None))
         .order_by(c.redemption_date.desc(), c.id.desc()).limit(limit).offset(offset))
    return [RedemptionRow(*r) for r in conn.execute(q)]


def redemptions_by_class_account(conn: Connection, since: datetime, limit: int = 500) -> list[dict[str, Any]]:
    q = (select(k.customer_id, k.name.label("class_name"), c.redeemed_account_id.label("account_id"),
                a.number.label("account_number"), func.count().label("redeemed"),
                func.max(c.redemption_date).label("last"))
         .select_from(t.coupons.join(t.coupon_classes, k.id == c.class_id)
                      .outerjoin(t.accounts, a.id == c.redeemed_account_id))
         .where(c.redemption_date >= since)
         .group_by(k.customer_id, k.name, c.redeemed_account_id, a.number)
         .order_by(func.count().desc()).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


def customer_ids(conn: Connection) -> list[int]:
    return [int(x) for x in conn.scalars(select(cu.id).order_by(cu.id))]



@dataclass(frozen=True, slots=True)
class MessageFacts:
    code: str
    class_name: str
    amount: float | None
    currency_code: str | None
    percent_off: float | None
    spend_threshold: float | None
    active_duration: int | None
    redeem_by: datetime | None
    template: str | None


def message_facts(conn: Connection, outbox_id: int) -> MessageFacts | None:
    """What the message of this outbox row says (as the worker builds it: the class's current template)."""
    r = conn.execute(
        select(c.code, c.expires_at, k.name, k.amount, k.currency_code, k.percent_off, k.spend_threshold,
               k.active_duration, k.end_date, k.expiration_date, k.template)
        .select_from(t.outbox.join(t.coupons, c.id == o.coupon_id).join(t.coupon_classes, k.id == c.class_id))
        .where(o.id == outbox_id)).first()
    if r is None:
        return None
    limits = [x for x in (r.end_date, r.expiration_date, r.expires_at) if x is not None]
    return MessageFacts(r.code, r.name, r.amount, r.currency_code, r.percent_off, r.spend_threshold,
                        r.active_duration, min(limits) if limits else None, r.template)
