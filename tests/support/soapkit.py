"""Raw SOAP for tests: build envelopes by hand, post them, read responses by namespace URI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import httpx
from lxml import etree

from tests.support.seeds import ALICE, CLASS, CUSTOMER, DEV

S = "http://schemas.xmlsoap.org/soap/envelope/"
BIL = "https://bingads.microsoft.com/Billing/v13"
EXC = "https://bingads.microsoft.com/Customer/v13/Exception"
AD = "https://adapi.microsoft.com"
ARR = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"s": S, "bil": BIL, "exc": EXC, "ad": AD, "arr": ARR, "i": XSI}


def headers_xml(auth: str | None = ALICE, dev: str | None = DEV, extra: str = "") -> str:
    parts = ['<Action mustUnderstand="1">DispatchCoupons</Action>']
    if auth is not None:
        parts.append(f"<AuthenticationToken>{escape(auth)}</AuthenticationToken>")
    if dev is not None:
        parts.append(f"<DeveloperToken>{escape(dev)}</DeveloperToken>")
    return "".join(parts) + extra


def envelope(body: str, *, auth: str | None = ALICE, dev: str | None = DEV, header_extra: str = "") -> bytes:
    return (
        f'<s:Envelope xmlns:i="{XSI}" xmlns:s="{S}">'
        f'<s:Header xmlns="{BIL}">{headers_xml(auth, dev, header_extra)}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def dispatch_body(
    emails: list[str | None] | None,
    customer_id: str | int | None = CUSTOMER,
    class_name: str | None = CLASS,
) -> str:
    parts = [f'<DispatchCouponsRequest xmlns="{BIL}">']
    if emails is None:
        parts.append('<SendToEmails i:nil="true"/>')
    else:
        items = "".join(
            '<a1:string i:nil="true"/>' if e is None else f"<a1:string>{escape(e, {chr(13): '&#13;'})}</a1:string>"
            for e in emails
        )
        parts.append(f'<SendToEmails xmlns:a1="{ARR}">{items}</SendToEmails>')
    if customer_id is not None:
        parts.append(f"<CustomerId>{escape(str(customer_id))}</CustomerId>")
    if class_name is not None:
        parts.append(f"<CouponClassName>{escape(class_name)}</CouponClassName>")
    parts.append("</DispatchCouponsRequest>")
    return "".join(parts)


@dataclass
class SoapResult:
    status: int
    headers: httpx.Headers
    root: Any

    @property
    def header_tracking_id(self) -> str:
        return str(self.root.findtext("s:Header/bil:TrackingId", namespaces=NS))

    @property
    def fault(self) -> Any:
        return self.root.find("s:Body/s:Fault", namespaces=NS)

    @property
    def fault_kind(self) -> str | None:
        f = self.fault
        if f is None:
            return None
        detail = f.find("detail")
        (child,) = list(detail)
        return str(etree.QName(child).localname)

    @property
    def fault_codes(self) -> list[int]:
        f = self.fault
        assert f is not None, "expected a fault"
        codes = f.findall("detail/ad:AdApiFaultDetail/ad:Errors/ad:AdApiError/ad:Code", namespaces=NS)
        codes += f.findall("detail/bil:ApiFault/exc:OperationErrors/exc:OperationError/exc:Code", namespaces=NS)
        return [int(c.text) for c in codes]

    @property
    def fault_details(self) -> str | None:
        f = self.fault
        el = f.find(".//exc:Details", namespaces=NS)
        if el is None:
            el = f.find(".//ad:Detail", namespaces=NS)
        return None if el is None or el.get(f"{{{XSI}}}nil") == "true" else el.text

    @property
    def batch_errors(self) -> list[dict[str, Any]]:
        resp = self.root.find("s:Body/bil:DispatchCouponsResponse", namespaces=NS)
        assert resp is not None, etree.tostring(self.root)
        items = resp.findall("bil:PartialErrors/exc:BatchError", namespaces=NS)
        out = []
        for item in items:
            names = [etree.QName(c).localname for c in item]
            assert names == ["Code", "Details", "Index", "Message"], names
            details = item.find("exc:Details", namespaces=NS)
            out.append({
                "Code": int(item.findtext("exc:Code", namespaces=NS)),
                "Details": None if details.get(f"{{{XSI}}}nil") == "true" else details.text,
                "Index": int(item.findtext("exc:Index", namespaces=NS)),
                "Message": item.findtext("exc:Message", namespaces=NS),
            })
        return out


def post(url: str, body: bytes, content_type: str = "text/xml; charset=utf-8",
         extra_headers: dict[str, str] | None = None) -> SoapResult:
    headers = {"Content-Type": content_type, **(extra_headers or {})}
    r = httpx.post(url, content=body, headers=headers, timeout=60)
    assert r.headers["content-type"].startswith("text/xml"), (r.status_code, r.text[:500])
    root = etree.fromstring(r.content)
    return SoapResult(r.status_code, r.headers, root)


def dispatch(url: str, emails: list[str | None] | None, **kw: Any) -> SoapResult:
    auth = kw.pop("auth", ALICE)
    dev = kw.pop("dev", DEV)
    return post(url, envelope(dispatch_body(emails, **kw), auth=auth, dev=dev))
