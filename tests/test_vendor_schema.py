"""The vendor's own WSDL judges the SOAP binding (SPEC 2, 3.1), for all seven coupon operations.

1. Every answer -- success, PartialErrors, and each fault kind (AdApiFaultDetail, ApiFault) -- validates
   against the schemas of the WSDL the official `bingads` 13.0.30.1 package ships (lxml XMLSchema, built in
   memory: tests/support/vendor_schema.py): the response element, the TrackingId header and the fault detail.
2. zeep, built from that same vendor file in strict mode and bound to the test server, calls every
   operation and parses every answer.
3. Requests that are valid by the vendor's schema -- every optional element present, ``i:nil`` where it is
   nillable, the ``Action mustUnderstand`` header -- are understood (no 201), and are first checked to be
   valid by that schema, so the test cannot pass with a request the vendor would refuse.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from tests.support import soapkit
from tests.support.family import ALICE, ALICE_EXPIRED, BOB, DEV, FEATURE, SEED, new_class
from tests.support.server import ServerProcess
from tests.support.vendor_schema import validation_errors, vendor_wsdl_path

BIL = "https://bingads.microsoft.com/Billing/v13"
ENT = "https://bingads.microsoft.com/Customer/v13/Entities"
ARR = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {**soapkit.NS, "ent": ENT}
NIL = 'i:nil="true"'
OPERATIONS = ("DispatchCoupons", "SearchCoupons", "RedeemCoupon", "GetCouponInfo", "DistributeCoupons",
              "CheckFeatureAdoptionCouponEligibility", "ClaimFeatureAdoptionCoupons")

PLAIN, PLAIN_CODES, PLAIN_SEED = new_class(12, prefix="VS")
FAC, FAC_CODES, FAC_SEED = new_class(12, feature_id=FEATURE, prefix="VS")
PCT, PCT_CODES, PCT_SEED = new_class(3, prefix="VS-PCT", amount=None, currency_code=None, percent_off=15.0,
                                     active_duration=None, end_date=None, expiration_date=None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("vendor-schema"))
    for name, seed in (("family", SEED), ("plain", PLAIN_SEED), ("fac", FAC_SEED), ("pct", PCT_SEED)):
        proc.load(seed, name)
    proc.start()
    yield proc
    proc.stop()


def body(op: str, inner: str = "") -> str:
    return f'<{op}Request xmlns="{BIL}" xmlns:a="{ARR}" xmlns:e="{ENT}">{inner}</{op}Request>'


def call(server: ServerProcess, op: str, inner: str | None = "", *, token: str | None = ALICE,
         dev: str | None = DEV) -> soapkit.SoapResult:
    xml = f'<{op}Request xmlns="{BIL}" i:nil="true"/>' if inner is None else body(op, inner)
    return soapkit.post(server.soap_url, soapkit.envelope(xml, auth=token, dev=dev))


def assert_vendor_valid(result: soapkit.SoapResult, op: str) -> Any:
    """The answer's TrackingId header and response element or fault detail, each valid by the vendor schema."""
    header = result.root.find("s:Header/bil:TrackingId", namespaces=NS)
    assert header is not None and uuid.UUID(header.text)
    assert validation_errors(header) == []
    fault = result.fault
    if fault is None:
        assert result.status == 200
        (answer,) = result.root.find("s:Body", namespaces=NS)
        assert answer.tag == f"{{{BIL}}}{op}Response"
    else:
        assert result.status == 500
        (answer,) = fault.find("detail")
    errors = validation_errors(answer)
    assert errors == [], (errors, etree.tostring(answer).decode()[:3000])
    return answer


def ids(tag: str, values: list[Any]) -> str:
    return "".join(f"<a:{tag}>{v}</a:{tag}>" for v in values)


# --- 1. answers validate ---------------------------------------------------------------------------
def success_calls() -> list[tuple[str, str, str]]:
    """(case id, operation, request children): successes and PartialErrors of every operation, in an order
    that leaves data for the next ones (a claimed coupon for SearchCoupons' ClaimInfo and GetCouponInfo)."""
    return [
        ("dispatch-ok", "DispatchCoupons",
         f"<SendToEmails>{ids('string', ['vs-ok@example.com'])}</SendToEmails><CustomerId>222</CustomerId>"
         f"<CouponClassName>{PLAIN}</CouponClassName>"),
        ("dispatch-partial", "DispatchCoupons",
         f"<SendToEmails>{ids('string', ['bad', 'vs-ok@example.com', 'x@example.com', 'X@example.com'])}"
         f"<a:string {NIL}/></SendToEmails><CustomerId>222</CustomerId><CouponClassName>{PLAIN}</CouponClassName>"),
        ("distribute-ok", "DistributeCoupons",
         f"<AccountIds>{ids('int', [111, 113])}</AccountIds><ClassName>{FAC}</ClassName>"
         f"<FeatureId>{FEATURE}</FeatureId><SendNotification>true</SendNotification>"),
        ("distribute-partial", "DistributeCoupons",
         f"<AccountIds>{ids('int', [111, 999, 444, 114, 114, 112])}</AccountIds><ClassName>{FAC}</ClassName>"
         f"<FeatureId {NIL}/><SendNotification>false</SendNotification>"),
        ("distribute-plain", "DistributeCoupons",
         f"<AccountIds>{ids('int', [115])}</AccountIds><ClassName>{PLAIN}</ClassName>"),
        ("eligibility", "CheckFeatureAdoptionCouponEligibility",
         f"<FeatureId>{FEATURE}</FeatureId><AccountIds>{ids('long', [111, 113, 114, 444, 999])}</AccountIds>"),
        ("eligibility-none", "CheckFeatureAdoptionCouponEligibility",
         f"<FeatureId>1</FeatureId><AccountIds>{ids('long', [111])}</AccountIds>"),
        ("claim-ok", "ClaimFeatureAdoptionCoupons",
         f"<AccountCouponPairs><e:KeyValueEntityOflongstring><e:Key>111</e:Key><e:Value>{FAC_CODES[0]}</e:Value>"
         "</e:KeyValueEntityOflongstring></AccountCouponPairs>"),
        ("claim-partial", "ClaimFeatureAdoptionCoupons",
         f"<AccountCouponPairs><e:KeyValueEntityOflongstring><e:Key>111</e:Key><e:Value>{FAC_CODES[0]}</e:Value>"
         "</e:KeyValueEntityOflongstring><e:KeyValueEntityOflongstring><e:Key>999</e:Key><e:Value>X</e:Value>"
         f"</e:KeyValueEntityOflongstring><e:KeyValueEntityOflongstring {NIL}/><e:KeyValueEntityOflongstring>"
         f"<e:Key>113</e:Key><e:Value>{FAC_CODES[1]}</e:Value></e:KeyValueEntityOflongstring>"
         "</AccountCouponPairs>"),
        ("redeem-ok", "RedeemCoupon", f"<AccountId>111</AccountId><CouponCode>{PLAIN_CODES[11]}</CouponCode>"),
        ("redeem-pct", "RedeemCoupon", f"<AccountId>112</AccountId><CouponCode>{PCT_CODES[0]}</CouponCode>"),
        ("search-claim-info", "SearchCoupons",
         f"<Predicates><e:Predicate><e:Field>CouponClassName</e:Field><e:Operator>In</e:Operator>"
         f"<e:Value>{FAC},{PLAIN},{PCT}</e:Value></e:Predicate></Predicates>"
         "<PageInfo><e:Index>0</e:Index><e:Size>100</e:Size></PageInfo>"
         "<ReturnAdditionalFields>CouponClaimInfo</ReturnAdditionalFields>"),
        ("search-plain", "SearchCoupons",
         f"<Predicates><e:Predicate><e:Field>CouponClassName</e:Field><e:Operator>Equals</e:Operator>"
         f"<e:Value>{FAC}</e:Value></e:Predicate></Predicates>"),
        ("search-empty", "SearchCoupons",
         "<Predicates><e:Predicate><e:Field>CouponCode</e:Field><e:Operator>Equals</e:Operator>"
         "<e:Value>NONE-SUCH</e:Value></e:Predicate></Predicates>"),
        ("coupon-info", "GetCouponInfo", "<CustomerId>222</CustomerId>"),
        ("coupon-info-empty", "GetCouponInfo", "<CustomerId>333</CustomerId>"),
    ]


def test_successes_and_partial_errors_validate(server: ServerProcess) -> None:
    answers = {}
    for case, op, inner in success_calls():
        result = call(server, op, inner, token=BOB if case == "coupon-info-empty" else ALICE)
        assert result.fault is None, (case, etree.tostring(result.root).decode()[:2000])
        answers[case] = assert_vendor_valid(result, op)
    # the answers hold what they should (so that validating them means something)
    assert len(answers["dispatch-partial"].findall("bil:PartialErrors/exc:BatchError", namespaces=NS)) == 4
    partial = answers["distribute-partial"].findall("bil:PartialErrors/exc:ArrayOfOperationError", namespaces=NS)
    assert [[int(c.text) for c in p.findall("exc:OperationError/exc:Code", namespaces=NS)] for p in partial] == [
        [3012], [208], [208], [], [3002], [3010]]
    assert [e.text for e in answers["eligibility"].findall("bil:EligibleAccountIds/arr:long", namespaces=NS)] == [
        "111", "113", "114"]
    claimed = answers["claim-partial"].findall("bil:ClaimedDateByAccountId/ent:KeyValueEntityOflongdateTime",
                                              namespaces=NS)
    assert [c.findtext("ent:Key", namespaces=NS) for c in claimed] == ["113"]
    coupons = answers["search-claim-info"].findall("bil:Coupons/ent:Coupon", namespaces=NS)
    with_claim = [c for c in coupons if c.find("ent:ClaimInfo", namespaces=NS) is not None]
    assert {c.findtext("ent:CouponCode", namespaces=NS) for c in with_claim} == {FAC_CODES[0], FAC_CODES[1]}
    assert answers["search-plain"].findall(".//ent:ClaimInfo", namespaces=NS) == []
    infos = answers["coupon-info"].findall("bil:CouponInfoData/ent:CouponInfoData", namespaces=NS)
    assert {i.findtext("ent:FeatureId", namespaces=NS) for i in infos} >= {str(FEATURE)}


FAULT_CASES: list[tuple[str, str, str | None, str | None, str | None, int]] = [
    # (case, operation, request children (None: a nil request element), token, developer token, code)
    *[(f"{op}-105", op, "", ALICE, "DEV-NO-SUCH", 105) for op in OPERATIONS],
    *[(f"{op}-109", op, "", ALICE_EXPIRED, DEV, 109) for op in OPERATIONS],
    *[(f"{op}-116", op, "", None, DEV, 116) for op in OPERATIONS],
    *[(f"{op}-100", op, None, ALICE, DEV, 100) for op in OPERATIONS],
    ("dispatch-201", "DispatchCoupons", f"<CustomerId>abc</CustomerId><CouponClassName>{PLAIN}</CouponClassName>",
     ALICE, DEV, 201),
    ("dispatch-106", "DispatchCoupons", f"<SendToEmails>{ids('string', ['a@example.com'])}</SendToEmails>"
     f"<CustomerId>333</CustomerId><CouponClassName>{PLAIN}</CouponClassName>", ALICE, DEV, 106),
    ("dispatch-3000", "DispatchCoupons", f"<SendToEmails>{ids('string', ['a@example.com'])}</SendToEmails>"
     "<CustomerId>222</CustomerId><CouponClassName>NOPE</CouponClassName>", ALICE, DEV, 3000),
    ("search-201", "SearchCoupons", "<Predicates><e:Predicate><e:Field>Bogus</e:Field><e:Operator>Equals"
     "</e:Operator><e:Value>1</e:Value></e:Predicate></Predicates>", ALICE, DEV, 201),
    ("redeem-3006", "RedeemCoupon", "<AccountId>111</AccountId><CouponCode>NOPE</CouponCode>", ALICE, DEV, 3006),
    ("redeem-208", "RedeemCoupon", "<AccountId>98765</AccountId><CouponCode>NOPE</CouponCode>", ALICE, DEV, 208),
    ("info-106", "GetCouponInfo", "<CustomerId>333</CustomerId>", ALICE, DEV, 106),
    ("distribute-203", "DistributeCoupons", f"<AccountIds>{ids('int', [111])}</AccountIds>", ALICE, DEV, 203),
    ("distribute-206", "DistributeCoupons", f"<AccountIds/><ClassName>{FAC}</ClassName>", ALICE, DEV, 206),
    ("distribute-4603", "DistributeCoupons", f"<AccountIds>{ids('int', [111] * 1001)}</AccountIds>"
     f"<ClassName>{FAC}</ClassName>", ALICE, DEV, 4603),
    ("distribute-3000", "DistributeCoupons", f"<AccountIds>{ids('int', [111])}</AccountIds>"
     "<ClassName>NOPE</ClassName>", ALICE, DEV, 3000),
    ("distribute-3011", "DistributeCoupons", f"<AccountIds>{ids('int', [111])}</AccountIds>"
     "<ClassName>EXPIRED-D</ClassName>", ALICE, DEV, 3011),
    ("distribute-201", "DistributeCoupons", f"<AccountIds>{ids('int', [111])}</AccountIds>"
     f"<ClassName>{FAC}</ClassName><FeatureId>1</FeatureId>", ALICE, DEV, 201),
    ("eligibility-206", "CheckFeatureAdoptionCouponEligibility", f"<FeatureId>{FEATURE}</FeatureId>", ALICE, DEV,
     206),
    ("eligibility-4603", "CheckFeatureAdoptionCouponEligibility",
     f"<FeatureId>{FEATURE}</FeatureId><AccountIds>{ids('long', [111] * 101)}</AccountIds>", ALICE, DEV, 4603),
    ("claim-206", "ClaimFeatureAdoptionCoupons", "<AccountCouponPairs/>", ALICE, DEV, 206),
    ("not-supported-204", "GetBillingGroups", "<CustomerId>222</CustomerId>", ALICE, DEV, 204),
]


@pytest.mark.parametrize(("case", "op", "inner", "token", "dev", "code"), FAULT_CASES, ids=[c[0] for c in FAULT_CASES])
def test_every_fault_kind_validates(server: ServerProcess, case: str, op: str, inner: str | None, token: str | None,
                                    dev: str | None, code: int) -> None:
    result = call(server, op, inner, token=token, dev=dev)
    assert result.fault_codes == [code], etree.tostring(result.root).decode()[:2000]
    detail = assert_vendor_valid(result, op)
    expected = "AdApiFaultDetail" if code in (105, 106, 109, 116) else "ApiFault"
    assert etree.QName(detail).localname == expected


# --- 2. zeep on the vendor's WSDL, strict ------------------------------------------------------------
@pytest.fixture(scope="module")
def vendor_service(server: ServerProcess) -> Iterator[tuple[zeep.Client, Any]]:
    with requests.Session() as session:
        client = zeep.Client(str(vendor_wsdl_path()), transport=Transport(session=session),
                             settings=zeep.Settings(strict=True))
        service = client.create_service(f"{{{BIL}}}BasicHttpBinding_ICustomerBillingService", server.soap_url)
        yield client, service


HEADERS = {"AuthenticationToken": ALICE, "DeveloperToken": DEV}


def test_zeep_strict_on_the_vendor_wsdl_calls_every_operation(vendor_service: tuple[zeep.Client, Any]) -> None:
    client, service = vendor_service
    name, codes, seed = FAC2
    arr = f"{{{ARR}}}"
    ent = f"{{{ENT}}}"
    out = service.DistributeCoupons(AccountIds=client.get_type(f"{arr}ArrayOfint")(int=[116, 117, 999, 116]),
                                    ClassName=name, FeatureId=FEATURE, SendNotification=False,
                                    _soapheaders=HEADERS)
    assert uuid.UUID(out.header.TrackingId)
    assert out.body.OperationErrors is None or list(out.body.OperationErrors.OperationError) == []
    partial = [[e.Code for e in (p.OperationError if p is not None else [])]
               for p in out.body.PartialErrors.ArrayOfOperationError]
    assert partial == [[], [], [208], [3002]]
    eligible = service.CheckFeatureAdoptionCouponEligibility(
        FeatureId=FEATURE, AccountIds=client.get_type(f"{arr}ArrayOflong")(long=[117, 116, 444]),
        _soapheaders=HEADERS)
    assert list(eligible.body.EligibleAccountIds.long) == [117, 116]
    pair = client.get_type(f"{ent}KeyValueEntityOflongstring")
    claimed = service.ClaimFeatureAdoptionCoupons(
        AccountCouponPairs=client.get_type(f"{ent}ArrayOfKeyValueEntityOflongstring")(
            KeyValueEntityOflongstring=[pair(Key=116, Value=codes[0]), pair(Key=116, Value="NOPE")]),
        _soapheaders=HEADERS)
    assert [e.Key for e in claimed.body.ClaimedDateByAccountId.KeyValueEntityOflongdateTime] == [116]
    assert [[e.Code for e in (p.OperationError if p is not None else [])]
            for p in claimed.body.PartialErrors.ArrayOfOperationError] == [[], [3006]]
    found = service.SearchCoupons(
        Predicates=client.get_type(f"{ent}ArrayOfPredicate")(Predicate=[
            client.get_type(f"{ent}Predicate")(Field="CouponCode", Operator="Equals", Value=codes[0])]),
        ReturnAdditionalFields=["CouponClaimInfo"], _soapheaders=HEADERS)
    (coupon,) = found.body.Coupons.Coupon
    assert (coupon.ClaimInfo.AccountId, coupon.IsRedeemed) == (116, True)
    info = service.GetCouponInfo(CustomerId=222, _soapheaders=HEADERS)
    assert any(i.FeatureId == FEATURE and i.ClaimDate is not None for i in info.body.CouponInfoData.CouponInfoData)
    redeemed = service.RedeemCoupon(AccountId=111, CouponCode=PLAIN_CODES[10], _soapheaders=HEADERS)
    assert redeemed.body is not None
    sent = service.DispatchCoupons(SendToEmails=client.get_type(f"{arr}ArrayOfstring")(string=["zeep-v@example.com"]),
                                   CustomerId=222, CouponClassName=PLAIN, _soapheaders=HEADERS)
    assert sent.body.PartialErrors is None or list(sent.body.PartialErrors.BatchError) == []
    with pytest.raises(zeep.exceptions.Fault) as info_fault:
        service.DistributeCoupons(AccountIds=None, ClassName=name, _soapheaders=HEADERS)
    (detail,) = list(info_fault.value.detail)
    parsed = client.get_element(etree.QName(detail).text).parse(detail, client.wsdl.types)
    assert [e.Code for e in parsed.OperationErrors.OperationError] == [206]


FAC2 = new_class(3, feature_id=FEATURE, prefix="VS-Z")


@pytest.fixture(scope="module", autouse=True)
def _zeep_class(server: ServerProcess) -> None:
    server.load(FAC2[2], "fac2")


# --- 3. requests valid by the vendor's schema are understood --------------------------------------
def full_requests() -> list[tuple[str, str, str]]:
    """Every optional element present (and nil where the schema allows it), in the vendor's order.  Nil items
    inside Predicates / Ordering are left out: couponsvc refuses them with a 201 naming the item, on purpose
    (docs/decisions.md), although the schema would allow them."""
    return [
        ("DispatchCoupons", "full", f"<SendToEmails>{ids('string', ['vs-full@example.com'])}<a:string {NIL}/>"
         f"</SendToEmails><CustomerId>222</CustomerId><CouponClassName>{PLAIN}</CouponClassName>"),
        ("SearchCoupons", "full",
         "<Predicates><e:Predicate><e:Field>CouponCode</e:Field><e:Operator>StartsWith</e:Operator>"
         f"<e:Value>{FAC}</e:Value></e:Predicate></Predicates>"
         "<Ordering><e:OrderBy><e:Field>CouponClassName</e:Field><e:Order>Descending</e:Order></e:OrderBy>"
         "</Ordering><PageInfo><e:Index>0</e:Index><e:Size>5</e:Size></PageInfo>"
         "<ReturnAdditionalFields>TaxCertificate CouponClaimInfo</ReturnAdditionalFields>"),
        ("SearchCoupons", "nil", f"<Predicates {NIL}/><Ordering {NIL}/><PageInfo {NIL}/>"
                                 f"<ReturnAdditionalFields {NIL}/>"),
        ("RedeemCoupon", "full", f"<AccountId>111</AccountId><CouponCode>{PLAIN_CODES[9]}</CouponCode>"),
        ("GetCouponInfo", "full", "<CustomerId>222</CustomerId>"),
        ("DistributeCoupons", "full", f"<AccountIds>{ids('int', [118])}</AccountIds><ClassName>{FAC}</ClassName>"
         f"<FeatureId>{FEATURE}</FeatureId><SendNotification>false</SendNotification>"),
        ("DistributeCoupons", "nil", f"<AccountIds>{ids('int', [119])}</AccountIds><ClassName>{FAC}</ClassName>"
         f"<FeatureId {NIL}/><SendNotification>0</SendNotification>"),
        ("CheckFeatureAdoptionCouponEligibility", "full",
         f"<FeatureId>{FEATURE}</FeatureId><AccountIds>{ids('long', [118, 119])}</AccountIds>"),
        ("ClaimFeatureAdoptionCoupons", "full",
         "<AccountCouponPairs><e:KeyValueEntityOflongstring><e:Key>119</e:Key><e:Value>NOT-MINE</e:Value>"
         f"</e:KeyValueEntityOflongstring><e:KeyValueEntityOflongstring><e:Key>118</e:Key><e:Value {NIL}/>"
         f"</e:KeyValueEntityOflongstring><e:KeyValueEntityOflongstring {NIL}/></AccountCouponPairs>"),
    ]


@pytest.mark.parametrize(("op", "variant", "inner"), full_requests(), ids=[f"{o}-{v}" for o, v, _ in full_requests()])
def test_vendor_valid_requests_are_understood(server: ServerProcess, op: str, variant: str, inner: str) -> None:
    envelope = soapkit.envelope(body(op, inner), auth=ALICE, dev=DEV)
    request_element = etree.fromstring(envelope).find("s:Body", namespaces=NS)[0]
    assert validation_errors(request_element) == []  # the vendor's schema accepts this request
    assert b'mustUnderstand="1"' in envelope
    result = soapkit.post(server.soap_url, envelope)
    assert result.fault is None, etree.tostring(result.root).decode()[:2000]
    assert_vendor_valid(result, op)


def test_the_vendor_schema_refuses_what_it_should() -> None:
    """The judge can fail: wrong order, a wrong namespace, a long where an int belongs, an unknown element."""
    exc = "https://bingads.microsoft.com/Customer/v13/Exception"
    bad = [
        f'<DistributeCouponsResponse xmlns="{BIL}"><PartialErrors/><OperationErrors/></DistributeCouponsResponse>',
        f'<DistributeCouponsResponse xmlns="{BIL}"><OperationErrors><OperationError/></OperationErrors>'
        "</DistributeCouponsResponse>",
        f'<DistributeCouponsRequest xmlns="{BIL}" xmlns:a="{ARR}"><AccountIds><a:int>3000000000</a:int>'
        "</AccountIds></DistributeCouponsRequest>",
        f'<ClaimFeatureAdoptionCouponsResponse xmlns="{BIL}" xmlns:x="{exc}"><OperationErrors><x:OperationError>'
        "<x:Code>1</x:Code><x:Index>0</x:Index></x:OperationError></OperationErrors>"
        "</ClaimFeatureAdoptionCouponsResponse>",
    ]
    for doc in bad:
        assert validation_errors(etree.fromstring(doc)) != [], doc


# --- the served WSDL says what the vendor's says ------------------------------------------------------
def _shapes(doc: Any) -> dict[tuple[str, str], list[tuple[str, str, str, str, str]]]:
    """{(namespace, type or element name): [(child name, type local name, minOccurs, maxOccurs, nillable)]}."""
    xs = "http://www.w3.org/2001/XMLSchema"
    out = {}
    for schema in doc.iter(f"{{{xs}}}schema"):
        ns = schema.get("targetNamespace")
        for top in schema:
            name = top.get("name")
            if name is None or top.tag not in (f"{{{xs}}}element", f"{{{xs}}}complexType"):
                continue
            children = [(e.get("name"), (e.get("type") or "").rpartition(":")[2], e.get("minOccurs", "1"),
                         e.get("maxOccurs", "1"), e.get("nillable", "false"))
                        for e in top.iter(f"{{{xs}}}element") if e is not top]
            if children:
                out[(ns, name)] = children
    return out


def test_the_served_wsdl_declares_what_the_vendor_declares(server: ServerProcess) -> None:
    import httpx

    served = _shapes(etree.fromstring(httpx.get(f"{server.soap_url}?singleWsdl").content))
    vendor = _shapes(etree.parse(str(vendor_wsdl_path())))
    assert len(served) > 30
    for key, children in served.items():
        assert key in vendor, key
        assert children == vendor[key], key  # same children, order, types, occurrences, nillability
    for op in OPERATIONS:
        assert (BIL, f"{op}Request") in served and (BIL, f"{op}Response") in served


def test_zeep_on_the_served_wsdl_calls_the_family_operations(server: ServerProcess) -> None:
    with requests.Session() as session:
        client = zeep.Client(f"{server.soap_url}?singleWsdl", transport=Transport(session=session),
                             settings=zeep.Settings(strict=True))
        name, codes, seed = new_class(2, feature_id=FEATURE, prefix="VS-SERVED")
        server.load(seed, "served")
        svc = client.service
        out = svc.DistributeCoupons(AccountIds=client.get_type(f"{{{ARR}}}ArrayOfint")(int=[120, 999]),
                                    ClassName=name, SendNotification=False, _soapheaders=HEADERS)
        assert [[e.Code for e in (p.OperationError if p is not None else [])]
                for p in out.body.PartialErrors.ArrayOfOperationError] == [[], [208]]
        ok = svc.CheckFeatureAdoptionCouponEligibility(
            FeatureId=FEATURE, AccountIds=client.get_type(f"{{{ARR}}}ArrayOflong")(long=[120]), _soapheaders=HEADERS)
        assert list(ok.body.EligibleAccountIds.long) == [120]
        pair = client.get_type(f"{{{ENT}}}KeyValueEntityOflongstring")
        claimed = svc.ClaimFeatureAdoptionCoupons(
            AccountCouponPairs=client.get_type(f"{{{ENT}}}ArrayOfKeyValueEntityOflongstring")(
                KeyValueEntityOflongstring=[pair(Key=120, Value=codes[0])]), _soapheaders=HEADERS)
        assert [e.Key for e in claimed.body.ClaimedDateByAccountId.KeyValueEntityOflongdateTime] == [120]


@pytest.mark.parametrize("case", ["malformed", "not-an-envelope", "too-large", "unknown-operation"])
def test_faults_before_any_operation_validate(server: ServerProcess, case: str) -> None:
    """Refusals written before an operation is known (bad XML, a body over the limit, an unknown request)."""
    bodies = {
        "malformed": b"<s:Envelope",
        "not-an-envelope": b"<x/>",
        "too-large": soapkit.envelope(body("DispatchCoupons", "<CouponClassName>" + "x" * (4 * 1024 * 1024)
                                           + "</CouponClassName>"), auth=ALICE, dev=DEV),
        "unknown-operation": soapkit.envelope(f'<FrobnicateRequest xmlns="{BIL}"/>', auth=ALICE, dev=DEV),
    }
    result = soapkit.post(server.soap_url, bodies[case])
    assert result.fault_codes in ([201], [204]), etree.tostring(result.root)[:500]
    (detail,) = result.fault.find("detail")
    assert validation_errors(detail) == []
    assert validation_errors(result.root.find("s:Header/bil:TrackingId", namespaces=NS)) == []
