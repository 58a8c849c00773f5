"""Metrics, /health and logs of a real server: the scrape (parsed with prometheus_client's own parser) moves
by exactly what happened; JSON log lines parse one by one and carry the response's TrackingId; no token or
password ever reaches a log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import restkit, soapkit
from tests.support.databases import postgres_schema_url
from tests.support.seeds import ACCOUNT, ALICE, BASE_SEED, BOB, CUSTOMER, DEV, new_class_seed
from tests.support.server import ServerProcess
from tests.support.smtp_sink import Fault, SmtpSink

INFO = "/CustomerBilling/v13/CouponInfo/Query"
REDEEM = "/CustomerBilling/v13/Coupon/Redeem"
GUESSER = "AT-metrics-guesser"
PASSWORD = "pg-Secret-Pw-4711"
SEED_USERS = {"users": [{"name": "guesser", "customers": [CUSTOMER],
                         "access_tokens": [{"token": GUESSER, "expires_at": "2099-01-01T00:00:00Z"}]}]}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def with_password(url: str) -> str:
    """The PostgreSQL URL with a password added (the test server trusts loopback, so it is not checked)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}"))


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[ServerProcess]:
    with postgres_schema_url() as url:
        proc = ServerProcess(tmp_path_factory.mktemp("observed"), {
            "COUPONSVC_DATABASE_URL": with_password(url), "COUPONSVC_MAIL_URL": sink.url,
            "COUPONSVC_LOG_FORMAT": "json", "COUPONSVC_METRICS_CACHE": "0",
            "COUPONSVC_THROTTLE_CODE_GUESSES": "3/60", "COUPONSVC_RETRY_FIRST": "600"})
        proc.load(BASE_SEED, "base")
        proc.load(SEED_USERS, "users")
        proc.start()
        yield proc
        proc.stop()


def scrape(server: ServerProcess) -> Samples:
    r = httpx.get(server.url + "/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, prefix: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    keys = {k for k in (*before, *after) if k[0].startswith(prefix)}
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys if after.get(k, 0.0) != before.get(k, 0.0)}


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def calls_key(operation: str, protocol: str, status: int, error_code: str = "none") -> Any:
    return key("couponsvc_calls_total", operation=operation, protocol=protocol, status=str(status),
               error_code=error_code)


# --- metrics ------------------------------------------------------------------------------------------------
def test_calls_move_by_exactly_what_happened(observed: ServerProcess) -> None:
    before = scrape(observed)
    assert restkit.post(observed.url, INFO, {"CustomerId": str(CUSTOMER)}).status_code == 200
    assert restkit.post(observed.url, INFO, {"CustomerId": str(CUSTOMER)}).status_code == 200
    assert restkit.post(observed.url, INFO, {"CustomerId": str(CUSTOMER)}, auth=BOB).status_code == 403
    assert restkit.post(observed.url, INFO, {"CustomerId": str(CUSTOMER)}, auth="AT-nobody").status_code == 401
    body = f'<GetCouponInfoRequest xmlns="{soapkit.BIL}"><CustomerId>{CUSTOMER}</CustomerId></GetCouponInfoRequest>'
    assert soapkit.post(observed.soap_url, soapkit.envelope(body)).status == 200
    assert restkit.post(observed.url, "/CustomerBilling/v13/No/Such/Thing", {}).status_code == 404
    after = scrape(observed)
    assert moved(before, after, "couponsvc_calls_total") == {
        calls_key("GetCouponInfo", "REST", 200): 2,
        calls_key("GetCouponInfo", "REST", 403, "106"): 1,
        calls_key("GetCouponInfo", "REST", 401, "105"): 1,
        calls_key("GetCouponInfo", "SOAP", 200): 1,
        calls_key("unknown", "REST", 404, "201"): 1,
    }
    counts = moved(before, after, "couponsvc_call_duration_seconds_count")
    assert counts == {key("couponsvc_call_duration_seconds_count", operation="GetCouponInfo"): 5,
                      key("couponsvc_call_duration_seconds_count", operation="unknown"): 1}
    inf = key("couponsvc_call_duration_seconds_bucket", operation="GetCouponInfo", le="+Inf")
    assert after[inf] - before.get(inf, 0) == 5


def test_code_guesses_and_throttled_calls_are_counted(observed: ServerProcess) -> None:
    before = scrape(observed)
    for i in range(3):
        r = restkit.post(observed.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": f"NOPE-{i}"}, auth=GUESSER)
        assert restkit.fault_codes(r) == [3006]
    r = restkit.post(observed.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": "NOPE-4"}, auth=GUESSER)
    assert r.status_code == 429
    after = scrape(observed)
    assert moved(before, after, "couponsvc_calls_total") == {
        calls_key("RedeemCoupon", "REST", 400, "3006"): 3, calls_key("RedeemCoupon", "REST", 429, "117"): 1}
    assert moved(before, after, "couponsvc_throttled_calls_total") == {
        key("couponsvc_throttled_calls_total", limit="code_guesses"): 1}


def test_dispatch_moves_smtp_outbox_and_coupon_gauges_and_health(observed: ServerProcess, sink: SmtpSink) -> None:
    cls, seed = new_class_seed(10, prefix="MET")
    observed.load(seed, "class")
    emails = [f"m{i}@example.com" for i in range(6)]
    sink.plan(emails[3], Fault.rcpt(550))  # permanent: 3005, the coupon returns to the pool
    sink.plan(emails[4], Fault.rcpt(451))  # temporary: stays queued (next try in 600 s)
    sink.plan(emails[5], Fault.drop_mid_data())  # no reply at all: a connection error, stays queued
    before = scrape(observed)
    health_before = httpx.get(observed.url + "/health").json()
    r = restkit.dispatch(observed.url, emails, class_name=cls)
    assert r.status_code == 200
    assert [(e["Code"], e["Index"]) for e in r.json()["PartialErrors"]] == [(3005, 3)]
    after = scrape(observed)
    assert moved(before, after, "couponsvc_smtp_replies_total") == {
        key("couponsvc_smtp_replies_total", **{"class": "2xx"}): 3,
        key("couponsvc_smtp_replies_total", **{"class": "5xx"}): 1,
        key("couponsvc_smtp_replies_total", **{"class": "4xx"}): 1,
        key("couponsvc_smtp_replies_total", **{"class": "connection_error"}): 1,
    }
    outbox = moved(before, after, "couponsvc_db_outbox_messages")
    assert outbox == {key("couponsvc_db_outbox_messages", status="sent"): 3,
                      key("couponsvc_db_outbox_messages", status="failed"): 1,
                      key("couponsvc_db_outbox_messages", status="queued"): 2}
    assert value(after, "couponsvc_db_outbox_oldest_queued_age_seconds") >= 0
    pool = {state: value(after, "couponsvc_db_coupons", customer_id=str(CUSTOMER), coupon_class=cls, state=state)
            for state in ("available", "dispatched", "distributed", "redeemed")}
    assert pool == {"available": 5, "dispatched": 5, "distributed": 0, "redeemed": 0}  # 3 sent + 2 queued;
    # the refused one is back; every state has its series, 0 included, so an alert on it never sees a gap
    assert key("couponsvc_db_coupons", customer_id=str(CUSTOMER), coupon_class=cls, state="distributed") in after
    assert value(after, "couponsvc_db_up") == 1
    health = httpx.get(observed.url + "/health").json()
    assert health["status"] == "ok" and health["database"] == "ok" and health["schema"]
    assert health["outbox"]["queued"] == health_before["outbox"]["queued"] + 2
    assert health["outbox"]["failed"] == health_before["outbox"]["failed"] + 1
    assert health["outbox"]["oldest_queued_seconds"] is not None


def test_metrics_can_be_turned_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = ServerProcess(tmp_path_factory.mktemp("nometrics"), {"COUPONSVC_METRICS": "false"})
    proc.load(BASE_SEED, "base")
    proc.start()
    try:
        assert httpx.get(proc.url + "/metrics").status_code == 404
        assert httpx.get(proc.url + "/health").status_code == 200
    finally:
        proc.stop()


# --- logs ----------------------------------------------------------------------------------------------------
def test_json_log_lines_parse_and_carry_the_tracking_id(observed: ServerProcess) -> None:
    rest = restkit.post(observed.url, INFO, {"CustomerId": str(CUSTOMER)})
    body = f'<GetCouponInfoRequest xmlns="{soapkit.BIL}"><CustomerId>{CUSTOMER}</CustomerId></GetCouponInfoRequest>'
    soap = soapkit.post(observed.soap_url, soapkit.envelope(body, auth="AT-wrong-token"))
    lines = [json.loads(line) for line in observed.log_text().splitlines() if line.strip()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    by_id = {e["tracking_id"]: e for e in lines if e.get("logger") == "couponsvc.access"}
    ok = by_id[rest.headers["TrackingId"]]
    assert (ok["operation"], ok["status"], ok["protocol"], ok["level"]) == ("GetCouponInfo", 200, "REST", "INFO")
    assert isinstance(ok["duration"], float) and ok["duration"] >= 0
    assert ok["time"].endswith("Z")
    refused = by_id[soap.headers["TrackingId"]]
    assert (refused["operation"], refused["status"], refused["error_code"]) == ("GetCouponInfo", 500, 105)
    assert soap.header_tracking_id == soap.headers["TrackingId"]


def secrets_used(server: ServerProcess) -> None:
    """Calls that carry tokens (good and bad) in every place a client can put them."""
    for auth, dev in ((ALICE, DEV), ("AT-bad-Secret-1", DEV), (ALICE, "DEV-bad-Secret-2")):
        restkit.post(server.url, INFO, {"CustomerId": str(CUSTOMER)}, auth=auth, dev=dev)
        body = f'<GetCouponInfoRequest xmlns="{soapkit.BIL}"><CustomerId>{CUSTOMER}</CustomerId></GetCouponInfoRequest>'
        soapkit.post(server.soap_url, soapkit.envelope(body, auth=auth, dev=dev))
    restkit.post(server.url, INFO, raw=b"{not json AT-bad-Secret-3", auth="AT-bad-Secret-3")


@pytest.mark.parametrize("which", ["json", "text"])
def test_tokens_and_passwords_never_reach_the_logs(which: str, observed: ServerProcess,
                                                   server: ServerProcess) -> None:
    target = observed if which == "json" else server
    secrets_used(target)
    log = target.log_text()
    assert "tracking_id" in log  # the calls were logged
    for secret in (ALICE, DEV, "AT-bad-Secret-1", "DEV-bad-Secret-2", "AT-bad-Secret-3", PASSWORD):
        assert secret not in log


def test_a_standalone_worker_serves_its_own_smtp_counters(tmp_path_factory: pytest.TempPathFactory,
                                                          sink: SmtpSink) -> None:
    import subprocess
    import sys
    import time

    from tests.support.server import free_port

    proc = ServerProcess(tmp_path_factory.mktemp("api-only"), {
        "COUPONSVC_WORKER": "false", "COUPONSVC_DELIVERY_TIMEOUT": "0", "COUPONSVC_MAIL_URL": sink.url})
    proc.load(BASE_SEED, "base")
    proc.start()
    worker = None
    try:
        emails = [f"w{i}@example.com" for i in range(3)]
        assert restkit.dispatch(proc.url, emails).status_code == 200
        port = free_port()
        worker = subprocess.Popen([sys.executable, "-m", "couponsvc", "worker"],
                                  env={**proc.env, "COUPONSVC_METRICS_PORT": str(port)},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sink.wait_for(lambda: all(sink.to(e) for e in emails), 30, "the worker's deliveries")
        deadline = time.monotonic() + 10
        while True:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                samples = {(s.name, frozenset(s.labels.items())): s.value
                           for f in text_string_to_metric_families(text) for s in f.samples}
                if value(samples, "couponsvc_smtp_replies_total", **{"class": "2xx"}) == 3:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the worker's /metrics never showed its 3 deliveries"
            time.sleep(0.2)
        assert not any(name.startswith("couponsvc_calls") for name, _ in samples)  # a worker answers no calls
        # the API server delivered nothing itself: its own counter did not move
        assert value(scrape(proc), "couponsvc_smtp_replies_total", **{"class": "2xx"}) == 0
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(10)
        proc.stop()
