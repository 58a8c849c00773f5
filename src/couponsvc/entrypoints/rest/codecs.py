"""Per-operation JSON codecs.  Longs are strings in responses and a string or an integer in requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from couponsvc.domain.coupons import CouponInfo, CouponView
from couponsvc.domain.errors import BatchError, Err, ServiceFault
from couponsvc.domain.search import RawOrderBy, RawPaging, RawPredicate
from couponsvc.domain.values import RawLong
from couponsvc.entrypoints.wire import coupon_fields, coupon_info_fields, iso, to_json
from couponsvc.service_layer.coupons import GetCouponInfoRequest, RedeemCouponRequest, SearchCouponsRequest
from couponsvc.service_layer.dispatch import DispatchCouponsRequest, DispatchOutcome


def invalid(details: str) -> ServiceFault:
    return ServiceFault(Err.API_INPUT_VALIDATION_ERROR, details)


def obj_fields(body: Any, allowed: tuple[str, ...], container: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid(f"The {container} body must be a JSON object")
    unknown = [k for k in body if k not in allowed]
    if unknown:
        raise invalid(f"Unknown field {unknown[0]!r} in {container}; expected {', '.join(allowed)}")
    return body


def long_value(value: Any, field: str) -> RawLong:
    if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise invalid(f"{field} must be a long (a string of digits or an integer)")


def string_value(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"{field} must be a string")


def string_list(value: Any, field: str) -> list[str | None] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid(f"{field} must be an array of strings")
    for i, item in enumerate(value):
        if item is not None and not isinstance(item, str):
            raise invalid(f"{field}[{i}] must be a string")
    return value


def batch_errors(errors: list[BatchError]) -> list[dict[str, Any]]:
    return [{"Code": e.code, "Details": e.details or None, "Index": e.index, "Message": e.message} for e in errors]


def parse_dispatch_coupons(body: Any) -> DispatchCouponsRequest | None:
    if body is None:
        return None
    f = obj_fields(body, ("SendToEmails", "CustomerId", "CouponClassName"), "DispatchCouponsRequest")
    return DispatchCouponsRequest(
        send_to_emails=string_list(f.get("SendToEmails"), "SendToEmails"),
        customer_id=long_value(f.get("CustomerId"), "CustomerId"),
        coupon_class_name=string_value(f.get("CouponClassName"), "CouponClassName"),
    )


def render_dispatch_coupons(outcome: DispatchOutcome) -> dict[str, Any]:
    return {"PartialErrors": batch_errors(outcome.partial_errors)}


def int_value(value: Any, field: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise invalid(f"{field} must be an integer")


def object_list(value: Any, field: str) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid(f"{field} must be an array")
    return value


def _predicate(item: Any, i: int) -> RawPredicate | None:
    if item is None:
        return None
    f = obj_fields(item, ("Field", "Operator", "Value"), f"Predicates[{i}]")
    return RawPredicate(string_value(f.get("Field"), f"Predicates[{i}].Field"),
                        string_value(f.get("Operator"), f"Predicates[{i}].Operator"),
                        string_value(f.get("Value"), f"Predicates[{i}].Value"))


def _order_by(item: Any, i: int) -> RawOrderBy | None:
    if item is None:
        return None
    f = obj_fields(item, ("Field", "Order"), f"Ordering[{i}]")
    return RawOrderBy(string_value(f.get("Field"), f"Ordering[{i}].Field"),
                      string_value(f.get("Order"), f"Ordering[{i}].Order"))


def parse_search_coupons(body: Any) -> SearchCouponsRequest | None:
    if body is None:
        return None
    f = obj_fields(body, ("Predicates", "Ordering", "PageInfo", "ReturnAdditionalFields"), "SearchCouponsRequest")
    predicates = object_list(f.get("Predicates"), "Predicates")
    ordering = object_list(f.get("Ordering"), "Ordering")
    paging = None
    if f.get("PageInfo") is not None:
        p = obj_fields(f["PageInfo"], ("Index", "Size"), "PageInfo")
        paging = RawPaging(int_value(p.get("Index"), "PageInfo.Index"), int_value(p.get("Size"), "PageInfo.Size"))
    return SearchCouponsRequest(
        None if predicates is None else [_predicate(p, i) for i, p in enumerate(predicates)],
        None if ordering is None else [_order_by(o, i) for i, o in enumerate(ordering)],
        paging,
        string_value(f.get("ReturnAdditionalFields"), "ReturnAdditionalFields"),
    )


def render_search_coupons(coupons: list[CouponView]) -> dict[str, Any]:
    return {"Coupons": [to_json(coupon_fields(c)) for c in coupons]}


def parse_redeem_coupon(body: Any) -> RedeemCouponRequest | None:
    if body is None:
        return None
    f = obj_fields(body, ("AccountId", "CouponCode"), "RedeemCouponRequest")
    return RedeemCouponRequest(long_value(f.get("AccountId"), "AccountId"),
                               string_value(f.get("CouponCode"), "CouponCode"))


def render_redeem_coupon(redemption_date: datetime) -> dict[str, Any]:
    return {"RedemptionDate": iso(redemption_date)}


def parse_get_coupon_info(body: Any) -> GetCouponInfoRequest | None:
    if body is None:
        return None
    f = obj_fields(body, ("CustomerId",), "GetCouponInfoRequest")
    return GetCouponInfoRequest(long_value(f.get("CustomerId"), "CustomerId"))


def render_get_coupon_info(infos: list[CouponInfo]) -> dict[str, Any]:
    return {"CouponInfoData": [to_json(coupon_info_fields(i)) for i in infos]}
