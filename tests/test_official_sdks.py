"""The official Bing Ads SDKs work against couponsvc unchanged, only the endpoint differs (SPEC 1, 3).

Each SDK runs in its own virtual environment (both install a module named ``bingads``), driven by
``tests/sdk/soap_client.py`` and ``tests/sdk/rest_client.py``.  To keep this file fast, every call of
every test is made in one run of each script (the two run side by side); the tests then judge the
results, each by the id of its call.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.support.sdk import PROTOCOLS, Results, run_sdk_scripts
from tests.support.seeds import (
    ACCOUNT,
    ALICE,
    ALICE_EXPIRED,
    BOB,
    CLASS,
    CUSTOMER,
    DEV,
    DEV_DISABLED,
    EXPIRED_CLASS,
    OTHER_CUSTOMER,
    new_class_seed,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.sdk

UNKNOWN_DEV = "DEV-NO-SUCH-APP"
UNKNOWN_TOKEN = "AT-no-such-token"


# SPEC 8 and 3.2: where each fault travels, its ErrorCode, the REST status and the REST SDK's exception.
FAULTS: dict[int, tuple[str, str, int, str]] = {
    105: ("AdApiFaultDetail", "InvalidCredentials", 401, "UnauthorizedException"),
    106: ("AdApiFaultDetail", "UserIsNotAuthorized", 403, "ForbiddenException"),
    109: ("AdApiFaultDetail", "AuthenticationTokenExpired", 401, "UnauthorizedException"),
    116: ("AdApiFaultDetail", "RequestMissingHeaders", 401, "UnauthorizedException"),
    201: ("ApiFault", "ApiInputValidationError", 400, "BadRequestException"),
    203: ("ApiFault", "NullParameter", 400, "BadRequestException"),
    206: ("ApiFault", "NullArrayArgument", 400, "BadRequestException"),
    4603: ("ApiFault", "CountExceedsLimit", 400, "BadRequestException"),
    3000: ("ApiFault", "CouponClassNotFound", 400, "BadRequestException"),
    3011: ("ApiFault", "CouponClassExpired", 400, "BadRequestException"),
}

# (call id, expected code, protocols): every whole-call refusal of DispatchCoupons an SDK user can provoke.
FAULT_CASES: list[tuple[str, int, tuple[str, ...]]] = [
    ("unknown-developer-token", 105, PROTOCOLS),
    ("disabled-developer-token", 105, PROTOCOLS),
    ("unknown-access-token", 105, PROTOCOLS),
    ("customer-of-another-user", 106, PROTOCOLS),
    ("other-user-on-our-customer", 106, PROTOCOLS),
    ("expired-access-token", 109, PROTOCOLS),
    ("empty-developer-token", 116, PROTOCOLS),
    ("empty-access-token", 116, PROTOCOLS),
    ("no-developer-token", 116, ("soap",)),  # msads refuses a None header value itself (TypeError)
    ("no-access-token", 116, ("soap",)),  # msads refuses a missing access token itself (ValueError)
    ("null-class-name", 203, PROTOCOLS),
    ("blank-class-name", 203, PROTOCOLS),
    ("zero-customer-id", 201, PROTOCOLS),
    ("negative-customer-id", 201, PROTOCOLS),
    ("empty-address-list", 206, PROTOCOLS),
    ("null-address-list", 206, PROTOCOLS),
    ("too-many-addresses", 4603, PROTOCOLS),
    ("unknown-class", 3000, PROTOCOLS),
    ("expired-class", 3011, PROTOCOLS),
]


def address(protocol: str, tag: str) -> str:
    return f"{protocol}-{tag}-{uuid.uuid4().hex[:12]}@example.com"


def call(
    protocol: str,
    call_id: str,
    *,
    emails: list[str] | None,
    customer_id: int = CUSTOMER,
    class_name: str | None = CLASS,
    dev: str | None = DEV,
    token: str | None = ALICE,
    **extra: Any,
) -> dict[str, Any]:
    """One DispatchCoupons call; the REST SDK's model wants a long as a string, as the real service does."""
    return {
        "id": call_id,
        "developer_token": dev,
        "access_token": token,
        "customer_id": customer_id,
        "account_id": ACCOUNT,
        "args": {
            "SendToEmails": emails,
            "CustomerId": customer_id if protocol == "soap" else str(customer_id),
            "CouponClassName": class_name,
        },
        **extra,
    }


def build_calls(protocol: str, small_class: str) -> list[dict[str, Any]]:
    p = protocol
    one = [address(p, "one")]
    repeated = address(p, "repeated")
    dup = address(p, "dup")
    calls = [
        call(p, "success", emails=[address(p, "ok1"), address(p, "ok2")]),
        call(p, "invalid-and-duplicate", emails=[dup, "not-an-address", dup.upper()]),
        call(p, "first-send", emails=[repeated]),
        call(p, "second-send", emails=[repeated]),
        call(p, "pool-exhausted", emails=[address(p, "x1"), address(p, "x2"), address(p, "x3")],
             class_name=small_class),
        call(p, "unknown-developer-token", emails=one, dev=UNKNOWN_DEV),
        call(p, "disabled-developer-token", emails=one, dev=DEV_DISABLED),
        call(p, "unknown-access-token", emails=one, token=UNKNOWN_TOKEN),
        call(p, "customer-of-another-user", emails=one, customer_id=OTHER_CUSTOMER),
        call(p, "other-user-on-our-customer", emails=one, token=BOB),
        call(p, "expired-access-token", emails=one, token=ALICE_EXPIRED, auth="implicit-no-refresh"),
        call(p, "empty-developer-token", emails=one, dev=""),
        call(p, "empty-access-token", emails=one, token=""),
        call(p, "null-class-name", emails=one, class_name=None),
        call(p, "blank-class-name", emails=one, class_name="   "),
        call(p, "zero-customer-id", emails=one, customer_id=0),
        call(p, "negative-customer-id", emails=one, customer_id=-222),
        call(p, "empty-address-list", emails=[]),
        call(p, "null-address-list", emails=None),
        call(p, "too-many-addresses", emails=[f"{p}-bulk-{i}@example.com" for i in range(1001)]),
        call(p, "unknown-class", emails=one, class_name="NO-SUCH-CLASS"),
        call(p, "expired-class", emails=one, class_name=EXPIRED_CLASS),
    ]
    if protocol == "soap":
        calls += [
            call(p, "no-developer-token", emails=one, dev=None),
            call(p, "no-access-token", emails=one, token=None),
            # The SDK's default: on 109 it tries to refresh, which an implicit grant cannot do.
            call(p, "expired-token-implicit-grant", emails=one, token=ALICE_EXPIRED),
            # A refreshable grant (refresh answered locally): the SDK refreshes on 109 and retries.
            call(p, "expired-token-refreshed", emails=[address(p, "refreshed")], token=ALICE_EXPIRED,
                 auth="refreshable", fresh_access_token=ALICE),
            # A generic suds client built from the server's own ?wsdl rather than the SDK's bundled copy.
            call(p, "suds-on-served-wsdl", emails=[address(p, "wsdl"), "nope"], client="suds-wsdl"),
            call(p, "suds-on-served-wsdl-fault", emails=one, class_name="NO-SUCH-CLASS", client="suds-wsdl"),
        ]
    return calls



@pytest.fixture(scope="module")
def sdk_results(server: ServerProcess) -> Results:
    """{protocol: {call id: result}} for every call above, made by the official SDKs."""
    instructions = {}
    for protocol in PROTOCOLS:
        small_class, seed = new_class_seed(2, prefix=f"SDK-{protocol.upper()}")
        server.load(seed, f"sdk-{protocol}")
        instructions[protocol] = {"base_url": server.url, "calls": build_calls(protocol, small_class)}
    return run_sdk_scripts(instructions, timeout=120)


def result(sdk_results: Results, protocol: str, call_id: str) -> dict[str, Any]:
    return sdk_results[protocol][call_id]


def assert_response(res: dict[str, Any]) -> list[dict[str, Any]]:
    """A successful call: HTTP 200 whose TrackingId the SDK reads as the HTTP header says; its PartialErrors."""
    assert res["outcome"] == "response", res
    assert res["http_status"] == 200
    tracking_id = res["http_tracking_id"]
    assert uuid.UUID(tracking_id)
    if "header_tracking_id" in res:  # SOAP: the SDK's get_response_header()
        assert res["header_tracking_id"] == tracking_id
    return list(res["partial_errors"])


# --- success and PartialErrors ------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dispatch_to_new_addresses_returns_empty_partial_errors(sdk_results: Results, protocol: str) -> None:
    assert assert_response(result(sdk_results, protocol, "success")) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_invalid_and_duplicate_addresses_are_partial_errors_by_index(sdk_results: Results, protocol: str) -> None:
    errors = assert_response(result(sdk_results, protocol, "invalid-and-duplicate"))
    assert [(e["Code"], e["Index"]) for e in errors] == [(3001, 1), (3002, 2)]
    assert errors[0]["Details"] == "not-an-address"
    assert all(isinstance(e["Code"], int) and isinstance(e["Index"], int) for e in errors)
    assert all(e["Message"] for e in errors)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_address_already_sent_by_an_earlier_call_gets_3003(sdk_results: Results, protocol: str) -> None:
    assert assert_response(result(sdk_results, protocol, "first-send")) == []
    errors = assert_response(result(sdk_results, protocol, "second-send"))
    assert [(e["Code"], e["Index"]) for e in errors] == [(3003, 0)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_addresses_beyond_the_pool_get_3004(sdk_results: Results, protocol: str) -> None:
    errors = assert_response(result(sdk_results, protocol, "pool-exhausted"))
    assert [(e["Code"], e["Index"]) for e in errors] == [(3004, 2)]


# --- faults -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("protocol", "call_id", "code"),
    [pytest.param(p, call_id, code, id=f"{p}-{call_id}-{code}")
     for call_id, code, protocols in FAULT_CASES for p in protocols],
)
def test_fault_is_read_through_the_sdk(sdk_results: Results, protocol: str, call_id: str, code: int) -> None:
    res = result(sdk_results, protocol, call_id)
    kind, error_code, rest_status, rest_exception = FAULTS[code]
    assert res["outcome"] == "fault", res
    assert res["kind"] == kind
    (error,) = res["errors"]
    assert error["Message"]
    assert uuid.UUID(res["tracking_id"])
    assert res["http_tracking_id"] == res["tracking_id"]
    if kind == "AdApiFaultDetail":
        assert error["ErrorCode"] == error_code
    if protocol == "soap":
        # suds leaves fault details untyped; the SDK itself compares e.g. ``Code == '109'``.
        assert error["Code"] == str(code)
        assert res["http_status"] == 500
        assert res["faultcode"] == "s:Server"
        assert res["faultstring"].endswith(res["tracking_id"])
        assert res["header_tracking_id"] == res["tracking_id"]
    else:
        assert error["Code"] == code  # StrictInt in the SDK's billing model
        assert res["http_status"] == rest_status
        assert res["exception"] == rest_exception


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("call_id", ["unknown-developer-token", "unknown-access-token", "expired-access-token"])
def test_fault_never_echoes_a_token(sdk_results: Results, protocol: str, call_id: str) -> None:
    res = result(sdk_results, protocol, call_id)
    text = json.dumps(res)
    for secret in (UNKNOWN_DEV, UNKNOWN_TOKEN, ALICE_EXPIRED, DEV):
        assert secret not in text


def test_soap_sdk_recognises_109_and_tries_to_refresh(sdk_results: Results) -> None:
    """With its default settings the SDK treats 109 as "refresh the token"; an implicit grant cannot."""
    res = result(sdk_results, "soap", "expired-token-implicit-grant")
    assert res["outcome"] == "exception", res
    assert res["type"] == "ValueError"
    assert "cannot refresh token automatically" in res["message"]


def test_soap_sdk_refreshes_on_109_and_the_retry_succeeds(sdk_results: Results) -> None:
    res = result(sdk_results, "soap", "expired-token-refreshed")
    assert res["refreshes"] == ["refresh-token-1"]
    assert assert_response(res) == []


# --- the served WSDL with a generic suds client --------------------------------------------------------
def test_plain_suds_calls_through_the_served_wsdl(sdk_results: Results) -> None:
    errors = assert_response(result(sdk_results, "soap", "suds-on-served-wsdl"))
    assert [(e["Code"], e["Index"], e["Details"]) for e in errors] == [(3001, 1, "nope")]


def test_plain_suds_reads_faults_through_the_served_wsdl(sdk_results: Results) -> None:
    res = result(sdk_results, "soap", "suds-on-served-wsdl-fault")
    assert res["outcome"] == "fault", res
    assert res["kind"] == "ApiFault"
    assert [e["Code"] for e in res["errors"]] == ["3000"]
    assert res["tracking_id"] == res["header_tracking_id"] == res["http_tracking_id"]


def test_every_call_has_its_own_tracking_id(sdk_results: Results) -> None:
    ids = [r["http_tracking_id"] for by_id in sdk_results.values() for r in by_id.values() if "http_tracking_id" in r]
    assert len(ids) > 40
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tracking_id_the_sdk_reports_is_in_the_server_log(
    sdk_results: Results, server: ServerProcess, protocol: str
) -> None:
    log = server.log_text()
    for call_id in ("success", "unknown-class", "unknown-access-token"):
        tracking_id = result(sdk_results, protocol, call_id)["http_tracking_id"]
        assert f"tracking_id={tracking_id}" in log, call_id


def test_tokens_the_sdks_sent_never_reach_the_server_log(sdk_results: Results, server: ServerProcess) -> None:
    log = server.log_text()
    for secret in (DEV, DEV_DISABLED, UNKNOWN_DEV, ALICE, ALICE_EXPIRED, BOB, UNKNOWN_TOKEN):
        assert secret not in log
