"""SOAP 1.1 envelopes: reading a request (headers, operation, body element) and writing responses and faults."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from couponsvc.domain.emails import printable
from couponsvc.domain.errors import BatchError, Err, FaultKind, ServiceFault
from couponsvc.entrypoints.soap.namespaces import (
    AD,
    BIL,
    EXC,
    RESPONSE_NSMAP,
    SOAP12_ENV,
    SOAP_ENV,
    XSI_NIL,
    q,
)
from couponsvc.entrypoints.soap.safexml import UnsafeOrMalformedXml, parse
from couponsvc.entrypoints.wire import W, xml_text
from couponsvc.service_layer.auth import Credentials


@dataclass(frozen=True, slots=True)
class SoapRequest:
    operation: str | None  # e.g. "DispatchCoupons"; None when the body is empty
    body_element: Any | None  # the <XxxRequest> element, None when absent or nil
    credentials: Credentials


def local_name(el: Any) -> str:
    return str(etree.QName(el).localname)


def is_nil(el: Any) -> bool:
    return el.get(XSI_NIL) in ("true", "1")


def element_children(el: Any) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str)]


def text_value(el: Any, field: str) -> str | None:
    """The text of a simple-typed element; None when nil; 201 when it holds elements."""
    if is_nil(el):
        return None
    if element_children(el):
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{field} must hold a value, not elements")
    return el.text or ""


def fields_of(el: Any, allowed: Sequence[str], container: str, ns: str = BIL) -> dict[str, Any]:
    """The child elements of a request object by local name; 201 for unknown or repeated ones."""
    found: dict[str, Any] = {}
    for child in element_children(el):
        name = local_name(child)
        if etree.QName(child).namespace != ns or name not in allowed:
            raise ServiceFault(
                Err.API_INPUT_VALIDATION_ERROR,
                f"Unexpected element {printable(child.tag, 120)} in {container}; expected one of {', '.join(allowed)}"
                f" in namespace {ns}",
            )
        if name in found:
            raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{name} appears more than once in {container}")
        found[name] = child
    return found


def read_request(body: bytes, soap_action: str | None, max_depth: int) -> SoapRequest:
    try:
        root = parse(body, max_depth)
    except UnsafeOrMalformedXml as exc:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, str(exc)) from exc
    if root.tag == q(SOAP12_ENV, "Envelope"):
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                           "SOAP 1.2 envelopes are not supported; send a SOAP 1.1 envelope as text/xml")
    if root.tag != q(SOAP_ENV, "Envelope"):
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                           f"The body is not a SOAP 1.1 envelope (root element {printable(root.tag, 120)})")
    header = root.find(q(SOAP_ENV, "Header"))
    body_el = root.find(q(SOAP_ENV, "Body"))
    if body_el is None:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, "The SOAP envelope has no Body")

    tokens: dict[str, str | None] = {}
    if header is not None:
        for h in element_children(header):
            if etree.QName(h).namespace == BIL and local_name(h) in ("AuthenticationToken", "DeveloperToken"):
                tokens[local_name(h)] = None if is_nil(h) else (h.text or "")
    creds = Credentials(tokens.get("DeveloperToken"), tokens.get("AuthenticationToken"))

    children = element_children(body_el)
    if not children:
        return SoapRequest(_operation_from_action(soap_action), None, creds)
    first = children[0]
    name = local_name(first)
    if etree.QName(first).namespace != BIL or not name.endswith("Request"):
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                           f"Unknown request element {printable(first.tag, 120)}; expected a {{{BIL}}}XxxRequest")
    return SoapRequest(name[: -len("Request")], None if is_nil(first) else first, creds)


def _operation_from_action(soap_action: str | None) -> str | None:
    if not soap_action:
        return None
    action = soap_action.strip().strip('"').rstrip("/")
    return action.rsplit("/", 1)[-1] or None


# --- writing -----------------------------------------------------------------------------------
def _sub(parent: Any, ns: str, local: str, value: object | None = None, *, nil_if_none: bool = False) -> Any:
    el = etree.SubElement(parent, q(ns, local))
    if value is None:
        if nil_if_none:
            el.set(XSI_NIL, "true")
    else:
        el.text = str(value)
    return el


def _envelope(tracking_id: str) -> tuple[Any, Any]:
    env = etree.Element(q(SOAP_ENV, "Envelope"), nsmap=RESPONSE_NSMAP)
    header = etree.SubElement(env, q(SOAP_ENV, "Header"))
    _sub(header, BIL, "TrackingId", tracking_id)
    body = etree.SubElement(env, q(SOAP_ENV, "Body"))
    return env, body


def _serialize(env: Any) -> bytes:
    return bytes(etree.tostring(env, encoding="utf-8", xml_declaration=True))


def response(tracking_id: str, operation: str, fill: Any) -> bytes:
    """A success envelope with ``<bil:{operation}Response>``; ``fill(element)`` writes its children."""
    env, body = _envelope(tracking_id)
    fill(etree.SubElement(body, q(BIL, f"{operation}Response")))
    return _serialize(env)


def write_batch_errors(parent: Any, name: str, errors: Iterable[BatchError]) -> None:
    container = _sub(parent, BIL, name)
    for e in errors:
        item = _sub(container, EXC, "BatchError")
        _sub(item, EXC, "Code", e.code)
        _sub(item, EXC, "Details", e.details or None, nil_if_none=True)
        _sub(item, EXC, "Index", e.index)
        _sub(item, EXC, "Message", e.message)


def fault(tracking_id: str, error: ServiceFault) -> bytes:
    env, body = _envelope(tracking_id)
    f = etree.SubElement(body, q(SOAP_ENV, "Fault"))
    etree.SubElement(f, "faultcode").text = "s:Server"
    prefix = (
        "Invalid client data. Check the SOAP fault details for more information."
        if error.error.kind is FaultKind.API
        else f"{error.error.message}"
    )
    faultstring = etree.SubElement(f, "faultstring")
    faultstring.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    faultstring.text = f"{prefix} TrackingId: {tracking_id}"
    detail = etree.SubElement(f, "detail")
    d = error.error
    if d.kind is FaultKind.AD_API:
        node = _sub(detail, AD, "AdApiFaultDetail")
        _sub(node, AD, "TrackingId", tracking_id)
        item = _sub(_sub(node, AD, "Errors"), AD, "AdApiError")
        _sub(item, AD, "Code", d.code)
        _sub(item, AD, "Detail", _details(error), nil_if_none=True)
        _sub(item, AD, "ErrorCode", d.error_code)
        _sub(item, AD, "Message", d.message)
    else:
        node = _sub(detail, BIL, "ApiFault")
        _sub(node, AD, "TrackingId", tracking_id)
        item = _sub(_sub(node, EXC, "OperationErrors"), EXC, "OperationError")
        _sub(item, EXC, "Code", d.code)
        _sub(item, EXC, "Details", _details(error), nil_if_none=True)
        _sub(item, EXC, "Message", d.message)
    return _serialize(env)


def _details(error: ServiceFault) -> str | None:
    return printable(error.details, 1000) if error.details else None


def write_fields(parent: Any, ns: str, fields: Sequence[W]) -> None:
    """Children of an entity, in schema order (nested objects in the same namespace)."""
    for f in fields:
        if f.value is None:
            if f.nillable:
                _sub(parent, ns, f.name, None, nil_if_none=True)
            continue
        if f.kind == "object":
            write_fields(_sub(parent, ns, f.name), ns, f.value)
        else:
            _sub(parent, ns, f.name, xml_text(f))
