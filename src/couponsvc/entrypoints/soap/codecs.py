"""Per-operation SOAP codecs: request element → service request; service result → response children."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lxml import etree

from couponsvc.domain.coupons import CouponInfo, CouponView
from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.domain.search import RawOrderBy, RawPaging, RawPredicate
from couponsvc.entrypoints.soap.envelope import (
    element_children,
    fields_of,
    is_nil,
    text_value,
    write_batch_errors,
    write_fields,
)
from couponsvc.entrypoints.soap.namespaces import ARR, BIL, ENT, q
from couponsvc.entrypoints.wire import coupon_fields, coupon_info_fields, iso
from couponsvc.service_layer.coupons import GetCouponInfoRequest, RedeemCouponRequest, SearchCouponsRequest
from couponsvc.service_layer.dispatch import DispatchCouponsRequest, DispatchOutcome


def string_array(el: Any | None, field: str) -> list[str | None] | None:
    """An ``ArrayOfstring``: ``<arr:string>`` items; a nil item is None."""
    if el is None or is_nil(el):
        return None
    items: list[str | None] = []
    for child in element_children(el):
        if child.tag != q(ARR, "string"):
            raise ServiceFault(
                Err.API_INPUT_VALIDATION_ERROR,
                f"{field} items must be {{{ARR}}}string elements, found {etree.QName(child).localname}",
            )
        items.append(text_value(child, f"{field} item"))
    return items


def optional_text(fields: dict[str, Any], name: str) -> str | None:
    el = fields.get(name)
    return None if el is None else text_value(el, name)


def parse_dispatch_coupons(el: Any | None) -> DispatchCouponsRequest | None:
    if el is None:
        return None
    f = fields_of(el, ("SendToEmails", "CustomerId", "CouponClassName"), "DispatchCouponsRequest")
    return DispatchCouponsRequest(
        send_to_emails=string_array(f.get("SendToEmails"), "SendToEmails"),
        customer_id=optional_text(f, "CustomerId"),
        coupon_class_name=optional_text(f, "CouponClassName"),
    )


def write_dispatch_coupons(parent: Any, outcome: DispatchOutcome) -> None:
    write_batch_errors(parent, "PartialErrors", outcome.partial_errors)


def _items(el: Any | None, item: str, field: str) -> list[Any | None] | None:
    """The ``ent:{item}`` children of an array element; a nil item is None."""
    if el is None or is_nil(el):
        return None
    out: list[Any | None] = []
    for child in element_children(el):
        if child.tag != q(ENT, item):
            raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                               f"{field} items must be {{{ENT}}}{item} elements, found {etree.QName(child).localname}")
        out.append(None if is_nil(child) else child)
    return out


def _predicate(el: Any | None) -> RawPredicate | None:
    if el is None:
        return None
    f = fields_of(el, ("Field", "Operator", "Value"), "Predicate", ENT)
    return RawPredicate(optional_text(f, "Field"), optional_text(f, "Operator"), optional_text(f, "Value"))


def _order_by(el: Any | None) -> RawOrderBy | None:
    if el is None:
        return None
    f = fields_of(el, ("Field", "Order"), "OrderBy", ENT)
    return RawOrderBy(optional_text(f, "Field"), optional_text(f, "Order"))


def parse_search_coupons(el: Any | None) -> SearchCouponsRequest | None:
    if el is None:
        return None
    f = fields_of(el, ("Predicates", "Ordering", "PageInfo", "ReturnAdditionalFields"), "SearchCouponsRequest")
    predicates = _items(f.get("Predicates"), "Predicate", "Predicates")
    ordering = _items(f.get("Ordering"), "OrderBy", "Ordering")
    paging = None
    page_el = f.get("PageInfo")
    if page_el is not None and not is_nil(page_el):
        p = fields_of(page_el, ("Index", "Size"), "PageInfo", ENT)
        paging = RawPaging(optional_text(p, "Index"), optional_text(p, "Size"))
    return SearchCouponsRequest(
        None if predicates is None else [_predicate(p) for p in predicates],
        None if ordering is None else [_order_by(o) for o in ordering],
        paging,
        optional_text(f, "ReturnAdditionalFields"),
    )


def write_search_coupons(parent: Any, coupons: list[CouponView]) -> None:
    container = etree.SubElement(parent, q(BIL, "Coupons"))
    for coupon in coupons:
        write_fields(etree.SubElement(container, q(ENT, "Coupon")), ENT, coupon_fields(coupon))


def parse_redeem_coupon(el: Any | None) -> RedeemCouponRequest | None:
    if el is None:
        return None
    f = fields_of(el, ("AccountId", "CouponCode"), "RedeemCouponRequest")
    return RedeemCouponRequest(optional_text(f, "AccountId"), optional_text(f, "CouponCode"))


def write_redeem_coupon(parent: Any, redemption_date: datetime) -> None:
    etree.SubElement(parent, q(BIL, "RedemptionDate")).text = iso(redemption_date)


def parse_get_coupon_info(el: Any | None) -> GetCouponInfoRequest | None:
    if el is None:
        return None
    f = fields_of(el, ("CustomerId",), "GetCouponInfoRequest")
    return GetCouponInfoRequest(optional_text(f, "CustomerId"))


def write_get_coupon_info(parent: Any, infos: list[CouponInfo]) -> None:
    container = etree.SubElement(parent, q(BIL, "CouponInfoData"))
    for info in infos:
        write_fields(etree.SubElement(container, q(ENT, "CouponInfoData")), ENT, coupon_info_fields(info))
