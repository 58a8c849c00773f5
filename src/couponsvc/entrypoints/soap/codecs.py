"""Per-operation SOAP codecs: request element → service request; service result → response children."""

from __future__ import annotations

from typing import Any

from lxml import etree

from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.entrypoints.soap.envelope import (
    element_children,
    fields_of,
    is_nil,
    text_value,
    write_batch_errors,
)
from couponsvc.entrypoints.soap.namespaces import ARR, q
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
