"""Benchmark: SearchCoupons over REST on a store of 1,000,000 coupons (SQLite, one server process).

The store: three coupon classes of one customer (50% / 30% / 20% of the coupons, made with
`couponsvc codes generate`), every fifth coupon then marked dispatched to its own address and every fiftieth
redeemed (plain SQL, so that building the store stays fast).  The database is not ANALYZEd, as in a real
deployment where nobody runs it.

Prints medians and p95 beside the `/health` round trip of the same server (HTTP + one database query):
- SendToEmail Equals one address (a different, mixed-case one each round);
- a CouponClassName page of 100: the first page of the smallest class (its coupons are the newest: a query
  that walked the coupons table in load order would pass 800,000 rows first), and a random page of it;
- and, for comparison, a page without predicates and SendToEmail StartsWith.
Target: SendToEmail and the CouponClassName page each under 20 ms median.

    .venv/bin/python bench/search_coupons.py [--count 1000000] [--rounds 100] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.server import ServerProcess  # noqa: E402

TARGET_MS = 20.0
DEV, TOKEN, CUSTOMER = "DEV-BENCH-SEARCH", "AT-bench-search", 222
CLASSES = (("BENCH-A", 0.5), ("BENCH-B", 0.3), ("BENCH-C", 0.2))
SEARCH = "/CustomerBilling/v13/Coupons/Search"
SEED = {
    "developer_tokens": [{"token": DEV, "name": "bench"}],
    "customers": [
        {"id": CUSTOMER, "name": "Bench Agency", "accounts": [{"id": 111, "number": "F111", "currency_code": "USD"}],
         "coupon_classes": [{"name": name, "amount": 10.0, "currency_code": "USD", "active_duration": 30,
                             "start_date": "2021-01-01T00:00:00Z"} for name, _ in CLASSES]},
        {"id": 333, "name": "Someone else", "coupon_classes": [{"name": "OTHER", "generate": 1000}]},
    ],
    "users": [{"name": "bench", "customers": [CUSTOMER],
               "access_tokens": [{"token": TOKEN, "expires_at": "2099-01-01T00:00:00Z"}]}],
}


def address(coupon_id: int) -> str:
    return f"User{coupon_id}@Example{coupon_id % 97}.com"


def build_store(server: ServerProcess, count: int) -> dict[str, Any]:
    """Load the seed, generate the codes, mark coupons dispatched and redeemed.  Returns facts for the queries."""
    t0 = time.perf_counter()
    server.load(SEED, "bench")
    for name, share in CLASSES:
        server.cli("codes", "generate", "--customer", str(CUSTOMER), "--class", name, "--count",
                   str(int(count * share)))
    t_codes = time.perf_counter() - t0
    db = sqlite3.connect(server.data_dir / "couponsvc.db", isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "UPDATE coupons SET state = 'dispatched',"
            " send_to_email = 'User' || id || '@Example' || (id % 97) || '.com',"
            " send_to_email_key = 'user' || id || '@example' || (id % 97) || '.com',"
            " send_to_date = '2026-06-01 00:00:00.000000' WHERE id % 5 = 0 AND class_id IN"
            " (SELECT id FROM coupon_classes WHERE customer_id = ?)", (CUSTOMER,))
        db.execute(
            "UPDATE coupons SET state = 'redeemed', redeemed_account_id = 111,"
            " redemption_date = '2026-07-01 00:00:00.000000', usable_until = '2026-07-31 00:00:00.000000',"
            " balance = 10.0 WHERE id % 50 = 0 AND class_id IN (SELECT id FROM coupon_classes WHERE customer_id = ?)",
            (CUSTOMER,))
        db.execute("COMMIT")
        total = db.execute("SELECT COUNT(*) FROM coupons").fetchone()[0]
        sent = [r[0] for r in db.execute("SELECT id FROM coupons WHERE send_to_email IS NOT NULL")]
        smallest = db.execute(
            "SELECT COUNT(*) FROM coupons c JOIN coupon_classes k ON k.id = c.class_id WHERE k.name = ?",
            (CLASSES[-1][0],)).fetchone()[0]
    finally:
        db.close()
    return {"total": total, "sent": sent, "smallest_class_size": smallest, "codes_s": t_codes,
            "build_s": time.perf_counter() - t0}


def timed(fn: Callable[[], None], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(name: str, samples: list[float]) -> str:
    p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]
    return f"  {name:<52} median {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="coupons of the benchmark customer")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    rounds: int = args.rounds

    work = Path(tempfile.mkdtemp(prefix="couponsvc-bench-search-"))
    server = ServerProcess(work, {"COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_WORKER": "false"})
    try:
        print(f"SearchCoupons benchmark: building a store of {args.count:,} coupons in {work} ...", flush=True)
        facts = build_store(server, args.count)
        print(f"  store built in {facts['build_s']:.1f} s ({facts['codes_s']:.1f} s of `codes generate`): "
              f"{facts['total']:,} coupons, {len(facts['sent']):,} sent; smallest class "
              f"{facts['smallest_class_size']:,} coupons")
        server.start()
        rng = random.Random(4)
        headers = {"Authorization": f"Bearer {TOKEN}", "DeveloperToken": DEV, "CustomerId": str(CUSTOMER),
                   "CustomerAccountId": "111", "Content-Type": "application/json"}
        pages_in_class = facts["smallest_class_size"] // 100
        with httpx.Client(base_url=server.url, timeout=60) as client:
            def health() -> None:
                assert client.get("/health").status_code == 200

            def search(body: dict[str, Any], expect: int | None) -> None:
                r = client.post(SEARCH, headers=headers, content=json.dumps(body).encode())
                assert r.status_code == 200, r.text[:300]
                if expect is not None:
                    assert len(r.json()["Coupons"]) == expect, (body, len(r.json()["Coupons"]))

            def by_email() -> None:
                coupon_id = rng.choice(facts["sent"])
                mixed = address(coupon_id).swapcase() if rng.random() < 0.5 else address(coupon_id)
                search({"Predicates": [{"Field": "SendToEmail", "Operator": "Equals", "Value": mixed}]}, 1)

            def class_page(index: Callable[[], int]) -> Callable[[], None]:
                def run() -> None:
                    search({"Predicates": [{"Field": "CouponClassName", "Operator": "Equals",
                                            "Value": CLASSES[-1][0].lower()}],
                            "PageInfo": {"Index": index(), "Size": 100}}, 100)
                return run

            def no_predicates() -> None:
                search({"PageInfo": {"Index": 0, "Size": 100}}, 100)

            def email_prefix() -> None:
                prefix = address(rng.choice(facts["sent"]))[:9]
                search({"Predicates": [{"Field": "SendToEmail", "Operator": "StartsWith", "Value": prefix}]}, None)

            cases: list[tuple[str, Callable[[], None]]] = [
                ("baseline: GET /health round trip", health),
                ("SearchCoupons SendToEmail Equals (target)", by_email),
                ("SearchCoupons CouponClassName page 0 of 100 (target)", class_page(lambda: 0)),
                ("SearchCoupons CouponClassName random page of 100", class_page(lambda: rng.randrange(pages_in_class))),
                ("SearchCoupons no predicates, page 0 of 100", no_predicates),
                ("SearchCoupons SendToEmail StartsWith 9 characters", email_prefix),
            ]
            for _, fn in cases:  # warm up (connection, caches)
                for _ in range(3):
                    fn()
            results = {name: timed(fn, rounds * (2 if fn is health else 1)) for name, fn in cases}
    finally:
        server.stop()
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"SearchCoupons over REST, SQLite, 1 server process, {facts['total']:,} coupons in the store")
    for name, samples in results.items():
        print(summary(name, samples))
    base = statistics.median(results["baseline: GET /health round trip"])
    targets = {name: statistics.median(s) for name, s in results.items() if name.endswith("(target)")}
    for name, med in targets.items():
        print(f"  {name.replace(' (target)', '')}: {med / base:.1f}x the /health baseline")
    verdict = "MET" if all(m < TARGET_MS for m in targets.values()) else "NOT MET"
    print(f"  target: each under {TARGET_MS:.0f} ms median -> {verdict}")


if __name__ == "__main__":
    main()
