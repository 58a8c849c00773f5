"""Fuzzing the wire (issue 10): Hypothesis mutates valid SOAP envelopes and REST bodies of every implemented
operation and posts them to a real server process.

Every answer must be protocol-correct: SOAP a parseable SOAP 1.1 envelope with the TrackingId header, and
either the operation's response or a fault whose detail carries the TrackingId; REST JSON, either a success
or an ApplicationFault with a Type and a TrackingId.  Never an internal error (0), an HTML page, a hang or
a crash, and a refused call changes nothing (coupon states, dispatches, outbox, read straight from the
server's SQLite file).  Example counts are bounded so that the whole file runs in about a minute.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from lxml import etree

from tests.support import restkit
from tests.support.seeds import ACCOUNT, ALICE, BASE_SEED, CUSTOMER, DEV
from tests.support.server import ServerProcess
from tests.support.soapkit import ARR, BIL, NS, XSI, S, envelope

ENT = "https://bingads.microsoft.com/Customer/v13/Entities"
FUZZ_CLASS = "FUZZ-CLASS"
FAC_CLASS, FEATURE = "FUZZ-FAC", 9001
EXAMPLES = 30

SOAP_BODIES = {
    "DispatchCoupons": (
        f'<DispatchCouponsRequest xmlns="{BIL}"><SendToEmails xmlns:a="{ARR}"><a:string>fz1@example.com</a:string>'
        f"<a:string>fz2@example.com</a:string></SendToEmails><CustomerId>{CUSTOMER}</CustomerId>"
        f"<CouponClassName>{FUZZ_CLASS}</CouponClassName></DispatchCouponsRequest>"),
    "SearchCoupons": (
        f'<SearchCouponsRequest xmlns="{BIL}"><Predicates xmlns:e="{ENT}"><e:Predicate><e:Field>CouponClassName'
        f"</e:Field><e:Operator>Equals</e:Operator><e:Value>{FUZZ_CLASS}</e:Value></e:Predicate></Predicates>"
        f'<Ordering xmlns:e="{ENT}"><e:OrderBy><e:Field>Id</e:Field><e:Order>Ascending</e:Order></e:OrderBy>'
        f'</Ordering><PageInfo xmlns:e="{ENT}"><e:Index>0</e:Index><e:Size>5</e:Size></PageInfo>'
        f"</SearchCouponsRequest>"),
    "RedeemCoupon": (
        f'<RedeemCouponRequest xmlns="{BIL}"><AccountId>{ACCOUNT}</AccountId><CouponCode>FUZZ-00001</CouponCode>'
        f"</RedeemCouponRequest>"),
    "GetCouponInfo": f'<GetCouponInfoRequest xmlns="{BIL}"><CustomerId>{CUSTOMER}</CustomerId></GetCouponInfoRequest>',
    "DistributeCoupons": (
        f'<DistributeCouponsRequest xmlns="{BIL}" xmlns:a="{ARR}"><AccountIds><a:int>{ACCOUNT}</a:int></AccountIds>'
        f"<ClassName>{FAC_CLASS}</ClassName><FeatureId>{FEATURE}</FeatureId>"
        f"<SendNotification>false</SendNotification></DistributeCouponsRequest>"),
    "CheckFeatureAdoptionCouponEligibility": (
        f'<CheckFeatureAdoptionCouponEligibilityRequest xmlns="{BIL}" xmlns:a="{ARR}"><FeatureId>{FEATURE}'
        f"</FeatureId><AccountIds><a:long>{ACCOUNT}</a:long></AccountIds></CheckFeatureAdoptionCouponEligibilityRequest>"),
    "ClaimFeatureAdoptionCoupons": (
        f'<ClaimFeatureAdoptionCouponsRequest xmlns="{BIL}" xmlns:e="{ENT}"><AccountCouponPairs>'
        f"<e:KeyValueEntityOflongstring><e:Key>{ACCOUNT}</e:Key><e:Value>FUZZFAC-00000</e:Value>"
        f"</e:KeyValueEntityOflongstring></AccountCouponPairs></ClaimFeatureAdoptionCouponsRequest>"),
}

REST_BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "DispatchCoupons": ("/CustomerBilling/v13/Coupons/Dispatch", {
        "SendToEmails": ["fz1@example.com", "fz2@example.com"], "CustomerId": str(CUSTOMER),
        "CouponClassName": FUZZ_CLASS}),
    "SearchCoupons": ("/CustomerBilling/v13/Coupons/Search", {
        "Predicates": [{"Field": "CouponClassName", "Operator": "Equals", "Value": FUZZ_CLASS}],
        "Ordering": [{"Field": "Id", "Order": "Ascending"}], "PageInfo": {"Index": 0, "Size": 5}}),
    "RedeemCoupon": ("/CustomerBilling/v13/Coupon/Redeem", {"AccountId": str(ACCOUNT), "CouponCode": "FUZZ-00002"}),
    "GetCouponInfo": ("/CustomerBilling/v13/CouponInfo/Query", {"CustomerId": str(CUSTOMER)}),
    "DistributeCoupons": ("/CustomerBilling/v13/Coupons/Distribute", {
        "AccountIds": [ACCOUNT], "ClassName": FAC_CLASS, "FeatureId": FEATURE, "SendNotification": False}),
    "CheckFeatureAdoptionCouponEligibility": ("/CustomerBilling/v13/FeatureAdoptionCouponEligibility/Check", {
        "FeatureId": FEATURE, "AccountIds": [str(ACCOUNT)]}),
    "ClaimFeatureAdoptionCoupons": ("/CustomerBilling/v13/FeatureAdoptionCoupons/Claim", {
        "AccountCouponPairs": [{"Key": str(ACCOUNT), "Value": "FUZZFAC-00001"}]}),
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz"), {"COUPONSVC_DELIVERY_TIMEOUT": "0",
                                                         "COUPONSVC_WORKER": "false", "COUPONSVC_LOG_LEVEL": "WARNING"})
    proc.load(BASE_SEED, "base")
    proc.load({"customers": [{"id": CUSTOMER, "name": "Contoso Agency", "coupon_classes": [
        {"name": FUZZ_CLASS, "amount": 5.0, "currency_code": "USD",
         "codes": [f"FUZZ-{i:05d}" for i in range(3000)]},
        {"name": FAC_CLASS, "amount": 5.0, "currency_code": "USD", "feature_id": FEATURE,
         "codes": [f"FUZZFAC-{i:05d}" for i in range(200)]}]}]}, "fuzz")
    proc.start()
    yield proc
    proc.stop()


def state(server: ServerProcess) -> tuple[Any, ...]:
    """Everything a refused call must leave alone."""
    conn = sqlite3.connect(server.data_dir / "couponsvc.db")
    try:
        coupons = tuple(conn.execute("SELECT state, count(*), coalesce(sum(id), 0) FROM coupons GROUP BY state "
                                     "ORDER BY state"))
        dispatches = conn.execute("SELECT count(*) FROM dispatches").fetchone()
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()
        return coupons, dispatches, outbox
    finally:
        conn.close()


# --- mutations ------------------------------------------------------------------------------------------
ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "-1", "0", "9223372036854775808", "1e309", "NaN", "true", "null", "<x/>",
                     "&amp;", "\u202e", "a" * 300, "222", "111", FUZZ_CLASS.lower(), "Equals", "In", "Contains"]),
)


@st.composite
def mutated_envelope(draw: st.DrawFn, operation: str) -> bytes:
    """A valid envelope of ``operation`` changed in a few places: in its tree or in its bytes."""
    root = etree.fromstring(envelope(SOAP_BODIES[operation]))
    for _ in range(draw(st.integers(1, 4))):
        elements = list(root.iter(etree.Element))
        el = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["text", "nil", "drop", "dup", "rename", "renamespace", "child", "attr"]))
        parent = el.getparent()
        if action == "text":
            el.text = "".join(ch for ch in draw(ODD_TEXT) if ch.isprintable() or ch in "\t\n")
        elif action == "nil":
            el.set(f"{{{XSI}}}nil", draw(st.sampled_from(["true", "1", "false", "maybe"])))
        elif action == "drop" and parent is not None:
            parent.remove(el)
        elif action == "dup" and parent is not None:
            parent.insert(parent.index(el), etree.fromstring(etree.tostring(el)))
        elif action == "rename":
            el.tag = etree.QName(etree.QName(el).namespace, draw(st.sampled_from(
                ["Foo", "Request", "DispatchCouponsRequest", "SearchCouponsRequest", "CustomerId", "string",
                 "Predicate", "Envelope", "Body"]))).text
        elif action == "renamespace":
            el.tag = etree.QName(draw(st.sampled_from([BIL, ENT, ARR, S, "urn:x", ""])) or None,
                                 etree.QName(el).localname).text
        elif action == "child":
            etree.SubElement(el, etree.QName(draw(st.sampled_from([BIL, ENT, ARR])), draw(st.sampled_from(
                ["string", "Predicate", "Field", "Value", "CustomerId", "Extra"])))).text = "x"
        elif action == "attr":
            el.set(draw(st.sampled_from(["mustUnderstand", "id", f"{{{S}}}encodingStyle"])), "1")
    data = bytearray(etree.tostring(root))
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            pos = draw(st.integers(0, len(data)))
            kind = draw(st.sampled_from(["insert", "delete", "flip"]))
            if kind == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                    [b"<", b">", b"&", b"<!DOCTYPE x>", b"]]>", b"\x00", b"\xff\xfe", b"<a>" * 40]))
            elif kind == "delete":
                del data[pos:pos + draw(st.integers(1, 16))]
            elif data:
                data[min(pos, len(data) - 1)] ^= draw(st.integers(1, 255))
    return bytes(data)


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                      ODD_TEXT)
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=12), inner, max_size=3), max_leaves=8)


@st.composite
def mutated_json(draw: st.DrawFn, operation: str) -> bytes:
    doc: Any = json.loads(json.dumps(REST_BODIES[operation][1]))
    for _ in range(draw(st.integers(1, 3))):
        containers = [doc]
        stack = [doc]
        while stack:
            node = stack.pop()
            children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
            for child in children:
                if isinstance(child, (dict, list)):
                    containers.append(child)
                    stack.append(child)
        target = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if isinstance(target, dict):
            keys = sorted(target)
            if action == "add" or not keys:
                target[draw(st.sampled_from(["Extra", "customerid", "SendToEmails", "Type", ""]))] = draw(JSON_VALUE)
            elif action == "delete":
                del target[draw(st.sampled_from(keys))]
            else:
                target[draw(st.sampled_from(keys))] = draw(JSON_VALUE)
        elif isinstance(target, list):
            if action == "add" or not target:
                target.append(draw(JSON_VALUE))
            elif action == "delete":
                target.pop(draw(st.integers(0, len(target) - 1)))
            else:
                target[draw(st.integers(0, len(target) - 1))] = draw(JSON_VALUE)
    if draw(st.integers(0, 4)) == 0:
        doc = draw(JSON_VALUE)
    data = bytearray(json.dumps(doc).encode())
    if draw(st.integers(0, 3)) == 0:
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.sampled_from([b"{", b"]", b",", b"\\ud800", b"\"", b"\x00", b"NaN", b"\xff"]))
    return bytes(data)


# --- checks ---------------------------------------------------------------------------------------------
def note(what: str) -> None:
    """Tally answers (pytest --hypothesis-show-statistics shows how varied they were)."""
    if currently_in_test_context():
        event(what)


def check_soap(server: ServerProcess, operation: str, body: bytes) -> None:
    before = state(server)
    r = httpx.post(server.soap_url, content=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=30)
    assert r.headers["content-type"].startswith("text/xml"), (r.status_code, r.text[:300])
    root = etree.fromstring(r.content)
    assert root.tag == f"{{{S}}}Envelope"
    tracking_id = root.findtext("s:Header/bil:TrackingId", namespaces=NS)
    assert tracking_id and r.headers["TrackingId"] == tracking_id
    fault = root.find("s:Body/s:Fault", namespaces=NS)
    note(f"SOAP {r.status_code}")
    if r.status_code == 200:
        assert fault is None
        (answer,) = list(root.find("s:Body", namespaces=NS))
        assert etree.QName(answer).localname.endswith("Response")
        return
    assert r.status_code in (500, 413), r.status_code
    assert fault is not None, r.text[:300]
    assert fault.findtext("faultstring", "").endswith(tracking_id)
    assert fault.findtext(".//ad:TrackingId", namespaces=NS) == tracking_id
    codes = [int(c.text) for c in fault.iterfind(".//ad:Code", namespaces=NS)]
    codes += [int(c.text) for c in fault.iterfind(".//{https://bingads.microsoft.com/Customer/v13/Exception}Code")]
    note(f"SOAP fault {codes}")
    assert codes and 0 not in codes, (codes, body[:500])
    assert state(server) == before, (codes, body[:500])


def check_rest(server: ServerProcess, operation: str, body: bytes) -> None:
    before = state(server)
    r = restkit.post(server.url, REST_BODIES[operation][0], raw=body)
    assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.text[:300])
    doc = r.json()
    assert r.headers["TrackingId"]
    note(f"REST {r.status_code}")
    if r.status_code == 200:
        assert "Type" not in doc or doc["Type"] not in ("ApiFault", "AdApiFaultDetail")
        return
    assert r.status_code in (400, 401, 403, 413), (r.status_code, r.text[:300])
    assert doc["Type"] in ("ApiFault", "AdApiFaultDetail") and doc["TrackingId"] == r.headers["TrackingId"]
    errors = doc.get("Errors") or doc.get("OperationErrors")
    note(f"REST fault {[e['Code'] for e in errors or []]}")
    assert errors and all(e["Code"] != 0 for e in errors), (doc, body[:500])
    assert state(server) == before, (doc, body[:500])


HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("operation", sorted(SOAP_BODIES))
def test_mutated_soap_envelopes_get_protocol_correct_answers(fuzz_server: ServerProcess, operation: str) -> None:
    check_soap(fuzz_server, operation, envelope(SOAP_BODIES[operation]))  # the unmutated one succeeds

    @FUZZ_SETTINGS
    @given(body=mutated_envelope(operation))
    def run(body: bytes) -> None:
        check_soap(fuzz_server, operation, body)

    run()


@pytest.mark.parametrize("operation", sorted(REST_BODIES))
def test_mutated_rest_bodies_get_protocol_correct_answers(fuzz_server: ServerProcess, operation: str) -> None:
    path, valid = REST_BODIES[operation]
    ok = restkit.post(fuzz_server.url, path, valid)
    assert ok.status_code == 200 or operation == "RedeemCoupon", ok.text  # (partial errors are a 200)

    @FUZZ_SETTINGS
    @given(body=mutated_json(operation))
    def run(body: bytes) -> None:
        check_rest(fuzz_server, operation, body)

    run()


@FUZZ_SETTINGS
@given(headers=st.dictionaries(st.sampled_from(["Authorization", "DeveloperToken", "AuthenticationToken",
                                                "CustomerId", "Content-Type", "SOAPAction"]),
                               HEADER_VALUE,
                               max_size=4))
def test_mutated_headers_get_protocol_correct_answers(fuzz_server: ServerProcess, headers: dict[str, str]) -> None:
    base = {"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "Content-Type": "application/json"}
    body = json.dumps(REST_BODIES["GetCouponInfo"][1]).encode()
    r = httpx.post(fuzz_server.url + REST_BODIES["GetCouponInfo"][0], content=body, headers={**base, **headers},
                   timeout=30)
    assert r.headers["content-type"].startswith("application/json") and r.headers["TrackingId"]
    assert r.status_code in (200, 400, 401, 403), r.status_code
    soap = httpx.post(fuzz_server.soap_url, content=envelope(SOAP_BODIES["GetCouponInfo"]),
                      headers={"Content-Type": "text/xml; charset=utf-8", **headers}, timeout=30)
    assert soap.headers["content-type"].startswith("text/xml") and soap.status_code in (200, 500), soap.status_code
    etree.fromstring(soap.content)
