"""DispatchCoupons over real HTTP against a server process: every fault and BatchError, on SOAP and on REST."""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support import restkit, soapkit
from tests.support.seeds import (
    ALICE,
    ALICE_EXPIRED,
    BOB,
    CLASS,
    CUSTOMER,
    DEV,
    DEV_DISABLED,
    EXPIRED_CLASS,
    new_class_seed,
)
from tests.support.server import ServerProcess


@pytest.fixture
def server(api_server: ServerProcess) -> ServerProcess:
    """Every test of this file runs against a server on SQLite and one on PostgreSQL."""
    return api_server


_n = itertools.count()


def fresh(k: int = 1) -> list[str]:
    """Addresses no other test uses."""
    return [f"user{next(_n)}-{uuid.uuid4().hex[:8]}@example.com" for _ in range(k)]


@dataclass
class Case:
    code: int
    emails: Any = field(default_factory=lambda: fresh(1))
    customer: Any = CUSTOMER
    cls: Any = CLASS
    auth: str | None = ALICE
    dev: str | None = DEV


FAULT_CASES = {
    "116 no access token": Case(116, auth=None),
    "116 no developer token": Case(116, dev=None),
    "116 blank access token": Case(116, auth="  "),
    "105 unknown developer token": Case(105, dev="DEV-UNKNOWN"),
    "105 disabled developer token": Case(105, dev=DEV_DISABLED),
    "105 unknown access token": Case(105, auth="AT-unknown"),
    "109 expired access token": Case(109, auth=ALICE_EXPIRED),
    "106 customer of another user": Case(106, customer=333),
    "106 customer that does not exist": Case(106, customer=999999),
    "106 bob on alice's customer": Case(106, auth=BOB),
    "203 class name missing": Case(203, cls=None),
    "203 class name blank": Case(203, cls="   "),
    "201 customer id missing": Case(201, customer=None),
    "201 customer id zero": Case(201, customer=0),
    "201 customer id negative": Case(201, customer=-5),
    "201 customer id not a number": Case(201, customer="22two"),
    "201 customer id beyond a long": Case(201, customer=str(2**63)),
    "206 addresses missing": Case(206, emails=None),
    "206 addresses empty": Case(206, emails=[]),
    "4603 more than 1000 addresses": Case(4603, emails=[f"n{i}@example.com" for i in range(1001)]),
    "3000 unknown class": Case(3000, cls="NO-SUCH-CLASS"),
    "3000 class of another customer": Case(3000, cls="FAB-50"),
    "3011 expired class": Case(3011, cls=EXPIRED_CLASS),
}
AD_API = {0, 105, 106, 109, 116, 117}
REST_STATUS = {105: 401, 106: 403, 109: 401, 116: 401}


def soap_call(server: ServerProcess, case: Case) -> soapkit.SoapResult:
    return soapkit.dispatch(server.soap_url, case.emails, customer_id=case.customer, class_name=case.cls,
                            auth=case.auth, dev=case.dev)


def rest_call(server: ServerProcess, case: Case) -> httpx.Response:
    customer = str(case.customer) if isinstance(case.customer, int) else case.customer
    return restkit.dispatch(server.url, case.emails, customer, case.cls, auth=case.auth, dev=case.dev)


@pytest.mark.parametrize("name", FAULT_CASES)
def test_soap_fault(server: ServerProcess, name: str) -> None:
    case = FAULT_CASES[name]
    res = soap_call(server, case)
    assert res.status == 500
    assert res.fault_codes == [case.code]
    assert res.fault_kind == ("AdApiFaultDetail" if case.code in AD_API else "ApiFault")
    fault = res.fault
    assert fault.findtext("faultcode") == "s:Server"
    tid = res.header_tracking_id
    assert uuid.UUID(tid) and fault.findtext("faultstring").endswith(tid)
    assert fault.findtext(".//ad:TrackingId", namespaces=soapkit.NS) == tid
    assert res.headers["TrackingId"] == tid


@pytest.mark.parametrize("name", FAULT_CASES)
def test_rest_fault(server: ServerProcess, name: str) -> None:
    case = FAULT_CASES[name]
    r = rest_call(server, case)
    assert r.status_code == REST_STATUS.get(case.code, 400)
    doc = r.json()
    assert doc["Type"] == ("AdApiFaultDetail" if case.code in AD_API else "ApiFault")
    assert restkit.fault_codes(r) == [case.code]
    assert doc["TrackingId"] == r.headers["TrackingId"]
    item = (doc.get("Errors") or doc["OperationErrors"])[0]
    assert isinstance(item["Message"], str) and item["Message"]


def test_soap_and_rest_give_the_same_details(server: ServerProcess) -> None:
    soap = soap_call(server, Case(3000, cls="NO-SUCH-CLASS"))
    rest = rest_call(server, Case(3000, cls="NO-SUCH-CLASS"))
    assert soap.fault_details == rest.json()["OperationErrors"][0]["Details"] == "NO-SUCH-CLASS"


def batch(server: ServerProcess, protocol: str, emails: list[Any], cls: str) -> list[dict[str, Any]]:
    if protocol == "soap":
        res = soapkit.dispatch(server.soap_url, emails, class_name=cls)
        assert res.status == 200 and res.fault is None
        return res.batch_errors
    r = restkit.dispatch(server.url, emails, class_name=cls)
    assert r.status_code == 200, r.text
    return list(r.json()["PartialErrors"])


@pytest.mark.parametrize("protocol", ["soap", "rest"])
def test_every_batch_error_in_one_call(server: ServerProcess, protocol: str) -> None:
    name, seed = new_class_seed(2)
    server.load(seed)
    sent_before, new1, new2 = fresh(3)
    assert batch(server, protocol, [sent_before], name) == []
    errors = batch(server, protocol, [new1, "not an address", sent_before.upper(), new1.title(), new2, None,
                                      "a@example.com\r\nBcc: x@example.com"], name)
    assert [(e["Index"], e["Code"]) for e in errors] == [(1, 3001), (2, 3003), (3, 3002), (4, 3004), (5, 3001),
                                                         (6, 3001)]
    assert errors[0]["Details"] == "not an address"
    assert errors[3]["Message"] == "No coupon of this class is available."
    assert errors[4]["Details"] is None
    assert errors[5]["Details"] == "a@example.com\\x0d\\x0aBcc: x@example.com"


@pytest.mark.parametrize("protocol", ["soap", "rest"])
def test_success_has_an_empty_partial_errors(server: ServerProcess, protocol: str) -> None:
    assert batch(server, protocol, fresh(3), CLASS) == []


def test_soap_success_envelope_shape(server: ServerProcess) -> None:
    res = soapkit.dispatch(server.soap_url, fresh(1))
    resp = res.root.find("s:Body/bil:DispatchCouponsResponse", namespaces=soapkit.NS)
    (partial,) = list(resp)
    assert partial.tag == f"{{{soapkit.BIL}}}PartialErrors" and len(partial) == 0
    assert res.headers["content-type"] == "text/xml; charset=utf-8"


def test_rest_long_values_accepted_as_numbers_or_strings(server: ServerProcess) -> None:
    assert restkit.dispatch(server.url, fresh(1), CUSTOMER).json() == {"PartialErrors": []}
    assert restkit.dispatch(server.url, fresh(1), str(CUSTOMER)).json() == {"PartialErrors": []}


def test_rest_accepts_authentication_token_header(server: ServerProcess) -> None:
    r = restkit.dispatch(server.url, fresh(1), auth=None, extra_headers={"AuthenticationToken": ALICE})
    assert r.status_code == 200 and r.json() == {"PartialErrors": []}


def test_log_line_carries_tracking_id_and_never_a_token(server: ServerProcess) -> None:
    r = restkit.dispatch(server.url, fresh(1))
    tid = r.headers["TrackingId"]
    res = soapkit.dispatch(server.soap_url, fresh(1), auth="AT-secret-that-must-not-leak")
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and res.header_tracking_id not in server.log_text():
        time.sleep(0.05)
    log = server.log_text()
    assert re.search(rf"tracking_id={tid} protocol=REST operation=DispatchCoupons status=200", log)
    assert re.search(rf"tracking_id={res.header_tracking_id} protocol=SOAP .* error=105", log)
    for secret in (ALICE, DEV, "AT-secret-that-must-not-leak"):
        assert secret not in log
