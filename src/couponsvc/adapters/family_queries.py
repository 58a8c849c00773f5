"""SQL for DistributeCoupons and the feature-adoption operations (one set-based statement per step)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from couponsvc.adapters import schema as t
from couponsvc.domain.model import CouponClass

c = t.coupons.c
k = t.coupon_classes.c
a = t.accounts.c


@dataclass(frozen=True, slots=True)
class FamilyClass:
    coupon_class: CouponClass
    feature_id: int | None


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    customer_id: int
    number: str
    currency_code: str
    email: str | None


@dataclass(frozen=True, slots=True)
class PoolCoupon:
    id: int
    code: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Given:
    """One coupon handed to one account by a distribution."""

    coupon_id: int
    account_id: int
    redeemed: bool  # plain class: redeemed at once; FAC class: left `distributed`
    usable_until: datetime | None


def classes_named(conn: Connection, customer_ids: Iterable[int], name_key: str) -> list[FamilyClass]:
    """Every class of that (case-folded) name among these customers."""
    ids = sorted(set(customer_ids))
    if not ids:
        return []
    rows = conn.execute(select(t.coupon_classes).where(k.customer_id.in_(ids), k.name_key == name_key)
                        .order_by(k.customer_id))
    return [FamilyClass(CouponClass(
        id=r.id, customer_id=r.customer_id, name=r.name, coupon_type=r.coupon_type, amount=r.amount,
        currency_code=r.currency_code, spend_threshold=r.spend_threshold, percent_off=r.percent_off,
        active_duration=r.active_duration, start_date=r.start_date, end_date=r.end_date,
        expiration_date=r.expiration_date), r.feature_id) for r in rows]


def accounts(conn: Connection, ids: Sequence[int]) -> dict[int, AccountRow]:
    if not ids:
        return {}
    rows = conn.execute(select(a.id, a.customer_id, a.number, a.currency_code, a.email)
                        .where(a.id.in_(bindparam("ids", expanding=True))), {"ids": sorted(set(ids))})
    return {r.id: AccountRow(r.id, r.customer_id, r.number, r.currency_code, r.email) for r in rows}


def accounts_holding(conn: Connection, class_id: int, account_ids: Sequence[int]) -> set[int]:
    """Which of these accounts already hold a coupon of the class (distributed to, or redeemed into, them)."""
    if not account_ids:
        return set()
    ids = {"ids": sorted(set(account_ids))}
    held = set(conn.scalars(select(c.distributed_account_id).where(
        c.class_id == class_id, c.distributed_account_id.in_(bindparam("ids", expanding=True))), ids))
    held |= set(conn.scalars(select(c.redeemed_account_id).where(
        c.class_id == class_id, c.redeemed_account_id.in_(bindparam("ids", expanding=True))), ids))
    return held


def expiries(conn: Connection, coupon_ids: Sequence[int]) -> dict[int, datetime | None]:
    if not coupon_ids:
        return {}
    rows = conn.execute(select(c.id, c.expires_at).where(c.id.in_(bindparam("ids", expanding=True))),
                        {"ids": list(coupon_ids)})
    return {r.id: r.expires_at for r in rows}


def give(conn: Connection, given: Sequence[Given], amount: float | None, now: datetime) -> int:
    """Hand the coupons to their accounts (only coupons still available: the rowcount tells a lost race)."""
    if not given:
        return 0
    stmt = (
        update(t.coupons)
        .where(c.id == bindparam("b_id"), c.state == "available")
        .values(state=bindparam("b_state"), distributed_account_id=bindparam("b_account"), distributed_at=now,
                redeemed_account_id=bindparam("b_redeemed_account"), redemption_date=bindparam("b_redemption"),
                usable_until=bindparam("b_until"), balance=bindparam("b_balance"))
    )
    result = conn.execute(stmt, [
        {"b_id": g.coupon_id, "b_state": "redeemed" if g.redeemed else "distributed", "b_account": g.account_id,
         "b_redeemed_account": g.account_id if g.redeemed else None, "b_redemption": now if g.redeemed else None,
         "b_until": g.usable_until if g.redeemed else None, "b_balance": amount if g.redeemed else None}
        for g in given
    ])
    return int(result.rowcount)


def create_distribution(conn: Connection, *, tracking_id: str, customer_id: int, class_id: int,
                        user_id: int | None, requested: int, allocated: int, now: datetime,
                        outcomes: str | None = None) -> int:
    """A `dispatches` row of kind 'distribution': what the outbox joins a notification to, and what the
    console lists beside the DispatchCoupons calls (``outcomes``: the per-account errors, as JSON)."""
    result = conn.execute(insert(t.dispatches).values(
        tracking_id=tracking_id, customer_id=customer_id, class_id=class_id, user_id=user_id,
        requested=requested, allocated=allocated, created_at=now, kind="distribution", outcomes=outcomes,
    ).returning(t.dispatches.c.id))
    return int(result.scalar_one())


def eligible(conn: Connection, feature_id: int, account_ids: Sequence[int], now: datetime) -> set[int]:
    """Accounts holding a distributed, unclaimed, unexpired coupon of a class with this FeatureId."""
    if not account_ids:
        return set()
    rows = conn.execute(
        select(c.distributed_account_id, c.expires_at, k.end_date, k.expiration_date)
        .join(t.coupon_classes, k.id == c.class_id)
        .where(k.feature_id == feature_id, c.state == "distributed",
               c.distributed_account_id.in_(bindparam("ids", expanding=True))),
        {"ids": sorted(set(account_ids))},
    )
    out = set()
    for r in rows:
        if all(limit is None or now <= limit for limit in (r.expires_at, r.end_date, r.expiration_date)):
            out.add(int(r.distributed_account_id))
    return out


@dataclass(frozen=True, slots=True)
class ClaimableCoupon:
    id: int
    state: str
    distributed_account_id: int | None
    feature_id: int | None
    expires_at: datetime | None
    end_date: datetime | None
    expiration_date: datetime | None
    active_duration: int | None
    amount: float | None


def coupon_for_claim(conn: Connection, code: str) -> ClaimableCoupon | None:
    r = conn.execute(
        select(c.id, c.state, c.distributed_account_id, k.feature_id, c.expires_at, k.end_date, k.expiration_date,
               k.active_duration, k.amount)
        .join(t.coupon_classes, k.id == c.class_id).where(c.code == code)
    ).first()
    if r is None:
        return None
    return ClaimableCoupon(r.id, r.state, r.distributed_account_id, r.feature_id, r.expires_at, r.end_date,
                           r.expiration_date, r.active_duration, r.amount)


def mark_claimed(conn: Connection, coupon_id: int, account_id: int, now: datetime, until: datetime | None,
                 balance: float | None) -> bool:
    """False when a concurrent claim won (the state check makes the race safe)."""
    result = conn.execute(
        update(t.coupons).where(c.id == coupon_id, c.state == "distributed", c.distributed_account_id == account_id)
        .values(state="redeemed", redeemed_account_id=account_id, redemption_date=now, claim_date=now,
                usable_until=until, balance=balance)
    )
    return bool(result.rowcount == 1)


def set_account_email(conn: Connection, account_id: int, email: str | None) -> bool:
    return bool(conn.execute(update(t.accounts).where(a.id == account_id).values(email=email)).rowcount == 1)


def set_class_feature(conn: Connection, customer_id: int, name_key: str, feature_id: int | None) -> bool:
    result = conn.execute(update(t.coupon_classes).where(k.customer_id == customer_id, k.name_key == name_key)
                          .values(feature_id=feature_id))
    return bool(result.rowcount == 1)
