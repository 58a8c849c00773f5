"""DistributeCoupons, CheckFeatureAdoptionCouponEligibility and ClaimFeatureAdoptionCoupons through both official
SDKs (bingads SOAP/suds, msads REST with its strict pydantic models), with SearchCoupons' ClaimInfo and
GetCouponInfo's claimed coupons (SPEC 5.1).

Each SDK script runs once with all its calls, side by side on one server; each protocol works on coupon classes
and a FeatureId of its own, so the two runs cannot disturb each other.  msads' StrictInt / StrictStr models
judge every JSON type (AccountIds of DistributeCoupons are ints, the other account ids long strings).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.family import ALICE as ALICE_TOKEN
from tests.support.family import CAROL, DEV, SEED, new_class
from tests.support.sdk import PROTOCOLS, Results, run_sdk_scripts
from tests.support.server import ServerProcess

pytestmark = pytest.mark.sdk

FEATURES = {"soap": 7101, "rest": 7102}
CLASSES = {p: {"fac": new_class(6, feature_id=FEATURES[p], prefix=f"SDK-{p}"),
               "one": new_class(1, feature_id=FEATURES[p], prefix=f"SDK-{p}"),
               "plain": new_class(2, prefix=f"SDK-{p}"),
               "expiring": new_class(1, feature_id=FEATURES[p], prefix=f"SDK-{p}-EXP")} for p in PROTOCOLS}


def fac(p: str) -> str:
    return CLASSES[p]["fac"][0]


def fac_code(p: str, i: int) -> str:
    return CLASSES[p]["fac"][1][i]


def calls(p: str) -> list[dict[str, Any]]:
    f = FEATURES[p]

    def c(call_id: str, operation: str, args: dict[str, Any] | None, token: str = ALICE_TOKEN,
          dev: str = DEV) -> dict[str, Any]:
        return {"id": call_id, "operation": operation, "developer_token": dev, "access_token": token,
                "customer_id": 222, "account_id": 111, "args": args}

    def dist(call_id: str, ids: list[int] | None, name: str | None, **kw: Any) -> dict[str, Any]:
        args = {"AccountIds": ids, "ClassName": name, "SendNotification": False, **kw}
        return c(call_id, "DistributeCoupons", {k: v for k, v in args.items() if v is not None})

    def pairs(items: list[tuple[int, str]]) -> dict[str, Any]:
        key = (lambda a: str(a)) if p == "rest" else (lambda a: a)
        return {"AccountCouponPairs": [{"Key": key(a), "Value": v} for a, v in items]}

    long_ids = (lambda ids: [str(i) for i in ids]) if p == "rest" else (lambda ids: ids)
    search = {"Predicates": [{"Field": "CouponClassName", "Operator": "Equals", "Value": fac(p)}]}
    return [
        dist("dist-mixed", [111, 999999, 444, 111, 112, 113, 114], fac(p), FeatureId=f, SendNotification=True),
        dist("dist-again", [113, 115], fac(p)),
        dist("dist-empty", [111, 113], CLASSES[p]["one"][0]),
        dist("dist-plain", [116], CLASSES[p]["plain"][0]),
        dist("dist-expiring", [117], CLASSES[p]["expiring"][0]),
        dist("dist-203", [111], None),
        dist("dist-206", [], fac(p)),
        dist("dist-4603", [111] * 1001, fac(p)),
        dist("dist-3000", [111], "NO-SUCH-CLASS"),
        dist("dist-3011", [111], "EXPIRED-D"),
        dist("dist-201-feature", [111], fac(p), FeatureId=f + 1000),
        {**dist("dist-201-ambiguous", [556], "TWIN"), "access_token": CAROL, "customer_id": 555, "account_id": 556},
        {**dist("dist-105", [111], fac(p)), "developer_token": "DEV-NO-SUCH"},
        c("elig", "CheckFeatureAdoptionCouponEligibility",
          {"FeatureId": f, "AccountIds": long_ids([116, 113, 111, 444, 999999, 114, 115, 111])}),
        c("elig-206", "CheckFeatureAdoptionCouponEligibility", {"FeatureId": f, "AccountIds": []}),
        c("elig-4603", "CheckFeatureAdoptionCouponEligibility", {"FeatureId": f, "AccountIds": long_ids([111] * 101)}),
        c("claim-mixed", "ClaimFeatureAdoptionCoupons",
          pairs([(111, fac_code(p, 0)), (111, fac_code(p, 0)), (113, fac_code(p, 0)), (444, "FABF-1"),
                 (999999, fac_code(p, 2)), (114, "NOPE"), (114, fac_code(p, 2))])),
        c("claim-206", "ClaimFeatureAdoptionCoupons", {"AccountCouponPairs": []}),
        c("elig-after", "CheckFeatureAdoptionCouponEligibility", {"FeatureId": f, "AccountIds": long_ids([111, 113])}),
        c("search-claim", "SearchCoupons", {**search, "ReturnAdditionalFields": "CouponClaimInfo"}),
        c("search-plain", "SearchCoupons", search),
        c("info", "GetCouponInfo", {"CustomerId": 222 if p == "soap" else "222"}),
        *([] if p == "rest" else [  # a plain suds client generated from the server's own ?wsdl
            {**dist("wsdl-dist", [118, 999999], fac(p)), "client": "suds-wsdl"},
            {**c("wsdl-elig", "CheckFeatureAdoptionCouponEligibility", {"FeatureId": f, "AccountIds": [118]}),
             "client": "suds-wsdl"},
            {**c("wsdl-claim", "ClaimFeatureAdoptionCoupons", pairs([(118, fac_code(p, 4))])), "client": "suds-wsdl"},
        ]),
    ]


def later_calls(p: str) -> list[dict[str, Any]]:
    """After the 'expiring' class has expired (the operator moved its ExpirationDate into the past)."""
    (code,) = CLASSES[p]["expiring"][1]
    key: Any = "117" if p == "rest" else 117
    return [
        {"id": "claim-3008", "operation": "ClaimFeatureAdoptionCoupons", "developer_token": DEV,
         "access_token": ALICE_TOKEN, "args": {"AccountCouponPairs": [{"Key": key, "Value": code}]}},
        {"id": "elig-expired", "operation": "CheckFeatureAdoptionCouponEligibility", "developer_token": DEV,
         "access_token": ALICE_TOKEN, "args": {"FeatureId": FEATURES[p], "AccountIds": [key]}},
    ]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    proc = ServerProcess(tmp_path_factory.mktemp("sdk-family"), {"COUPONSVC_DELIVERY_TIMEOUT": "0"})
    proc.load(SEED, "family")
    for p in PROTOCOLS:
        for _, _, seed in CLASSES[p].values():
            proc.load(seed, "cls")
    proc.start()
    try:
        first = run_sdk_scripts({p: {"base_url": proc.url, "calls": calls(p)} for p in PROTOCOLS})
        with sqlite3.connect(proc.data_dir / "couponsvc.db") as db:
            db.executemany("UPDATE coupon_classes SET expiration_date = '2021-01-01 00:00:00.000000' WHERE name = ?",
                           [(CLASSES[p]["expiring"][0],) for p in PROTOCOLS])
        later = run_sdk_scripts({p: {"base_url": proc.url, "calls": later_calls(p)} for p in PROTOCOLS})
        yield {p: {**first[p], **later[p]} for p in PROTOCOLS}
    finally:
        proc.stop()


def value(v: Any) -> Any:
    return None if v is None else v["value"]


def error_codes(r: dict[str, Any], protocol: str) -> list[list[int]]:
    """PartialErrors as codes per request item.  REST: the SDK's own List[List[OperationError]].  SOAP: the
    reply the SDK received -- suds' objects drop leading empty items (a suds quirk: checked below)."""
    if protocol == "rest":
        return [[value(e["values"]["Code"]) for e in item] for item in r["partial_errors_lists"]]
    return [list(item) for item in r["wire_partial_errors"]]


def response(results: Results, p: str, call_id: str) -> dict[str, Any]:
    r = results[p][call_id]
    assert r["outcome"] == "response", r
    return r


@pytest.mark.parametrize("p", PROTOCOLS)
def test_distribute_partial_errors_are_index_aligned(results: Results, p: str) -> None:
    r = response(results, p, "dist-mixed")
    assert r["operation_errors"] == []
    assert error_codes(r, p) == [[], [208], [208], [3002], [3010], [], []]
    assert error_codes(response(results, p, "dist-again"), p) == [[3012], []]
    assert error_codes(response(results, p, "dist-empty"), p) == [[], [3004]]
    assert error_codes(response(results, p, "dist-plain"), p) == [[]]
    if p == "rest":  # the strict model typed every OperationError field
        (item,) = r["partial_errors_lists"][4]
        assert {k: v["type"] if v else None for k, v in item["values"].items()} == {
            "Code": "int", "Details": "str", "Message": "str"}
    else:  # suds' objects: the leading empty item is gone, the others are there, typed by the vendor WSDL
        assert [[e["Code"] for e in item] for item in r["partial_errors_lists"]] == [
            [208], [208], [3002], [3010], [], []]
        (item,) = r["partial_errors_lists"][3]
        assert isinstance(item["Code"], int) and item["Message"]


@pytest.mark.parametrize("p", PROTOCOLS)
@pytest.mark.parametrize(("call_id", "code"), [
    ("dist-203", 203), ("dist-206", 206), ("dist-4603", 4603), ("dist-3000", 3000), ("dist-3011", 3011),
    ("dist-201-feature", 201), ("dist-201-ambiguous", 201), ("dist-105", 105), ("elig-206", 206),
    ("elig-4603", 4603), ("claim-206", 206),
])
def test_whole_call_refusals_reach_the_sdk_as_faults(results: Results, p: str, call_id: str, code: int) -> None:
    r = results[p][call_id]
    assert r["outcome"] == "fault", r
    assert [int(e["Code"]) for e in r["errors"]] == [code]  # suds leaves fault details untyped (text)
    assert r["kind"] == ("AdApiFaultDetail" if code == 105 else "ApiFault")
    if p == "rest":
        assert r["http_status"] == (401 if code == 105 else 400)


@pytest.mark.parametrize("p", PROTOCOLS)
def test_eligibility_and_claims(results: Results, p: str) -> None:
    eligible = [value(v) for v in response(results, p, "elig")["eligible"]]
    # request order, once each; unknown (999999), foreign (444) and not-holding (116: a plain class) left out
    expected = [113, 111, 114, 115]
    assert eligible == ([str(i) for i in expected] if p == "rest" else expected)
    r = response(results, p, "claim-mixed")
    assert error_codes(r, p) == [[], [3007], [3006], [208], [208], [3006], []]
    claimed = [(value(kv["values"]["Key"]), kv["values"]["Value"]["type"]) for kv in r["claimed"]]
    assert claimed == ([("111", "datetime"), ("114", "datetime")] if p == "rest"
                       else [(111, "datetime"), (114, "datetime")])
    # 111 claimed its coupon of the big class but still holds the one of the one-coupon class (same FeatureId)
    after = [value(v) for v in response(results, p, "elig-after")["eligible"]]
    assert after == (["111", "113"] if p == "rest" else [111, 113])


@pytest.mark.parametrize("p", PROTOCOLS)
def test_search_claim_info_and_coupon_info(results: Results, p: str) -> None:
    coupons = {value(c["values"]["CouponCode"]): c for c in response(results, p, "search-claim")["coupons"]}
    claim = coupons[fac_code(p, 0)]["values"]["ClaimInfo"]
    assert claim is not None
    assert value(claim["values"]["AccountId"]) == ("111" if p == "rest" else 111)
    assert value(claim["values"]["AccountNumber"]) == "F111AAAA"
    assert claim["values"]["ClaimDate"]["type"] == "datetime"
    assert coupons[fac_code(p, 0)]["values"]["IsRedeemed"]["value"] is True
    unclaimed = coupons[fac_code(p, 1)]["values"]  # distributed to 113, not claimed
    assert unclaimed.get("ClaimInfo") is None and unclaimed["IsRedeemed"]["value"] is False
    for c in response(results, p, "search-plain")["coupons"]:
        assert c["values"].get("ClaimInfo") is None
    infos = response(results, p, "info")["coupon_info"]
    mine = [i for i in infos if value(i["values"]["FeatureId"]) == FEATURES[p]]
    assert len(mine) == 2  # the two claims of this protocol
    assert all(i["values"]["ClaimDate"]["type"] == "datetime" for i in mine)
    assert {value(i["values"]["AccountId"]) for i in mine} == {111, 114}  # ints in both protocols


@pytest.mark.parametrize("p", PROTOCOLS)
def test_an_expired_coupon_is_not_claimable(results: Results, p: str) -> None:
    assert error_codes(response(results, p, "dist-expiring"), p) == [[]]
    assert error_codes(response(results, p, "claim-3008"), p) == [[3008]]
    assert response(results, p, "claim-3008")["claimed"] == []
    assert response(results, p, "elig-expired")["eligible"] == []


def test_plain_suds_on_the_served_wsdl_calls_the_family_operations(results: Results) -> None:
    r = response(results, "soap", "wsdl-dist")
    assert [[e["Code"] for e in item] for item in r["partial_errors_lists"]] == [[208]]  # (leading [] dropped by suds)
    assert [value(v) for v in response(results, "soap", "wsdl-elig")["eligible"]] == [118]
    claimed = response(results, "soap", "wsdl-claim")["claimed"]
    assert [value(kv["values"]["Key"]) for kv in claimed] == [118]
    assert claimed[0]["values"]["Value"]["type"] == "datetime"
