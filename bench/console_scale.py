"""Benchmark: the operator console over HTTP on a store of 1,000,000 codes and 100,000 dispatch log entries
(SQLite, one server process), and the memory of `unused.csv` streaming all the unused codes.

The store: one class of 1,000,000 codes (`couponsvc codes generate`) and a small second class; then, in plain
SQL so that building stays fast, 100,000 DispatchCoupons log rows over the last 30 days, each with one
dispatched coupon and its (sent) outbox row, and every tenth of those coupons redeemed.

Prints the median and p95 of each page; targets: the overview and the class page each under 300 ms
(median).  Then downloads `unused.csv` (~900,000 codes) and samples the server's resident memory while it
streams: it must stay flat (growth under 64 MiB), and the file must hold exactly the unused codes.

    .venv/bin/python bench/console_scale.py [--count 1000000] [--dispatches 100000] [--rounds 15] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.console import ConsoleClient, add_operator  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

TARGET_MS = 300.0
MAX_GROWTH_MIB = 64
CUSTOMER, CLASS = 222, "BIG-POOL"
SEED = {
    "customers": [{"id": CUSTOMER, "name": "Scale Agency",
                   "accounts": [{"id": 111, "number": "F111", "currency_code": "USD"}],
                   "coupon_classes": [{"name": CLASS, "amount": 10.0, "currency_code": "USD"},
                                      {"name": "SMALL", "generate": 1000}]}],
    "users": [{"name": "bench", "customers": [CUSTOMER]}],
}


def build(server: ServerProcess, count: int, dispatches: int) -> None:
    t0 = time.perf_counter()
    server.load(SEED, "scale")
    server.cli("codes", "generate", "--customer", str(CUSTOMER), "--class", CLASS, "--count", str(count))
    add_operator(server)
    db = sqlite3.connect(server.data_dir / "couponsvc.db", isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        (class_id,) = db.execute("SELECT id FROM coupon_classes WHERE name = ?", (CLASS,)).fetchone()
        (user_id,) = db.execute("SELECT id FROM users WHERE name = 'bench'").fetchone()
        ids = [r[0] for r in db.execute("SELECT id FROM coupons WHERE class_id = ? ORDER BY id LIMIT ?",
                                        (class_id, dispatches))]
        now = datetime.utcnow()
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        rng = random.Random(7)
        rows = []
        for n, coupon_id in enumerate(ids, 1):
            at = (now - timedelta(seconds=rng.uniform(0, 30 * 86400))).strftime(fmt)
            rows.append((n, str(uuid.uuid4()), CUSTOMER, class_id, user_id, 1, 1, at, coupon_id))
        db.executemany("INSERT INTO dispatches (id, tracking_id, customer_id, class_id, user_id, requested, "
                       "allocated, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [r[:8] for r in rows])
        db.executemany("UPDATE coupons SET state = 'dispatched', send_to_email = 'user' || id || '@example.com', "
                       "send_to_email_key = 'user' || id || '@example.com', send_to_date = ?, dispatch_id = ? "
                       "WHERE id = ?", [(r[7], r[0], r[8]) for r in rows])
        db.executemany("INSERT INTO outbox (coupon_id, dispatch_id, recipient, message_id, status, attempts, "
                       "created_at, queued_at, next_attempt_at, sent_at) VALUES (?, ?, 'user' || ? || "
                       "'@example.com', '<c' || ? || '@bench>', 'sent', 1, ?, ?, ?, ?)",
                       [(r[8], r[0], r[8], r[8], r[7], r[7], r[7], r[7]) for r in rows])
        db.executemany("UPDATE coupons SET state = 'redeemed', redeemed_account_id = 111, redemption_date = ? "
                       "WHERE id = ?", [(r[7], r[8]) for r in rows[::10]])
        db.execute("COMMIT")
    finally:
        db.close()
    print(f"store: {count:,} codes, {dispatches:,} dispatches built in {time.perf_counter() - t0:.1f}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (load-independent, unlike wall time on a shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dispatches", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--reuse", type=Path, help="a data directory kept by an earlier --keep run")
    args = parser.parse_args()
    folder = args.reuse or Path(tempfile.mkdtemp(prefix="couponsvc-console-bench-"))
    server = ServerProcess(folder, {"COUPONSVC_WORKER": "false"})
    failures = []
    try:
        if args.reuse is None:
            build(server, args.count, args.dispatches)
        server.start()
        assert server.proc is not None
        with ConsoleClient(server) as console:
            assert console.sign_in().status_code == 303
            first_dispatch = args.dispatches // 2
            pages = {
                "overview /console/": "/console/",
                "class page": f"/console/classes/{CUSTOMER}/{CLASS}",
                "class page, code search": f"/console/classes/{CUSTOMER}/{CLASS}?q=X",
                "class page, address search": f"/console/classes/{CUSTOMER}/{CLASS}?q=user77%40example.com",
                "class page, redeemed only": f"/console/classes/{CUSTOMER}/{CLASS}?state=redeemed",
                "dispatches": "/console/dispatches",
                "dispatches, older page": f"/console/dispatches?before={first_dispatch}",
                "one dispatch": f"/console/dispatches/{first_dispatch}",
                "mail": "/console/mail",
                "mail, failed": "/console/mail?status=failed",
                "mail, ?to=": "/console/mail?to=user5%40example.com",
                "redemptions": "/console/redemptions",
            }
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            print(f"{'page':<30} {'median ms':>10} {'p95 ms':>8} {'server CPU ms':>14}")
            for label, path in pages.items():
                assert console.get(path).status_code == 200, path  # warm up
                times = []
                cpu0 = cpu_seconds(server.proc.pid)
                for _ in range(args.rounds):
                    t = time.perf_counter()
                    r = console.get(path)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, (path, r.status_code)
                cpu = (cpu_seconds(server.proc.pid) - cpu0) * 1000 / args.rounds
                median = statistics.median(times)
                p95 = sorted(times)[int(len(times) * 0.95) - 1]
                target = label in ("overview /console/", "class page")
                mark = f"  (target < {TARGET_MS:.0f})" if target else ""
                print(f"{label:<30} {median:>10.1f} {p95:>8.1f} {cpu:>14.1f}{mark}")
                if target and median >= TARGET_MS:
                    failures.append(f"{label}: {median:.1f} ms")

            pid = server.proc.pid
            before = rss_kib(pid)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], rss_kib(pid))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t = time.perf_counter()
            lines = 0
            size = 0
            with console.stream("GET", f"/console/classes/{CUSTOMER}/{CLASS}/unused.csv") as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    lines += 1
                    size += len(line) + 1
            done.set()
            sampler.join()
            elapsed = time.perf_counter() - t
            growth = (peak[0] - before) / 1024
            db = sqlite3.connect(folder / "couponsvc.db")
            (unused,) = db.execute("SELECT count(*) FROM coupons c JOIN coupon_classes k ON k.id = c.class_id "
                                   "WHERE k.name = ? AND c.state = 'available'", (CLASS,)).fetchone()
            db.close()
            print(f"unused.csv: {lines - 1:,} codes ({size / 1e6:.1f} MB) in {elapsed:.1f}s; server RSS "
                  f"{before / 1024:.0f} MiB before, peak {peak[0] / 1024:.0f} MiB (growth {growth:.1f} MiB, "
                  f"limit {MAX_GROWTH_MIB})")
            if lines - 1 != unused:
                failures.append(f"export held {lines - 1} codes, the database {unused}")
            if growth >= MAX_GROWTH_MIB:
                failures.append(f"export grew the server by {growth:.1f} MiB")
    finally:
        server.stop()
        if args.keep or args.reuse:
            print(f"data kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
