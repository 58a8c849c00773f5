"""Domain entities and the allocation rules of DispatchCoupons (pure functions, no I/O)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from couponsvc.domain.emails import address_key, is_valid_address, printable, trim
from couponsvc.domain.errors import BatchError, Err

MAX_ADDRESSES_PER_CALL = 1000
INT64_MAX = 2**63 - 1


class CouponState(enum.StrEnum):
    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    REDEEMED = "redeemed"


@dataclass(frozen=True, slots=True)
class CouponClass:
    id: int
    customer_id: int
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

    def is_expired(self, now: datetime) -> bool:
        return class_is_expired(self.end_date, self.expiration_date, now)


def class_is_expired(end_date: datetime | None, expiration_date: datetime | None, now: datetime) -> bool:
    """Past its EndDate or its ExpirationDate: no coupon of the class may be sent any more."""
    return any(limit is not None and now > limit for limit in (end_date, expiration_date))


def class_name_key(name: str) -> str:
    """Coupon class names are unique per customer, case-insensitively."""
    return name.strip().casefold()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A request address that passed the syntax and duplicate checks."""

    index: int
    address: str  # trimmed, case as given
    key: str


@dataclass(frozen=True, slots=True)
class CouponRef:
    id: int
    code: str


@dataclass(frozen=True, slots=True)
class Allocation:
    candidate: Candidate
    coupon: CouponRef


def screen_addresses(raw: Sequence[str | None]) -> tuple[list[Candidate], list[BatchError]]:
    """Checks 3001 (syntax) and 3002 (repeated in this call), in request order."""
    seen: set[str] = set()
    candidates: list[Candidate] = []
    errors: list[BatchError] = []
    for index, value in enumerate(raw):
        if value is None:
            errors.append(BatchError.of(Err.INVALID_EMAIL_ADDRESS, index, None))
            continue
        address = trim(value)
        if not is_valid_address(address):
            errors.append(BatchError.of(Err.INVALID_EMAIL_ADDRESS, index, printable(value)))
            continue
        key = address_key(address)
        if key in seen:
            errors.append(BatchError.of(Err.DUPLICATE_EMAIL_IN_REQUEST, index, address))
            continue
        seen.add(key)
        candidates.append(Candidate(index, address, key))
    return candidates, errors


def plan_allocation(
    candidates: Sequence[Candidate],
    already_sent: set[str],
    available: Sequence[CouponRef],
) -> tuple[list[Allocation], list[BatchError]]:
    """Checks 3003 (sent before) and 3004 (pool empty); gives the oldest coupons first, in request order.

    ``available`` must be ordered oldest first and may be longer or shorter than needed.
    """
    allocations: list[Allocation] = []
    errors: list[BatchError] = []
    pool = iter(available)
    for cand in candidates:
        if cand.key in already_sent:
            errors.append(BatchError.of(Err.COUPON_ALREADY_SENT_TO_EMAIL, cand.index, cand.address))
            continue
        coupon = next(pool, None)
        if coupon is None:
            errors.append(BatchError.of(Err.NO_COUPON_AVAILABLE, cand.index, cand.address))
            continue
        allocations.append(Allocation(cand, coupon))
    return allocations, errors


def message_id(coupon_id: int, dispatch_id: int, domain: str) -> str:
    """A stable Message-ID for the email of one coupon in one dispatch, reused on every retry."""
    return f"<coupon-{coupon_id}.dispatch-{dispatch_id}@{domain}>"
