"""SearchCoupons, RedeemCoupon and GetCouponInfo: one function per operation, each in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from couponsvc.adapters import coupon_queries as q
from couponsvc.domain.codes import code_problem
from couponsvc.domain.coupons import (
    CouponInfo,
    CouponView,
    effective_expiration,
    redemption_refusal,
    usable_until,
)
from couponsvc.domain.emails import printable
from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.domain.search import RawOrderBy, RawPaging, RawPredicate, parse_query
from couponsvc.domain.values import RawLong, parse_long
from couponsvc.service_layer.auth import Principal
from couponsvc.service_layer.unit_of_work import RetryableConflict, UnitOfWork

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class SearchCouponsRequest:
    predicates: Sequence[RawPredicate | None] | None
    ordering: Sequence[RawOrderBy | None] | None
    page_info: RawPaging | None
    #: the schema's AccountAdditionalField list ("CouponClaimInfo", ...), space- or comma-separated
    return_additional_fields: str | None = None


@dataclass(frozen=True, slots=True)
class RedeemCouponRequest:
    account_id: RawLong
    coupon_code: str | None


@dataclass(frozen=True, slots=True)
class GetCouponInfoRequest:
    customer_id: RawLong


def search_coupons(uow: UnitOfWork, principal: Principal, request: SearchCouponsRequest | None,
                   ) -> list[CouponView]:
    """Coupons of the customers the caller may act for, whatever the predicates say."""
    if request is None:
        raise ServiceFault(Err.NULL_REQUEST)
    query = parse_query(request.predicates, request.ordering, request.page_info)
    claim_info = "CouponClaimInfo" in additional_fields(request.return_additional_fields)
    with uow.read() as store:
        found = q.search(store.conn, principal.customer_ids, query)
    return found if claim_info else [replace(v, claim=None) for v in found]


#: the values of the schema's AccountAdditionalField (a flags list); only CouponClaimInfo changes coupons
ADDITIONAL_FIELDS = ("None", "TaxCertificate", "AccountMode", "CouponClaimInfo", "ParentCustomerNumber")


def additional_fields(raw: str | None) -> set[str]:
    """ReturnAdditionalFields: an xs:list (SOAP: space-separated) or the REST SDK's comma-separated names;
    201 naming an unknown one."""
    names = set((raw or "").replace(",", " ").split())
    unknown = sorted(names - set(ADDITIONAL_FIELDS))
    if unknown:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                           f"ReturnAdditionalFields: unknown value {printable(unknown[0], 60)!r}; "
                           f"expected {', '.join(ADDITIONAL_FIELDS)}")
    return names


def _positive_id(raw: RawLong, field: str) -> int:
    value = parse_long(raw, field)
    if value is None:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{field} is required")
    if value <= 0:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{field} must be positive, got {value}")
    return value


def redeem_coupon(uow: UnitOfWork, clock: Clock, principal: Principal, request: RedeemCouponRequest | None,
                  ) -> datetime:
    """Redeem a code into an account: returns the RedemptionDate.  A code is a bearer credential: whoever
    holds it may redeem it into an account of a customer they act for."""
    if request is None:
        raise ServiceFault(Err.NULL_REQUEST)
    account_id = _positive_id(request.account_id, "AccountId")
    if request.coupon_code is None or not request.coupon_code.strip():
        raise ServiceFault(Err.NULL_PARAMETER, "CouponCode")
    code = request.coupon_code.strip()
    for _ in range(5):
        try:
            with uow.write() as store:
                now = clock()  # once the write lock is held (SQLite may queue writers): the order of commits
                account = q.account(store.conn, account_id)
                if account is None:
                    raise ServiceFault(Err.INVALID_ACCOUNT, f"AccountId {account_id}")
                principal.require_customer(account.customer_id)
                # a text that cannot be a code (control characters, spaces...) is unknown without a lookup
                coupon = None if code_problem(code) else q.coupon_by_code(store.conn, code)
                if coupon is None:
                    raise ServiceFault(Err.COUPON_CODE_NOT_FOUND, printable(code, 100))
                refusal = redemption_refusal(coupon, account.currency_code, now)
                if refusal is not None:
                    raise ServiceFault(refusal, printable(code, 100))
                # a code imported with its own expiry is not usable past it either (as SearchCoupons shows it)
                until = usable_until(now, coupon.active_duration,
                                     effective_expiration(coupon.expiration_date, coupon.expires_at))
                if not q.mark_redeemed(store.conn, coupon.id, account.id, now, until, coupon.amount):
                    raise ServiceFault(Err.COUPON_ALREADY_REDEEMED, printable(code, 100))
                return now
        except RetryableConflict:
            continue
    raise ServiceFault(Err.INTERNAL_ERROR)


def get_coupon_info(uow: UnitOfWork, clock: Clock, principal: Principal, request: GetCouponInfoRequest | None,
                    ) -> list[CouponInfo]:
    if request is None:
        raise ServiceFault(Err.NULL_REQUEST)
    customer_id = _positive_id(request.customer_id, "CustomerId")
    principal.require_customer(customer_id)
    with uow.read() as store:
        return q.coupon_info(store.conn, customer_id, clock())
