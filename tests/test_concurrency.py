"""Concurrent DispatchCoupons from several threads over two server processes sharing one SQLite database.

The pool is smaller than the demand and threads share addresses.  Afterwards no coupon was given
twice, no address holds two coupons of the class, every success has exactly one queued message,
and the totals add up.  Unprotected allocation (two calls reading the same 'available' rows)
would show up as a coupon with two outbox messages or a success without a coupon.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import restkit, soapkit
from tests.support.seeds import BASE_SEED, new_class_seed
from tests.support.server import ServerProcess

POOL = 150
THREADS = 8
CALLS_PER_THREAD = 6
ADDRESSES_PER_CALL = 8
SHARED_ADDRESSES = 120  # addresses are drawn from this set, so threads overlap


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a = ServerProcess(tmp_path)
    a.load(BASE_SEED)
    a.start()
    b = ServerProcess(tmp_path)
    b.start()
    yield a, b
    a.stop()
    b.stop()


def test_concurrent_dispatch_never_shares_a_coupon(two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = two_servers
    cls, seed = new_class_seed(POOL, prefix="CONC")
    a.load(seed)
    universe = [f"shared{i}@example.com" for i in range(SHARED_ADDRESSES)]
    results: list[tuple[str, int | None]] = []  # (address, error code or None for success)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        rng = random.Random(n)
        server = (a, b)[n % 2]
        try:
            for call in range(CALLS_PER_THREAD):
                emails = rng.sample(universe, ADDRESSES_PER_CALL) + [f"solo{n}-{call}-{i}@example.com"
                                                                     for i in range(ADDRESSES_PER_CALL)]
                if (n + call) % 2:
                    res = soapkit.dispatch(server.soap_url, emails, class_name=cls)
                    assert res.status == 200, res.fault_codes
                    errors = {e["Index"]: e["Code"] for e in res.batch_errors}
                else:
                    r = restkit.dispatch(server.url, emails, class_name=cls)
                    assert r.status_code == 200, r.text
                    errors = {e["Index"]: e["Code"] for e in r.json()["PartialErrors"]}
                with lock:
                    results.extend((email, errors.get(i)) for i, email in enumerate(emails))
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not failures, failures

    successes = [email for email, code in results if code is None]
    codes = Counter(code for _, code in results)
    assert set(codes) <= {None, 3003, 3004}, codes
    assert len(results) == THREADS * CALLS_PER_THREAD * ADDRESSES_PER_CALL * 2

    db = sqlite3.connect(a.data_dir / "couponsvc.db")
    rows = db.execute(
        "SELECT c.id, c.state, c.send_to_email_key FROM coupons c JOIN coupon_classes k ON k.id = c.class_id "
        "WHERE k.name = ?", (cls,)).fetchall()
    outbox = db.execute(
        "SELECT o.coupon_id, o.recipient FROM outbox o JOIN coupons c ON c.id = o.coupon_id "
        "JOIN coupon_classes k ON k.id = c.class_id WHERE k.name = ?", (cls,)).fetchall()
    db.close()

    dispatched = {cid: key for cid, state, key in rows if state == "dispatched"}
    # totals add up: one coupon per success, the pool is used up because demand exceeded it
    assert len(successes) == len(dispatched) == POOL
    assert codes[3004] > 0
    # no address twice, every success holds exactly the coupon its message goes to
    assert len(set(successes)) == len(successes)
    assert sorted(dispatched.values()) == sorted(s.lower() for s in successes)
    assert Counter(cid for cid, _ in outbox) == Counter(dict.fromkeys(dispatched, 1))
    assert {(cid, r.lower()) for cid, r in outbox} == set(dispatched.items())
