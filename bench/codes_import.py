"""Benchmark: `couponsvc codes import` of 1,000,000 codes (CSV) against its floor, on SQLite and PostgreSQL.

couponsvc runs as a user runs it (a subprocess: start-up included).  The floor, measured in the same run on
the same machine and file, is the least an importer must do:

* read and parse the CSV with Python's csv module, plus
* insert the codes, in one transaction, into a database with couponsvc's own schema (the same coupons table,
  its unique code index and its other indexes) with raw DB-API: on SQLite (WAL, synchronous=FULL) one
  ``executemany`` and, the other way, one ``INSERT ... SELECT FROM json_each`` per 50,000 codes; on
  PostgreSQL ``COPY`` (and ``executemany`` with ``--all-floors``).  The fastest way is the floor.

The run alternates floor and import (``--rounds`` imports, each into a fresh database, each between two floors)
and compares the medians: one run of either varies by 10 % on this kind of machine, with the disk.

For reference the original floor of issue 11 is printed too: executemany into a bare table with only the
unique index.  Target: import <= 1.25x the floor.

    .venv/bin/python bench/codes_import.py [--count 1000000] [--db sqlite,postgresql] [--rounds 3] [--all-floors]
                                           [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import _common  # noqa: F401  (puts the repository on sys.path)
from _common import verdict
from sqlalchemy import create_engine

from couponsvc.adapters import admin, schema

TARGET = 1.25
CUSTOMER = 222
CLASS = "BENCH-1M"
NOW = "2026-01-01 00:00:00.000000"

SEED = {
    "developer_tokens": [{"token": "DEV-BENCH", "name": "bench"}],
    "customers": [{
        "id": CUSTOMER, "name": "Bench Agency",
        "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD"}],
        "coupon_classes": [
            {"name": CLASS, "amount": 10.0, "currency_code": "USD", "expiration_date": "2099-12-31T23:59:59Z"},
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


def write_csv(path: Path, codes: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("code\n")
        fh.writelines(f"{c}\n" for c in codes)


def run_cli(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "couponsvc", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"couponsvc {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return elapsed, result.stdout.strip()


def parse_csv(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        return [record[0] for record in reader]


# --- raw floors ------------------------------------------------------------------------------------------
def sqlite_floor(work: Path, csv_path: Path, how: str, count: int) -> float:
    """Seconds to parse the CSV and insert its codes raw into couponsvc's schema on SQLite."""
    path = work / f"floor-{how}.db"
    engine = create_engine(f"sqlite:///{path}")
    schema.metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    # the same page cache couponsvc gives a bulk insert (the default 2 MiB makes every random index insert
    # reread pages): the floor is the least work, with every free knob turned
    cache_kib = max(admin.SQLITE_BULK_CACHE_KIB, min(admin.SQLITE_BULK_CACHE_MAX_KIB, count * 160 // 1024))
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"cache_size=-{cache_kib}"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("INSERT INTO customers (id, name) VALUES (222, 'floor')")
    conn.execute("INSERT INTO coupon_classes (id, customer_id, name, name_key) VALUES (1, 222, 'F', 'f')")
    if how == "bare":
        conn.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE)")
    started = time.perf_counter()
    codes = parse_csv(csv_path)
    conn.execute("BEGIN")
    if how == "bare":
        conn.executemany("INSERT INTO bare (code) VALUES (?)", ((c,) for c in codes))
    elif how == "executemany":
        conn.executemany("INSERT INTO coupons (class_id, code, state, origin, created_at) "
                         "VALUES (1, ?, 'available', 'import', ?)", ((c, NOW) for c in codes))
    else:
        for start in range(0, len(codes), 50_000):
            conn.execute("INSERT INTO coupons (class_id, code, state, origin, created_at) "
                         "SELECT 1, value, 'available', 'import', ? FROM json_each(?) ORDER BY key",
                         (NOW, json.dumps(codes[start:start + 50_000])))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    path.unlink()
    return elapsed


def postgres_floor(csv_path: Path, how: str) -> float:
    import psycopg
    from tests.support.databases import postgres_schema_url

    with postgres_schema_url() as url:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        schema.metadata.create_all(engine)
        engine.dispose()
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO customers (id, name) VALUES (222, 'floor')")
            conn.execute("INSERT INTO coupon_classes (id, customer_id, name, name_key) VALUES (1, 222, 'F', 'f')")
            conn.commit()
            started = time.perf_counter()
            codes = parse_csv(csv_path)
            with conn.cursor() as cur:
                if how == "executemany":
                    cur.executemany("INSERT INTO coupons (class_id, code, state, origin, created_at) "
                                    "VALUES (1, %s, 'available', 'import', %s)", [(c, NOW) for c in codes])
                else:
                    with cur.copy("COPY coupons (class_id, code, created_at) FROM STDIN") as copy:
                        for c in codes:
                            copy.write_row((1, c, NOW))
            conn.commit()
            return time.perf_counter() - started


@contextmanager
def database(kind: str, work: Path) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    from tests.support.databases import postgres_schema_url

    with postgres_schema_url() as url:
        yield url


class ImportRun(NamedTuple):
    seconds: float
    again_seconds: float
    said: str
    said_again: str


def run(kind: str, work: Path, csv_path: Path, count: int, all_floors: bool, rounds: int) -> None:
    base_env = {**os.environ, "COUPONSVC_LOG_LEVEL": "WARNING"}
    base_env.pop("COUPONSVC_MAIL_URL", None)
    base_env.pop("COUPONSVC_DATABASE_URL", None)
    seed = work / "seed.json"
    seed.write_text(json.dumps(SEED))
    if kind == "sqlite":
        best_floor = "json_each"
        floor: Callable[[str], float] = lambda how: sqlite_floor(work, csv_path, how, count)  # noqa: E731
        others = ("executemany", "bare")
    else:
        best_floor = "copy"
        floor = lambda how: postgres_floor(csv_path, how)  # noqa: E731
        others = ("executemany",) if all_floors else ()

    def fresh_import(round_no: int) -> ImportRun:
        """One import into a fresh database holding only the seed, and the same import again (a no-op)."""
        data_dir = work / f"data-{kind}-{round_no}"
        env = {**base_env, "COUPONSVC_DATA_DIR": str(data_dir)}
        with database(kind, work) as url:
            if url:
                env["COUPONSVC_DATABASE_URL"] = url
            run_cli(env, "load", str(seed))
            args = ("codes", "import", "--customer", str(CUSTOMER), "--class", CLASS, str(csv_path))
            t_import, said = run_cli(env, *args)
            t_again, said_again = run_cli(env, *args)
        shutil.rmtree(data_dir, ignore_errors=True)
        return ImportRun(t_import, t_again, said, said_again)

    # floor, import, floor, import, ..., floor: each import runs between two floors (a database's background
    # work after a million-row write, e.g. a PostgreSQL checkpoint or the disk writing back, falls on whatever
    # runs next), and the figure and the floor are each the median of their runs
    floors = [floor(best_floor)]
    imports: list[ImportRun] = []
    for round_no in range(rounds):
        imports.append(fresh_import(round_no))
        floors.append(floor(best_floor))
    reference = {how: floor(how) for how in others}
    t_floor = statistics.median(floors)
    t_import = statistics.median(i.seconds for i in imports)
    t_again = statistics.median(i.again_seconds for i in imports)
    # the floor is the fastest way measured (the other ways are timed once, for reference)
    ways = {best_floor: t_floor, **{how: secs for how, secs in reference.items() if how != "bare"}}
    fastest = min(ways, key=lambda how: ways[how])
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    print(f"codes import, {count:,} codes, {name}, {rounds} rounds (median)")
    runs = ", ".join(f"{f:.2f}" for f in floors)
    width = 78
    print(f"  {'floor: csv parse + raw insert into the couponsvc schema, ' + best_floor:<{width}} {t_floor:7.2f} s"
          f"   (runs {runs})")
    for how, secs in reference.items():
        label = "bare table, unique index only (issue 11's floor)" if how == "bare" else \
            f"couponsvc schema, {how} (slower)"
        print(f"  {'for reference: csv parse + raw ' + label:<{width}} {secs:7.2f} s")
    runs = ", ".join(f"{i.seconds:.2f}" for i in imports)
    print(f"  {'couponsvc codes import (subprocess, start-up included)':<{width}} {t_import:7.2f} s   (runs {runs}; "
          f"last: {imports[-1].said})")
    print(f"  {'couponsvc codes import again (a no-op: every code is there)':<{width}} {t_again:7.2f} s   "
          f"({imports[-1].said_again})")
    print(verdict(f"codes import {name} (floor: {fastest})", t_import, ways[fastest], TARGET, "s"))
    if "bare" in reference:
        print(f"  (against issue 11's bare-table floor: {t_import / reference['bare']:.2f}x)")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--rounds", type=int, default=3, help="imports per database, each between two floors")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--all-floors", action="store_true",
                        help="also time executemany on PostgreSQL (several times slower than COPY, never the floor)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="couponsvc-bench-"))
    try:
        csv_path = work / "codes.csv"
        write_csv(csv_path, make_codes(args.count))
        print(f"CSV: {csv_path.stat().st_size / 1e6:.1f} MB, {args.count:,} codes + header")
        for kind in args.db.split(","):
            run(kind.strip(), work, csv_path, args.count, args.all_floors, args.rounds)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
