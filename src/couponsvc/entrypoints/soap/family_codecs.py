"""SOAP codecs of DistributeCoupons, CheckFeatureAdoptionCouponEligibility and ClaimFeatureAdoptionCoupons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree

from couponsvc.domain.errors import Err, OperationError, ServiceFault
from couponsvc.domain.values import RawLong
from couponsvc.entrypoints.soap.envelope import element_children, fields_of, is_nil, text_value
from couponsvc.entrypoints.soap.namespaces import ARR, BIL, ENT, EXC, XSI_NIL, q
from couponsvc.entrypoints.wire import iso
from couponsvc.service_layer.distribute import DistributeCouponsRequest, DistributeOutcome
from couponsvc.service_layer.feature_adoption import (
    AccountCouponPair,
    CheckEligibilityRequest,
    ClaimCouponsRequest,
    ClaimOutcome,
)


def _text(fields: dict[str, Any], name: str) -> str | None:
    el = fields.get(name)
    return None if el is None else text_value(el, name)


def number_array(el: Any | None, item: str, field: str) -> list[RawLong] | None:
    """An ``ArrayOfint`` / ``ArrayOflong``: ``<arr:int>`` / ``<arr:long>`` items (text kept raw; nil is None)."""
    if el is None or is_nil(el):
        return None
    out: list[RawLong] = []
    for child in element_children(el):
        if child.tag != q(ARR, item):
            raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                               f"{field} items must be {{{ARR}}}{item} elements, found {etree.QName(child).localname}")
        out.append(text_value(child, f"{field} item"))
    return out


def boolean(text: str | None, field: str) -> bool | None:
    if text is None:
        return None
    value = text.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{field} must be true or false")


def parse_distribute_coupons(el: Any | None) -> DistributeCouponsRequest | None:
    if el is None:
        return None
    f = fields_of(el, ("AccountIds", "ClassName", "FeatureId", "SendNotification"), "DistributeCouponsRequest")
    return DistributeCouponsRequest(
        account_ids=number_array(f.get("AccountIds"), "int", "AccountIds"),
        class_name=_text(f, "ClassName"),
        feature_id=_text(f, "FeatureId"),
        send_notification=boolean(_text(f, "SendNotification"), "SendNotification"),
    )


def _sub(parent: Any, ns: str, name: str, text: str | None = None, *, nil: bool = False) -> Any:
    el = etree.SubElement(parent, q(ns, name))
    if text is not None:
        el.text = text
    elif nil:
        el.set(XSI_NIL, "true")
    return el


def write_operation_errors(parent: Any, ns: str, name: str, errors: Sequence[OperationError]) -> None:
    container = _sub(parent, ns, name)
    for e in errors:
        item = _sub(container, EXC, "OperationError")
        _sub(item, EXC, "Code", str(e.code))
        _sub(item, EXC, "Details", e.details or None, nil=True)
        _sub(item, EXC, "Message", e.message)


def write_partial_errors(parent: Any, partial: Sequence[Sequence[OperationError]]) -> None:
    """``exc:ArrayOfArrayOfOperationError``: one ``exc:ArrayOfOperationError`` per request item."""
    container = _sub(parent, BIL, "PartialErrors")
    for errors in partial:
        write_operation_errors(container, EXC, "ArrayOfOperationError", errors)


def write_distribute_coupons(parent: Any, outcome: DistributeOutcome) -> None:
    write_operation_errors(parent, BIL, "OperationErrors", [])
    write_partial_errors(parent, outcome.partial_errors)


def parse_check_eligibility(el: Any | None) -> CheckEligibilityRequest | None:
    if el is None:
        return None
    f = fields_of(el, ("FeatureId", "AccountIds"), "CheckFeatureAdoptionCouponEligibilityRequest")
    return CheckEligibilityRequest(_text(f, "FeatureId"), number_array(f.get("AccountIds"), "long", "AccountIds"))


def write_check_eligibility(parent: Any, account_ids: list[int]) -> None:
    container = _sub(parent, BIL, "EligibleAccountIds")
    for account_id in account_ids:
        _sub(container, ARR, "long", str(account_id))


def parse_claim_coupons(el: Any | None) -> ClaimCouponsRequest | None:
    if el is None:
        return None
    f = fields_of(el, ("AccountCouponPairs",), "ClaimFeatureAdoptionCouponsRequest")
    pairs_el = f.get("AccountCouponPairs")
    if pairs_el is None or is_nil(pairs_el):
        return ClaimCouponsRequest(None)
    pairs: list[AccountCouponPair | None] = []
    for child in element_children(pairs_el):
        if child.tag != q(ENT, "KeyValueEntityOflongstring"):
            raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                               f"AccountCouponPairs items must be {{{ENT}}}KeyValueEntityOflongstring elements, "
                               f"found {etree.QName(child).localname}")
        if is_nil(child):
            pairs.append(None)
            continue
        p = fields_of(child, ("Key", "Value"), "KeyValueEntityOflongstring", ENT)
        pairs.append(AccountCouponPair(_text(p, "Key"), _text(p, "Value")))
    return ClaimCouponsRequest(pairs)


def write_claim_coupons(parent: Any, outcome: ClaimOutcome) -> None:
    container = _sub(parent, BIL, "ClaimedDateByAccountId")
    for account_id, date in outcome.claimed:
        item = _sub(container, ENT, "KeyValueEntityOflongdateTime")
        _sub(item, ENT, "Key", str(account_id))
        _sub(item, ENT, "Value", iso(date))
    write_operation_errors(parent, BIL, "OperationErrors", [])
    write_partial_errors(parent, outcome.partial_errors)
