"""CheckFeatureAdoptionCouponEligibility and ClaimFeatureAdoptionCoupons (SPEC 5.1), and the operator's
settings the coupon family needs (an account's notification email, a class's FeatureId)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from couponsvc.adapters import family_queries as fq
from couponsvc.domain.codes import code_problem
from couponsvc.domain.coupons import effective_expiration, usable_until
from couponsvc.domain.emails import is_valid_address, printable, trim
from couponsvc.domain.errors import ConfigurationError, Err, OperationError, ServiceFault
from couponsvc.domain.model import class_name_key
from couponsvc.domain.values import RawLong, parse_long
from couponsvc.service_layer.auth import Principal
from couponsvc.service_layer.distribute import parse_int
from couponsvc.service_layer.unit_of_work import RetryableConflict, UnitOfWork

MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class CheckEligibilityRequest:
    feature_id: RawLong
    account_ids: list[RawLong] | None


@dataclass(frozen=True, slots=True)
class AccountCouponPair:
    key: RawLong
    value: str | None


@dataclass(frozen=True, slots=True)
class ClaimCouponsRequest:
    pairs: Sequence[AccountCouponPair | None] | None


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    claimed: list[tuple[int, datetime]]  # (account id, claim date), in request order
    partial_errors: list[list[OperationError]]  # index-aligned with AccountCouponPairs


def _required_feature(raw: RawLong) -> int:
    value = parse_int(raw, "FeatureId")
    if value is None:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, "FeatureId is required")
    return value


def _check_count(items: Sequence[object] | None, name: str) -> Sequence[object]:
    if not items:
        raise ServiceFault(Err.NULL_ARRAY_ARGUMENT, name)
    if len(items) > MAX_ITEMS:
        raise ServiceFault(Err.COUNT_EXCEEDS_LIMIT, f"{name} has {len(items)} items; the limit is {MAX_ITEMS}")
    return items


def check_eligibility(uow: UnitOfWork, clock: Callable[[], datetime], principal: Principal,
                      request: CheckEligibilityRequest | None) -> list[int]:
    """The accounts (in request order, once each) the user may act for that hold a distributed, unclaimed,
    unexpired coupon of a class with this FeatureId; every other account is simply left out."""
    if request is None:
        raise ServiceFault(Err.NULL_REQUEST)
    feature_id = _required_feature(request.feature_id)
    _check_count(request.account_ids, "AccountIds")
    assert request.account_ids is not None
    ids = [parse_long(v, f"AccountIds[{i}]") for i, v in enumerate(request.account_ids)]
    wanted = list(dict.fromkeys(i for i in ids if i is not None))
    with uow.read() as store:
        known = fq.accounts(store.conn, wanted)
        mine = [i for i in wanted if i in known and principal.may_act_for(known[i].customer_id)]
        eligible = fq.eligible(store.conn, feature_id, mine, clock())
    return [i for i in mine if i in eligible]


def claim_coupons(uow: UnitOfWork, clock: Callable[[], datetime], principal: Principal,
                  request: ClaimCouponsRequest | None) -> ClaimOutcome:
    """Redeem distributed feature-adoption coupons into their accounts, all pairs in one transaction."""
    if request is None:
        raise ServiceFault(Err.NULL_REQUEST)
    _check_count(request.pairs, "AccountCouponPairs")
    assert request.pairs is not None
    parsed = [(None, None) if p is None else (parse_long(p.key, f"AccountCouponPairs[{i}].Key"), p.value)
              for i, p in enumerate(request.pairs)]
    for _ in range(5):
        try:
            with uow.write() as store:
                now = clock()
                return _claim(store.conn, now, principal, parsed)
        except RetryableConflict:
            continue
    raise ServiceFault(Err.INTERNAL_ERROR)


def _claim(conn: Connection, now: datetime, principal: Principal,
           pairs: list[tuple[int | None, str | None]]) -> ClaimOutcome:
    known = fq.accounts(conn, [a for a, _ in pairs if a is not None])
    claimed: list[tuple[int, datetime]] = []
    errors: list[list[OperationError]] = [[] for _ in pairs]
    for index, (account_id, raw_code) in enumerate(pairs):
        acc = known.get(account_id) if account_id is not None else None
        if acc is None or not principal.may_act_for(acc.customer_id):
            errors[index].append(OperationError.of(Err.INVALID_ACCOUNT))  # the same for unknown and foreign
            continue
        code = (raw_code or "").strip()
        shown = printable(code, 100)
        coupon = fq.coupon_for_claim(conn, code) if code and not code_problem(code) else None
        # a code distributed to another account (or never distributed) is, to this caller, no code at all
        if coupon is None or coupon.feature_id is None or coupon.distributed_account_id != acc.id:
            errors[index].append(OperationError.of(Err.COUPON_CODE_NOT_FOUND, shown))
            continue
        if coupon.state != "distributed":
            errors[index].append(OperationError.of(Err.COUPON_ALREADY_REDEEMED, shown))
            continue
        if any(limit is not None and now > limit
               for limit in (coupon.expires_at, coupon.end_date, coupon.expiration_date)):
            errors[index].append(OperationError.of(Err.COUPON_EXPIRED, shown))
            continue
        until = usable_until(now, coupon.active_duration,
                             effective_expiration(coupon.expiration_date, coupon.expires_at))
        if not fq.mark_claimed(conn, coupon.id, acc.id, now, until, coupon.amount):
            errors[index].append(OperationError.of(Err.COUPON_ALREADY_REDEEMED, shown))
            continue
        claimed.append((acc.id, now))
    return ClaimOutcome(claimed, errors)


# --- operator settings (CLI) -----------------------------------------------------------------------
def set_account_email(uow: UnitOfWork, account_id: int, email: str | None) -> None:
    """Set (or, with None, clear) where DistributeCoupons notifications for the account go."""
    if email is not None:
        email = trim(email)
        if not is_valid_address(email):
            raise ConfigurationError(f"{printable(email, 100)!r} is not a valid email address")
    with uow.write() as store:
        if not fq.set_account_email(store.conn, account_id, email):
            raise ConfigurationError(f"account {account_id} does not exist")


def set_class_feature(uow: UnitOfWork, customer_id: int, class_name: str, feature_id: int | None) -> None:
    """Make a class a feature-adoption class (or, with None, a plain one again)."""
    if feature_id is not None and not 0 < feature_id <= 2**31 - 1:
        raise ConfigurationError("the feature id must be an int from 1 to 2147483647")
    with uow.write() as store:
        if not fq.set_class_feature(store.conn, customer_id, class_name_key(class_name), feature_id):
            raise ConfigurationError(f"customer {customer_id} has no coupon class named {class_name!r}")
