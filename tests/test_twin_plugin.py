"""The pytest plugin (couponsvc.testing, entry point pytest11), as an application's test suite uses it.

The generated test files run in a fresh pytest process (``pytester.runpytest_subprocess``) that finds the
plugin through its entry point.  The official msads REST SDK lives in its own environment (.venv-rest:
it installs a module named ``bingads`` that clashes with the SOAP SDK's), so the generated test runs its
SDK code with that interpreter — the same code an application with msads installed runs in-process.
"""

from __future__ import annotations

import pytest

from tests.support.sdk import require_interpreter

pytest_plugins = ["pytester"]

SDK_TEST = '''
import json
import subprocess
import textwrap

import pytest

REST_PYTHON = {rest_python!r}

SDK_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    from bingads.authorization import AuthorizationData, OAuthDesktopMobileImplicitGrant, OAuthTokens
    from bingads.service_client import ServiceClient
    from openapi_client.models.billing import DispatchCouponsRequest

    args = json.loads(sys.argv[1])
    auth = OAuthDesktopMobileImplicitGrant(client_id="my-app", oauth_tokens=OAuthTokens(
        access_token=args["access_token"], access_token_expires_in_seconds=3600))
    data = AuthorizationData(account_id=111, customer_id=222, developer_token=args["developer_token"],
                             authentication=auth)
    billing = ServiceClient("CustomerBillingService", 13, authorization_data=data, location=args["rest_url"])
    try:
        response = billing.dispatch_coupons(DispatchCouponsRequest(
            SendToEmails=args["emails"], CustomerId="222", CouponClassName="SPRING-100"))
        print(json.dumps({{"errors": [e.code for e in response.partial_errors or []]}}))
    except Exception as ex:
        print(json.dumps({{"exception": type(ex).__name__, "status": getattr(ex, "status", None)}}))
""")


def dispatch_with_msads(twin, emails):
    args = {{"rest_url": twin.rest_url, "developer_token": twin.developer_token,
            "access_token": twin.access_token, "emails": emails}}
    out = subprocess.run([REST_PYTHON, "-c", SDK_SCRIPT, json.dumps(args)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out)


def test_dispatch_sends_the_coupon(couponsvc):
    assert dispatch_with_msads(couponsvc, ["ada@example.com"]) == {{"errors": []}}
    (message,) = couponsvc.mail(to="ada@example.com")
    assert message["status"] == "sent" and message["code"] in message["text"]
    assert [c["operation"] for c in couponsvc.calls()] == ["DispatchCoupons"]
    couponsvc.fault(operation="DispatchCoupons", error_code=117)
    couponsvc.clock("2030-01-01T00:00:00Z")


def test_the_next_test_starts_clean(couponsvc):
    assert couponsvc.mail() == [] and couponsvc.calls() == [] and couponsvc.faults() == []
    assert couponsvc.clock()["frozen"] is False
    # the same address again: no 3003, since the state was reset
    assert dispatch_with_msads(couponsvc, ["ada@example.com"]) == {{"errors": []}}


def test_throttling_as_the_sdk_sees_it(couponsvc):
    couponsvc.fault(operation="DispatchCoupons", error_code=117, count=1)
    assert dispatch_with_msads(couponsvc, ["bob@example.com"]) == {{"exception": "ApiException", "status": 429}}
    assert couponsvc.calls()[0]["error_codes"] == [117]
    assert couponsvc.mail() == []


@pytest.mark.couponsvc_seed({{
    "developer_tokens": [{{"token": "DEV-MINE", "name": "mine"}}],
    "customers": [{{"id": 222, "name": "Mine", "coupon_classes": [{{"name": "SPRING-100", "codes": ["ONLY-ONE"]}}]}}],
    "users": [{{"name": "me", "customers": [222], "access_tokens": [{{"token": "AT-MINE"}}]}}]}})
def test_a_test_with_its_own_seed(couponsvc):
    assert (couponsvc.developer_token, couponsvc.access_token) == ("DEV-MINE", "AT-MINE")
    assert dispatch_with_msads(couponsvc, ["a@example.com", "b@example.com"]) == {{"errors": [3004]}}
    assert couponsvc.mail(to="a@example.com")[0]["code"] == "ONLY-ONE"


def test_the_start_seed_is_back(couponsvc):
    assert (couponsvc.developer_token, couponsvc.access_token) == ("TWIN-DEVELOPER-TOKEN", "TWIN-ACCESS-TOKEN")
    assert dispatch_with_msads(couponsvc, ["a@example.com"]) == {{"errors": []}}
'''


@pytest.mark.sdk
def test_plugin_fixtures_with_the_msads_sdk(pytester: pytest.Pytester) -> None:
    rest_python = str(require_interpreter("rest"))
    pytester.makepyfile(test_app=SDK_TEST.format(rest_python=rest_python))
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", "-v", timeout=600)
    result.assert_outcomes(passed=5)
    assert result.ret == 0


def test_plugin_seed_from_ini_and_function_scope(pytester: pytest.Pytester) -> None:
    pytester.makefile(".json", seed='{"developer_tokens": [{"token": "DEV-INI", "name": "ini"}], '
                                    '"users": [{"name": "u", "access_tokens": [{"token": "AT-INI"}]}]}')
    pytester.makeini("[pytest]\ncouponsvc_seed = seed.json\ncouponsvc_scope = function\n")
    pytester.makepyfile(test_scoped='''
urls = []

def test_one(couponsvc_server):
    assert (couponsvc_server.developer_token, couponsvc_server.access_token) == ("DEV-INI", "AT-INI")
    assert couponsvc_server.health()["status"] == "ok"
    urls.append(couponsvc_server.url)

def test_two(couponsvc_server):
    assert couponsvc_server.url not in urls  # function scope: a server of its own
''')
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2)
