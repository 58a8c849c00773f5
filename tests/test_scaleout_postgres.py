"""Several `serve` and `worker` processes on one PostgreSQL database, with a real SMTP relay.

8 client threads dispatch over two servers from a pool smaller than the demand, with addresses shared
between threads.  Afterwards: no coupon allocated twice, no address with two coupons of the class, every
allocated coupon delivered to the relay (exactly once while nobody is killed; at least once, duplicates
under the same Message-ID, when a server and a worker are SIGKILLed mid-run), and 3004 only once the pool
is really empty: with demand just above the pool, a false 3004 would leave a coupon unallocated.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import restkit, soapkit
from tests.support.databases import postgres_schema_url
from tests.support.seeds import BASE_SEED, new_class_seed
from tests.support.server import ServerProcess
from tests.support.smtp_sink import SmtpSink

POOL = 240
EXTRA_ADDRESSES = 12  # distinct addresses beyond the pool: exactly these end without a coupon
THREADS = 8  # the other half is drawn at random, so threads overlap
CALLS_PER_THREAD = 8
PER_CALL = 12


@dataclass
class Cluster:
    url: str
    schema: str
    sink: SmtpSink
    servers: list[ServerProcess] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "couponsvc", "worker"], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers.append(proc)
        return proc

    def sql(self, query: str, *args: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url.split("?")[0], options=f"-csearch_path={self.schema}") as conn:
            return list(conn.execute(query, args).fetchall())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with postgres_schema_url() as url, SmtpSink(delay=0.002) as sink:
        schema = url.rsplit("%3D", 1)[1]
        env = {
            "COUPONSVC_DATABASE_URL": url, "COUPONSVC_MAIL_URL": sink.url, "COUPONSVC_WORKER": "false",
            "COUPONSVC_LEASE_SECONDS": "3", "COUPONSVC_RETRY_FIRST": "0.2", "COUPONSVC_RETRY_CAP": "1",
            "COUPONSVC_WORKER_POLL": "0.1", "COUPONSVC_DELIVERY_TIMEOUT": "5",
        }
        c = Cluster(url, schema, sink)
        first = ServerProcess(tmp_path / "a", env)
        first.load(BASE_SEED)
        # the second server leaves every message to the workers
        second = ServerProcess(tmp_path / "b", {**env, "COUPONSVC_DELIVERY_TIMEOUT": "0"})
        c.servers = [first, second]
        c.env = {**first.env}
        for s in c.servers:
            s.start()
        c.start_worker()
        c.start_worker()
        try:
            yield c
        finally:
            for s in c.servers:
                s.stop()
            for w in c.workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
                    try:
                        w.wait(15)
                    except subprocess.TimeoutExpired:
                        w.kill()
                        w.wait()


def run_clients(c: Cluster, cls: str, kill_midway: bool) -> tuple[set[str], dict[str, int]]:
    """Returns (every address asked for, address -> how many calls answered 3004 for it)."""
    universe = [f"p{i}@example.com" for i in range(POOL + EXTRA_ADDRESSES)]
    refused: Counter[str] = Counter()
    asked: set[str] = set()
    lock = threading.Lock()
    failures: list[BaseException] = []
    calls_done = [0]

    def one_call(n: int, emails: list[str], attempt: int) -> dict[int, int]:
        alive = [s for s in c.servers if s.proc is not None and s.proc.poll() is None]
        server = alive[(n + attempt) % len(alive)]
        if (n + attempt) % 2:
            res = soapkit.dispatch(server.soap_url, emails, class_name=cls)
            assert res.status == 200, res.fault_codes
            return {e["Index"]: e["Code"] for e in res.batch_errors}
        r = restkit.dispatch(server.url, emails, class_name=cls)
        assert r.status_code == 200, r.text
        return {e["Index"]: e["Code"] for e in r.json()["PartialErrors"]}

    def client(n: int) -> None:
        rng = random.Random(n)
        try:
            for k in range(CALLS_PER_THREAD):
                m = n * CALLS_PER_THREAD + k  # half of each call walks the universe (every address is asked),
                walk = [universe[(m * PER_CALL // 2 + j) % len(universe)] for j in range(PER_CALL // 2)]
                emails = walk + rng.sample([u for u in universe if u not in walk], PER_CALL - len(walk))
                for attempt in range(5):  # a call cut by a killed server is simply sent again
                    try:
                        errors = one_call(n, emails, attempt)
                        break
                    except (httpx.TransportError, AssertionError):
                        if attempt == 4:
                            raise
                        time.sleep(0.2)
                with lock:
                    asked.update(emails)
                    refused.update(e for i, e in enumerate(emails) if errors.get(i) == 3004)
                    assert set(errors.values()) <= {3003, 3004}, errors
                    calls_done[0] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for th in threads:
        th.start()
    if kill_midway:
        deadline = time.monotonic() + 60
        while calls_done[0] < THREADS * CALLS_PER_THREAD // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        c.servers[1].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        c.workers[0].send_signal(signal.SIGKILL)
    for th in threads:
        th.join(180)
    assert not failures, failures
    return asked, dict(refused)


def check(c: Cluster, cls: str, asked: set[str], refused: dict[str, int], *, exactly_once: bool) -> None:
    # every address asked for beyond the pool could be served; a false 3004 would leave a coupon unused
    assert len(asked) == POOL + EXTRA_ADDRESSES
    rows = c.sql(
        "SELECT c.id, c.state, c.send_to_email_key, c.dispatch_id FROM coupons c "
        "JOIN coupon_classes k ON k.id = c.class_id WHERE k.name = %s", cls)
    states = Counter(r[1] for r in rows)
    assert states["available"] == 0, f"coupons left while {sum(refused.values())} answers said 3004: {states}"
    holders = [r[2] for r in rows]
    assert len(holders) == len(set(holders)) == POOL  # one coupon per address, one address per coupon
    assert len(asked - set(holders)) == EXTRA_ADDRESSES
    assert set(refused) >= asked - set(holders)

    # the survivors finish the queue
    def drained() -> bool:
        return c.sql("SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending')")[0][0] == 0
    deadline = time.monotonic() + 120
    while not drained() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert drained(), c.sql("SELECT status, lease_owner, count(*) FROM outbox GROUP BY 1, 2")
    messages = dict(c.sql(
        "SELECT o.message_id, c.code FROM outbox o JOIN coupons c ON c.id = o.coupon_id "
        "JOIN coupon_classes k ON k.id = c.class_id WHERE k.name = %s AND o.status = 'sent'", cls))
    assert len(messages) == POOL
    got = c.sink.count_by_message_id()
    assert set(messages) <= set(got), "a dispatched coupon never reached the relay"
    for received in c.sink.accepted():  # duplicates, if any, are the same message
        if received.message_id in messages:
            assert messages[received.message_id] in received.part("text/plain")
    if exactly_once:
        assert all(got[m] == 1 for m in messages), {m: n for m, n in got.items() if n > 1}


def test_two_servers_two_workers_share_one_pool(cluster: Cluster) -> None:
    cls, seed = new_class_seed(POOL, prefix="SCALE")
    cluster.servers[0].load(seed)
    asked, refused = run_clients(cluster, cls, kill_midway=False)
    check(cluster, cls, asked, refused, exactly_once=True)


def test_killing_a_server_and_a_worker_loses_nothing(cluster: Cluster) -> None:
    cls, seed = new_class_seed(POOL, prefix="KILL")
    cluster.servers[0].load(seed)
    asked, refused = run_clients(cluster, cls, kill_midway=True)
    assert cluster.servers[1].proc is not None and cluster.servers[1].proc.poll() == -signal.SIGKILL
    check(cluster, cls, asked, refused, exactly_once=False)


_ = os  # environment handled by ServerProcess
