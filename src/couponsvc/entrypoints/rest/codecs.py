"""Per-operation JSON codecs.  Longs are strings in responses and a string or an integer in requests."""

from __future__ import annotations

from typing import Any

from couponsvc.domain.errors import BatchError, Err, ServiceFault
from couponsvc.domain.values import RawLong
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
