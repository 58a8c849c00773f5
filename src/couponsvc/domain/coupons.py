"""Coupon views (what SearchCoupons and GetCouponInfo return) and the rules of RedeemCoupon."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from couponsvc.domain.errors import Err


@dataclass(frozen=True, slots=True)
class RedemptionView:
    account_id: int
    account_number: str
    spend_to_threshold: float | None
    balance: float | None
    currency_code: str | None
    redemption_date: datetime
    expiration_date: datetime | None
    activation_date: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimView:
    """A claimed feature-adoption coupon: SearchCoupons' ClaimInfo."""

    account_id: int
    account_number: str
    claim_date: datetime


@dataclass(frozen=True, slots=True)
class CouponView:
    id: int
    customer_id: int
    code: str
    class_name: str
    coupon_type: str | None
    amount: float | None
    spend_threshold: float | None
    currency_code: str | None
    percent_off: float | None
    active_duration: int | None
    expiration_date: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    send_to_email: str | None
    send_to_date: datetime | None
    is_redeemed: bool
    redemption: RedemptionView | None
    claim: ClaimView | None = None
    state: str = ""  # available | dispatched | distributed | redeemed (operator views)
    distributed_account_id: int | None = None  # DistributeCoupons' account


@dataclass(frozen=True, slots=True)
class CouponInfo:
    """One CouponInfoData item: a coupon redeemed by an account of the customer."""

    account_id: int
    coupon_id: int
    status: int
    redemption_date: datetime
    expiration_date: datetime | None
    percent_off: float | None
    coupon_value: float | None
    active_duration: int | None
    spend_to_threshold: float | None
    start_date: datetime | None
    end_date: datetime | None
    balance: float | None
    currency_code: str | None
    claim_date: datetime | None = None  # claimed feature-adoption coupons
    feature_id: int | None = None


#: CouponInfoData.Status: the schema gives no list, so couponsvc uses these two values
STATUS_ACTIVE = 1
STATUS_EXPIRED = 2


@dataclass(frozen=True, slots=True)
class RedeemableCoupon:
    id: int
    state: str
    expires_at: datetime | None  # the code's own expiry, if any
    currency_code: str | None
    amount: float | None
    active_duration: int | None
    start_date: datetime | None
    end_date: datetime | None
    expiration_date: datetime | None


def effective_expiration(class_expiration: datetime | None, code_expiry: datetime | None) -> datetime | None:
    limits = [d for d in (class_expiration, code_expiry) if d is not None]
    return min(limits) if limits else None


def redemption_refusal(coupon: RedeemableCoupon, account_currency: str, now: datetime) -> Err | None:
    """Why this coupon cannot be redeemed into an account of ``account_currency`` now (in the order the
    errors are checked), or None."""
    if coupon.state == "redeemed":
        return Err.COUPON_ALREADY_REDEEMED
    if coupon.state == "distributed":  # a feature-adoption coupon of some account: only its claim redeems it
        return Err.COUPON_CODE_NOT_FOUND
    for limit in (coupon.expires_at, coupon.expiration_date, coupon.end_date):
        if limit is not None and now > limit:
            return Err.COUPON_EXPIRED
    if coupon.start_date is not None and now < coupon.start_date:
        return Err.COUPON_NOT_YET_ACTIVE
    if coupon.currency_code is not None and coupon.currency_code.upper() != account_currency.upper():
        return Err.COUPON_CURRENCY_MISMATCH
    return None


def usable_until(now: datetime, active_duration: int | None, class_expiration: datetime | None) -> datetime | None:
    """A redeemed coupon stays usable ActiveDuration days, but never past the class ExpirationDate."""
    if active_duration is None:
        return class_expiration
    until = now + timedelta(days=active_duration)
    return min(until, class_expiration) if class_expiration is not None else until
