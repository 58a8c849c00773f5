"""Benchmark: how DispatchCoupons, SearchCoupons and `codes import` cost as a class's pool grows (SQLite).

One database per size, each with one class filled by `couponsvc codes import` (a subprocess, as a user runs
it) of 10,000, 100,000, 1,000,000 and 10,000,000 codes (``--max`` stops earlier): the import times show how
an import scales.  Then a server runs on each database, all at once, and round by round (every size in
turn, so that all see the same machine) these are timed over REST:

* a 1000-address DispatchCoupons (delivery off), ``--rounds`` times;
* a SearchCoupons page: the class's first page of 100, and the coupon sent to one address (SendToEmail Equals).

Targets: dispatch and search stay flat (largest pool <= 1.3x the smallest), and import is linear (the cost per
code of the largest import <= 1.3x that of the 100,000-code one; the smallest is mostly start-up).

    .venv/bin/python bench/scale_curve.py [--max 10000000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import httpx
from _common import median
from tests.support.seeds import ALICE, BASE_SEED, DEV
from tests.support.server import ServerProcess

from couponsvc.domain.codes import generate_codes

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
FLAT = 1.3
CLASS = "SCALE"
HEADERS = {"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "CustomerId": "222",
           "CustomerAccountId": "111", "Content-Type": "application/json"}


def write_codes(path: Path, count: int, tag: int) -> None:
    """``count`` random codes, unique across steps (each step has its own prefix)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("code\n")
        done = 0
        while done < count:
            n = min(500_000, count - done)
            fh.writelines(f"{c}\n" for c in dict.fromkeys(generate_codes(f"S{tag}-XXXX-XXXX-XXXX", n)))
            done += n


class Pool:
    """One database holding one class of ``size`` codes, and a server on it."""

    def __init__(self, work: Path, size: int) -> None:
        self.size = size
        self.server = ServerProcess(work / f"pool-{size}", {
            "COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_DELIVERY_TIMEOUT": "0", "COUPONSVC_WORKER": "false"})
        self.samples: dict[str, list[float]] = {"dispatch": [], "page": [], "email": []}
        self.import_s = 0.0
        self.calls = 0

    def build(self, work: Path) -> None:
        seed = {**BASE_SEED, "customers": [dict(c) for c in BASE_SEED["customers"]]}
        seed["customers"][0]["coupon_classes"] = [{"name": CLASS, "amount": 10.0, "currency_code": "USD"}]
        self.server.load(seed)
        csv_path = work / "codes.csv"
        write_codes(csv_path, self.size, 0)
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "couponsvc", "codes", "import", "--customer", "222",
                                 "--class", CLASS, str(csv_path)], env=self.server.env, capture_output=True,
                                text=True)
        self.import_s = time.perf_counter() - t0
        assert result.returncode == 0, result.stderr
        csv_path.unlink()

    def dispatch(self, client: httpx.Client) -> float:
        self.calls += 1
        emails = [f"s{self.calls}-{i}@example.com" for i in range(1000)]
        t0 = time.perf_counter()
        r = client.post("/CustomerBilling/v13/Coupons/Dispatch",
                        json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": CLASS})
        elapsed = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]
        return elapsed

    def search(self, client: httpx.Client, which: str) -> float:
        if which == "page":
            body: dict[str, Any] = {"Predicates": [{"Field": "CouponClassName", "Operator": "Equals", "Value": CLASS}],
                                    "PageInfo": {"Index": 0, "Size": 100}}
            expect = 100
        else:  # an address the first dispatch sent to
            body = {"Predicates": [{"Field": "SendToEmail", "Operator": "Equals", "Value": "s1-7@example.com"}]}
            expect = 1
        t0 = time.perf_counter()
        r = client.post("/CustomerBilling/v13/Coupons/Search", content=json.dumps(body).encode())
        elapsed = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200 and len(r.json()["Coupons"]) == expect, r.text[:300]
        return elapsed


def measure(pools: list[Pool], rounds: int) -> None:
    """All servers up at once; each round times every pool in turn, so that all sizes see the same machine."""
    clients: list[httpx.Client] = []
    try:
        for pool in pools:
            pool.server.start()
            clients.append(httpx.Client(base_url=pool.server.url, timeout=120, headers=HEADERS))
        for pool, client in zip(pools, clients, strict=True):  # warm up
            pool.dispatch(client)
            pool.search(client, "page")
            pool.search(client, "email")
        for _ in range(rounds):
            for pool, client in zip(pools, clients, strict=True):
                pool.samples["dispatch"].append(pool.dispatch(client))
                for _ in range(3):
                    pool.samples["page"].append(pool.search(client, "page"))
                    pool.samples["email"].append(pool.search(client, "email"))
    finally:
        for client in clients:
            client.close()
        for pool in pools:
            pool.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--max", type=int, default=SIZES[-1], help="largest pool (default 10,000,000)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.rounds > 8:
        parser.error("--rounds is at most 8: the 10,000-code pool must last for all dispatches")
    sizes = [s for s in SIZES if s <= args.max] or [args.max]
    work = Path(tempfile.mkdtemp(prefix="couponsvc-scale-"))
    pools = [Pool(work, size) for size in sizes]
    try:
        for pool in pools:
            pool.build(work)
            print(f"  pool {pool.size:>12,}: imported in {pool.import_s:.1f} s "
                  f"({pool.import_s / pool.size * 1e6:.1f} us/code)", flush=True)
        measure(pools, args.rounds)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rows = [{"size": p.size, "import_s": p.import_s, "us_per_code": p.import_s / p.size * 1e6,
             **{k: median(v) for k, v in p.samples.items()}} for p in pools]
    print(f"Scale curve, SQLite, one class per database; servers measured round-robin; medians of {args.rounds} "
          f"dispatches and {3 * args.rounds} searches per size")
    print(f"  {'pool':>12} {'import s':>9} {'us/code':>8} {'dispatch ms':>12} {'page ms':>9} {'email ms':>9}")
    for r in rows:
        print(f"  {r['size']:>12,} {r['import_s']:>9.1f} {r['us_per_code']:>8.1f} {r['dispatch']:>12.1f} "
              f"{r['page']:>9.2f} {r['email']:>9.2f}")
    first, last = rows[0], rows[-1]
    for key, name in (("dispatch", "1000-address DispatchCoupons"), ("page", "SearchCoupons class page"),
                      ("email", "SearchCoupons by email")):
        ratio = last[key] / first[key]
        print(f"RESULT scale {name}: {first['size']:,} -> {last['size']:,} codes: {first[key]:.2f} -> "
              f"{last[key]:.2f} ms, ratio {ratio:.2f}x (target <= {FLAT}x) -> {'MET' if ratio <= FLAT else 'NOT MET'}")
    if len(rows) >= 3:
        base = rows[1]
        ratio = last["us_per_code"] / base["us_per_code"]
        print(f"RESULT scale import: {base['us_per_code']:.1f} us/code for {base['size']:,} codes, "
              f"{last['us_per_code']:.1f} us/code for {last['size']:,}: ratio {ratio:.2f}x (linear: <= {FLAT}x) -> "
              f"{'MET' if ratio <= FLAT else 'NOT MET'}")
    print(f"  ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
