"""Calls keep their time bound under load and the event loop stays free (issue 10, defects 3 and 5).

Eight concurrent 1000-address DispatchCoupons (half SOAP, half REST) against a real server (on SQLite and
on PostgreSQL) with its worker on and a slow real SMTP relay (every DATA answered 50 ms late: no call can send its 1000
messages within its delivery time).  Every call answers within its delivery time plus a margin for its
own transaction and the HTTP round trip (before the fix the delivery budget started after a call finally
got its transaction, so the last calls took several times it), and /health answers in well under a second
throughout while slow clients stall in their headers.  The margin is wide: the machine is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import database_url
from tests.support.load import load_seed, run_load
from tests.support.seeds import BASE_SEED
from tests.support.server import ServerProcess
from tests.support.smtp_sink import SmtpSink

DELIVERY_TIMEOUT = 3.0
HEADER_TIMEOUT = 2.0
#: beyond the bound (delivery time + the call's own transaction, as the server logs it): recording what
#: was sent and rendering, as the server times the call; and as this client does (the transfer of a
#: 1000-address body, this process's own threads and SMTP sink on a shared 2-core machine)
MARGIN = 1.0
CLIENT_MARGIN = 2.5


@pytest.fixture(params=["sqlite", "postgresql"])
def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, SmtpSink]]:
    with SmtpSink(delay=0.05) as relay, database_url(request.param, tmp_path) as url:
        server = ServerProcess(tmp_path, {"COUPONSVC_DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT),
                                          "COUPONSVC_MAIL_URL": relay.url, "COUPONSVC_LOG_LEVEL": "INFO",
                                          "COUPONSVC_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
                                          "COUPONSVC_DATABASE_URL": url})
        server.load(BASE_SEED, "base")
        server.load(load_seed(8200), "load")
        server.start()
        try:
            yield server, relay
        finally:
            server.stop()


def test_eight_concurrent_1000_address_calls_keep_their_bound_and_health_stays_fast(
        loaded: tuple[ServerProcess, SmtpSink]) -> None:
    server, relay = loaded
    figures = run_load(server, calls=8, addresses=1000, slow_clients=50, header_timeout=HEADER_TIMEOUT)
    print(figures.summary())
    assert figures.statuses == [200] * 8
    over = figures.over_bound(DELIVERY_TIMEOUT, MARGIN, CLIENT_MARGIN)
    assert not over, (over, figures.summary())
    assert figures.health and figures.health_failures == 0
    assert max(figures.health) < 1.0, figures.summary()
    assert figures.stalled_open == 0, figures.summary()
    # nothing was lost: what the calls did not send is queued for the worker, nothing failed
    import json

    counts = json.loads(server.cli("mail", "status", "--json").stdout)
    assert counts.get("failed", 0) == 0, counts


def _big_soap() -> bytes:
    """A 4 MiB-class envelope of a million tiny header elements: valid, slow to parse and depth-check."""
    from tests.support.soapkit import dispatch_body, envelope

    return envelope(dispatch_body(["big@example.com"]), header_extra="<Noise>" + "<x/>" * 900_000 + "</Noise>")


def _big_json() -> bytes:
    import json

    return json.dumps({"SendToEmails": ["a"] * 700_000, "CustomerId": "222", "CouponClassName": "SPRING-100"}
                      ).encode()


def test_large_bodies_are_parsed_off_the_event_loop(tmp_path: Path) -> None:
    """While large bodies are being parsed, /health still answers at once (defect 5)."""
    import threading
    import time

    import httpx

    server = ServerProcess(tmp_path, {"COUPONSVC_WORKER": "false", "COUPONSVC_LOG_LEVEL": "WARNING"})
    server.load(BASE_SEED, "base")
    server.start()
    soap, rest = _big_soap(), _big_json()
    assert len(soap) < 4 * 1024 * 1024 and len(rest) < 4 * 1024 * 1024
    answers: list[int] = []
    latencies: list[float] = []
    done = threading.Event()

    def post(i: int) -> None:
        if i % 2:
            r = httpx.post(server.soap_url, content=soap, headers={"Content-Type": "text/xml"}, timeout=120)
        else:
            r = httpx.post(f"{server.url}/CustomerBilling/v13/Coupons/Dispatch", content=rest, timeout=120,
                           headers={"Content-Type": "application/json", "Authorization": "Bearer AT-alice-0001",
                                    "DeveloperToken": "DEV-TEST-0001"})
        answers.append(r.status_code)

    try:
        senders = [threading.Thread(target=post, args=(i,)) for i in range(6)]
        for t in senders:
            t.start()
        with httpx.Client(timeout=30) as client:
            while any(t.is_alive() for t in senders):
                t0 = time.monotonic()
                assert client.get(f"{server.url}/health").status_code == 200
                latencies.append(time.monotonic() - t0)
                time.sleep(0.02)
        for t in senders:
            t.join()
        done.set()
    finally:
        server.stop()
    assert sorted(answers) == [200, 200, 200, 400, 400, 400], answers  # SOAP 200 ok, REST 400 (4603)
    assert len(latencies) >= 5, latencies
    assert max(latencies) < 0.8, f"/health took up to {max(latencies):.2f}s while large bodies were parsed"


def test_time_spent_waiting_for_the_database_comes_out_of_the_delivery_time(tmp_path: Path) -> None:
    """A call that queued 2 s for the write lock still answers about 3 s after it arrived (its delivery
    time), not 2 s + 3 s: the delivery budget is counted from the arrival (defect 3)."""
    import json
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import restkit
    from tests.test_bounds_api import Locker

    with SmtpSink(delay=0.05) as relay:
        server = ServerProcess(tmp_path, {"COUPONSVC_DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT),
                                          "COUPONSVC_MAIL_URL": relay.url, "COUPONSVC_WORKER": "false"})
        server.load(BASE_SEED, "base")
        server.start()
        try:
            emails = [f"queued-{i}@example.com" for i in range(300)]
            with ThreadPoolExecutor(1) as pool, Locker(server) as locker:
                t0 = time.monotonic()
                future = pool.submit(restkit.dispatch, server.url, emails)
                time.sleep(2.0)
                locker.release.set()
                r = future.result()
                took = time.monotonic() - t0
            assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text
            assert took <= DELIVERY_TIMEOUT + MARGIN, f"answered after {took:.2f}s"
            assert 0 < len(relay.accepted()) < len(emails)  # it did send, for the rest of its time only
            counts = json.loads(server.cli("mail", "status", "--json").stdout)
            assert counts.get("failed", 0) == 0 and counts.get("queued", 0) > 0, counts  # the rest waits, queued
        finally:
            server.stop()
