"""SearchCoupons, RedeemCoupon and GetCouponInfo through the official SDKs (bingads SOAP, msads REST), and the
204 answer of every other Customer Billing operation (SPEC 2, 3, 5).

The msads models are strict (StrictStr, StrictInt, StrictFloat, datetime): a response value of the wrong JSON
type makes the SDK itself fail, so a successful call here means the SDK accepted every field's type.  suds types
SOAP responses by the SDK's bundled WSDL; the scripts report each value with its Python type.  The raw wire
(element order and namespaces, REST key order, NullRequest) is checked with tests/support/soapkit and httpx.

Like tests/test_official_sdks.py, every SDK call of this file is made in one run of each script (the two run
side by side on their own server); the tests then judge the results by call id.  Calls that change state use
coupons of their own protocol, so the two runs cannot disturb each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from lxml import etree

from tests.support import soapkit
from tests.support.sdk import PROTOCOLS, Results, run_sdk_scripts
from tests.support.server import ServerProcess

pytestmark = pytest.mark.sdk


DEV = "DEV-COUPONS-0001"
ALICE = "AT-coupons-alice"  # customer 222: accounts 111 (USD), 112 (EUR)
BOB = "AT-coupons-bob"  # customer 333: account 444 (EUR)
CAROL = "AT-coupons-carol"  # customers 555 (account 556, USD) and 666 (no redemptions)
UNKNOWN_TOKEN = "AT-coupons-unknown"
ENT = "https://bingads.microsoft.com/Customer/v13/Entities"

PAST, FAR = "2020-01-01T00:00:00Z", "2099-12-31T23:59:59Z"
SEARCH_B = [f"SB-{i:03d}" for i in range(12)]
SEARCH_A = [f"SA-{i:03d}" for i in range(8)]
# Search-B's first four coupons go to these addresses (DispatchCoupons gives the oldest coupons first)
SENT = ["Ann@Example.com", "bob@example.com", "ann.smith@Example.org", "Zed@EXAMPLE.com"]

SEED: dict[str, Any] = {
    "developer_tokens": [{"token": DEV, "name": "sdk coupons"}],
    "customers": [
        {"id": 222, "name": "Contoso",
         "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD"},
                      {"id": 112, "number": "F112EEEE", "currency_code": "EUR"}],
         "coupon_classes": [
             {"name": "Search-B", "coupon_type": "Acquisition", "amount": 20.0, "currency_code": "USD",
              "spend_threshold": 5.0, "active_duration": 10, "start_date": "2021-01-01T00:00:00Z",
              "end_date": FAR, "expiration_date": "2099-06-30T00:00:00Z", "codes": SEARCH_B},
             {"name": "search-a", "coupon_type": "Retention", "percent_off": 15.0,
              "start_date": "2020-06-01T00:00:00Z", "codes": SEARCH_A},
             {"name": "REDEEM", "coupon_type": "Acquisition", "amount": 50.0, "currency_code": "USD",
              "spend_threshold": 10.0, "active_duration": 30, "start_date": PAST, "end_date": FAR,
              "expiration_date": FAR, "codes": [f"RD-{p}-{i}" for p in PROTOCOLS for i in range(3)]},
             {"name": "PCT", "percent_off": 10.0, "active_duration": 5, "start_date": PAST,
              "codes": [f"PCT-{p}" for p in PROTOCOLS]},
             {"name": "FUTURE", "amount": 5.0, "currency_code": "USD", "start_date": "2099-01-01T00:00:00Z",
              "codes": [f"FUT-{p}" for p in PROTOCOLS]},
             {"name": "EXPIRED", "amount": 5.0, "currency_code": "USD", "start_date": "2019-01-01T00:00:00Z",
              "end_date": "2020-12-31T23:59:59Z", "expiration_date": "2021-12-31T23:59:59Z",
              "codes": [f"EXP-{p}" for p in PROTOCOLS]},
             {"name": "EURO", "amount": 10.0, "currency_code": "EUR", "active_duration": 30, "start_date": PAST,
              "codes": [f"EUR-{p}" for p in PROTOCOLS]},
         ]},
        {"id": 333, "name": "Fabrikam", "accounts": [{"id": 444, "number": "F444BBBB", "currency_code": "EUR"}],
         "coupon_classes": [{"name": "FAB-50", "amount": 50.0, "currency_code": "EUR",
                             "codes": ["FAB-000", "FAB-001"]}]},
        {"id": 555, "name": "Northwind", "accounts": [{"id": 556, "number": "F556CCCC", "currency_code": "USD"}],
         "coupon_classes": [
             {"name": "INFO", "coupon_type": "Acquisition", "amount": 30.0, "currency_code": "USD",
              "spend_threshold": 12.5, "active_duration": 7, "start_date": PAST, "end_date": FAR,
              "expiration_date": FAR, "codes": ["INF-0", "INF-1"]},
             {"name": "INFO-PCT", "percent_off": 25.0, "active_duration": 0, "start_date": PAST,
              "codes": ["INF-PCT-0"]},
         ]},
        {"id": 666, "name": "Empty Inc", "accounts": [{"id": 667, "number": "F667DDDD", "currency_code": "USD"}]},
    ],
    "users": [
        {"name": "alice", "customers": [222],
         "access_tokens": [{"token": ALICE, "expires_at": "2099-01-01T00:00:00Z"}]},
        {"name": "bob", "customers": [333], "access_tokens": [{"token": BOB, "expires_at": "2099-01-01T00:00:00Z"}]},
        {"name": "carol", "customers": [555, 666],
         "access_tokens": [{"token": CAROL, "expires_at": "2099-01-01T00:00:00Z"}]},
    ],
}

NOT_SUPPORTED = [  # (the coupon family's other three operations: tests/test_official_sdks_family.py)
    "GetBillingDocumentsInfo", "GetBillingDocuments", "AddInsertionOrder", "UpdateInsertionOrder",
    "SearchInsertionOrders", "GetAccountMonthlySpend", "GetBillingGroups", "GetUngroupedAccounts",
    "UpdateBillingGroupAccounts",
]

# SPEC 8 and 3.2: where each fault travels, its ErrorCode, the REST status and the REST SDK's exception.
FAULTS: dict[int, tuple[str, str, int, str]] = {
    105: ("AdApiFaultDetail", "InvalidCredentials", 401, "UnauthorizedException"),
    106: ("AdApiFaultDetail", "UserIsNotAuthorized", 403, "ForbiddenException"),
    201: ("ApiFault", "ApiInputValidationError", 400, "BadRequestException"),
    203: ("ApiFault", "NullParameter", 400, "BadRequestException"),
    204: ("ApiFault", "OperationNotSupported", 400, "BadRequestException"),
    208: ("ApiFault", "InvalidAccount", 400, "BadRequestException"),
    3006: ("ApiFault", "CouponCodeNotFound", 400, "BadRequestException"),
    3007: ("ApiFault", "CouponAlreadyRedeemed", 400, "BadRequestException"),
    3008: ("ApiFault", "CouponExpired", 400, "BadRequestException"),
    3009: ("ApiFault", "CouponNotYetActive", 400, "BadRequestException"),
    3010: ("ApiFault", "CouponCurrencyMismatch", 400, "BadRequestException"),
}



# --- the calls ---------------------------------------------------------------------------------------
def sdk_call(call_id: str, operation: str, args: dict[str, Any] | None, *, token: str = ALICE,
             customer_id: int = 222, account_id: int = 111, **extra: Any) -> dict[str, Any]:
    return {"id": call_id, "operation": operation, "developer_token": DEV, "access_token": token,
            "customer_id": customer_id, "account_id": account_id, "args": args, **extra}


def long_arg(protocol: str, value: int | str) -> int | str:
    """A long as each SDK's request model takes it (msads: a string, as the real REST service wants)."""
    return str(value) if protocol == "rest" else value


def pred(field: str, operator: str, value: str | None) -> dict[str, Any]:
    return {"Field": field, "Operator": operator, "Value": value}


def search(call_id: str, predicates: list[dict[str, Any]] | None = None, ordering: list[tuple[str, str]] | None = None,
           page: tuple[int, int] | None = None, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"Predicates": predicates}
    if ordering is not None:
        args["Ordering"] = [{"Field": f, "Order": o} for f, o in ordering]
    if page is not None:
        args["PageInfo"] = {"Index": page[0], "Size": page[1]}
    return sdk_call(call_id, "SearchCoupons", args, **extra)


CLASS_B = pred("CouponClassName", "Equals", "search-b")
BOTH_CLASSES = pred("CouponClassName", "In", "search-a, SEARCH-B")

# (call id, predicates, ordering, page, expected codes in order): successful searches, the same on both protocols
SEARCHES: list[tuple[str, list[dict[str, Any]] | None, list[tuple[str, str]] | None, tuple[int, int] | None,
                     list[str]]] = [
    ("class-equals-any-case", [CLASS_B], None, None, SEARCH_B),
    ("code-equals", [pred("CouponCode", "Equals", "SB-000")], None, None, ["SB-000"]),
    ("code-is-case-sensitive", [pred("CouponCode", "Equals", "sb-000")], None, None, []),
    ("code-in-skips-foreign", [pred("CouponCode", "In", "SB-001,SA-002, FAB-000")], None, None, ["SB-001", "SA-002"]),
    ("code-contains", [pred("CouponCode", "Contains", "A-00")], None, None, SEARCH_A),
    ("code-starts-with", [pred("CouponCode", "StartsWith", "SB-01")], None, None, ["SB-010", "SB-011"]),
    ("code-not-equals", [BOTH_CLASSES, pred("CouponCode", "NotEquals", "SB-000")], None, None,
     SEARCH_B[1:] + SEARCH_A),  # Search-B was loaded first
    ("email-equals-any-case", [pred("SendToEmail", "Equals", "ANN@example.COM")], None, None, ["SB-000"]),
    ("email-contains", [pred("SendToEmail", "Contains", "EXAMPLE.COM")], None, None, ["SB-000", "SB-001", "SB-003"]),
    ("email-starts-with", [pred("SendToEmail", "StartsWith", "Ann")], None, None, ["SB-000", "SB-002"]),
    ("email-in", [pred("SendToEmail", "In", "bob@example.com,ZED@example.com")], None, None, ["SB-001", "SB-003"]),
    ("email-not-equals-keeps-unsent", [CLASS_B, pred("SendToEmail", "NotEquals", "bob@example.com")], None, None,
     [c for c in SEARCH_B if c != "SB-001"]),
    ("redeemed", [CLASS_B, pred("IsRedeemed", "Equals", "true")], None, None, ["SB-000", "SB-010"]),
    ("not-redeemed", [CLASS_B, pred("IsRedeemed", "Equals", "False")], None, None,
     [c for c in SEARCH_B if c not in ("SB-000", "SB-010")]),
    ("redeemed-not-equals", [CLASS_B, pred("IsRedeemed", "NotEquals", "false")], None, None, ["SB-000", "SB-010"]),
    ("customer-own", [pred("CustomerId", "Equals", "222"), pred("CouponCode", "StartsWith", "SA-")], None, None,
     SEARCH_A),
    ("customer-in", [pred("CustomerId", "In", "333,222"), pred("CouponCode", "StartsWith", "SA-")], None, None,
     SEARCH_A),
    ("customer-foreign-is-empty", [pred("CustomerId", "Equals", "333")], None, None, []),
    ("customer-not-equals-own", [pred("CustomerId", "NotEquals", "222")], None, None, []),
    ("class-foreign-is-empty", [pred("CouponClassName", "Equals", "FAB-50")], None, None, []),
    # paging: zero-based Index, Size rows per page
    ("page-0", [CLASS_B], [("Id", "Ascending")], (0, 5), SEARCH_B[:5]),
    ("page-1", [CLASS_B], [("Id", "Ascending")], (1, 5), SEARCH_B[5:10]),
    ("page-2-partial", [CLASS_B], [("Id", "Ascending")], (2, 5), SEARCH_B[10:]),
    ("page-3-beyond", [CLASS_B], [("Id", "Ascending")], (3, 5), []),
    ("page-size-1000", [CLASS_B], None, (0, 1000), SEARCH_B),
    # ordering: ties broken by load order
    ("order-id-descending", [CLASS_B], [("Id", "Descending")], (0, 3), ["SB-011", "SB-010", "SB-009"]),
    ("order-class-name-ascending", [BOTH_CLASSES], [("CouponClassName", "Ascending")], None, SEARCH_A + SEARCH_B),
    ("order-class-name-descending", [BOTH_CLASSES], [("CouponClassName", "Descending")], None, SEARCH_B + SEARCH_A),
    ("order-start-date-descending", [BOTH_CLASSES], [("CouponStartDate", "Descending")], None, SEARCH_B + SEARCH_A),
    ("order-start-date-then-id", [BOTH_CLASSES], [("CouponStartDate", "Ascending"), ("Id", "Descending")], (1, 5),
     SEARCH_A[::-1][5:] + SEARCH_B[::-1][:2]),
]

# (call id, predicates, ordering, page, words the 201 Details must name)
SEARCH_REFUSALS: list[tuple[str, list[dict[str, Any]] | None, list[tuple[str, str]] | None, tuple[int, int] | None,
                            list[str]]] = [
    ("unknown-field", [pred("Foo", "Equals", "x")], None, None, ["Predicates[0]", "Foo"]),
    ("unknown-operator", [CLASS_B, pred("CouponCode", "GreaterThanEquals", "A")], None, None,
     ["Predicates[1]", "GreaterThanEquals"]),
    ("unsupported-operator", [pred("CouponCode", "NotContains", "A")], None, None, ["NotContains"]),
    ("operator-not-for-field", [pred("IsRedeemed", "Contains", "true")], None, None, ["Contains", "IsRedeemed"]),
    ("bad-boolean", [pred("IsRedeemed", "Equals", "maybe")], None, None, ["maybe"]),
    ("bad-customer-id", [pred("CustomerId", "Equals", "abc")], None, None, ["abc"]),
    ("zero-customer-id", [pred("CustomerId", "In", "222,0")], None, None, ["Predicates[0]", "positive", "0"]),
    ("null-value", [pred("CouponClassName", "Equals", None)], None, None, ["Predicates[0]", "Value"]),
    ("empty-in-item", [pred("CouponCode", "In", "SB-000,,SB-001")], None, None, ["empty"]),
    ("unknown-order-field", None, [("Name", "Ascending")], None, ["Ordering[0]", "Name"]),
    ("repeated-order-field", None, [("Id", "Ascending"), ("Id", "Descending")], None, ["Ordering[1]", "Id"]),
    ("page-size-zero", None, None, (0, 0), ["Size", "0"]),
    ("page-size-over-1000", None, None, (0, 1001), ["Size", "1001"]),
    ("page-index-negative", None, None, (-1, 10), ["Index", "-1"]),
]


def build_calls(p: str) -> list[dict[str, Any]]:
    calls = [search(i, preds, order, page) for i, preds, order, page, _ in SEARCHES]
    calls += [search(i, preds, order, page) for i, preds, order, page, _ in SEARCH_REFUSALS]
    calls += [
        search("search-pct-class", [pred("CouponCode", "Equals", "SA-000")]),
        search("search-unknown-token", [CLASS_B], token=UNKNOWN_TOKEN),
        # RedeemCoupon
        sdk_call("redeem-ok", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": f"RD-{p}-0"}),
        search("redeem-ok-search", [pred("CouponCode", "Equals", f"RD-{p}-0")]),
        sdk_call("redeem-again", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": f"RD-{p}-0"}),
        sdk_call("redeem-percent-off", "RedeemCoupon", {"AccountId": long_arg(p, 112), "CouponCode": f"PCT-{p}"}),
        search("redeem-percent-off-search", [pred("CouponCode", "Equals", f"PCT-{p}")]),
        sdk_call("redeem-unknown-code", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": "NO-SUCH-CODE"}),
        sdk_call("redeem-code-other-case", "RedeemCoupon", {"AccountId": long_arg(p, 111),
                                                            "CouponCode": f"rd-{p}-1"}),
        sdk_call("redeem-expired", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": f"EXP-{p}"}),
        sdk_call("redeem-not-yet-active", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": f"FUT-{p}"}),
        sdk_call("redeem-currency-mismatch", "RedeemCoupon", {"AccountId": long_arg(p, 111),
                                                              "CouponCode": f"EUR-{p}"}),
        sdk_call("redeem-same-code-right-currency", "RedeemCoupon", {"AccountId": long_arg(p, 112),
                                                                     "CouponCode": f"EUR-{p}"}),
        sdk_call("redeem-foreign-account", "RedeemCoupon", {"AccountId": long_arg(p, 444),
                                                            "CouponCode": f"RD-{p}-1"}),
        sdk_call("redeem-unknown-account", "RedeemCoupon", {"AccountId": long_arg(p, 987654321),
                                                            "CouponCode": f"RD-{p}-1"}),
        sdk_call("redeem-null-code", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": None}),
        sdk_call("redeem-blank-code", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": "   "}),
        sdk_call("redeem-zero-account", "RedeemCoupon", {"AccountId": long_arg(p, 0), "CouponCode": f"RD-{p}-1"}),
        sdk_call("redeem-negative-account", "RedeemCoupon", {"AccountId": long_arg(p, -111),
                                                             "CouponCode": f"RD-{p}-1"}),
        sdk_call("redeem-non-numeric-account", "RedeemCoupon", {"AccountId": "1x1", "CouponCode": f"RD-{p}-1"}),
        sdk_call("redeem-unknown-token", "RedeemCoupon", {"AccountId": long_arg(p, 111), "CouponCode": f"RD-{p}-1"},
                 token=UNKNOWN_TOKEN),
        search("redeem-refusals-left-it-available", [pred("CouponCode", "Equals", f"RD-{p}-1")]),
        # GetCouponInfo (carol: customer 555 redeemed INF-0 and INF-PCT-0 before the SDKs ran)
        sdk_call("info-ok", "GetCouponInfo", {"CustomerId": long_arg(p, 555)}, token=CAROL, customer_id=555,
                 account_id=556),
        sdk_call("info-empty", "GetCouponInfo", {"CustomerId": long_arg(p, 666)}, token=CAROL, customer_id=666,
                 account_id=667),
        sdk_call("info-foreign-customer", "GetCouponInfo", {"CustomerId": long_arg(p, 222)}, token=CAROL),
        sdk_call("info-unknown-customer", "GetCouponInfo", {"CustomerId": long_arg(p, 987654)}, token=CAROL),
        sdk_call("info-zero-customer", "GetCouponInfo", {"CustomerId": long_arg(p, 0)}, token=CAROL),
        sdk_call("info-negative-customer", "GetCouponInfo", {"CustomerId": long_arg(p, -555)}, token=CAROL),
        sdk_call("info-unknown-token", "GetCouponInfo", {"CustomerId": long_arg(p, 555)}, token=UNKNOWN_TOKEN),
        # the rest of the Customer Billing service: 204 after authentication
        *[sdk_call(f"unsupported-{op}", op, {}) for op in NOT_SUPPORTED],
        sdk_call("unsupported-unknown-token", "GetBillingDocumentsInfo", {}, token=UNKNOWN_TOKEN),
    ]
    if p == "soap":
        # a generic suds client built from the server's own ?wsdl rather than the SDK's bundled copy
        calls += [
            search("wsdl-search", [pred("CouponCode", "In", "SB-000,SA-000")], [("Id", "Descending")], (0, 10),
                   client="suds-wsdl"),
            sdk_call("wsdl-redeem", "RedeemCoupon", {"AccountId": 111, "CouponCode": "RD-soap-2"},
                     client="suds-wsdl"),
            sdk_call("wsdl-redeem-fault", "RedeemCoupon", {"AccountId": 111, "CouponCode": "RD-soap-2"},
                     client="suds-wsdl"),
            sdk_call("wsdl-info", "GetCouponInfo", {"CustomerId": 555}, token=CAROL, client="suds-wsdl"),
        ]
    return calls


# --- fixtures ----------------------------------------------------------------------------------------
def rest(server: ServerProcess, path: str, body: Any, token: str = ALICE) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "DeveloperToken": DEV, "Content-Type": "application/json"}
    raw = b"" if body is None else json.dumps(body).encode()
    return httpx.post(server.url + path, content=raw, headers=headers, timeout=60)


def parse_dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def coupon_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("sdk-coupons"))
    proc.load(SEED, "coupons")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def prepared(coupon_server: ServerProcess) -> dict[str, datetime]:
    """The state the SDK calls find: Search-B's first coupons sent, two redeemed; customer 555's redemptions.
    Returns the RedemptionDate of each coupon redeemed here."""
    r = rest(coupon_server, "/CustomerBilling/v13/Coupons/Dispatch",
             {"CustomerId": "222", "CouponClassName": "Search-B", "SendToEmails": SENT})
    assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text
    dates = {}
    for token, account, code in ((ALICE, "111", "SB-000"), (ALICE, "111", "SB-010"), (CAROL, "556", "INF-0"),
                                 (CAROL, "556", "INF-PCT-0")):
        r = rest(coupon_server, "/CustomerBilling/v13/Coupon/Redeem", {"AccountId": account, "CouponCode": code},
                 token)
        assert r.status_code == 200, r.text
        dates[code] = parse_dt(r.json()["RedemptionDate"])
    return dates



@pytest.fixture(scope="module")
def sdk_results(coupon_server: ServerProcess, prepared: dict[str, datetime]) -> Results:
    return run_sdk_scripts({p: {"base_url": coupon_server.url, "calls": build_calls(p)} for p in PROTOCOLS})


# --- reading what the SDKs reported -------------------------------------------------------------------
def response(sdk_results: Results, protocol: str, call_id: str) -> dict[str, Any]:
    res = sdk_results[protocol][call_id]
    assert res["outcome"] == "response", res
    assert res["http_status"] == 200
    assert uuid.UUID(res["http_tracking_id"])
    if "header_tracking_id" in res:
        assert res["header_tracking_id"] == res["http_tracking_id"]
    return res


def fault(sdk_results: Results, protocol: str, call_id: str, code: int) -> dict[str, Any]:
    """The one error of a fault, after checking it travels as SPEC 3 and 8 say, as the SDK read it."""
    res = sdk_results[protocol][call_id]
    kind, error_code, rest_status, rest_exception = FAULTS[code]
    assert res["outcome"] == "fault", res
    assert res["kind"] == kind, res
    (error,) = res["errors"]
    assert error["Message"]
    assert uuid.UUID(res["tracking_id"])
    assert res["http_tracking_id"] == res["tracking_id"]
    if kind == "AdApiFaultDetail":
        assert error["ErrorCode"] == error_code
    if protocol == "soap":
        assert error["Code"] == str(code), res  # suds leaves fault details untyped
        assert res["http_status"] == 500
        assert res["faultcode"] == "s:Server"
        assert res["header_tracking_id"] == res["tracking_id"]
    else:
        assert error["Code"] == code, res  # StrictInt in the SDK's billing model
        assert res["http_status"] == rest_status
        assert res["exception"] == rest_exception
    return dict(error)


def value(typed: Any) -> Any:
    """The plain value of a typed VALUE the scripts report (None stays None)."""
    return None if typed is None else typed["value"]


def kind(typed: Any) -> str | None:
    return None if typed is None else str(typed["type"])


def codes(res: dict[str, Any]) -> list[str]:
    return [value(c["values"]["CouponCode"]) for c in res["coupons"]]


def coupon(sdk_results: Results, protocol: str, call_id: str) -> dict[str, Any]:
    (only,) = response(sdk_results, protocol, call_id)["coupons"]
    return dict(only["values"])


def when(typed: Any) -> datetime:
    assert kind(typed) == "datetime", typed
    dt = datetime.fromisoformat(value(typed))
    assert dt.tzinfo is not None and dt.utcoffset() == timedelta(0), typed  # UTC, as the wire says (Z)
    return dt


COUPON_FIELDS = ["CouponCode", "ClassName", "CouponType", "Amount", "SpendThreshold", "CurrencyCode", "PercentOff",
                 "ActiveDuration", "ExpirationDate", "StartDate", "EndDate", "SendToEmail", "SendToDate",
                 "IsRedeemed", "RedemptionInfo"]
REDEMPTION_FIELDS = ["AccountId", "AccountNumber", "SpendToThreshold", "Balance", "CurrencyCode", "RedemptionDate",
                     "ExpirationDate", "ActivationDate"]
INFO_FIELDS = ["AccountId", "CouponId", "ClaimDate", "Status", "RedemptionDate", "ExpirationDate", "PercentOff",
               "CouponValue", "UpfrontSpending", "ActiveDuration", "SpendToThreshold", "StartDate", "EndDate",
               "Balance", "CurrencyCode", "FeatureId", "CouponType"]


# --- SearchCoupons -------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("call_id", "expected"), [pytest.param(s[0], s[4], id=s[0]) for s in SEARCHES])
def test_search_returns_the_matching_coupons_in_order(sdk_results: Results, protocol: str, call_id: str,
                                                      expected: list[str]) -> None:
    assert codes(response(sdk_results, protocol, call_id)) == expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_search_coupon_fields_have_the_schema_types(sdk_results: Results, protocol: str,
                                                    prepared: dict[str, datetime]) -> None:
    res = response(sdk_results, protocol, "class-equals-any-case")
    by_code = {value(c["values"]["CouponCode"]): c for c in res["coupons"]}
    if protocol == "soap":  # suds holds the fields in the order of the SDK's schema
        assert all(c["fields"] == COUPON_FIELDS for c in res["coupons"])
    sent = by_code["SB-001"]["values"]
    assert {k: (kind(v), value(v)) for k, v in sent.items() if k not in ("SendToDate", "ClaimInfo")} == {
        "CouponCode": ("str", "SB-001"), "ClassName": ("str", "Search-B"), "CouponType": ("str", "Acquisition"),
        "Amount": ("float", 20.0), "SpendThreshold": ("float", 5.0), "CurrencyCode": ("str", "USD"),
        "PercentOff": (None, None), "ActiveDuration": ("int", 10),
        "ExpirationDate": ("datetime", "2099-06-30T00:00:00+00:00"),
        "StartDate": ("datetime", "2021-01-01T00:00:00+00:00"), "EndDate": ("datetime", "2099-12-31T23:59:59+00:00"),
        "SendToEmail": ("str", "bob@example.com"), "IsRedeemed": ("bool", False), "RedemptionInfo": (None, None),
    }
    assert abs(when(sent["SendToDate"]) - prepared["SB-000"]) < timedelta(minutes=5)
    unsent = by_code["SB-005"]["values"]
    assert (unsent["SendToEmail"], unsent["SendToDate"], unsent["RedemptionInfo"]) == (None, None, None)
    assert value(unsent["IsRedeemed"]) is False
    # the address as it was given to DispatchCoupons, not its lower-case key
    assert [value(by_code[c]["values"]["SendToEmail"]) for c in SEARCH_B[:4]] == SENT


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_search_shows_the_redemption_of_a_dispatched_coupon(sdk_results: Results, protocol: str,
                                                           prepared: dict[str, datetime]) -> None:
    c = coupon(sdk_results, protocol, "code-equals")
    assert value(c["IsRedeemed"]) is True
    assert value(c["SendToEmail"]) == "Ann@Example.com"
    info = c["RedemptionInfo"]
    if protocol == "soap":
        assert info["fields"] == REDEMPTION_FIELDS
    r = info["values"]
    # AccountId is a long: a JSON string for the REST SDK's StrictStr, an int for suds
    assert (kind(r["AccountId"]), value(r["AccountId"])) == (("int", 111) if protocol == "soap" else ("str", "111"))
    assert (kind(r["AccountNumber"]), value(r["AccountNumber"])) == ("str", "F111AAAA")
    assert (kind(r["SpendToThreshold"]), value(r["SpendToThreshold"])) == ("float", 5.0)
    assert (kind(r["Balance"]), value(r["Balance"])) == ("float", 20.0)
    assert value(r["CurrencyCode"]) == "USD"
    redeemed_at = prepared["SB-000"]
    assert when(r["RedemptionDate"]) == redeemed_at
    assert when(r["ActivationDate"]) == redeemed_at
    assert when(r["ExpirationDate"]) == redeemed_at + timedelta(days=10)  # ActiveDuration days


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_search_percent_off_coupon_has_null_amounts(sdk_results: Results, protocol: str) -> None:
    c = coupon(sdk_results, protocol, "search-pct-class")
    assert (kind(c["PercentOff"]), value(c["PercentOff"])) == ("float", 15.0)
    # Amount and SpendThreshold are not nillable in the schema: SOAP leaves them out, REST writes null
    assert c.get("Amount") is None and c.get("SpendThreshold") is None and c["CurrencyCode"] is None
    assert c["ActiveDuration"] is None and c["ExpirationDate"] is None and c["EndDate"] is None
    assert value(c["StartDate"]) == "2020-06-01T00:00:00+00:00"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("call_id", "words"), [pytest.param(s[0], s[4], id=s[0]) for s in SEARCH_REFUSALS])
def test_search_refusals_are_201_naming_the_fault(sdk_results: Results, protocol: str, call_id: str,
                                                 words: list[str]) -> None:
    error = fault(sdk_results, protocol, call_id, 201)
    for word in words:
        assert word in error["Details"], (word, error["Details"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_search_authenticates_first(sdk_results: Results, protocol: str) -> None:
    fault(sdk_results, protocol, "search-unknown-token", 105)


# --- RedeemCoupon ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_redeem_returns_the_redemption_date_and_the_coupon_shows_it(sdk_results: Results, protocol: str) -> None:
    res = response(sdk_results, protocol, "redeem-ok")
    redeemed_at = when(res["redemption_date"])
    assert abs(redeemed_at - datetime.now(UTC)) < timedelta(minutes=5)
    c = coupon(sdk_results, protocol, "redeem-ok-search")
    assert value(c["IsRedeemed"]) is True
    assert value(c["SendToEmail"]) is None  # redeemed straight from `available` (a code handed out on paper)
    r = c["RedemptionInfo"]["values"]
    assert when(r["RedemptionDate"]) == redeemed_at
    assert when(r["ExpirationDate"]) == redeemed_at + timedelta(days=30)
    assert value(r["Balance"]) == 50.0  # Balance = Amount
    assert value(r["SpendToThreshold"]) == 10.0
    assert value(r["AccountId"]) in (111, "111")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_redeem_percent_off_coupon_into_any_currency(sdk_results: Results, protocol: str) -> None:
    redeemed_at = when(response(sdk_results, protocol, "redeem-percent-off")["redemption_date"])
    c = coupon(sdk_results, protocol, "redeem-percent-off-search")
    r = c["RedemptionInfo"]["values"]
    assert value(r["AccountId"]) in (112, "112")
    assert value(r["AccountNumber"]) == "F112EEEE"
    assert r.get("Balance") is None and r.get("SpendToThreshold") is None and r["CurrencyCode"] is None
    assert when(r["ExpirationDate"]) == redeemed_at + timedelta(days=5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("call_id", "code", "detail"), [
    ("redeem-again", 3007, "RD-{p}-0"),
    ("redeem-unknown-code", 3006, "NO-SUCH-CODE"),
    ("redeem-code-other-case", 3006, "rd-{p}-1"),  # codes are case-sensitive
    ("redeem-expired", 3008, "EXP-{p}"),
    ("redeem-not-yet-active", 3009, "FUT-{p}"),
    ("redeem-currency-mismatch", 3010, "EUR-{p}"),
    ("redeem-foreign-account", 106, None),
    ("redeem-unknown-account", 208, "987654321"),
    ("redeem-null-code", 203, "CouponCode"),
    ("redeem-blank-code", 203, "CouponCode"),
    ("redeem-zero-account", 201, "AccountId"),
    ("redeem-negative-account", 201, "AccountId"),
    ("redeem-non-numeric-account", 201, "AccountId"),
    ("redeem-unknown-token", 105, None),
])
def test_redeem_refusals(sdk_results: Results, protocol: str, call_id: str, code: int, detail: str | None) -> None:
    error = fault(sdk_results, protocol, call_id, code)
    if detail is not None:
        assert detail.format(p=protocol) in (error.get("Details") or ""), error


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refused_redemptions_change_nothing(sdk_results: Results, protocol: str) -> None:
    c = coupon(sdk_results, protocol, "redeem-refusals-left-it-available")
    assert value(c["IsRedeemed"]) is False and c["RedemptionInfo"] is None
    # a 3010 did not use up the code: it is redeemed into an account of the right currency afterwards
    response(sdk_results, protocol, "redeem-same-code-right-currency")


# --- GetCouponInfo ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_coupon_info_lists_the_customers_redemptions_with_schema_types(
    sdk_results: Results, protocol: str, prepared: dict[str, datetime]
) -> None:
    res = response(sdk_results, protocol, "info-ok")
    first, second = res["coupon_info"]
    if protocol == "soap":
        assert first["fields"] == second["fields"] == INFO_FIELDS
    a, b = first["values"], second["values"]
    # AccountId and CouponId are ints in the schema (JSON numbers: StrictInt in the REST SDK)
    assert (kind(a["AccountId"]), value(a["AccountId"])) == ("int", 556)
    assert kind(a["CouponId"]) == "int" and kind(b["CouponId"]) == "int" and value(a["CouponId"]) != value(
        b["CouponId"])
    assert (kind(a["Status"]), value(a["Status"])) == ("int", 1)  # active
    assert (kind(b["Status"]), value(b["Status"])) == ("int", 2)  # ActiveDuration 0: its usable time is over
    assert when(a["RedemptionDate"]) == prepared["INF-0"]
    assert when(a["ExpirationDate"]) == prepared["INF-0"] + timedelta(days=7)
    assert when(b["RedemptionDate"]) == prepared["INF-PCT-0"] == when(b["ExpirationDate"])
    # xs:decimal: suds gives Decimal, the REST SDK a float
    money = "Decimal" if protocol == "soap" else "float"
    assert [(kind(a[k]), str(value(a[k]))) for k in ("CouponValue", "SpendToThreshold", "Balance")] == [
        (money, "30.0"), (money, "12.5"), (money, "30.0")]
    assert (kind(a["ActiveDuration"]), value(a["ActiveDuration"])) == ("int", 7)
    assert value(a["CurrencyCode"]) == "USD"
    assert value(a["StartDate"]) == "2020-01-01T00:00:00+00:00"
    assert value(a["EndDate"]) == "2099-12-31T23:59:59+00:00"
    for k in ("ClaimDate", "UpfrontSpending", "FeatureId", "CouponType", "PercentOff"):
        assert a[k] is None, k
    assert (kind(b["PercentOff"]), value(b["PercentOff"])) == ("float", 25.0)
    assert value(b["ActiveDuration"]) == 0
    for k in ("CouponValue", "SpendToThreshold", "Balance", "CurrencyCode"):
        assert b[k] is None, k


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_coupon_info_of_a_customer_without_redemptions_is_empty(sdk_results: Results, protocol: str) -> None:
    assert response(sdk_results, protocol, "info-empty")["coupon_info"] == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("call_id", "code"), [
    ("info-foreign-customer", 106), ("info-unknown-customer", 106), ("info-zero-customer", 201),
    ("info-negative-customer", 201), ("info-unknown-token", 105),
])
def test_coupon_info_refusals(sdk_results: Results, protocol: str, call_id: str, code: int) -> None:
    error = fault(sdk_results, protocol, call_id, code)
    if code == 201:
        assert "CustomerId" in error["Details"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_coupon_info_does_not_tell_a_foreign_customer_from_none(sdk_results: Results, protocol: str) -> None:
    foreign = fault(sdk_results, protocol, "info-foreign-customer", 106)
    unknown = fault(sdk_results, protocol, "info-unknown-customer", 106)
    assert foreign == unknown


# --- everything else answers 204 ---------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("operation", NOT_SUPPORTED)
def test_other_operations_answer_204(sdk_results: Results, protocol: str, operation: str) -> None:
    error = fault(sdk_results, protocol, f"unsupported-{operation}", 204)
    assert error["Details"] == operation


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_other_operations_authenticate_before_answering_204(sdk_results: Results, protocol: str) -> None:
    fault(sdk_results, protocol, "unsupported-unknown-token", 105)


# --- a generic suds client on the served WSDL ----------------------------------------------------------------
def test_plain_suds_on_the_served_wsdl_searches_redeems_and_reads_coupon_info(sdk_results: Results) -> None:
    res = response(sdk_results, "soap", "wsdl-search")
    assert codes(res) == ["SA-000", "SB-000"]
    assert res["coupons"][1]["fields"] == COUPON_FIELDS
    info = res["coupons"][1]["values"]["RedemptionInfo"]
    assert info["fields"] == REDEMPTION_FIELDS
    assert (kind(info["values"]["AccountId"]), value(info["values"]["AccountId"])) == ("int", 111)
    assert kind(response(sdk_results, "soap", "wsdl-redeem")["redemption_date"]) == "datetime"
    fault(sdk_results, "soap", "wsdl-redeem-fault", 3007)
    items = response(sdk_results, "soap", "wsdl-info")["coupon_info"]
    assert [value(i["values"]["Status"]) for i in items] == [1, 2]
    assert all(i["fields"] == INFO_FIELDS for i in items)
    assert kind(items[0]["values"]["CouponValue"]) == "Decimal"


def test_every_sdk_call_has_its_own_tracking_id(sdk_results: Results) -> None:
    ids = [r["http_tracking_id"] for by_id in sdk_results.values() for r in by_id.values() if "http_tracking_id" in r]
    assert len(ids) > 150
    assert len(set(ids)) == len(ids)


def test_tokens_never_reach_the_server_log(sdk_results: Results, coupon_server: ServerProcess) -> None:
    log = coupon_server.log_text()
    for secret in (DEV, ALICE, BOB, CAROL, UNKNOWN_TOKEN):
        assert secret not in log


# --- the raw wire: element order, namespaces, nil, NullRequest --------------------------------------------------
def soap_call(server: ServerProcess, body: str, token: str = ALICE, action: str | None = None) -> soapkit.SoapResult:
    extra = {"SOAPAction": action} if action else None
    return soapkit.post(server.soap_url, soapkit.envelope(body, auth=token, dev=DEV), extra_headers=extra)


def search_xml(code: str) -> str:
    return (f'<SearchCouponsRequest xmlns="{soapkit.BIL}"><Predicates xmlns:e="{ENT}"><e:Predicate>'
            f"<e:Field>CouponCode</e:Field><e:Operator>Equals</e:Operator><e:Value>{code}</e:Value>"
            f"</e:Predicate></Predicates></SearchCouponsRequest>")


def children(el: Any) -> list[tuple[str, str, bool]]:
    """(namespace, local name, nil) of each child element, in document order."""
    nil = f"{{{soapkit.XSI}}}nil"
    return [(etree.QName(c).namespace, etree.QName(c).localname, c.get(nil) == "true") for c in el]


def test_soap_coupon_elements_are_in_schema_order_with_nil_for_null(coupon_server: ServerProcess,
                                                                   prepared: dict[str, datetime]) -> None:
    res = soap_call(coupon_server, search_xml("SB-000"))
    assert res.status == 200
    container = res.root.find("s:Body/bil:SearchCouponsResponse/bil:Coupons", namespaces=soapkit.NS)
    (item,) = list(container)
    assert etree.QName(item).namespace == ENT and etree.QName(item).localname == "Coupon"
    assert children(item) == [(ENT, name, name == "PercentOff") for name in COUPON_FIELDS]
    info = item.find(f"{{{ENT}}}RedemptionInfo")
    assert children(info) == [(ENT, name, False) for name in REDEMPTION_FIELDS]
    assert info.findtext(f"{{{ENT}}}AccountId") == "111"
    assert info.findtext(f"{{{ENT}}}Balance") == "20.0"
    assert info.findtext(f"{{{ENT}}}RedemptionDate").endswith("Z")
    assert item.findtext(f"{{{ENT}}}IsRedeemed") == "true"


def test_soap_leaves_out_null_non_nillable_fields(coupon_server: ServerProcess, prepared: dict[str, datetime]) -> None:
    (item,) = list(soap_call(coupon_server, search_xml("SA-001")).root.find(
        "s:Body/bil:SearchCouponsResponse/bil:Coupons", namespaces=soapkit.NS))
    nillable_nulls = {"CurrencyCode", "ActiveDuration", "ExpirationDate", "EndDate", "SendToEmail", "SendToDate",
                      "RedemptionInfo"}
    assert children(item) == [(ENT, n, n in nillable_nulls) for n in COUPON_FIELDS
                              if n not in ("Amount", "SpendThreshold")]


def test_soap_empty_search_has_an_empty_coupons_element(coupon_server: ServerProcess) -> None:
    res = soap_call(coupon_server, search_xml("NOTHING-HERE"))
    container = res.root.find("s:Body/bil:SearchCouponsResponse/bil:Coupons", namespaces=soapkit.NS)
    assert container is not None and list(container) == []


def test_soap_coupon_info_elements_in_schema_order_and_decimals_positional(
    coupon_server: ServerProcess, prepared: dict[str, datetime]
) -> None:
    body = f'<GetCouponInfoRequest xmlns="{soapkit.BIL}"><CustomerId>555</CustomerId></GetCouponInfoRequest>'
    res = soap_call(coupon_server, body, CAROL)
    items = res.root.find("s:Body/bil:GetCouponInfoResponse/bil:CouponInfoData", namespaces=soapkit.NS)
    first, second = list(items)
    assert etree.QName(first).namespace == ENT and etree.QName(first).localname == "CouponInfoData"
    assert [n for _, n, _ in children(first)] == INFO_FIELDS
    assert [n for _, n, _ in children(second)] == INFO_FIELDS
    assert first.findtext(f"{{{ENT}}}AccountId") == "556"
    assert first.findtext(f"{{{ENT}}}Status") == "1" and second.findtext(f"{{{ENT}}}Status") == "2"
    assert first.findtext(f"{{{ENT}}}CouponValue") == "30.0"
    assert first.findtext(f"{{{ENT}}}SpendToThreshold") == "12.5"


def test_soap_redeem_response(coupon_server: ServerProcess) -> None:
    body = (f'<RedeemCouponRequest xmlns="{soapkit.BIL}"><AccountId>111</AccountId>'
            f"<CouponCode>RD-rest-2</CouponCode></RedeemCouponRequest>")  # a code no SDK call uses
    res = soap_call(coupon_server, body)
    assert res.status == 200
    resp = res.root.find("s:Body/bil:RedeemCouponResponse", namespaces=soapkit.NS)
    assert children(resp) == [(soapkit.BIL, "RedemptionDate", False)]
    assert abs(parse_dt(resp[0].text) - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize("operation", ["SearchCoupons", "RedeemCoupon", "GetCouponInfo"])
def test_soap_null_request_is_100(coupon_server: ServerProcess, operation: str) -> None:
    nil = soap_call(coupon_server, f'<{operation}Request xmlns="{soapkit.BIL}" i:nil="true"/>')
    assert nil.status == 500 and nil.fault_codes == [100]
    empty_body = soap_call(coupon_server, "", action=f"https://bingads.microsoft.com/Billing/v13/{operation}")
    assert empty_body.status == 500 and empty_body.fault_codes == [100]


@pytest.mark.parametrize(("operation", "path"), [
    ("SearchCoupons", "/CustomerBilling/v13/Coupons/Search"),
    ("RedeemCoupon", "/CustomerBilling/v13/Coupon/Redeem"),
    ("GetCouponInfo", "/CustomerBilling/v13/CouponInfo/Query"),
])
def test_rest_null_request_is_100(coupon_server: ServerProcess, operation: str, path: str) -> None:
    for body in (None, "null"):
        r = (rest(coupon_server, path, None) if body is None else
             httpx.post(coupon_server.url + path, content=body, timeout=30,
                        headers={"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV,
                                 "Content-Type": "application/json"}))
        assert r.status_code == 400, r.text
        assert [e["Code"] for e in r.json()["OperationErrors"]] == [100]


def test_rest_coupon_keys_are_in_schema_order(coupon_server: ServerProcess, prepared: dict[str, datetime]) -> None:
    r = rest(coupon_server, "/CustomerBilling/v13/Coupons/Search",
             {"Predicates": [pred("CouponCode", "Equals", "SB-000")]})
    (item,) = r.json()["Coupons"]
    assert list(item) == COUPON_FIELDS
    assert list(item["RedemptionInfo"]) == REDEMPTION_FIELDS
    assert item["RedemptionInfo"]["AccountId"] == "111"


def test_rest_put_names_the_put_operation(coupon_server: ServerProcess) -> None:
    """AddInsertionOrder (POST) and UpdateInsertionOrder (PUT) share a path: each call names its own."""
    headers = {"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "Content-Type": "application/json"}
    for method, name in (("POST", "AddInsertionOrder"), ("PUT", "UpdateInsertionOrder")):
        r = httpx.request(method, coupon_server.url + "/CustomerBilling/v13/InsertionOrder", content=b"{}",
                          headers=headers, timeout=30)
        assert r.status_code == 400
        assert r.json()["OperationErrors"][0] == {"Code": 204, "Details": name,
                                                  "Message": "This operation is not supported by this service."}


# --- zeep on the served WSDL: a generic client that validates what it parses against the schema --------------
def test_zeep_calls_the_coupon_operations_through_the_served_wsdl(coupon_server: ServerProcess,
                                                                 prepared: dict[str, datetime]) -> None:
    import zeep
    import zeep.exceptions

    client = zeep.Client(f"{coupon_server.soap_url}?singleWsdl")
    alice = {"AuthenticationToken": ALICE, "DeveloperToken": DEV}
    predicates = client.get_type(f"{{{ENT}}}ArrayOfPredicate")(Predicate=[
        {"Field": "CouponCode", "Operator": "In", "Value": "SB-000,SB-001"}])
    ordering = client.get_type(f"{{{ENT}}}ArrayOfOrderBy")(OrderBy=[{"Field": "Id", "Order": "Descending"}])
    result = client.service.SearchCoupons(Predicates=predicates, Ordering=ordering, PageInfo={"Index": 0, "Size": 5},
                                          _soapheaders=alice)
    assert uuid.UUID(result.header.TrackingId)
    sent, redeemed = result.body.Coupons.Coupon
    assert (sent.CouponCode, sent.SendToEmail, sent.IsRedeemed) == ("SB-001", "bob@example.com", False)
    # zeep reads a nil complex element (<RedemptionInfo i:nil="true"/>) as an object whose fields are all None
    assert sent.RedemptionInfo is None or all(v is None for v in sent.RedemptionInfo.__values__.values())
    assert (redeemed.CouponCode, redeemed.Amount, redeemed.ActiveDuration) == ("SB-000", 20.0, 10)
    assert redeemed.RedemptionInfo.AccountId == 111
    assert redeemed.RedemptionInfo.RedemptionDate == prepared["SB-000"]

    info = client.service.GetCouponInfo(CustomerId=555,
                                        _soapheaders={"AuthenticationToken": CAROL, "DeveloperToken": DEV})
    first = info.body.CouponInfoData.CouponInfoData[0]
    assert (first.AccountId, first.Status, str(first.CouponValue), first.ActiveDuration) == (556, 1, "30.0", 7)

    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.RedeemCoupon(AccountId=111, CouponCode="NOT-A-CODE", _soapheaders=alice)
    (child,) = list(caught.value.detail)
    detail = client.get_element(etree.QName(child).text).parse(child, client.wsdl.types)
    assert [(e.Code, e.Details) for e in detail.OperationErrors.OperationError] == [(3006, "NOT-A-CODE")]


@pytest.mark.parametrize(("path", "raw"), [
    ("/CustomerBilling/v13/Coupons/Search",
     b'{"Predicates": [{"Field": "CouponCode", "Operator": "Equals", "Value": "\\ud800"}]}'),
    ("/CustomerBilling/v13/Coupon/Redeem", b'{"AccountId": "111", "CouponCode": "SB-\\udfff"}'),
    ("/CustomerBilling/v13/Coupons/Dispatch",
     b'{"CustomerId": "222", "CouponClassName": "\\ud83d", "SendToEmails": ["a@example.com"]}'),
])
def test_rest_lone_surrogate_is_201_like_soap_not_an_internal_error(coupon_server: ServerProcess, path: str,
                                                                    raw: bytes) -> None:
    """JSON can spell a lone UTF-16 surrogate (\\ud800); no database stores one and XML cannot carry one."""
    r = httpx.post(coupon_server.url + path, content=raw, timeout=30,
                   headers={"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV,
                            "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    (error,) = r.json()["OperationErrors"]
    assert error["Code"] == 201 and "surrogate" in error["Details"]
    # a correctly paired surrogate escape is an ordinary character
    paired = b'{"Predicates": [{"Field": "CouponCode", "Operator": "Equals", "Value": "\\ud83d\\ude00"}]}'
    ok = httpx.post(coupon_server.url + "/CustomerBilling/v13/Coupons/Search", timeout=30, content=paired,
                    headers={"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV,
                             "Content-Type": "application/json"})
    assert ok.status_code == 200 and ok.json() == {"Coupons": []}


@pytest.mark.parametrize(("number", "text"), [(100.0, "100.0"), (12.5, "12.5"), (1e-05, "0.00001"),
                                              (1e16, "10000000000000000"), (0.1, "0.1")])
def test_soap_decimal_fields_never_use_exponent_notation(number: float, text: str) -> None:
    from couponsvc.entrypoints.wire import W, json_value, xml_text

    assert xml_text(W("CouponValue", "decimal", number)) == text
    assert json_value(W("CouponValue", "decimal", number)) == number
