"""The served WSDL is usable by a generic WSDL-driven client (zeep) and is self-contained (SPEC 3.1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from tests.support.seeds import ALICE, ALICE_EXPIRED, CLASS, CUSTOMER, DEV
from tests.support.server import ServerProcess

BIL = "https://bingads.microsoft.com/Billing/v13"
ARR = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
NS = {"wsdl": WSDL_NS, "soap": SOAP_NS, "xs": XS}
HEADERS = {"AuthenticationToken": ALICE, "DeveloperToken": DEV}
VARIANTS = ("wsdl", "singleWsdl")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def load_client(server: ServerProcess, session: requests.Session, variant: str) -> zeep.Client:
    return zeep.Client(f"{server.soap_url}?{variant}", transport=Transport(session=session))


@pytest.fixture(scope="module")
def client(server: ServerProcess, session: requests.Session) -> zeep.Client:
    return load_client(server, session, "singleWsdl")


def emails(client: zeep.Client, *addresses: str) -> Any:
    return client.get_type(f"{{{ARR}}}ArrayOfstring")(string=list(addresses))


def fresh(tag: str) -> str:
    return f"zeep-{tag}-{uuid.uuid4().hex[:12]}@example.com"


def dispatch(client: zeep.Client, addresses: list[str], class_name: str = CLASS,
             headers: dict[str, str] | None = None) -> Any:
    return client.service.DispatchCoupons(
        SendToEmails=emails(client, *addresses), CustomerId=CUSTOMER, CouponClassName=class_name,
        _soapheaders=HEADERS if headers is None else headers,
    )


def fault_of(client: zeep.Client, addresses: list[str], **kw: Any) -> tuple[zeep.exceptions.Fault, Any]:
    """The zeep Fault of a call and its detail element parsed with the WSDL's own declaration of it."""
    with pytest.raises(zeep.exceptions.Fault) as info:
        dispatch(client, addresses, **kw)
    fault = info.value
    assert fault.detail is not None
    (child,) = list(fault.detail)
    return fault, client.get_element(etree.QName(child).text).parse(child, client.wsdl.types)


def served_wsdl(server: ServerProcess, variant: str) -> Any:
    r = httpx.get(f"{server.soap_url}?{variant}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/xml")
    return etree.fromstring(r.content)


# --- loading ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_zeep_loads_the_wsdl_with_dispatch_coupons_and_its_soap_headers(
    server: ServerProcess, session: requests.Session, variant: str
) -> None:
    op = load_client(server, session, variant).service._binding.get("DispatchCoupons")
    assert op.soapaction == "DispatchCoupons"
    assert [name for name, _ in op.input.header.type.elements] == ["AuthenticationToken", "DeveloperToken"]
    assert [name for name, _ in op.output.header.type.elements] == ["TrackingId"]
    assert [name for name, _ in op.input.body.type.elements] == ["SendToEmails", "CustomerId", "CouponClassName"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_zeep_sends_to_this_servers_address(server: ServerProcess, session: requests.Session, variant: str) -> None:
    assert load_client(server, session, variant).service._binding_options["address"] == server.soap_url


@pytest.mark.parametrize("variant", VARIANTS)
def test_wsdl_address_is_this_server_and_nothing_refers_to_another_host(server: ServerProcess, variant: str) -> None:
    doc = served_wsdl(server, variant)
    assert doc.xpath("//soap:address/@location", namespaces=NS) == [server.soap_url]
    assert doc.xpath("//wsdl:import | //xs:include | //xs:redefine", namespaces=NS) == []
    assert doc.xpath("//xs:import/@schemaLocation", namespaces=NS) == []
    # Every URL the document uses as a location (not a namespace name) is this server's.
    locations = doc.xpath("//@location | //@schemaLocation | //@wsdlLocation")
    assert {urlsplit(str(u)).netloc for u in locations} == {urlsplit(server.url).netloc}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_schema_import_is_satisfied_inside_the_document(server: ServerProcess, variant: str) -> None:
    doc = served_wsdl(server, variant)
    defined = set(doc.xpath("//wsdl:types/xs:schema/@targetNamespace", namespaces=NS))
    imported = set(doc.xpath("//xs:import/@namespace", namespaces=NS))
    assert imported <= defined


def test_wsdl_address_follows_the_host_the_client_used(server: ServerProcess) -> None:
    r = httpx.get(f"{server.soap_url}?wsdl", headers={"Host": f"localhost:{server.port}"})
    doc = etree.fromstring(r.content)
    assert doc.xpath("//soap:address/@location", namespaces=NS) == [
        f"http://localhost:{server.port}/Api/Billing/v13/CustomerBillingService.svc"
    ]


# --- calling ------------------------------------------------------------------------------------------
def test_zeep_dispatch_success_has_no_partial_errors_and_a_tracking_id(client: zeep.Client) -> None:
    result = dispatch(client, [fresh("a"), fresh("b")])
    assert uuid.UUID(result.header.TrackingId)
    partial = result.body.PartialErrors  # an empty element: zeep reads it as None
    assert partial is None or list(partial.BatchError) == []


def test_zeep_reads_partial_errors_typed_by_the_wsdl(client: zeep.Client) -> None:
    dup = fresh("dup")
    result = dispatch(client, [dup, "not-an-address", dup.upper()])
    errors = [(e.Code, e.Index, e.Details) for e in result.body.PartialErrors.BatchError]
    assert errors == [(3001, 1, "not-an-address"), (3002, 2, dup.upper())]
    assert all(e.Message for e in result.body.PartialErrors.BatchError)


def test_zeep_reads_an_api_fault(client: zeep.Client) -> None:
    fault, detail = fault_of(client, [fresh("c")], class_name="NO-SUCH-CLASS")
    assert fault.code == "s:Server"
    assert fault.message.endswith(detail.TrackingId)
    assert uuid.UUID(detail.TrackingId)
    ((code, details),) = [(e.Code, e.Details) for e in detail.OperationErrors.OperationError]
    assert (code, details) == (3000, "NO-SUCH-CLASS")


@pytest.mark.parametrize(
    ("headers", "code", "error_code"),
    [
        ({"AuthenticationToken": ALICE, "DeveloperToken": "DEV-NO-SUCH-APP"}, 105, "InvalidCredentials"),
        ({"AuthenticationToken": ALICE_EXPIRED, "DeveloperToken": DEV}, 109, "AuthenticationTokenExpired"),
        ({}, 116, "RequestMissingHeaders"),
    ],
    ids=["105", "109", "116"],
)
def test_zeep_reads_an_ad_api_fault_detail(client: zeep.Client, headers: dict[str, str], code: int,
                                           error_code: str) -> None:
    fault, detail = fault_of(client, [fresh("d")], headers=headers)
    assert fault.code == "s:Server"
    assert fault.message.endswith(detail.TrackingId)
    ((got_code, got_error_code),) = [(e.Code, e.ErrorCode) for e in detail.Errors.AdApiError]
    assert (got_code, got_error_code) == (code, error_code)
