"""Bad input at the protocol level gets a protocol-correct fault with a TrackingId, never a framework page."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support import restkit, soapkit
from tests.support.seeds import ALICE, BOB, DEV
from tests.support.server import ServerProcess


@pytest.fixture
def server(api_server: ServerProcess) -> ServerProcess:
    """Every test of this file runs against a server on SQLite and one on PostgreSQL."""
    return api_server


ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
)
XXE = '<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>'


def soap_fault(server: ServerProcess, body: bytes, content_type: str = "text/xml; charset=utf-8",
               status: int = 500) -> soapkit.SoapResult:
    res = soapkit.post(server.soap_url, body, content_type)
    assert res.status == status
    assert res.fault is not None
    assert res.fault.findtext("faultstring").endswith(res.header_tracking_id)
    assert res.headers["TrackingId"] == res.header_tracking_id
    return res


@pytest.mark.parametrize("body", [
    b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>",
    b"this is not xml",
    b'{"SendToEmails": ["a@example.com"]}',
    b"<foo xmlns='urn:x'/>",
    b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'/>",
    b"<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body/></s:Envelope>",
    b"",
    b"<a>&undefined;</a>",
    b"\xff\xfe\x00garbage",
])
def test_soap_unreadable_bodies_get_an_api_fault_201(server: ServerProcess, body: bytes) -> None:
    res = soap_fault(server, body)
    assert (res.fault_kind, res.fault_codes) == ("ApiFault", [201])


@pytest.mark.parametrize("prolog", [ENTITY_BOMB, XXE])
def test_soap_dtds_and_entities_are_refused(server: ServerProcess, prolog: str) -> None:
    body = soapkit.envelope(soapkit.dispatch_body(["a@example.com"])).decode()
    body = body.replace("<s:Body>", "<s:Body>&c;" if "ENTITY c" in prolog else "<s:Body>&x;")
    res = soap_fault(server, (prolog + body).encode())
    assert res.fault_codes == [201]
    assert "Document type declarations are not allowed" in (res.fault_details or "")
    assert "root:" not in res.root.getroottree().getroot().xpath("string()")


def test_soap_dtd_in_utf16_is_refused(server: ServerProcess) -> None:
    body = '<?xml version="1.0" encoding="utf-16"?>' + XXE.split("?>", 1)[1] + soapkit.envelope(
        soapkit.dispatch_body(["a@example.com"])).decode()
    res = soap_fault(server, body.encode("utf-16"))
    assert res.fault_codes == [201]


def test_soap_deep_nesting_is_refused(server: ServerProcess) -> None:
    deep = "<x>" * 40 + "</x>" * 40
    res = soap_fault(server, soapkit.envelope(deep))
    assert res.fault_codes == [201] and "deeper than 32" in (res.fault_details or "")


def test_soap_utf16_envelope_is_understood(server: ServerProcess) -> None:
    body = '<?xml version="1.0" encoding="utf-16"?>' + soapkit.envelope(
        soapkit.dispatch_body(["utf16-reader@example.com"])).decode()
    res = soapkit.post(server.soap_url, body.encode("utf-16"))
    assert res.status == 200 and res.batch_errors == []


@pytest.mark.parametrize("ctype, needle", [
    ("application/json", "text/xml"),
    ("application/soap+xml; charset=utf-8", "SOAP 1.2"),
    ("", "text/xml"),
])
def test_soap_wrong_content_type(server: ServerProcess, ctype: str, needle: str) -> None:
    res = soap_fault(server, soapkit.envelope(soapkit.dispatch_body(["a@example.com"])), ctype)
    assert res.fault_codes == [201] and needle in (res.fault_details or "")


def test_soap_body_over_the_limit_is_refused_before_parsing(server: ServerProcess) -> None:
    big = soapkit.envelope(soapkit.dispatch_body(["a@example.com"]) + "<!--" + "x" * (4 * 1024 * 1024) + "-->")
    res = soap_fault(server, big, status=413)
    assert res.fault_codes == [201]


def test_soap_empty_body_is_a_null_request_after_authentication(server: ServerProcess) -> None:
    assert soap_fault(server, soapkit.envelope("")).fault_codes == [100]
    assert soap_fault(server, soapkit.envelope("", auth="nope")).fault_codes == [105]
    nil = f'<DispatchCouponsRequest xmlns="{soapkit.BIL}" i:nil="true"/>'
    assert soap_fault(server, soapkit.envelope(nil)).fault_codes == [100]


def test_soap_unknown_elements_are_named(server: ServerProcess) -> None:
    body = soapkit.dispatch_body(["a@example.com"]).replace("<CustomerId>", "<Colour>red</Colour><CustomerId>")
    res = soap_fault(server, soapkit.envelope(body))
    assert res.fault_codes == [201] and "Colour" in (res.fault_details or "")
    body = soapkit.dispatch_body(["a@example.com"]).replace("<a1:string>", "<string>").replace(
        "</a1:string>", "</string>")
    res = soap_fault(server, soapkit.envelope(body))
    assert res.fault_codes == [201] and "string" in (res.fault_details or "")


def test_soap_any_prefixes_and_order(server: ServerProcess) -> None:
    body = (
        f'<x:Envelope xmlns:x="{soapkit.S}" xmlns:q="{soapkit.BIL}" xmlns:z="{soapkit.ARR}">'
        f"<x:Header><q:DeveloperToken>{DEV}</q:DeveloperToken><q:AuthenticationToken>{ALICE}"
        "</q:AuthenticationToken></x:Header><x:Body><q:DispatchCouponsRequest>"
        "<q:CouponClassName>SPRING-100</q:CouponClassName><q:CustomerId>222</q:CustomerId>"
        "<q:SendToEmails><z:string>prefix-order@example.com</z:string><z:string>bad</z:string></q:SendToEmails>"
        "</q:DispatchCouponsRequest></x:Body></x:Envelope>"
    )
    res = soapkit.post(server.soap_url, body.encode())
    assert res.status == 200 and [e["Code"] for e in res.batch_errors] == [3001]


def test_soap_tokens_in_the_wrong_namespace_are_missing_headers(server: ServerProcess) -> None:
    body = soapkit.envelope(soapkit.dispatch_body(["a@example.com"]), auth=None, dev=None,
                            header_extra=f'<x:AuthenticationToken xmlns:x="urn:other">{ALICE}</x:AuthenticationToken>')
    assert soap_fault(server, body).fault_codes == [116]


def test_soap_other_billing_operations_are_not_supported(server: ServerProcess) -> None:
    body = f'<GetBillingDocumentsInfoRequest xmlns="{soapkit.BIL}"/>'
    res = soap_fault(server, soapkit.envelope(body))
    assert (res.fault_kind, res.fault_codes) == ("ApiFault", [204])
    assert soap_fault(server, soapkit.envelope(body, auth="nope")).fault_codes == [105]


def test_soap_get_without_wsdl_query_explains_itself(server: ServerProcess) -> None:
    r = httpx.get(server.soap_url)
    assert r.status_code == 200 and "?wsdl" in r.text


# --- REST -------------------------------------------------------------------------------------
def rest_fault(r: httpx.Response, status: int = 400) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["TrackingId"] == r.headers["TrackingId"]
    return dict(doc)


@pytest.mark.parametrize("raw, needle", [
    (b"{not json", "not valid JSON"),
    (b'{"SendToEmails": NaN}', "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'"text"', "JSON object"),
    (b'{"SendToEmails": "a@example.com", "CustomerId": "222", "CouponClassName": "SPRING-100"}', "SendToEmails"),
    (b'{"SendToEmails": [1], "CustomerId": "222", "CouponClassName": "SPRING-100"}', "SendToEmails[0]"),
    (b'{"SendToEmails": ["a@example.com"], "CustomerId": true, "CouponClassName": "SPRING-100"}', "CustomerId"),
    (b'{"SendToEmails": ["a@example.com"], "CustomerId": 2.5, "CouponClassName": "SPRING-100"}', "CustomerId"),
    (b'{"SendToEmails": ["a@example.com"], "CustomerId": "222", "CouponClassName": 7}', "CouponClassName"),
    (b'{"SendToEmails": ["a@example.com"], "CustomerId": "222", "Colour": "red"}', "Colour"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_rest_bad_json_is_an_api_fault_201(server: ServerProcess, raw: bytes, needle: str) -> None:
    doc = rest_fault(restkit.post(server.url, restkit.DISPATCH, raw=raw))
    assert doc["Type"] == "ApiFault"
    (err,) = doc["OperationErrors"]  # type: ignore[misc]
    assert err["Code"] == 201 and needle in err["Details"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "text/xml"])
def test_rest_wrong_content_type(server: ServerProcess, ctype: str) -> None:
    raw = json.dumps({"SendToEmails": ["a@example.com"], "CustomerId": "222", "CouponClassName": "X"}).encode()
    doc = rest_fault(restkit.post(server.url, restkit.DISPATCH, raw=raw, content_type=ctype))
    assert doc["OperationErrors"][0]["Code"] == 201  # type: ignore[index]


def test_rest_missing_body_is_a_null_request_after_authentication(server: ServerProcess) -> None:
    assert restkit.fault_codes(restkit.post(server.url, restkit.DISPATCH, raw=b"")) == [100]
    assert restkit.fault_codes(restkit.post(server.url, restkit.DISPATCH, raw=b"null")) == [100]
    r = restkit.post(server.url, restkit.DISPATCH, raw=b"", auth="nope")
    assert r.status_code == 401 and restkit.fault_codes(r) == [105]


def test_rest_body_over_the_limit(server: ServerProcess) -> None:
    raw = b'{"SendToEmails": ["' + b"x" * (4 * 1024 * 1024) + b'"]}'
    rest_fault(restkit.post(server.url, restkit.DISPATCH, raw=raw), 413)


def test_rest_other_billing_operations_are_not_supported(server: ServerProcess) -> None:
    r = restkit.post(server.url, "/CustomerBilling/v13/BillingDocumentsInfo/Query", {"AccountIds": ["111"]})
    doc = rest_fault(r)
    assert doc["Type"] == "ApiFault" and restkit.fault_codes(r) == [204]
    r = restkit.post(server.url, "/CustomerBilling/v13/InsertionOrder", {}, auth=BOB)
    assert restkit.fault_codes(r) == [204]


def test_rest_unknown_path_and_method(server: ServerProcess) -> None:
    rest_fault(restkit.post(server.url, "/CustomerBilling/v13/Nothing/Here", {}), 404)
    r = httpx.get(server.url + restkit.DISPATCH)
    assert r.status_code == 405 and r.json()["Type"] == "ApiFault"
