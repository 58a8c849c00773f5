"""The twin control plane over real HTTP (SPEC 10): auth, 404 when off, health, reset, seed, mail, journal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from couponsvc.testing import CouponsvcTwin, start_twin
from tests.support import restkit, soapkit
from tests.support.seeds import ACCOUNT, ALICE, BOB, CLASS, CUSTOMER, DEV
from tests.support.server import ServerProcess, free_port
from tests.support.twin import TWIN_SEED, admin, snapshot, twin_db

ENDPOINTS = [("GET", "health"), ("POST", "reset"), ("POST", "seed"), ("GET", "mail"), ("GET", "calls"),
             ("GET", "faults"), ("POST", "faults"), ("DELETE", "faults"), ("DELETE", "faults/1"),
             ("GET", "clock"), ("POST", "clock")]
JOURNAL_SIZE = 25
REDEEM = "/CustomerBilling/v13/Coupon/Redeem"


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CouponsvcTwin]:
    twin = start_twin(tmp_path_factory.mktemp("twin-api"), TWIN_SEED,
                      {"COUPONSVC_JOURNAL_SIZE": str(JOURNAL_SIZE)})
    yield twin
    twin.stop()


@pytest.fixture
def twin(twin_server: CouponsvcTwin) -> CouponsvcTwin:
    twin_server.reset()
    return twin_server


# --- on, off, and the admin header ---------------------------------------------------------------------------
def test_every_path_is_404_when_the_twin_is_off(server: ServerProcess) -> None:
    for method, path in [*ENDPOINTS, ("GET", "nothing/here"), ("GET", "")]:
        r = httpx.request(method, f"{server.url}/_couponsvc/{path}", headers={"X-Couponsvc-Admin": "x"}, timeout=30)
        assert r.status_code == 404, (method, path, r.status_code)


def test_every_endpoint_requires_the_admin_token(twin: CouponsvcTwin) -> None:
    wrong = twin.admin_token[:-1] + ("A" if twin.admin_token[-1] != "A" else "B")  # same length, last char off
    before = snapshot(twin_db(twin))
    for method, path in [*ENDPOINTS, ("GET", "no-such-endpoint")]:
        for token in ("", wrong, twin.admin_token.lower() if twin.admin_token.lower() != twin.admin_token else "x"):
            r = admin(twin, method, path, token=token, json={"now": None} if method == "POST" else None)
            assert r.status_code == 401, (method, path, token == wrong, r.status_code)
            assert "error" in r.json() and twin.admin_token not in r.text
    assert snapshot(twin_db(twin)) == before  # not even a reset happened
    assert admin(twin, "GET", "health").status_code == 200
    assert admin(twin, "GET", "no-such-endpoint").status_code == 404
    assert admin(twin, "PUT", "health").status_code == 405 and admin(twin, "GET", "reset").status_code == 405
    for path in ("faults", "clock", "seed"):
        bad = admin(twin, "POST", path, content=b"{not json")
        assert bad.status_code == 400 and "JSON" in bad.json()["error"]


def test_serve_twin_needs_an_admin_token_and_demo_makes_one(tmp_path: Path) -> None:
    env = {**ServerProcess(tmp_path).env, "COUPONSVC_DATA_DIR": str(tmp_path)}
    env.pop("COUPONSVC_ADMIN_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "couponsvc", "serve", "--twin", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "COUPONSVC_ADMIN_TOKEN" in result.stderr
    result = subprocess.run([sys.executable, "-m", "couponsvc", "serve", "--port", str(free_port())],
                            env={**env, "COUPONSVC_TWIN": "true"}, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "COUPONSVC_ADMIN_TOKEN" in result.stderr

    extra = tmp_path / "extra.json"  # a second start seed beside --demo: reset reloads both
    extra.write_text(json.dumps({"customers": [{"id": 222, "name": "Contoso Agency (demo)", "coupon_classes": [
        {"name": "EXTRA", "amount": 1.0, "currency_code": "USD", "codes": ["EX-1"]}]}]}))
    port = free_port()
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "couponsvc", "serve", "--demo", "--twin", "--port", str(port),
                                 "--seed", str(extra)], env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "listening" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.1)
        line = next(x for x in out.read_text().splitlines() if "X-Couponsvc-Admin:" in x)
        token = line.split("X-Couponsvc-Admin:", 1)[1].strip(" )")
        url = f"http://127.0.0.1:{port}/_couponsvc/health"
        for _ in range(100):
            try:
                r = httpx.get(url, headers={"X-Couponsvc-Admin": token}, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert httpx.get(url, timeout=5).status_code == 401
        base = f"http://127.0.0.1:{port}"
        demo = {"auth": "DEMO-ACCESS-TOKEN", "dev": "DEMO-DEVELOPER-TOKEN"}
        assert restkit.dispatch(base, ["a@example.com"], class_name="EXTRA", **demo).json() == {"PartialErrors": []}
        reset = httpx.post(f"{base}/_couponsvc/reset", headers={"X-Couponsvc-Admin": token}, timeout=60)
        assert reset.json() == {"reset": True, "seeds": ["demo data", str(extra)]}
        for cls in ("EXTRA", "SPRING-100"):  # both start seeds are back, and EX-1 is free again
            assert restkit.dispatch(base, ["a@example.com"], class_name=cls, **demo).json() == {"PartialErrors": []}
    finally:
        proc.terminate()
        proc.wait(15)


# --- health -------------------------------------------------------------------------------------------------------
def test_health_reports_database_relay_and_outbox(twin: CouponsvcTwin) -> None:
    body = admin(twin, "GET", "health").json()
    assert set(body) == {"status", "database", "relay", "outbox"}
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["outbox"] == {"queued": 0, "failed": 0}
    r = restkit.dispatch(twin.url, ["ada@example.com"])
    assert r.status_code == 200 and r.json() == {"PartialErrors": []}
    health = admin(twin, "GET", "health").json()
    assert health["outbox"] == {"queued": 0, "failed": 0}  # Maildir: delivered within the call
    assert health["relay"]["state"] == "ok"


# --- reset and seed ------------------------------------------------------------------------------------------------
def test_reset_restores_the_start_seed_exactly(twin: CouponsvcTwin) -> None:
    db = twin_db(twin)
    start = snapshot(db)
    assert start["twin_calls"] == 0 and start["outbox"] == 0
    # change everything a test could change: coupons, mail, journal, faults, clock, more data
    assert restkit.dispatch(twin.url, ["ada@example.com", "bob@example.com"]).json() == {"PartialErrors": []}
    r = restkit.post(twin.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": "SPR-0002"})
    assert r.status_code == 200, r.text
    twin.seed({"developer_tokens": [{"token": "DEV-EXTRA", "name": "extra"}]})
    twin.fault(operation="SearchCoupons", error_code=0)
    twin.clock("2030-01-01T00:00:00Z")
    assert twin.mail() and twin.calls()
    changed = snapshot(db)
    assert changed != start

    twin.reset()
    assert snapshot(db) == {**start, "token_hashes": start["token_hashes"]}
    assert twin.mail() == [] and twin.calls() == [] and twin.faults() == []
    assert twin.clock()["frozen"] is False
    # the same addresses can be sent to again, the redeemed code is available, the extra token is gone
    assert restkit.dispatch(twin.url, ["ada@example.com"]).json() == {"PartialErrors": []}
    r = restkit.post(twin.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": "SPR-0002"})
    assert r.status_code == 200, r.text
    assert restkit.fault_codes(restkit.dispatch(twin.url, ["x@example.com"], dev="DEV-EXTRA")) == [105]


def test_reset_with_a_seed_body_loads_that_document_instead(twin: CouponsvcTwin) -> None:
    doc = {"developer_tokens": [{"token": "DEV-OTHER", "name": "other"}],
           "customers": [{"id": 9, "name": "Nine", "coupon_classes": [{"name": "NINE", "codes": ["N-1"]}]}],
           "users": [{"name": "nina", "customers": [9], "access_tokens": [{"token": "AT-nina"}]}]}
    r = admin(twin, "POST", "reset", json=doc)
    assert r.status_code == 200, r.text
    snap = snapshot(twin_db(twin))
    assert snap["customers"] == 1 and snap["listed_codes"] == ["N-1"]
    assert restkit.fault_codes(restkit.dispatch(twin.url, ["a@example.com"])) == [105]  # the old tokens are gone
    r = restkit.dispatch(twin.url, ["a@example.com"], customer_id="9", class_name="NINE", auth="AT-nina",
                         dev="DEV-OTHER")
    assert r.json() == {"PartialErrors": []}
    twin.reset()  # back to the start seed
    assert restkit.dispatch(twin.url, ["a@example.com"]).json() == {"PartialErrors": []}


@pytest.mark.parametrize("endpoint", ["seed", "reset"])
def test_a_bad_seed_is_refused_naming_the_key_and_nothing_changes(twin: CouponsvcTwin, endpoint: str) -> None:
    assert restkit.dispatch(twin.url, ["kept@example.com"]).json() == {"PartialErrors": []}
    assert len(twin.calls()) == 1  # (reading the journal writes what is pending)
    before = snapshot(twin_db(twin))
    bad = {"customers": [{"id": 777, "name": "New", "coupon_classes": [
        {"name": "OK", "codes": ["OK-1"]}, {"name": "BAD", "amount": "ten", "currency_code": "USD"}]}]}
    r = admin(twin, "POST", endpoint, json=bad)
    assert r.status_code == 400
    assert "customers[0].coupon_classes[1].amount" in r.json()["error"]
    unknown = admin(twin, "POST", endpoint, json={"customers": [], "colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]
    conflict = admin(twin, "POST", endpoint, json={"users": [{"name": "x", "customers": [12345]}]})
    assert conflict.status_code == 400 and "users[0].customers" in conflict.json()["error"]
    not_json = admin(twin, "POST", endpoint, content=b"{nope")
    assert not_json.status_code == 400
    after = snapshot(twin_db(twin))
    assert after == before
    assert restkit.dispatch(twin.url, ["kept@example.com"]).json()["PartialErrors"][0]["Code"] == 3003


def test_seed_endpoint_adds_data_idempotently(twin: CouponsvcTwin) -> None:
    doc = {"customers": [{"id": CUSTOMER, "name": "Contoso Agency",
                          "coupon_classes": [{"name": "EXTRA-1", "amount": 1.0, "currency_code": "USD",
                                              "codes": ["EX-1", "EX-2"]}]}]}
    r = admin(twin, "POST", "seed", json=doc)
    assert r.status_code == 200 and r.json()["loaded"]["codes_added"] == 2
    once = snapshot(twin_db(twin))
    r = admin(twin, "POST", "seed", json=doc)
    assert r.status_code == 200 and r.json()["loaded"]["codes_added"] == 0
    assert snapshot(twin_db(twin)) == once
    assert restkit.dispatch(twin.url, ["e@example.com"], class_name="EXTRA-1").json() == {"PartialErrors": []}


# --- mail --------------------------------------------------------------------------------------------------------
def test_mail_lists_the_outbox_newest_first_with_the_message(twin: CouponsvcTwin) -> None:
    first = restkit.dispatch(twin.url, ["Ada@Example.com", "bob@example.com"])
    second = restkit.dispatch(twin.url, ["ada@example.com"], class_name="SUMMER-2030")
    assert first.json() == second.json() == {"PartialErrors": []}
    messages = twin.mail()
    assert [m["to"] for m in messages] == ["ada@example.com", "bob@example.com", "Ada@Example.com"]
    m = twin.mail(to="ADA@example.com", coupon_class="spring-100")
    assert len(m) == 1
    msg = m[0]
    assert set(msg) == {"message_id", "to", "subject", "code", "coupon_class", "customer_id", "status", "attempts",
                        "queued_at", "sent_at", "last_error", "tracking_id", "text", "html"}
    assert msg["coupon_class"] == CLASS and msg["customer_id"] == CUSTOMER and msg["code"] == "SPR-0001"
    assert msg["status"] == "sent" and msg["attempts"] == 1 and msg["last_error"] is None
    assert msg["tracking_id"] == first.headers["TrackingId"]
    assert "SPR-0001" in msg["text"] and "SPR-0001" in msg["html"] and "SPR-0001" in msg["subject"]
    assert msg["message_id"].startswith("<coupon-") and msg["queued_at"].endswith("Z") and msg["sent_at"]
    assert len(twin.mail(limit=1)) == 1 and twin.mail(to="nobody@example.com") == []
    assert admin(twin, "GET", "mail", params={"limit": "0"}).status_code == 400


# --- the journal -----------------------------------------------------------------------------------------------------
def test_calls_journal_both_protocols_with_tokens_masked(twin: CouponsvcTwin) -> None:
    rest = restkit.dispatch(twin.url, ["ada@example.com", "not-an-address"])
    soap = soapkit.dispatch(f"{twin.url}/Api/Billing/v13/CustomerBillingService.svc", ["grace@example.com"])
    refused = restkit.dispatch(twin.url, ["x@example.com"], auth=BOB)
    assert refused.status_code == 403
    calls = twin.calls()
    assert [c["tracking_id"] for c in calls] == [refused.headers["TrackingId"], soap.headers["TrackingId"],
                                                rest.headers["TrackingId"]]
    newest, middle, oldest = calls
    assert set(oldest) >= {"tracking_id", "time", "protocol", "operation", "http_status", "error_codes",
                           "duration_ms", "customer_id", "request", "response"}
    assert (oldest["protocol"], oldest["operation"], oldest["http_status"], oldest["error_codes"]) == \
        ("REST", "DispatchCoupons", 200, [3001])
    assert oldest["customer_id"] == CUSTOMER and oldest["duration_ms"] > 0 and oldest["time"].endswith("Z")
    assert json.loads(oldest["request"])["SendToEmails"] == ["ada@example.com", "not-an-address"]
    assert json.loads(oldest["response"])["PartialErrors"][0]["Code"] == 3001
    assert (middle["protocol"], middle["operation"], middle["http_status"], middle["error_codes"]) == \
        ("SOAP", "DispatchCoupons", 200, [])
    assert "grace@example.com" in middle["request"] and "<bil:TrackingId>" in middle["response"]
    assert (newest["http_status"], newest["error_codes"]) == (403, [106])
    text = json.dumps(calls)
    for secret in (ALICE, DEV, BOB):
        assert secret not in text
    assert "<AuthenticationToken>***</AuthenticationToken>" in middle["request"].replace("bil:", "")
    assert oldest["request_headers"]["authorization"] == "Bearer ***"
    assert oldest["request_headers"]["developertoken"] == "***"
    # filters
    assert [c["tracking_id"] for c in twin.calls(tracking_id=soap.headers["TrackingId"])] == \
        [soap.headers["TrackingId"]]
    assert len(twin.calls(operation="DispatchCoupons", limit=2)) == 2
    assert twin.calls(operation="SearchCoupons") == []


def test_journal_masks_password_fields_and_cuts_big_bodies(twin: CouponsvcTwin) -> None:
    secret = "s3cret-pa55word"
    body = soapkit.envelope(soapkit.dispatch_body(["ada@example.com"]),
                            header_extra=f"<UserName>u</UserName><Password>{secret}</Password>")
    soapkit.post(f"{twin.url}/Api/Billing/v13/CustomerBillingService.svc", body)
    big = [f"{'x' * 90}{i}@@" for i in range(1000)]  # ~95 KB request, a 1000-error response
    r = restkit.dispatch(twin.url, big)
    assert r.status_code == 200 and len(r.content) > 64 * 1024
    big_call, soap_call = twin.calls(limit=2)
    assert secret not in soap_call["request"] and "***" in soap_call["request"]
    for field in ("request", "response"):
        size = len(big_call[field].encode())
        assert 64 * 1024 - 4 <= size <= 64 * 1024, (field, size)
    assert big_call["error_codes"] == [3001]


def test_journal_is_bounded_oldest_dropped(twin: CouponsvcTwin) -> None:
    ids = []
    for _ in range(JOURNAL_SIZE + 7):
        r = restkit.post(twin.url, "/CustomerBilling/v13/Coupons/Search", {"PageInfo": {"Index": 0, "Size": 1},
                                                                        "Predicates": None, "Ordering": None})
        assert r.status_code in (200, 400), r.text
        ids.append(r.headers["TrackingId"])
    calls = twin.calls(limit=JOURNAL_SIZE)
    assert [c["tracking_id"] for c in calls] == list(reversed(ids))[:JOURNAL_SIZE]
    assert admin(twin, "GET", "calls", params={"limit": str(JOURNAL_SIZE + 1)}).status_code == 400


def test_mail_lists_distribution_notifications_too(twin: CouponsvcTwin) -> None:
    twin.seed({"customers": [{"id": CUSTOMER, "name": "Contoso Agency",
                              "accounts": [{"id": ACCOUNT, "number": "F111AAAA", "currency_code": "USD",
                                            "email": "billing@example.com"}],
                              "coupon_classes": [{"name": "GIFT", "amount": 5.0, "currency_code": "USD",
                                                  "codes": ["GIFT-1"]}]}]})
    r = restkit.post(twin.url, "/CustomerBilling/v13/Coupons/Distribute",
                     {"AccountIds": [ACCOUNT], "ClassName": "GIFT", "SendNotification": True})
    assert r.status_code == 200, r.text
    (message,) = twin.mail(to="billing@example.com")
    assert message["code"] == "GIFT-1" and "GIFT-1" in message["text"] and message["tracking_id"] == \
        r.headers["TrackingId"]
    assert "F111AAAA" in message["text"]  # the distribution template names the account
