"""Benchmark: `couponsvc codes import` of 1,000,000 codes, run as a user runs it (a subprocess, SQLite default).

Prints the import time beside baselines measured in the same run on the same machine:
- reading and parsing the CSV with Python's csv module (the least any importer must do), and
- Python's sqlite3 ``executemany``-inserting the same codes into a bare table with a unique index
  (the least a database import must do),
and the ratio.  Then times a re-import of the same file (a no-op: every code is already in the class)
and `couponsvc codes generate --count 1000000`.

Usage: python bench/codes_import.py [--count N] [--keep]
The target (SPEC section 7, "a million codes is routine"): the import finishes in under 20 s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 20.0
CUSTOMER = 222
CLASS = "BENCH-1M"

SEED = {
    "developer_tokens": [{"token": "DEV-BENCH", "name": "bench"}],
    "customers": [{
        "id": CUSTOMER, "name": "Bench Agency",
        "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD"}],
        "coupon_classes": [
            {"name": CLASS, "amount": 10.0, "currency_code": "USD", "expiration_date": "2099-12-31T23:59:59Z"},
            {"name": "BENCH-GEN", "amount": 10.0, "currency_code": "USD"},
        ],
    }],
}


def make_codes(count: int) -> list[str]:
    """``count`` distinct codes that look like real ones (random, so index inserts are not sequential)."""
    from couponsvc.domain.codes import generate_codes

    codes = list(dict.fromkeys(generate_codes("BNCH-XXXX-XXXX-XXXX", count)))
    while len(codes) < count:
        codes = list(dict.fromkeys(codes + generate_codes("BNCH-XXXX-XXXX-XXXX", count - len(codes))))
    return codes


def run_cli(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "couponsvc", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"couponsvc {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    print(f"    {result.stdout.strip()}")
    return elapsed


def baseline_parse(path: Path) -> float:
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        codes = [record[0] for record in reader]
    elapsed = time.perf_counter() - started
    assert codes
    return elapsed


def baseline_sqlite(work: Path, codes: list[str]) -> float:
    db = work / "baseline.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE coupons (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO coupons (code) VALUES (?)", ((c,) for c in codes))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    count: int = args.count

    work = Path(tempfile.mkdtemp(prefix="couponsvc-bench-"))
    env = {**os.environ, "COUPONSVC_DATA_DIR": str(work / "data"), "COUPONSVC_LOG_LEVEL": "WARNING"}
    env.pop("COUPONSVC_DATABASE_URL", None)
    env.pop("COUPONSVC_MAIL_URL", None)
    try:
        print(f"couponsvc codes import benchmark: {count:,} codes, SQLite, {os.cpu_count()} CPUs, in {work}")
        seed = work / "seed.json"
        seed.write_text(json.dumps(SEED))
        run_cli(env, "load", str(seed))

        codes = make_codes(count)
        csv_path = work / "codes.csv"
        with csv_path.open("w", encoding="utf-8", newline="") as fh:
            fh.write("code,expires_at\n")
            # every tenth code carries its own expiry, to exercise the optional column
            fh.writelines(f"{c},2030-06-30T00:00:00Z\n" if i % 10 == 0 else f"{c}\n" for i, c in enumerate(codes))
        print(f"  CSV: {csv_path.stat().st_size / 1e6:.1f} MB, {count:,} lines + header")

        t_parse = baseline_parse(csv_path)
        t_sqlite = baseline_sqlite(work, codes)
        print("  codes import:")
        t_import = run_cli(env, "codes", "import", "--customer", str(CUSTOMER), "--class", CLASS, str(csv_path))
        print("  codes import again (no-op):")
        t_reimport = run_cli(env, "codes", "import", "--customer", str(CUSTOMER), "--class", CLASS, str(csv_path))
        print(f"  codes generate --count {count}:")
        t_generate = run_cli(env, "codes", "generate", "--customer", str(CUSTOMER), "--class", "BENCH-GEN",
                             "--count", str(count))

        print()
        print(f"  {'baseline: csv module read+parse':<48} {t_parse:7.2f} s")
        print(f"  {'baseline: sqlite3 executemany, unique index':<48} {t_sqlite:7.2f} s")
        print(f"  {'couponsvc codes import (subprocess)':<48} {t_import:7.2f} s"
              f"   = {t_import / t_sqlite:.1f}x sqlite3 baseline, {t_import / t_parse:.1f}x csv parse")
        print(f"  {'couponsvc codes import again (no-op)':<48} {t_reimport:7.2f} s")
        print(f"  {'couponsvc codes generate (subprocess)':<48} {t_generate:7.2f} s"
              f"   = {t_generate / t_sqlite:.1f}x sqlite3 baseline")
        if count == 1_000_000:
            verdict = "OK" if t_import < TARGET_S else "TOO SLOW"
            print(f"  target: import of 1,000,000 codes under {TARGET_S:.0f} s: {verdict}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
