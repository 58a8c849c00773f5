"""Coupon emails through a real SMTP server: `couponsvc serve` and `couponsvc worker` processes deliver to an
aiosmtpd sink on loopback (tests/support/smtp_sink.py) that injects faults.

What is checked, besides the API's answer, is what the sink received (per recipient, per Message-ID)
against the database the processes wrote: the outbox row of each message, its coupon and its history.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from email.headerregistry import Address
from pathlib import Path
from typing import Any

import pytest

from tests.support import restkit, soapkit
from tests.support.seeds import BASE_SEED, new_class_seed
from tests.support.server import ServerProcess, free_port
from tests.support.smtp_sink import Fault, Received, SmtpSink

SENDER = "coupons@shop.example.com"
FAST = {  # small pools and quick retries: every test here runs in seconds
    "COUPONSVC_MAIL_FROM": SENDER,
    "COUPONSVC_SMTP_CONNECTIONS": "2",
    "COUPONSVC_SMTP_TIMEOUT": "10",
    "COUPONSVC_RETRY_FIRST": "0.2",
    "COUPONSVC_RETRY_FACTOR": "2",
    "COUPONSVC_RETRY_CAP": "0.8",
    "COUPONSVC_WORKER_POLL": "0.1",
    "COUPONSVC_LOG_LEVEL": "WARNING",
}


# --- set-up ---------------------------------------------------------------------------------------------
def seed_with_class(codes: int) -> tuple[str, dict[str, Any]]:
    """BASE_SEED's tokens, customers and users (without its 5000 generated codes) plus a fresh class."""
    seed = copy.deepcopy(BASE_SEED)
    for customer in seed["customers"]:
        for cls in customer["coupon_classes"]:
            cls.pop("generate", None)
    name, extra = new_class_seed(codes, prefix="MAIL")
    seed["customers"][0]["coupon_classes"].extend(extra["customers"][0]["coupon_classes"])
    return name, seed


@pytest.fixture
def sinks() -> Iterator[list[SmtpSink]]:
    made: list[SmtpSink] = []
    yield made
    for s in made:
        s.stop()


@pytest.fixture
def sink(sinks: list[SmtpSink]) -> SmtpSink:
    s = SmtpSink().start()
    sinks.append(s)
    return s


Launch = Callable[..., tuple[ServerProcess, str]]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """launch(sink_port, codes=N, **env) -> (running server with a fresh class of N codes, class name)."""
    started: list[ServerProcess] = []

    def make(port: int, codes: int = 20, **env: str) -> tuple[ServerProcess, str]:
        server = ServerProcess(tmp_path / f"server{len(started)}",
                               {**FAST, "COUPONSVC_MAIL_URL": f"smtp://127.0.0.1:{port}", **env})
        server.data_dir.mkdir(parents=True)
        name, seed = seed_with_class(codes)
        server.load(seed)
        server.start()
        started.append(server)
        return server, name

    yield make
    for server in started:
        server.stop()


def addresses(n: int, tag: str = "user") -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{tag}{i}-{run}@example.com" for i in range(n)]


def dispatch(server: ServerProcess, emails: list[str], cls: str, protocol: str = "rest") -> list[dict[str, Any]]:
    """DispatchCoupons over REST or SOAP; returns the PartialErrors (dicts with Code and Index)."""
    if protocol == "soap":
        res = soapkit.dispatch(server.soap_url, list(emails), class_name=cls)
        assert res.status == 200 and res.fault is None, res.root
        return res.batch_errors
    r = restkit.dispatch(server.url, emails, class_name=cls)
    assert r.status_code == 200, r.text
    return list(r.json()["PartialErrors"])


# --- the database the processes wrote ---------------------------------------------------------------------
def query(server: ServerProcess, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(server.data_dir / "couponsvc.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def outbox(server: ServerProcess, cls: str) -> dict[str, sqlite3.Row]:
    """The class's outbox rows by recipient (lower case), with their coupon."""
    rows = query(server, """
        SELECT o.id, o.recipient, o.message_id, o.status, o.attempts, o.coupon_id, c.code, c.state,
               c.send_to_email
        FROM outbox o JOIN coupons c ON c.id = o.coupon_id JOIN coupon_classes k ON k.id = c.class_id
        WHERE k.name = ? ORDER BY o.id""", cls)
    out = {r["recipient"].lower(): r for r in rows}
    assert len(out) == len(rows), "one message per address and class"
    return out


def history(server: ServerProcess, outbox_id: int) -> list[tuple[str, int | None, str]]:
    return [(r["outcome"], r["smtp_code"], r["worker"]) for r in query(
        server, "SELECT outcome, smtp_code, worker FROM delivery_attempts WHERE outbox_id = ? ORDER BY id", outbox_id)]


def dispatched_code(server: ServerProcess, cls: str, recipient: str) -> str:
    """The code of the coupon of ``cls`` dispatched to ``recipient``, as the coupons table says."""
    rows = query(server, """
        SELECT c.code FROM coupons c JOIN coupon_classes k ON k.id = c.class_id
        WHERE k.name = ? AND c.state = 'dispatched' AND lower(c.send_to_email) = lower(?)""", cls, recipient)
    assert len(rows) == 1, (recipient, [tuple(r) for r in rows])
    return str(rows[0]["code"])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def all_settled(server: ServerProcess, cls: str, n: int) -> Callable[[], bool]:
    def check() -> bool:
        rows = outbox(server, cls)
        return len(rows) == n and all(r["status"] in ("sent", "failed") for r in rows.values())
    return check


# --- what the sink received ------------------------------------------------------------------------------------
def codes_in(text: str, cls: str) -> set[str]:
    return set(re.findall(rf"(?<![\w-]){re.escape(cls)}-\d{{5}}(?![\w-])", text))


def check_message(got: Received, row: sqlite3.Row, cls: str, code: str) -> None:
    """One received message is the one the outbox row stands for: its address, Message-ID and code."""
    msg = got.message
    assert got.mail_from == SENDER
    assert [a.lower() for a in got.rcpt_tos] == [row["recipient"].lower()]
    (to,) = msg["To"].addresses
    assert isinstance(to, Address) and to.addr_spec.lower() == row["recipient"].lower()
    assert msg["From"].addresses[0].addr_spec == SENDER
    assert msg["Message-ID"] == row["message_id"], (msg["Message-ID"], row["message_id"])
    assert msg.get_content_type() == "multipart/alternative"
    assert codes_in(got.part("text/plain"), cls) == {code}
    assert codes_in(got.part("text/html"), cls) == {code}


def same_message(a: Received, b: Received) -> None:
    """Two copies of one message (at-least-once): the same headers and the same parts."""
    for header in ("Message-ID", "Date", "From", "To", "Subject"):
        assert str(a.message[header]) == str(b.message[header]), header
    assert a.part("text/plain") == b.part("text/plain")
    assert a.part("text/html") == b.part("text/html")


def check_delivered(server: ServerProcess, sink: SmtpSink, cls: str, emails: list[str],
                    copies: dict[str, int] | None = None) -> dict[str, sqlite3.Row]:
    """Every address got its own coupon's message, exactly once unless ``copies`` says otherwise."""
    rows = outbox(server, cls)
    for address in emails:
        row = rows[address.lower()]
        assert row["status"] == "sent", (address, row["status"], history(server, row["id"]))
        code = dispatched_code(server, cls, address)
        assert row["code"] == code
        got = sink.to(address)
        assert len(got) == (copies or {}).get(address, 1), (address, len(got))
        for item in got:
            check_message(item, row, cls, code)
            same_message(got[0], item)
    return rows


# --- the tests ---------------------------------------------------------------------------------------------
def test_happy_path_one_message_per_recipient_with_its_own_code(sink: SmtpSink, launch: Launch) -> None:
    server, cls = launch(sink.port)
    emails = addresses(6)
    assert dispatch(server, emails, cls) == []
    # delivered within the call: by the time it answered, the relay had every message
    assert len(sink.accepted()) == 6
    check_delivered(server, sink, cls, emails)
    more = addresses(4, "more")
    assert dispatch(server, more, cls, "soap") == []
    time.sleep(1.0)  # the in-process worker polls every 0.1 s: it must not send anything again
    check_delivered(server, sink, cls, emails + more)
    assert sorted(sink.count_by_message_id().values()) == [1] * 10
    # 10 messages over at most 2 reused connections (plus the sink's own readiness probe)
    assert sink.connections - 1 <= 2


@pytest.mark.parametrize("protocol, fault", [
    ("soap", Fault.rcpt(550)),
    ("rest", Fault.data_for_recipient(550, "5.1.1")),
], ids=["soap-550-at-rcpt", "rest-550-5.1.1-after-data"])
def test_permanent_refusal_is_3005_and_returns_the_coupon(sink: SmtpSink, launch: Launch, protocol: str,
                                                          fault: Fault) -> None:
    server, cls = launch(sink.port)
    good = addresses(3)
    victim = addresses(1, "refused")[0]
    sink.standing(victim, fault)
    emails = [good[0], "not an address", good[1], victim, good[2]]
    errors = dispatch(server, emails, cls, protocol)
    assert [(e["Code"], e["Index"]) for e in errors] == [(3001, 1), (3005, 3)]
    rows = check_delivered(server, sink, cls, good)
    row = rows[victim.lower()]
    assert row["status"] == "failed"
    assert row["state"] == "available" and row["send_to_email"] is None
    assert [(outcome, code) for outcome, code, _ in history(server, row["id"])] == [("permanent", fault.code)]
    assert sink.to(victim) == []
    # the coupon is really back in the pool: it is the oldest available one, so the next address gets it
    late = addresses(1, "late")
    assert dispatch(server, late, cls) == []
    assert dispatched_code(server, cls, late[0]) == row["code"]
    check_delivered(server, sink, cls, good + late)
    time.sleep(0.5)
    assert sink.to(victim) == [], "a permanent refusal is never retried"


TEMPORARY = {
    "451-at-rcpt": [Fault.rcpt(451), Fault.rcpt(451)],
    "452-after-data": [Fault.data(452)],
    "dropped-mid-data": [Fault.drop_mid_data()],
    "dropped-after-data": [Fault.drop_after_data()],
}


@pytest.mark.parametrize("case", [*TEMPORARY, "no-answer-timeout", "down-then-up"])
def test_temporary_failures_are_delivered_later_exactly_as_queued(sinks: list[SmtpSink], launch: Launch,
                                                                  case: str) -> None:
    port = free_port()
    sink = SmtpSink(port)
    sinks.append(sink)
    if case != "down-then-up":
        sink.start()
    sink.mute = case == "no-answer-timeout"
    # a relay that does not answer is given up on after COUPONSVC_SMTP_TIMEOUT
    server, cls = launch(port, COUPONSVC_SMTP_TIMEOUT="0.5" if case == "no-answer-timeout" else "10")
    emails = addresses(3)
    victim = emails[1]
    faults = TEMPORARY.get(case, [])
    sink.plan(victim, *faults)

    started = time.monotonic()
    assert dispatch(server, emails, cls) == [], "a temporary failure is no error of the call"
    assert time.monotonic() - started < 8
    if case not in TEMPORARY:  # nothing got through, and nothing is lost: everything is still queued
        assert sink.accepted() == []
        rows = outbox(server, cls)
        assert all(r["status"] in ("queued", "sending") for r in rows.values()), [r["status"] for r in rows.values()]
        assert all(r["state"] == "dispatched" for r in rows.values())
        time.sleep(0.5)  # the worker keeps trying meanwhile
        if case == "no-answer-timeout":
            assert sink.events_of("muted"), "the relay was contacted and did not answer"
            sink.mute = False
        else:
            sink.start()
    wait_until(all_settled(server, cls, 3), 20, "every message sent")

    copies = {victim: 2} if case == "dropped-after-data" else {}
    rows = check_delivered(server, sink, cls, emails, copies)
    if case in TEMPORARY:
        outcomes = [(o, c) for o, c, _ in history(server, rows[victim.lower()]["id"])]
        expected_code = faults[0].code or None
        assert outcomes == [("temporary", expected_code)] * len(faults) + [("sent", 250)], outcomes
        assert sink.events_of({"rcpt": "refused_rcpt", "data": "refused_data", "drop_mid_data": "dropped_mid_data",
                               "drop_after_data": "dropped_after_data"}[faults[0].kind])
    else:
        for address in emails:
            outcomes = [o for o, _, _ in history(server, rows[address.lower()]["id"])]
            assert outcomes[-1] == "sent" and set(outcomes[:-1]) == {"temporary"} and len(outcomes) >= 2, outcomes
    time.sleep(0.5)
    assert len(sink.accepted()) == 3 + len(copies), "nothing is sent again once sent"


def test_kill_9_mid_delivery_then_restart_delivers_everything(sinks: list[SmtpSink], launch: Launch) -> None:
    sink = SmtpSink(delay=0.01).start()
    sinks.append(sink)
    server, cls = launch(sink.port, codes=1000, COUPONSVC_SMTP_CONNECTIONS="4", COUPONSVC_LEASE_SECONDS="2",
                         COUPONSVC_DELIVERY_TIMEOUT="120", COUPONSVC_SMTP_TIMEOUT="10")
    emails = addresses(1000, "bulk")
    refused = emails[5::100]  # 10 addresses the relay refuses for good: their coupons must come back
    for address in refused:
        sink.standing(address, Fault.rcpt(550))

    outcome: list[BaseException | Any] = []

    def call() -> None:
        try:
            outcome.append(restkit.dispatch(server.url, emails, class_name=cls))
        except BaseException as exc:  # noqa: BLE001 - the server is killed under this call
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    sink.wait_for(lambda: len(sink.accepted()) >= 100, 60, "delivery under way")
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    before_kill = len(sink.accepted())
    caller.join(30)
    assert not caller.is_alive()
    assert isinstance(outcome[0], Exception), "the call was cut off by the kill"
    assert before_kill < 1000, "the kill landed mid-delivery"
    rows = outbox(server, cls)
    assert len(rows) == 1000, "the dispatch had committed: every message is in the outbox"
    assert sum(r["status"] == "sent" for r in rows.values()) < 1000

    server.start()  # same data directory: the in-process worker takes over once the call's lease expires
    wait_until(all_settled(server, cls, 1000), 90, "the outbox drained after the restart")

    rows = outbox(server, cls)
    refused_keys = {a.lower() for a in refused}
    by_id = {r["message_id"]: r for r in rows.values()}
    delivered_codes: set[str] = set()
    for got in sink.accepted():
        row = by_id[got.message_id]  # every copy carries the Message-ID of its outbox row ...
        check_message(got, row, cls, row["code"])  # ... and that row's address and code
        delivered_codes.add(row["code"])
    for address in emails:
        row = rows[address.lower()]
        if address.lower() in refused_keys:
            assert row["status"] == "failed" and row["state"] == "available", tuple(row)
            assert sink.to(address) == []
        else:
            assert row["status"] == "sent" and row["state"] == "dispatched", tuple(row)
            assert sink.to(address), f"{address} never got its coupon"
    available = {r["code"] for r in query(server, """
        SELECT c.code FROM coupons c JOIN coupon_classes k ON k.id = c.class_id
        WHERE k.name = ? AND c.state = 'available'""", cls)}
    assert len(available) == 10
    assert not available & delivered_codes, "a coupon is both available and delivered"
    counts = sink.count_by_message_id()
    assert len(counts) == 990
    duplicates = {m: n for m, n in counts.items() if n > 1}
    assert len(duplicates) <= before_kill, "only what went out before the kill may go out twice"


def start_worker(server: ServerProcess, name: str, **env: str) -> subprocess.Popen[bytes]:
    """`couponsvc worker` on the server's database and relay, logging to DATA_DIR/NAME.log."""
    with (server.data_dir / f"{name}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "couponsvc", "worker"], stdout=log, stderr=subprocess.STDOUT,
                                env={**server.env, "COUPONSVC_WORKER_POLL": "0.05", **env})


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for p in workers:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
    codes = []
    for p in workers:
        try:
            codes.append(p.wait(15))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    assert codes == [0] * len(workers), f"workers exited with {codes}"


def test_two_workers_never_send_a_message_twice(sinks: list[SmtpSink], launch: Launch) -> None:
    sink = SmtpSink(delay=0.05).start()
    sinks.append(sink)
    server, cls = launch(sink.port, codes=120, COUPONSVC_WORKER="false", COUPONSVC_DELIVERY_TIMEOUT="0")
    emails = addresses(120)
    assert dispatch(server, emails, cls) == []
    time.sleep(0.3)
    assert sink.accepted() == [], "no worker runs yet, and the call left everything queued"
    assert {r["status"] for r in outbox(server, cls).values()} == {"queued"}

    workers = [start_worker(server, f"worker{i}", COUPONSVC_WORKER_BATCH="10") for i in range(2)]
    try:
        wait_until(all_settled(server, cls, 120), 60, "both workers drained the queue")
        time.sleep(0.5)
        assert all(p.poll() is None for p in workers), "both workers were alive throughout"
        counts = sink.count_by_message_id()
        assert len(counts) == 120
        assert {m: n for m, n in counts.items() if n > 1} == {}, "a message was sent twice"
    finally:
        stop_workers(workers)
    check_delivered(server, sink, cls, emails)
    senders = Counter(r["worker"] for r in query(server, "SELECT worker FROM delivery_attempts WHERE outcome = 'sent'"))
    assert len(senders) == 2 and min(senders.values()) >= 10, senders  # both took a share


def test_given_up_after_the_lifetime_then_mail_retry_delivers(sink: SmtpSink, launch: Launch) -> None:
    server, cls = launch(sink.port, COUPONSVC_RETRY_LIFETIME="1.5")
    emails = addresses(2)
    victim = emails[1]
    sink.standing(victim, Fault.rcpt(451))
    assert dispatch(server, emails, cls) == []
    wait_until(lambda: outbox(server, cls)[victim.lower()]["status"] == "failed", 20, "the message given up")

    row = outbox(server, cls)[victim.lower()]
    assert row["state"] == "available" and row["send_to_email"] is None
    outcomes = [o for o, _, _ in history(server, row["id"])]
    assert outcomes[-1] == "gave_up" and set(outcomes[:-1]) == {"temporary"} and len(outcomes) >= 2, outcomes
    status = json.loads(server.cli("mail", "status", "--json").stdout)
    assert (status["queued"], status["sent"], status["failed"]) == (0, 1, 1), status
    assert sink.to(victim) == []

    sink.clear(victim)  # the relay takes it now
    server.cli("mail", "retry")
    wait_until(lambda: outbox(server, cls)[victim.lower()]["status"] == "sent", 20, "the requeued message sent")
    time.sleep(0.5)
    again = check_delivered(server, sink, cls, emails)[victim.lower()]
    assert (again["id"], again["coupon_id"], again["message_id"]) == (row["id"], row["coupon_id"], row["message_id"])
    status = json.loads(server.cli("mail", "status", "--json").stdout)
    assert (status["queued"], status["sent"], status["failed"]) == (0, 2, 0), status


def test_a_slow_relay_does_not_hold_a_call_past_its_delivery_time(sinks: list[SmtpSink], launch: Launch) -> None:
    """Each reply comes within the SMTP timeout, but the transaction as a whole outlasts the call's delivery
    time: the call answers on time and the message is left to the worker (which sends it, at least once)."""
    sink = SmtpSink(delay=1.8).start()  # every end of DATA is answered 1.8 s late
    sinks.append(sink)
    server, cls = launch(sink.port, COUPONSVC_DELIVERY_TIMEOUT="2", COUPONSVC_SMTP_TIMEOUT="10")
    (slow,) = addresses(1)
    sink.plan(slow, Fault.rcpt(250, delay=1.8))  # and the first RCPT TO as late
    started = time.monotonic()
    assert dispatch(server, [slow], cls) == []
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"the call took {elapsed:.1f} s with a 2 s delivery time"
    wait_until(all_settled(server, cls, 1), 20, "the worker sent it")
    row = outbox(server, cls)[slow.lower()]
    assert history(server, row["id"])[0][0] == "temporary"
    got = sink.to(slow)
    assert got, "delivered later"
    for item in got:
        check_message(item, row, cls, dispatched_code(server, cls, slow))


def test_a_call_delivers_its_own_messages_in_bounded_time_while_the_worker_is_busy(
        sinks: list[SmtpSink], launch: Launch) -> None:
    """The worker drains a backlog over the only connection; a new call must not wait for the whole backlog."""
    sink = SmtpSink(delay=0.15).start()
    sinks.append(sink)
    server, cls = launch(sink.port, codes=40, COUPONSVC_SMTP_CONNECTIONS="1", COUPONSVC_DELIVERY_TIMEOUT="1",
                         COUPONSVC_SMTP_TIMEOUT="5")
    backlog = addresses(30, "backlog")
    assert dispatch(server, backlog, cls) == []  # about 6 sent within its second; the rest left to the worker
    sent_by_call = len(sink.accepted())
    assert sent_by_call < 30
    sink.wait_for(lambda: len(sink.accepted()) > sent_by_call + 2, 10, "the worker busy with the backlog")

    late = addresses(1, "late")
    started = time.monotonic()
    assert dispatch(server, late, cls) == []
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"the call took {elapsed:.1f} s with a 1 s delivery time"
    row = outbox(server, cls)[late[0].lower()]
    assert row["status"] == "sent", "the call delivered its own message between the worker's ones"
    assert [w.split(":")[0] for _, _, w in history(server, row["id"])] == ["call"]
    wait_until(all_settled(server, cls, 31), 30, "the backlog drained")
    check_delivered(server, sink, cls, backlog + late)


def test_a_worker_that_lost_its_lease_cannot_undo_a_delivery(sinks: list[SmtpSink], launch: Launch) -> None:
    """Worker A freezes mid-attempt (SIGSTOP) past its lease; worker B takes the message over and delivers it;
    then A wakes up to a late 550.  A's stale outcome must not turn the delivered coupon back into an available
    one (nor mark the sent message failed): it only goes into the history."""
    sink = SmtpSink().start()
    sinks.append(sink)
    server, cls = launch(sink.port, COUPONSVC_WORKER="false", COUPONSVC_DELIVERY_TIMEOUT="0",
                         COUPONSVC_LEASE_SECONDS="1", COUPONSVC_SMTP_TIMEOUT="30")
    (victim,) = addresses(1)
    sink.plan(victim, Fault.rcpt(550, delay=3))  # the first attempt is answered late, with a refusal
    assert dispatch(server, [victim], cls) == []
    a = start_worker(server, "worker-a")
    workers = [a]
    try:
        sink.wait_for(lambda: bool(sink.events_of("holding_rcpt")), 20, "worker A attempting")
        os.kill(a.pid, signal.SIGSTOP)
        workers.append(start_worker(server, "worker-b"))
        wait_until(lambda: outbox(server, cls)[victim.lower()]["status"] == "sent", 20, "worker B delivered it")
        os.kill(a.pid, signal.SIGCONT)
        row = outbox(server, cls)[victim.lower()]
        wait_until(lambda: ("permanent", 550) in [(o, c) for o, c, _ in history(server, row["id"])], 20,
                   "worker A's late refusal recorded")
    finally:
        stop_workers(workers)
    row = outbox(server, cls)[victim.lower()]
    assert row["status"] == "sent"
    assert row["state"] == "dispatched" and row["send_to_email"] == victim
    assert len(sink.to(victim)) == 1
    check_delivered(server, sink, cls, [victim])
    status = json.loads(server.cli("mail", "status", "--json").stdout)
    assert (status["sent"], status["failed"]) == (1, 0), status
