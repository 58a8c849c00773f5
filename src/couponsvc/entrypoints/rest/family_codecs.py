"""JSON codecs of DistributeCoupons, CheckFeatureAdoptionCouponEligibility and ClaimFeatureAdoptionCoupons.

DistributeCoupons' AccountIds and both FeatureIds are ``int`` in the schema: JSON numbers (the REST SDK's
StrictInt).  The other account ids are longs: strings in responses, a string or a number in requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from couponsvc.domain.errors import OperationError
from couponsvc.domain.values import RawLong
from couponsvc.entrypoints.rest.codecs import int_value, invalid, long_value, obj_fields, string_value
from couponsvc.entrypoints.wire import iso
from couponsvc.service_layer.distribute import DistributeCouponsRequest, DistributeOutcome
from couponsvc.service_layer.feature_adoption import (
    AccountCouponPair,
    CheckEligibilityRequest,
    ClaimCouponsRequest,
    ClaimOutcome,
)


def _list(value: Any, field: str) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid(f"{field} must be an array")
    return value


def _ints(value: Any, field: str) -> list[RawLong] | None:
    items = _list(value, field)
    return None if items is None else [int_value(v, f"{field}[{i}]") for i, v in enumerate(items)]


def _longs(value: Any, field: str) -> list[RawLong] | None:
    items = _list(value, field)
    return None if items is None else [long_value(v, f"{field}[{i}]") for i, v in enumerate(items)]


def _bool(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise invalid(f"{field} must be true or false")


def operation_errors(errors: Sequence[OperationError]) -> list[dict[str, Any]]:
    return [{"Code": e.code, "Details": e.details or None, "Message": e.message} for e in errors]


def parse_distribute_coupons(body: Any) -> DistributeCouponsRequest | None:
    if body is None:
        return None
    f = obj_fields(body, ("AccountIds", "ClassName", "FeatureId", "SendNotification"), "DistributeCouponsRequest")
    return DistributeCouponsRequest(
        account_ids=_ints(f.get("AccountIds"), "AccountIds"),
        class_name=string_value(f.get("ClassName"), "ClassName"),
        feature_id=int_value(f.get("FeatureId"), "FeatureId"),
        send_notification=_bool(f.get("SendNotification"), "SendNotification"),
    )


def render_distribute_coupons(outcome: DistributeOutcome) -> dict[str, Any]:
    return {"OperationErrors": [], "PartialErrors": [operation_errors(e) for e in outcome.partial_errors]}


def parse_check_eligibility(body: Any) -> CheckEligibilityRequest | None:
    if body is None:
        return None
    f = obj_fields(body, ("FeatureId", "AccountIds"), "CheckFeatureAdoptionCouponEligibilityRequest")
    return CheckEligibilityRequest(int_value(f.get("FeatureId"), "FeatureId"),
                                   _longs(f.get("AccountIds"), "AccountIds"))


def render_check_eligibility(account_ids: list[int]) -> dict[str, Any]:
    return {"EligibleAccountIds": [str(i) for i in account_ids]}


def parse_claim_coupons(body: Any) -> ClaimCouponsRequest | None:
    if body is None:
        return None
    f = obj_fields(body, ("AccountCouponPairs",), "ClaimFeatureAdoptionCouponsRequest")
    items = _list(f.get("AccountCouponPairs"), "AccountCouponPairs")
    if items is None:
        return ClaimCouponsRequest(None)
    pairs: list[AccountCouponPair | None] = []
    for i, item in enumerate(items):
        if item is None:
            pairs.append(None)
            continue
        p = obj_fields(item, ("Key", "Value"), f"AccountCouponPairs[{i}]")
        pairs.append(AccountCouponPair(long_value(p.get("Key"), f"AccountCouponPairs[{i}].Key"),
                                       string_value(p.get("Value"), f"AccountCouponPairs[{i}].Value")))
    return ClaimCouponsRequest(pairs)


def render_claim_coupons(outcome: ClaimOutcome) -> dict[str, Any]:
    return {
        "ClaimedDateByAccountId": [{"Key": str(a), "Value": iso(d)} for a, d in outcome.claimed],
        "OperationErrors": [],
        "PartialErrors": [operation_errors(e) for e in outcome.partial_errors],
    }
