"""DistributeCoupons (SPEC 5.1): one coupon of a class straight to each account, in one transaction.

A plain class redeems the coupon into the account at once (as RedeemCoupon would); a feature-adoption
class (one with a FeatureId) leaves it ``distributed`` to the account until ClaimFeatureAdoptionCoupons.
The database holds at most one distributed coupon of a class per account (``uq_coupons_class_account``),
so two calls racing for one account cannot both succeed: the loser's transaction is run again and then
sees 3012.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from couponsvc.adapters import family_queries as fq
from couponsvc.adapters.store import ConcurrentUpdate, OutboxEntry, SqlStore
from couponsvc.domain.coupons import effective_expiration, usable_until
from couponsvc.domain.errors import Err, OperationError, ServiceFault
from couponsvc.domain.model import class_name_key
from couponsvc.domain.values import RawLong, parse_long
from couponsvc.service_layer.auth import Principal
from couponsvc.service_layer.delivery import call_lease_owner
from couponsvc.service_layer.dispatch import DispatchConfig
from couponsvc.service_layer.dispatch_log import encode_account_outcomes
from couponsvc.service_layer.unit_of_work import RetryableConflict, UnitOfWork

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class DistributeCouponsRequest:
    """As parsed from either protocol; values raw so that both share one validation."""

    account_ids: list[RawLong] | None
    class_name: str | None
    feature_id: RawLong
    send_notification: bool | None


@dataclass(slots=True)
class DistributeOutcome:
    #: index-aligned with AccountIds: the OperationErrors of each account (empty where it got its coupon)
    partial_errors: list[list[OperationError]]
    distribution_id: int | None = None
    notifications: int = 0
    given: list[fq.Given] = field(default_factory=list)


def parse_int(raw: RawLong, name: str) -> int | None:
    """An xs:int (the schema's type for FeatureId and DistributeCoupons' AccountIds); 201 otherwise."""
    value = parse_long(raw, name)
    if value is not None and not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{name} is out of the range of an int")
    return value


def message_id(coupon_id: int, distribution_id: int, domain: str) -> str:
    return f"<coupon-{coupon_id}.distribution-{distribution_id}@{domain}>"


def distribute_coupons(
    uow: UnitOfWork,
    clock: Callable[[], datetime],
    config: DispatchConfig,
    principal: Principal,
    request: DistributeCouponsRequest | None,
    tracking_id: str,
) -> DistributeOutcome:
    if request is None:
        raise ServiceFault(Err.NULL_REQUEST)
    if request.class_name is None or not request.class_name.strip():
        raise ServiceFault(Err.NULL_PARAMETER, "ClassName")
    raw_ids = request.account_ids
    if not raw_ids:
        raise ServiceFault(Err.NULL_ARRAY_ARGUMENT, "AccountIds")
    if len(raw_ids) > config.max_addresses:
        raise ServiceFault(Err.COUNT_EXCEEDS_LIMIT,
                           f"AccountIds has {len(raw_ids)} items; the limit is {config.max_addresses}")
    account_ids = [parse_int(v, f"AccountIds[{i}]") for i, v in enumerate(raw_ids)]
    feature_id = parse_int(request.feature_id, "FeatureId")
    name = request.class_name.strip()
    name_key = class_name_key(name)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with uow.write() as store:
                now = clock()
                return _distribute(store.conn, now, config, principal, name, name_key, account_ids, feature_id,
                                   bool(request.send_notification), tracking_id)
        except RetryableConflict as exc:
            log.info("tracking_id=%s distribution lost a race (attempt %d): %s", tracking_id, attempt, exc)
            if attempt == MAX_ATTEMPTS:
                raise ServiceFault(Err.INTERNAL_ERROR) from exc
    raise AssertionError("unreachable")


def _distribute(conn: Connection, now: datetime, config: DispatchConfig, principal: Principal, name: str,
                name_key: str, account_ids: list[int | None], feature_id: int | None, notify: bool,
                tracking_id: str) -> DistributeOutcome:
    found = fq.classes_named(conn, principal.customer_ids, name_key)
    if not found:
        raise ServiceFault(Err.COUPON_CLASS_NOT_FOUND, name)
    if len(found) > 1:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                           f"ClassName {name!r} names a coupon class of several customers you act for")
    (family,) = found
    cls = family.coupon_class
    if cls.is_expired(now):
        raise ServiceFault(Err.COUPON_CLASS_EXPIRED, cls.name)
    if feature_id is not None and feature_id != family.feature_id:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                           f"FeatureId {feature_id} is not the FeatureId of coupon class {cls.name!r}")

    known = fq.accounts(conn, [i for i in account_ids if i is not None])
    visible = {i: acc for i, acc in known.items() if principal.may_act_for(acc.customer_id)}
    holding = fq.accounts_holding(conn, cls.id, list(visible))
    errors: list[list[OperationError]] = [[] for _ in account_ids]
    wanted: list[tuple[int, fq.AccountRow]] = []
    seen: set[int] = set()
    for index, account_id in enumerate(account_ids):
        acc = visible.get(account_id) if account_id is not None else None
        if acc is None:  # unknown, nil, or of a customer the user does not act for: one and the same answer
            errors[index].append(OperationError.of(Err.INVALID_ACCOUNT))  # (no Details: the Index says which)
        elif acc.id in seen:
            errors[index].append(OperationError.of(Err.DUPLICATE_EMAIL_IN_REQUEST, f"AccountId {acc.id}"))
        elif acc.id in holding:
            errors[index].append(OperationError.of(Err.COUPON_ALREADY_DISTRIBUTED_TO_ACCOUNT, f"AccountId {acc.id}"))
        elif cls.currency_code is not None and cls.currency_code.upper() != acc.currency_code.upper():
            errors[index].append(OperationError.of(
                Err.COUPON_CURRENCY_MISMATCH, f"AccountId {acc.id} is in {acc.currency_code}, "
                                              f"the coupon in {cls.currency_code}"))
        else:
            wanted.append((index, acc))
        if acc is not None:
            seen.add(acc.id)

    pool = SqlStore(conn).oldest_available(cls.id, now, len(wanted))
    expiry = fq.expiries(conn, [p.id for p in pool])
    redeem_now = family.feature_id is None
    given: list[fq.Given] = []
    codes: dict[int, str] = {}
    for (_, acc), coupon in zip(wanted, pool, strict=False):
        until = usable_until(now, cls.active_duration, effective_expiration(cls.expiration_date, expiry[coupon.id]))
        given.append(fq.Given(coupon.id, acc.id, redeem_now, until))
        codes[coupon.id] = coupon.code
    for index, acc in wanted[len(pool):]:
        errors[index].append(OperationError.of(Err.NO_COUPON_AVAILABLE, f"AccountId {acc.id}"))
    if fq.give(conn, given, cls.amount, now) != len(given):
        raise ConcurrentUpdate("coupons were taken by another call")

    distribution_id = None
    notifications = 0
    emails = {acc.id: acc.email for _, acc in wanted}
    to_notify = [g for g in given if notify and emails.get(g.account_id)]
    if given:
        distribution_id = fq.create_distribution(
            conn, tracking_id=tracking_id, customer_id=cls.customer_id, class_id=cls.id,
            user_id=principal.user_id, requested=len(account_ids), allocated=len(given), now=now,
            outcomes=encode_account_outcomes(errors))
    if to_notify and distribution_id is not None:
        SqlStore(conn).enqueue(
            (OutboxEntry(g.coupon_id, str(emails[g.account_id]),
                         message_id(g.coupon_id, distribution_id, config.message_id_domain)) for g in to_notify),
            distribution_id, now,
            holder=call_lease_owner(tracking_id) if config.deliver_in_call else None,
            lease_until=now + config.lease,
        )
        notifications = len(to_notify)
    return DistributeOutcome(errors, distribution_id, notifications, given)
