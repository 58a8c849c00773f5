"""Relay faults are not bad addresses; nothing spins; shutdown is bounded (issue 10, delivery half).

Real `couponsvc serve` / `couponsvc worker` processes against the aiosmtpd sink of tests/support/smtp_sink.py,
scripted to refuse at the greeting, EHLO, AUTH, MAIL FROM, RCPT TO or DATA; what is checked is the API's
answer over HTTP, `/health`, what the sink received, and the rows the processes wrote.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import ServerProcess
from tests.support.smtp_sink import Fault, SmtpSink
from tests.test_delivery_smtp import (
    FAST,
    Launch,
    addresses,
    all_settled,
    check_delivered,
    dispatch,
    history,
    outbox,
    query,
    seed_with_class,
    start_worker,
    stop_workers,
    wait_until,
)

USER, PASSWORD = "coupons-relay", "s3cret-Pa55w0rd"
SLOW_BACKOFF = {"COUPONSVC_RETRY_FIRST": "2", "COUPONSVC_RETRY_FACTOR": "2", "COUPONSVC_RETRY_CAP": "4"}


@pytest.fixture
def sinks() -> Iterator[list[SmtpSink]]:
    made: list[SmtpSink] = []
    yield made
    for s in made:
        s.stop()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """launch(mail_url_or_port, codes=N, **env) -> (running server with a fresh class of N codes, class name)."""
    started: list[ServerProcess] = []

    def make(relay: int | str, codes: int = 20, **env: str) -> tuple[ServerProcess, str]:
        url = relay if isinstance(relay, str) else f"smtp://127.0.0.1:{relay}"
        server = ServerProcess(tmp_path / f"server{len(started)}", {**FAST, "COUPONSVC_MAIL_URL": url, **env})
        server.data_dir.mkdir(parents=True)
        name, seed = seed_with_class(codes)
        server.load(seed)
        server.start()
        started.append(server)
        return server, name

    yield make
    for server in started:
        server.stop()


def relay_metrics(server: ServerProcess) -> tuple[dict[str, float], str, str]:
    """The relay series of ``/metrics``: the state set, and the last reply's code and text labels."""
    r = httpx.get(f"{server.url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    states: dict[str, float] = {}
    replies = []
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "couponsvc_db_relay_state":
                states[sample.labels["state"]] = sample.value
            elif sample.name == "couponsvc_db_relay_last_reply":
                replies.append((sample.labels["code"], sample.labels["reply"]))
                assert sample.value == int(sample.labels["code"] or 0)
            elif sample.name == "couponsvc_db_relay_state_since_timestamp_seconds":
                assert abs(sample.value - time.time()) < 300, "since: Unix time, in UTC"
    assert len(replies) == 1, replies
    return states, *replies[0]


def health(server: ServerProcess) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/health", timeout=10)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    assert {"status", "database", "schema", "relay"} <= set(doc), doc
    assert set(doc["relay"]) == {"state", "last_code", "last_reply", "since"}, doc
    return doc


def session_refusals(sink: SmtpSink) -> int:
    return sum(len(sink.events_of(k)) for k in
               ("refused_greeting", "refused_ehlo", "refused_auth", "refused_mail"))


def every_text(server: ServerProcess) -> str:
    """Everything couponsvc stored or said about delivery: to look for a leaked secret."""
    rows = query(server, "SELECT coalesce(last_error, '') AS t FROM outbox UNION ALL "
                         "SELECT coalesce(detail, '') FROM delivery_attempts UNION ALL "
                         "SELECT coalesce(last_reply, '') FROM relay_state")
    return "\n".join(r["t"] for r in rows) + httpx.get(f"{server.url}/health", timeout=10).text + server.log_text()


# --- 1. relay faults: no 3005, coupons kept, queued with backoff, /health failing; fixed -> delivered ---------
SESSION_CASES = {
    "greeting-554": (Fault.greeting(554), "5.3.2"),
    "ehlo-550": (Fault.ehlo(550), "5.7.1"),
    "auth-535": (Fault.auth(535, f"5.7.8 bad credentials for {USER} password {PASSWORD}"), "5.7.8"),
    "mail-from-553": (Fault.mail(553), "sender address rejected"),
}


@pytest.mark.parametrize("case", [*SESSION_CASES, "data-554-5.7.1"])
def test_a_relay_fault_is_no_bad_address(sinks: list[SmtpSink], launch: Launch, case: str) -> None:
    sink = SmtpSink(auth=(USER, PASSWORD) if case.startswith("auth") else None).start()
    sinks.append(sink)
    url = f"smtp://{USER}:{PASSWORD}@127.0.0.1:{sink.port}" if sink.auth else sink.url
    server, cls = launch(url, **SLOW_BACKOFF, COUPONSVC_METRICS_CACHE="0")
    assert health(server)["relay"]["state"] == "unknown"
    assert relay_metrics(server) == ({"ok": 0, "failing": 0, "unknown": 1}, "", "")
    emails = addresses(10)
    if case in SESSION_CASES:
        fault, text = SESSION_CASES[case]
        sink.refuse(fault)
    else:
        fault, text = Fault.data(554, "5.7.1", "message content rejected"), "5.7.1"
        for address in emails:
            sink.standing(address, fault)

    started = time.monotonic()
    assert dispatch(server, emails, cls) == [], "the relay's fault is no error of any address"
    assert time.monotonic() - started < 5, "a refusing relay does not hold the call"
    rows = outbox(server, cls)
    assert sink.accepted() == []
    assert {r["status"] for r in rows.values()} <= {"queued", "sending"}
    assert {r["state"] for r in rows.values()} == {"dispatched"}, "no coupon went back to the pool"
    assert all(r["send_to_email"].lower() == a for a, r in rows.items())

    relay = health(server)["relay"]
    assert relay["state"] == "failing", relay
    assert relay["last_code"] == fault.code and text in relay["last_reply"], relay
    assert relay["since"] is not None
    assert relay_metrics(server) == ({"ok": 0, "failing": 1, "unknown": 0}, str(fault.code), relay["last_reply"])

    if case in SESSION_CASES:
        # the session was refused: the call stopped after the attempts in flight on its (2) connections,
        # and deferred the rest with backoff without counting attempts for messages never offered
        attempts = sorted(r["attempts"] for r in rows.values())
        assert 1 <= sum(attempts) <= 2 and attempts.count(0) >= 8, attempts
    else:
        assert all(r["attempts"] == 1 for r in rows.values()), "each message was refused once"
    for r in rows.values():
        assert [o for o, _, _ in history(server, r["id"])] in ([], ["relay"]), history(server, r["id"])
    now = query(server, "SELECT max(attempted_at) AS t FROM delivery_attempts")[0]["t"]
    waiting = query(server, "SELECT next_attempt_at FROM outbox WHERE status = 'queued'")
    assert waiting and all(w["next_attempt_at"] > now for w in waiting), "queued with backoff, not due at once"

    # no spin: over the next 3 s the worker tries again after the backoff, not once per message and loop
    before = session_refusals(sink) + len(sink.events_of("refused_data"))
    time.sleep(3)
    during = session_refusals(sink) + len(sink.events_of("refused_data")) - before
    assert during <= (4 if case in SESSION_CASES else 20), f"{during} refusals in 3 s"
    rows = outbox(server, cls)
    assert {r["status"] for r in rows.values()} <= {"queued", "sending"}, "nothing given up, nothing failed"
    assert health(server)["relay"]["state"] == "failing"
    if sink.auth:
        assert PASSWORD not in every_text(server) + httpx.get(f"{server.url}/metrics", timeout=10).text, \
            "the password must never be stored or shown"
        assert USER not in health(server)["relay"]["last_reply"]

    # the operator fixes the relay: everything is delivered, once each, and /health says so
    sink.refuse(None)
    for address in emails:
        sink.clear(address)
    wait_until(all_settled(server, cls, 10), 30, "every message delivered once the relay is fixed")
    check_delivered(server, sink, cls, emails)
    wait_until(lambda: health(server)["relay"]["state"] == "ok", 10, "the relay reported ok again")
    relay = health(server)["relay"]
    assert relay["last_code"] == 250, relay
    assert relay_metrics(server) == ({"ok": 1, "failing": 0, "unknown": 0}, "250", ""), "no text: queue ids vary"
    if sink.auth:
        assert sink.logins and sink.logins[-1] == (USER, True)
        assert PASSWORD not in every_text(server)


@pytest.fixture
def sink(sinks: list[SmtpSink]) -> SmtpSink:
    s = SmtpSink().start()
    sinks.append(s)
    return s


def test_a_server_that_sends_nothing_itself_reports_what_the_workers_saw(sink: SmtpSink, launch: Launch) -> None:
    server, cls = launch(sink.port, COUPONSVC_WORKER="false", COUPONSVC_DELIVERY_TIMEOUT="0", **SLOW_BACKOFF)
    sink.refuse(Fault.greeting(554, "5.3.2 relay closed for maintenance"))
    emails = addresses(3)
    assert dispatch(server, emails, cls) == []
    assert health(server)["relay"]["state"] == "unknown"
    workers = [start_worker(server, "worker")]
    try:
        wait_until(lambda: health(server)["relay"]["state"] == "failing", 20, "the worker's view in /health")
        relay = health(server)["relay"]
        assert relay["last_code"] == 554 and "maintenance" in relay["last_reply"], relay
        status = json.loads(server.cli("mail", "status", "--json").stdout)
        assert status["relay"] == relay and status["queued"] == 3, status
        assert "relay: failing since " in server.cli("mail", "status").stdout
        sink.refuse(None)
        wait_until(all_settled(server, cls, 3), 30, "delivered once the relay is back")
        wait_until(lambda: health(server)["relay"]["state"] == "ok", 10, "the relay ok again in /health")
    finally:
        stop_workers(workers)
    check_delivered(server, sink, cls, emails)


def test_a_relay_that_keeps_refusing_is_given_up_at_the_lifetime(sink: SmtpSink, launch: Launch) -> None:
    """Like any temporary failure: after COUPONSVC_RETRY_LIFETIME the messages, tried or only deferred, are
    given up and their coupons return to the pool; never before."""
    server, cls = launch(sink.port, COUPONSVC_RETRY_LIFETIME="4", COUPONSVC_RETRY_FIRST="0.5",
                         COUPONSVC_RETRY_CAP="1")
    sink.refuse(Fault.mail(553))
    emails = addresses(6)
    assert dispatch(server, emails, cls) == []
    time.sleep(1.5)
    assert {r["status"] for r in outbox(server, cls).values()} <= {"queued", "sending"}
    wait_until(lambda: {r["status"] for r in outbox(server, cls).values()} == {"failed"}, 20, "all given up")
    rows = outbox(server, cls)
    assert {r["state"] for r in rows.values()} == {"available"}
    for r in rows.values():
        outcomes = [o for o, _, _ in history(server, r["id"])]
        assert outcomes[-1] == "gave_up" and set(outcomes[:-1]) <= {"relay"}, outcomes
    assert sink.accepted() == []
    assert session_refusals(sink) < 6 * 8, "deferred messages were not each tried at every retry"


def test_only_a_recipients_own_refusal_is_3005(sink: SmtpSink, launch: Launch) -> None:
    """RCPT TO 550, an LMTP-style per-recipient 550 5.1.1 after DATA, and 552 5.2.2 (mailbox full) are the
    address's; 554 5.7.1 (content), 550 5.1.8 (our sender's domain) and 554 without an enhanced status,
    after DATA, are the message's or the transaction's: queued, not 3005."""
    server, cls = launch(sink.port, **SLOW_BACKOFF)
    emails = addresses(7)
    faults = [None, Fault.rcpt(550), Fault.data_for_recipient(550, "5.1.1"),
              Fault("data", 552, text="5.2.2 mailbox full"), Fault.data(554, "5.7.1", "spam"),
              Fault("data", 550, text="5.1.8 bad sender domain"),
              Fault("data", 554, text="Transaction failed")]
    for address, fault in zip(emails, faults, strict=True):
        if fault is not None:
            sink.standing(address, fault)
    errors = dispatch(server, emails, cls)
    assert [(e["Code"], e["Index"]) for e in errors] == [(3005, 1), (3005, 2), (3005, 3)], errors
    rows = outbox(server, cls)
    for i, address in enumerate(emails):
        row = rows[address.lower()]
        if i == 0:
            assert row["status"] == "sent"
        elif i <= 3:
            assert (row["status"], row["state"]) == ("failed", "available"), tuple(row)
            assert [o for o, _, _ in history(server, row["id"])] == ["permanent"]
        else:
            assert row["status"] in ("queued", "sending") and row["state"] == "dispatched", tuple(row)
            assert [o for o, _, _ in history(server, row["id"])] == ["relay"]


# --- 2. a message that cannot be built: attempts, backoff, given up at its lifetime, no spin ------------------
def test_an_unbuildable_message_backs_off_and_is_given_up_without_blocking_the_batch(
        sink: SmtpSink, launch: Launch) -> None:
    server, cls = launch(sink.port, COUPONSVC_WORKER="false", COUPONSVC_DELIVERY_TIMEOUT="0")
    emails = addresses(3)
    assert dispatch(server, emails, cls) == []
    victim = emails[1]
    # bad data: a Message-ID that would inject a header -- the email library refuses to build the message
    conn = sqlite3.connect(server.data_dir / "couponsvc.db", timeout=30)
    with conn:
        conn.execute("UPDATE outbox SET message_id = '<broken@x>' || char(13) || char(10) || 'Bcc: all@example.com'"
                     " WHERE lower(recipient) = lower(?)", (victim,))
    conn.close()
    env = {"COUPONSVC_RETRY_FIRST": "0.5", "COUPONSVC_RETRY_FACTOR": "2", "COUPONSVC_RETRY_CAP": "1",
           "COUPONSVC_RETRY_LIFETIME": "8"}
    workers = [start_worker(server, "worker", **env)]
    try:
        good = [e for e in emails if e != victim]
        wait_until(lambda: all(outbox(server, cls)[a.lower()]["status"] == "sent" for a in good), 20,
                   "the other messages of the batch delivered")
        row = outbox(server, cls)[victim.lower()]
        assert len(history(server, row["id"])) >= 1, "tried in the same batch as the others"
        time.sleep(3)  # retries after 0.5, 1, 1 s: about 4 attempts by now (a tight loop: thousands)
        row = outbox(server, cls)[victim.lower()]
        assert row["status"] in ("queued", "sending"), tuple(row)
        tries = history(server, row["id"])
        assert 2 <= len(tries) <= 6, f"{len(tries)} attempts in 3 s: backoff, not a tight loop"
        assert {o for o, _, _ in tries} == {"temporary"}
        wait_until(lambda: outbox(server, cls)[victim.lower()]["status"] == "failed", 20, "given up at its lifetime")
    finally:
        stop_workers(workers)
    row = outbox(server, cls)[victim.lower()]
    outcomes = [o for o, _, _ in history(server, row["id"])]
    assert outcomes[-1] == "gave_up" and len(outcomes) <= 12, outcomes
    assert row["state"] == "available", "given up: its coupon is back in the pool"
    last_error = query(server, "SELECT last_error FROM outbox WHERE id = ?", row["id"])[0]["last_error"]
    assert "cannot be built" in last_error, last_error
    assert sink.to(victim) == [] and len(sink.accepted()) == 2
    assert "all@example.com" not in {a for r in sink.accepted() for a in r.rcpt_tos}


# --- 3. calls go before the worker for connections -------------------------------------------------------
def test_a_call_is_not_starved_by_the_workers_backlog(sinks: list[SmtpSink], launch: Launch) -> None:
    """Two connections; the in-process worker drains a backlog over both.  A new 60-address call must get the
    connections first: while it runs, the relay receives the call's messages, not the worker's (taking turns
    with the worker, as a plain first-come queue does, would give the worker every other message)."""
    sink = SmtpSink(delay=0.05).start()
    sinks.append(sink)
    server, cls = launch(sink.port, codes=400, COUPONSVC_SMTP_CONNECTIONS="2", COUPONSVC_DELIVERY_TIMEOUT="2.5",
                         COUPONSVC_SMTP_TIMEOUT="5")
    backlog = addresses(300, "backlog")
    assert dispatch(server, backlog, cls) == []
    left = sum(r["status"] != "sent" for r in outbox(server, cls).values())
    assert left >= 120, f"the first call sent {300 - left} of 300 within its 2.5 s"
    count = len(sink.accepted())
    sink.wait_for(lambda: len(sink.accepted()) >= count + 4, 10, "the worker busy with the backlog")

    late = addresses(60, "late")
    started = time.monotonic()
    assert dispatch(server, late, cls) == []
    ended = time.monotonic()
    assert ended - started < 4.5, f"the call took {ended - started:.1f} s with a 2.5 s delivery time"
    late_keys = {a.lower() for a in late}
    by_call = [r for r in sink.accepted() if started <= r.at <= ended and r.rcpt_tos[0].lower() in late_keys]
    assert by_call, "the call sent nothing itself"
    # from the call's first message (before it, the call was in its transaction) to its last one (after it,
    # the worker may go on): only what the worker already had in flight on the other connection gets through
    first, last = min(r.at for r in by_call), max(r.at for r in by_call)
    by_worker = sum(1 for r in sink.accepted() if first <= r.at <= last and r.rcpt_tos[0].lower() not in late_keys)
    assert len(by_call) >= 20, f"the call sent only {len(by_call)} messages"
    assert by_worker <= 3, f"while the call sent, the worker sent {by_worker} messages, the call {len(by_call)}"
    rows = outbox(server, cls)
    for address in late:
        row = rows[address.lower()]
        if row["status"] == "sent" and len(sink.to(address)) == 1 and sink.to(address)[0].at <= ended:
            assert [w.split(":")[0] for _, _, w in history(server, row["id"])] == ["call"]
    assert sum(r["status"] != "sent" for a, r in rows.items() if a.startswith("backlog")) > 0, \
        "the worker still had backlog while the call ran"
    wait_until(all_settled(server, cls, 360), 60, "the backlog drained")
    check_delivered(server, sink, cls, backlog + late)


# --- 4. bounded shutdown: SIGTERM during a slow batch ---------------------------------------------------------
@pytest.mark.parametrize("who, sig", [("worker", signal.SIGTERM), ("worker", signal.SIGINT),
                                      ("serve", signal.SIGTERM)])
def test_stopping_during_a_slow_batch_is_quick_and_loses_nothing(sinks: list[SmtpSink], launch: Launch,
                                                                 who: str, sig: signal.Signals) -> None:
    sink = SmtpSink(delay=3.0).start()  # every message takes 3 s: a 40-message batch takes a minute
    sinks.append(sink)
    server, cls = launch(sink.port, codes=40, COUPONSVC_WORKER="true" if who == "serve" else "false",
                         COUPONSVC_DELIVERY_TIMEOUT="0", COUPONSVC_SMTP_TIMEOUT="30")
    emails = addresses(40)
    assert dispatch(server, emails, cls) == []
    proc: subprocess.Popen[bytes]
    if who == "serve":
        assert server.proc is not None
        proc = server.proc
    else:
        proc = start_worker(server, "worker-a")
    sink.wait_for(lambda: len(sink.accepted()) >= 2, 30, "the slow batch under way")
    wait_until(lambda: sum(r["status"] == "sending" for r in outbox(server, cls).values()) >= 30, 10,
               "the batch claimed")
    time.sleep(0.5)  # the next sends are in flight
    stopped_at = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(30)
    took = time.monotonic() - stopped_at
    assert took < 6, f"{who} took {took:.1f} s to stop"
    # uvicorn re-raises the signal once its graceful shutdown is done: serve ends "killed by SIGTERM"
    assert code in ((0, -sig) if who == "serve" else (0,)), (code, server.log_text())
    rows = outbox(server, cls)
    assert {r["status"] for r in rows.values()} <= {"sent", "queued"}, "every lease released"
    released = [r for r in rows.values() if r["status"] == "queued"]
    assert len(released) >= 30
    assert all(r["attempts"] == 0 for r in released), "a released message does not count an attempt"
    assert all(history(server, r["id"]) == [] for r in released if r["attempts"] == 0)

    # another worker delivers everything later: every Message-ID reaches the relay, each coupon its owner
    sink.delay = 0.0
    if who == "serve":
        server.proc = None
    workers = [start_worker(server, "worker-b")]
    try:
        wait_until(all_settled(server, cls, 40), 60, "the second worker drained the queue")
    finally:
        stop_workers(workers)
    rows = outbox(server, cls)
    counts = sink.count_by_message_id()
    assert set(counts) == {r["message_id"] for r in rows.values()}, "no message lost"
    duplicates = {m: n for m, n in counts.items() if n > 1}
    assert len(duplicates) <= 2, f"only the messages in flight at the stop may go out twice: {duplicates}"
    check_delivered(server, sink, cls, emails, {r["recipient"]: counts[r["message_id"]] for r in rows.values()})

