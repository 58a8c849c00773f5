"""Injected faults (SPEC 10): API faults read by the official SDKs, counts, probability, latency; the clock.

API faults are written by the same code as the real refusals, after authentication and before anything
changes; the clock moves token and class expiry and redemption dates, and returns to real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from couponsvc.testing import CouponsvcTwin, start_twin
from tests.support import restkit, soapkit
from tests.support.sdk import PROTOCOLS, run_sdk_scripts
from tests.support.seeds import ACCOUNT, ALICE, CUSTOMER, DEV
from tests.support.twin import ALICE_2031, SUMMER, TWIN_SEED, admin, snapshot, twin_db

SEARCH = "/CustomerBilling/v13/Coupons/Search"
REDEEM = "/CustomerBilling/v13/Coupon/Redeem"
SEARCH_BODY = {"Predicates": [{"Field": "CouponClassName", "Operator": "Equals", "Value": "SPRING-100"}],
               "PageInfo": {"Index": 0, "Size": 5}}


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CouponsvcTwin]:
    twin = start_twin(tmp_path_factory.mktemp("twin-faults"), TWIN_SEED)
    yield twin
    twin.stop()


@pytest.fixture
def twin(twin_server: CouponsvcTwin) -> CouponsvcTwin:
    twin_server.reset()
    return twin_server


def _long(protocol: str, value: int) -> int | str:
    return str(value) if protocol == "rest" else value


def _calls(protocol: str) -> list[dict[str, Any]]:
    base = {"developer_token": DEV, "access_token": ALICE, "customer_id": CUSTOMER, "account_id": ACCOUNT}
    return [
        {**base, "id": "dispatch", "args": {"SendToEmails": [f"{protocol}@example.com"],
                                            "CustomerId": _long(protocol, CUSTOMER), "CouponClassName": "SPRING-100"}},
        {**base, "id": "search", "operation": "SearchCoupons", "args": SEARCH_BODY},
        {**base, "id": "redeem", "operation": "RedeemCoupon",
         "args": {"AccountId": _long(protocol, ACCOUNT), "CouponCode": "SPR-0001"}},
        {**base, "id": "info", "operation": "GetCouponInfo", "args": {"CustomerId": _long(protocol, CUSTOMER)}},
        {**base, "id": "bad-token", "access_token": "AT-no-such-token",
         "args": {"SendToEmails": ["x@example.com"], "CustomerId": _long(protocol, CUSTOMER),
                  "CouponClassName": "SPRING-100"}},
    ]


# call id → (code, fault kind, REST status, REST SDK exception)
EXPECTED = {
    "dispatch": (117, "AdApiFaultDetail", 429, "ApiException"),
    "search": (0, "AdApiFaultDetail", 500, "ServiceException"),
    "redeem": (3007, "ApiFault", 400, "BadRequestException"),
    "info": (106, "AdApiFaultDetail", 403, "ForbiddenException"),
    "bad-token": (105, "AdApiFaultDetail", 401, "UnauthorizedException"),  # authentication comes first
}


@pytest.mark.sdk
def test_api_faults_reach_both_official_sdks_as_real_refusals_and_change_nothing(twin: CouponsvcTwin) -> None:
    rules = [twin.fault(operation="DispatchCoupons", error_code=117, retry_after=7),
             twin.fault(operation="SearchCoupons", error_code=0),
             twin.fault(operation="RedeemCoupon", error_code=3007),
             twin.fault(operation="GetCouponInfo", error_code=106)]
    assert rules[0] == {"id": rules[0]["id"], "operation": "DispatchCoupons", "error_code": 117, "latency_ms": None,
                        "probability": 1.0, "count": None, "retry_after": 7}
    before = snapshot(twin_db(twin))
    results = run_sdk_scripts({p: {"base_url": twin.url,
                                   "calls": _calls(p)} for p in PROTOCOLS})
    for protocol in PROTOCOLS:
        for call_id, (code, kind, status, exception) in EXPECTED.items():
            r = results[protocol][call_id]
            assert r["outcome"] == "fault", (protocol, call_id, r)
            assert r["kind"] == kind and str(r["errors"][0]["Code"]) == str(code), (protocol, call_id, r)
            if protocol == "rest":
                assert (r["http_status"], r["exception"]) == (status, exception), (call_id, r)
            else:
                assert r["http_status"] == 500 and r["faultstring"].endswith(r["tracking_id"]), r
    assert results["rest"]["dispatch"]["retry_after"] == "7"
    assert results["rest"]["dispatch"]["errors"][0]["ErrorCode"] == "CallRateExceeded"
    assert results["soap"]["dispatch"]["errors"][0]["ErrorCode"] == "CallRateExceeded"
    assert results["rest"]["search"]["errors"][0]["ErrorCode"] == "InternalError"

    journal = twin.calls()
    after = snapshot(twin_db(twin))
    assert {**after, "twin_calls": 0} == {**before, "twin_calls": 0}  # nothing changed but the journal
    by_id = {c["tracking_id"]: c for c in journal}
    for protocol in PROTOCOLS:
        for call_id, (code, _, status, _) in EXPECTED.items():
            entry = by_id[results[protocol][call_id]["tracking_id"]]
            assert entry["error_codes"] == [code] and entry["protocol"] == protocol.upper()
            assert entry["http_status"] == (500 if protocol == "soap" else status)

    # without the rules the very same calls succeed, so the faults above did stop them
    twin.clear_faults()
    assert twin.faults() == []
    assert restkit.dispatch(twin.url, ["rest@example.com"]).json() == {"PartialErrors": []}
    assert restkit.post(twin.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": "SPR-0001"}).status_code == 200


def test_counted_probable_and_removed_rules(twin: CouponsvcTwin) -> None:
    counted = twin.fault(operation="*", error_code=0, count=2)
    codes = [restkit.fault_codes(r) if r.status_code != 200 else []
             for r in (restkit.post(twin.url, SEARCH, SEARCH_BODY) for _ in range(3))]
    assert codes == [[0], [0], []]
    assert twin.faults() == []  # used up: removed
    never = twin.fault(operation="SearchCoupons", error_code=117, probability=0)
    assert all(restkit.post(twin.url, SEARCH, SEARCH_BODY).status_code == 200 for _ in range(10))
    twin.clear_faults(never["id"])
    assert admin(twin, "DELETE", f"faults/{never['id']}").status_code == 404
    twin.fault(operation="SearchCoupons", error_code=117, probability=0.5)
    statuses = [restkit.post(twin.url, SEARCH, SEARCH_BODY).status_code for _ in range(40)]
    assert 5 <= statuses.count(429) <= 35 and statuses.count(429) + statuses.count(200) == 40
    twin.fault(operation="DispatchCoupons", error_code=3000)
    assert len(twin.faults()) == 2
    assert admin(twin, "DELETE", "faults").json() == {"deleted": 2}
    assert twin.faults() == [] and counted["count"] == 2


@pytest.mark.parametrize("rule, key", [
    ({"error_code": 117}, "operation"),
    ({"operation": "NoSuchOperation", "error_code": 117}, "operation"),
    ({"operation": "*", "error_code": 3001}, "error_code"),
    ({"operation": "DistributeCoupons", "error_code": 3012}, "error_code"),
    ({"operation": "*", "error_code": 9999}, "error_code"),
    ({"operation": "*", "error_code": "117"}, "error_code"),
    ({"operation": "*"}, "error_code or latency_ms"),
    ({"operation": "*", "latency_ms": -1}, "latency_ms"),
    ({"operation": "*", "error_code": 0, "probability": 1.5}, "probability"),
    ({"operation": "*", "error_code": 0, "count": 0}, "count"),
    ({"operation": "*", "error_code": 0, "colour": "red"}, "colour"),
    ({"smtp": "6xx", "recipient": "a"}, "smtp"),
    ({"smtp": "5xx", "recipient": "(unclosed"}, "recipient"),
    ({"smtp": "5xx", "operation": "*"}, "operation"),
])
def test_bad_fault_rules_are_refused_naming_the_key(twin: CouponsvcTwin, rule: dict[str, Any], key: str) -> None:
    r = admin(twin, "POST", "faults", json=rule)
    assert r.status_code == 400 and r.json()["error"].startswith(key), r.text
    assert twin.faults() == []


def test_injected_latency_ends_at_the_request_deadline_as_a_real_slow_call(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """SPEC 9: no call runs longer than COUPONSVC_REQUEST_TIMEOUT, an injected delay included."""
    twin = start_twin(tmp_path_factory.mktemp("twin-deadline"), TWIN_SEED, env={"COUPONSVC_REQUEST_TIMEOUT": "1"})
    try:
        twin.fault(operation="SearchCoupons", latency_ms=5000)
        started = time.perf_counter()
        r = restkit.post(twin.url, SEARCH, SEARCH_BODY)
        took = time.perf_counter() - started
        assert restkit.fault_codes(r) == [0] and r.headers.get("TrackingId"), r.text
        assert 0.9 <= took < 2.5, took
        twin.clear_faults()
        twin.fault(operation="SearchCoupons", latency_ms=300)  # within the deadline: waits, then answers
        started = time.perf_counter()
        assert restkit.post(twin.url, SEARCH, SEARCH_BODY).status_code == 200
        assert time.perf_counter() - started >= 0.3
    finally:
        twin.stop()


def test_latency_is_injected_without_blocking_other_calls(twin: CouponsvcTwin) -> None:
    twin.fault(operation="SearchCoupons", latency_ms=1500)
    took: list[float] = []

    def slow_search() -> None:
        started = time.perf_counter()
        assert restkit.post(twin.url, SEARCH, SEARCH_BODY).status_code == 200
        took.append(time.perf_counter() - started)

    thread = threading.Thread(target=slow_search)
    thread.start()
    time.sleep(0.2)
    health_times, dispatch_started = [], time.perf_counter()
    assert restkit.dispatch(twin.url, ["fast@example.com"]).json() == {"PartialErrors": []}
    dispatch_took = time.perf_counter() - dispatch_started
    for _ in range(3):
        started = time.perf_counter()
        assert httpx.get(f"{twin.url}/health", timeout=10).status_code == 200
        health_times.append(time.perf_counter() - started)
    thread.join(30)
    assert took and took[0] >= 1.5, took
    assert dispatch_took < 1.2 and max(health_times) < 0.5, (dispatch_took, health_times)  # not held up

    twin.clear_faults()
    twin.fault(operation="RedeemCoupon", latency_ms=400, error_code=0)
    started = time.perf_counter()
    r = restkit.post(twin.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": "SPR-0002"})
    assert time.perf_counter() - started >= 0.4 and restkit.fault_codes(r) == [0]
    soap = soapkit.post(twin.soap_url, soapkit.envelope(
        '<RedeemCouponRequest xmlns="https://bingads.microsoft.com/Billing/v13"><AccountId>111</AccountId>'
        "<CouponCode>SPR-0002</CouponCode></RedeemCouponRequest>"))
    assert soap.fault_kind == "AdApiFaultDetail" and soap.fault_codes == [0]


# --- the clock ---------------------------------------------------------------------------------------------------
def _now(twin: CouponsvcTwin) -> datetime:
    return datetime.fromisoformat(twin.clock()["now"].replace("Z", "+00:00"))


def test_clock_expires_tokens_and_classes_moves_redemption_dates_and_returns_to_real_time(
        twin: CouponsvcTwin) -> None:
    assert twin.clock()["frozen"] is False
    assert abs((_now(twin) - datetime.now(UTC)).total_seconds()) < 5
    # a redemption stamped with the twin's time
    set_to = twin.clock("2030-03-01T12:00:00Z")
    assert set_to["now"] == "2030-03-01T12:00:00.000Z" and set_to["frozen"] is True
    time.sleep(0.2)
    assert twin.clock()["now"] == "2030-03-01T12:00:00.000Z"  # frozen: time stands still
    r = restkit.post(twin.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": "SUM-0000"}, auth=ALICE_2031)
    assert r.status_code == 200 and r.json()["RedemptionDate"].startswith("2030-03-01T12:00:00"), r.text
    assert twin.clock(advance_seconds=3600)["now"] == "2030-03-01T13:00:00.000Z"
    # the class ends 2030-06-30: 3011 on both protocols
    twin.clock("2030-07-01T00:00:00Z")
    assert restkit.fault_codes(restkit.dispatch(twin.url, ["a@example.com"], class_name=SUMMER,
                                                auth=ALICE_2031)) == [3011]
    soap = soapkit.dispatch(twin.soap_url, ["a@example.com"], class_name=SUMMER, auth=ALICE_2031)
    assert soap.fault_kind == "ApiFault" and soap.fault_codes == [3011]
    # the token expires 2031-01-01: 109 on both protocols (a token valid until 2099 still works)
    twin.clock("2031-02-01T00:00:00Z")
    assert restkit.fault_codes(restkit.dispatch(twin.url, ["a@example.com"], auth=ALICE_2031)) == [109]
    assert soapkit.dispatch(twin.soap_url, ["a@example.com"], auth=ALICE_2031).fault_codes == [109]
    assert restkit.dispatch(twin.url, ["a@example.com"], auth=ALICE).json() == {"PartialErrors": []}
    # running (not frozen) but offset
    running = twin.clock("2030-07-01T00:00:00Z", frozen=False)
    assert running["frozen"] is False
    time.sleep(0.3)
    assert _now(twin) > datetime(2030, 7, 1, 0, 0, 0, 200_000, tzinfo=UTC)
    assert restkit.fault_codes(restkit.dispatch(twin.url, ["b@example.com"], class_name=SUMMER,
                                                auth=ALICE_2031)) == [3011]
    # back to real time: the token and the class work again
    back = twin.clock(None)
    assert back["frozen"] is False and back["offset_seconds"] == 0
    assert abs((_now(twin) - datetime.now(UTC)).total_seconds()) < 5
    assert restkit.dispatch(twin.url, ["b@example.com"], class_name=SUMMER, auth=ALICE_2031).json() == \
        {"PartialErrors": []}


@pytest.mark.parametrize("body, key", [
    ({"now": "yesterday"}, "now"), ({"advance_seconds": "1"}, "advance_seconds"), ({}, "now or advance_seconds"),
    ({"now": None, "advance_seconds": 1}, "now or advance_seconds"), ({"now": None, "tick": 1}, "tick"),
    ({"now": "2030-01-01T00:00:00Z", "frozen": "yes"}, "frozen"),
])
def test_bad_clock_settings_are_refused(twin: CouponsvcTwin, body: dict[str, Any], key: str) -> None:
    r = admin(twin, "POST", "clock", json=body)
    assert r.status_code == 400 and r.json()["error"].startswith(key), r.text
    assert twin.clock()["frozen"] is False
