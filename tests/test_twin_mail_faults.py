"""Mail faults (SPEC 10) inside the transport, with a real SMTP relay behind it (aiosmtpd).

A ``5xx`` fault is a recipient refusal (3005, coupon back in the pool), ``4xx`` is retried with the
ordinary backoff, ``drop`` is a lost connection retried until the message's lifetime ends (give-up).
The twin clock drives the backoff and the lifetime, so no test waits for real minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from couponsvc.testing import CouponsvcTwin, start_twin
from tests.support import restkit, soapkit
from tests.support.smtp_sink import SmtpSink
from tests.support.twin import TWIN_SEED, snapshot, twin_db


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def twin_server(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[CouponsvcTwin]:
    twin = start_twin(tmp_path_factory.mktemp("twin-mail"), TWIN_SEED,
                      {"COUPONSVC_MAIL_URL": sink.url, "COUPONSVC_RETRY_FIRST": "60", "COUPONSVC_RETRY_FACTOR": "2",
                       "COUPONSVC_RETRY_LIFETIME": "86400"})
    yield twin
    twin.stop()


@pytest.fixture
def twin(twin_server: CouponsvcTwin) -> CouponsvcTwin:
    twin_server.reset()
    return twin_server


def _wait(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _one(twin: CouponsvcTwin, to: str) -> dict[str, Any]:
    (message,) = twin.mail(to=to)
    return message


def test_5xx_fault_is_a_recipient_refusal_3005_and_the_coupon_returns(twin: CouponsvcTwin, sink: SmtpSink) -> None:
    rule = twin.fault(smtp="5xx", recipient=r"^bounce@")
    assert rule == {"id": rule["id"], "smtp": "5xx", "recipient": "^bounce@", "probability": 1.0, "count": None}
    r = restkit.dispatch(twin.url, ["BOUNCE@example.com", "fine@example.com", "rebounce@example.com"])
    errors = r.json()["PartialErrors"]
    assert [(e["Code"], e["Index"], e["Details"]) for e in errors] == [(3005, 0, "BOUNCE@example.com")]
    sink.wait_for(lambda: len(sink.to("fine@example.com")) == 1, 10, "the good address's message")
    assert sink.to("bounce@example.com") == [] and len(sink.to("rebounce@example.com")) == 1
    failed = _one(twin, "bounce@example.com")
    assert failed["status"] == "failed" and failed["attempts"] == 1 and "550" in failed["last_error"]
    assert _one(twin, "fine@example.com")["status"] == "sent"
    dispatched = snapshot(twin_db(twin))["dispatched_to"]
    assert "bounce@example.com" not in dispatched and "fine@example.com" in dispatched  # back in the pool
    soap = soapkit.dispatch(twin.soap_url, ["bounce@example.com"])
    assert [(e["Code"], e["Index"]) for e in soap.batch_errors] == [(3005, 0)]
    twin.clear_faults()
    assert restkit.dispatch(twin.url, ["bounce@example.com"]).json() == {"PartialErrors": []}
    sink.wait_for(lambda: len(sink.to("bounce@example.com")) == 1, 10, "the message once the fault is gone")


def test_4xx_fault_is_retried_with_backoff_then_sent(twin: CouponsvcTwin, sink: SmtpSink) -> None:
    twin.fault(smtp="4xx", recipient="later@", count=2)
    r = restkit.dispatch(twin.url, ["later@example.com"])
    assert r.json() == {"PartialErrors": []}  # temporary trouble is never an error of the call
    queued = _one(twin, "later@example.com")
    assert (queued["status"], queued["attempts"]) == ("queued", 1) and "4.3.0" in queued["last_error"]
    time.sleep(1.0)
    assert _one(twin, "later@example.com")["attempts"] == 1  # backoff: not retried before its time
    twin.clock(advance_seconds=61)  # past the first backoff (60 s): the worker retries, meets the 2nd 4xx
    _wait("the second attempt", lambda: _one(twin, "later@example.com")["attempts"] == 2)
    assert _one(twin, "later@example.com")["status"] == "queued" and sink.to("later@example.com") == []
    twin.clock(advance_seconds=121)  # past the second backoff (120 s): the rule is used up, the relay accepts
    _wait("delivery", lambda: _one(twin, "later@example.com")["status"] == "sent")
    assert _one(twin, "later@example.com")["attempts"] == 3
    sink.wait_for(lambda: len(sink.to("later@example.com")) == 1, 5, "the message at the relay")
    assert twin.faults() == []


def test_drop_fault_is_retried_until_the_lifetime_ends_then_given_up(twin: CouponsvcTwin, sink: SmtpSink) -> None:
    twin.fault(smtp="drop", recipient="gone")
    assert restkit.dispatch(twin.url, ["gone@example.com", "kept@example.com"]).json() == {"PartialErrors": []}
    first = _one(twin, "gone@example.com")
    assert first["status"] == "queued" and "closed the connection" in first["last_error"]
    sink.wait_for(lambda: len(sink.to("kept@example.com")) == 1, 10, "the other message")
    twin.clock(advance_seconds=61)
    _wait("a retry", lambda: _one(twin, "gone@example.com")["attempts"] == 2)
    twin.clock(advance_seconds=86400)  # past the 24 h lifetime: the next attempt gives up
    _wait("give-up", lambda: _one(twin, "gone@example.com")["status"] == "failed")
    gave_up = _one(twin, "gone@example.com")
    assert gave_up["last_error"].startswith("gave up") and gave_up["attempts"] == 3
    assert "gone@example.com" not in snapshot(twin_db(twin))["dispatched_to"]  # the coupon is back in the pool
    assert sink.to("gone@example.com") == []
    twin.clear_faults()
    assert restkit.dispatch(twin.url, ["gone@example.com"]).json() == {"PartialErrors": []}  # not a 3003


def test_a_separate_worker_process_shares_the_twins_mail_faults_and_clock(tmp_path: Path) -> None:
    """`couponsvc worker` with COUPONSVC_TWIN=true on the twin's database: the same rules and the same clock."""
    env = {"COUPONSVC_WORKER": "false", "COUPONSVC_DELIVERY_TIMEOUT": "0"}  # only the separate worker sends
    twin = start_twin(tmp_path / "twin", TWIN_SEED, env)
    try:
        twin.fault(smtp="5xx", recipient="^bounce@")
        twin.fault(smtp="4xx", recipient="^later@", count=1)
        emails = ["bounce@example.com", "ok@example.com", "later@example.com"]
        assert restkit.dispatch(twin.url, emails).json() == {"PartialErrors": []}  # nothing sent within the call
        assert {m["status"] for m in twin.mail()} == {"queued"}
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("COUPONSVC_")}
        worker_env.update({"COUPONSVC_TWIN": "true", "COUPONSVC_DATABASE_URL": twin_db(twin),
                           "COUPONSVC_MAIL_URL": f"maildir://{tmp_path}/worker-mail"})

        def run_worker() -> None:
            subprocess.run([sys.executable, "-m", "couponsvc", "worker", "--until-idle"], env=worker_env,
                           check=True, capture_output=True, timeout=120)

        run_worker()
        status = {m["to"]: (m["status"], m["attempts"]) for m in twin.mail()}
        assert status == {"bounce@example.com": ("failed", 1), "ok@example.com": ("sent", 1),
                          "later@example.com": ("queued", 1)}
        run_worker()  # the retry is not due yet on the twin clock
        assert _one(twin, "later@example.com")["attempts"] == 1
        twin.clock(advance_seconds=61)
        run_worker()
        assert (_one(twin, "later@example.com")["status"], _one(twin, "later@example.com")["attempts"]) == ("sent", 2)
    finally:
        twin.stop()
