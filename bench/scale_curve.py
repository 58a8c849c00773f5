"""Benchmark: how DispatchCoupons, SearchCoupons and `codes import` cost as a class's pool grows (SQLite).

One database, one class.  The pool is grown by `couponsvc codes import` (a subprocess, as a user runs it) to
10,000, 100,000, 1,000,000 and 10,000,000 codes (``--max`` stops earlier).  At each size a server is started
on it and these are timed over REST:

* a 1000-address DispatchCoupons (delivery off), ``--rounds`` times;
* a SearchCoupons page: the class's first page of 100, and the coupon sent to one address (SendToEmail Equals).

Targets: dispatch and search stay flat (largest pool <= 1.3x the smallest), and import is linear (the cost per
code of the largest step <= 1.3x that of the 100,000-code step; the first step is mostly start-up).

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


def measure(server: ServerProcess, size: int, rounds: int, counter: list[int]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"dispatch": [], "page": [], "email": []}
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120, headers=HEADERS) as client:
            def dispatch() -> float:
                counter[0] += 1
                emails = [f"s{counter[0]}-{i}@example.com" for i in range(1000)]
                t0 = time.perf_counter()
                r = client.post("/CustomerBilling/v13/Coupons/Dispatch",
                                json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": CLASS})
                elapsed = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]
                return elapsed

            def search(body: dict[str, Any], expect: int) -> float:
                t0 = time.perf_counter()
                r = client.post("/CustomerBilling/v13/Coupons/Search", content=json.dumps(body).encode())
                elapsed = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200 and len(r.json()["Coupons"]) == expect, r.text[:300]
                return elapsed

            page = {"Predicates": [{"Field": "CouponClassName", "Operator": "Equals", "Value": CLASS}],
                    "PageInfo": {"Index": 0, "Size": 100}}
            dispatch()  # warm up; also gives the address searched for
            by_email = {"Predicates": [{"Field": "SendToEmail", "Operator": "Equals",
                                        "Value": f"s{counter[0]}-7@example.com"}]}
            search(page, 100)
            search(by_email, 1)
            for _ in range(rounds):
                out["dispatch"].append(dispatch())
                for _ in range(3):
                    out["page"].append(search(page, 100))
                    out["email"].append(search(by_email, 1))
    finally:
        server.stop()
    return out


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
    server = ServerProcess(work / "data", {"COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_DELIVERY_TIMEOUT": "0",
                                           "COUPONSVC_WORKER": "false"})
    rows: list[dict[str, Any]] = []
    try:
        seed = {**BASE_SEED, "customers": [dict(c) for c in BASE_SEED["customers"]]}
        seed["customers"][0]["coupon_classes"] = [{"name": CLASS, "amount": 10.0, "currency_code": "USD"}]
        server.load(seed)
        have, counter = 0, [0]
        for step, size in enumerate(sizes):
            csv_path = work / "codes.csv"
            write_codes(csv_path, size - have, step)
            t0 = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "couponsvc", "codes", "import", "--customer", "222",
                                     "--class", CLASS, str(csv_path)], env=server.env, capture_output=True, text=True)
            t_import = time.perf_counter() - t0
            assert result.returncode == 0, result.stderr
            csv_path.unlink()
            added, have = size - have, size
            m = measure(server, size, args.rounds, counter)
            db_mb = sum(f.stat().st_size for f in (work / "data").glob("couponsvc.db*")) / 1e6
            rows.append({"size": size, "added": added, "import_s": t_import, "us_per_code": t_import / added * 1e6,
                         "db_mb": db_mb, **{k: median(v) for k, v in m.items()}})
            r = rows[-1]
            print(f"  pool {size:>12,}: import of {added:,} in {t_import:.1f} s ({r['us_per_code']:.1f} us/code); "
                  f"dispatch {r['dispatch']:.1f} ms; page {r['page']:.2f} ms; by email {r['email']:.2f} ms; "
                  f"database {db_mb:,.0f} MB", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"Scale curve, SQLite, one class; medians of {args.rounds} dispatches, {3 * args.rounds} searches per size")
    print(f"  {'pool':>12} {'import step':>12} {'s':>8} {'us/code':>8} {'dispatch ms':>12} {'page ms':>9} "
          f"{'email ms':>9}")
    for r in rows:
        print(f"  {r['size']:>12,} {r['added']:>12,} {r['import_s']:>8.1f} {r['us_per_code']:>8.1f} "
              f"{r['dispatch']:>12.1f} {r['page']:>9.2f} {r['email']:>9.2f}")
    first, last = rows[0], rows[-1]
    for key, name in (("dispatch", "1000-address DispatchCoupons"), ("page", "SearchCoupons class page"),
                      ("email", "SearchCoupons by email")):
        ratio = last[key] / first[key]
        print(f"RESULT scale {name}: {first['size']:,} -> {last['size']:,} codes: {first[key]:.2f} -> "
              f"{last[key]:.2f} ms, ratio {ratio:.2f}x (target <= {FLAT}x) -> {'MET' if ratio <= FLAT else 'NOT MET'}")
    if len(rows) >= 3:
        base = rows[1]
        ratio = last["us_per_code"] / base["us_per_code"]
        print(f"RESULT scale import: {base['us_per_code']:.1f} us/code at {base['added']:,} codes, "
              f"{last['us_per_code']:.1f} us/code at {last['added']:,}: ratio {ratio:.2f}x (linear: <= {FLAT}x) -> "
              f"{'MET' if ratio <= FLAT else 'NOT MET'}")
    print(f"  ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
