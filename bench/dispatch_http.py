"""Benchmark: a 1000-address DispatchCoupons over HTTP (delivery off) against its floor, on SQLite and PostgreSQL.

The floor, measured in the same run on the same machine, is the work the call cannot avoid:

* raw DB-API (``sqlite3`` / ``psycopg``, no SQLAlchemy, no HTTP) doing the same durable writes on a database
  with couponsvc's own schema (the same tables, indexes, constraints and foreign keys): in one transaction,
  read which of the 1000 address keys already hold a coupon of the class, read 1000 available ids oldest
  first, insert the dispatch row, update the 1000 coupons, insert 1000 outbox rows each with its unique
  Message-ID, commit (SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``; PostgreSQL: ``FOR UPDATE SKIP
  LOCKED`` on the ids).  Both ways of writing the rows are timed (``executemany``, and one set-based
  statement per step: ``json_each`` / ``unnest``) and the faster one is the floor;
* plus the ``GET /health`` round trip to the same server (HTTP + one query).

Target: REST DispatchCoupons median <= 1.5x the floor.

    .venv/bin/python bench/dispatch_http.py [--rounds 15] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import httpx
from _common import median, spread, timed, verdict
from sqlalchemy import create_engine
from tests.support.seeds import ALICE, BASE_SEED, DEV
from tests.support.server import ServerProcess
from tests.support.soapkit import dispatch_body, envelope

from couponsvc.adapters import schema

N = 1000
TARGET = 1.5
DOMAIN = "bench.example"


# --- the floor: raw DB-API on couponsvc's schema ------------------------------------------------------------
class RawDispatch:
    """The durable writes of one DispatchCoupons, by hand, on a DB-API connection (qmark or format style)."""

    def __init__(self, conn: Any, pg: bool, class_id: int) -> None:
        self.conn, self.pg, self.class_id = conn, pg, class_id
        self.p = "%s" if pg else "?"

    def _begin(self) -> Any:
        cur = self.conn.cursor()
        if not self.pg:
            cur.execute("BEGIN IMMEDIATE")
        return cur

    def _ts(self, now: datetime) -> Any:
        return now if self.pg else now.strftime("%Y-%m-%d %H:%M:%S.%f")

    def run(self, tag: str, set_based: bool) -> None:
        p, cur = self.p, self._begin()
        emails = [f"{tag}-{i}@example.com" for i in range(N)]
        keys = [e.lower() for e in emails]
        now = self._ts(datetime.now(UTC).replace(tzinfo=None))  # naive UTC, as couponsvc stores it
        if self.pg:
            cur.execute("SELECT send_to_email_key FROM coupons WHERE class_id = %s AND send_to_email_key = ANY(%s)",
                        (self.class_id, keys))
        else:
            cur.execute(f"SELECT send_to_email_key FROM coupons WHERE class_id = ? AND send_to_email_key IN "
                        f"({','.join('?' * N)})", (self.class_id, *keys))
        sent = {r[0] for r in cur.fetchall()}
        assert not sent
        cur.execute(f"SELECT id FROM coupons WHERE class_id = {p} AND state = 'available' ORDER BY id LIMIT {p}"
                    + (" FOR UPDATE SKIP LOCKED" if self.pg else ""), (self.class_id, N))
        ids = [r[0] for r in cur.fetchall()]
        assert len(ids) == N, "the floor's pool ran out"
        cur.execute(f"INSERT INTO dispatches (tracking_id, customer_id, class_id, requested, allocated, created_at) "
                    f"VALUES ({p}, 222, {p}, {N}, {N}, {p}) RETURNING id", (tag[:36], self.class_id, now))
        dispatch_id = cur.fetchone()[0]
        mids = [f"<coupon-{i}.dispatch-{dispatch_id}@{DOMAIN}>" for i in ids]
        if not set_based:
            cur.executemany(f"UPDATE coupons SET state = 'dispatched', send_to_email = {p}, send_to_email_key = {p}, "
                            f"send_to_date = {p}, dispatch_id = {p} WHERE id = {p}",
                            [(e, k, now, dispatch_id, i) for e, k, i in zip(emails, keys, ids, strict=True)])
            cur.executemany(f"INSERT INTO outbox (coupon_id, dispatch_id, recipient, message_id, status, attempts, "
                            f"created_at, queued_at, next_attempt_at) VALUES ({p}, {p}, {p}, {p}, 'queued', 0, "
                            f"{p}, {p}, {p})",
                            [(i, dispatch_id, e, m, now, now, now) for i, e, m in zip(ids, emails, mids, strict=True)])
        elif self.pg:
            cur.execute("UPDATE coupons SET state = 'dispatched', send_to_email = u.e, send_to_email_key = u.k, "
                        "send_to_date = %s, dispatch_id = %s FROM unnest(%s::bigint[], %s::text[], %s::text[]) "
                        "AS u(id, e, k) WHERE coupons.id = u.id", (now, dispatch_id, ids, emails, keys))
            cur.execute("INSERT INTO outbox (coupon_id, dispatch_id, recipient, message_id, status, attempts, "
                        "created_at, queued_at, next_attempt_at) SELECT u.i, %s, u.e, u.m, 'queued', 0, %s, %s, %s "
                        "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS u(i, e, m)",
                        (dispatch_id, now, now, now, ids, emails, mids))
        else:
            cur.execute("UPDATE coupons SET state = 'dispatched', send_to_email = json_extract(j.value, '$[1]'), "
                        "send_to_email_key = json_extract(j.value, '$[2]'), send_to_date = ?, dispatch_id = ? "
                        "FROM json_each(?) AS j WHERE coupons.id = json_extract(j.value, '$[0]')",
                        (now, dispatch_id, json.dumps(list(zip(ids, emails, keys, strict=True)))))
            cur.execute("INSERT INTO outbox (coupon_id, dispatch_id, recipient, message_id, status, attempts, "
                        "created_at, queued_at, next_attempt_at) SELECT json_extract(j.value, '$[0]'), ?, "
                        "json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), 'queued', 0, ?, ?, ? "
                        "FROM json_each(?) AS j", (dispatch_id, now, now, now,
                                                   json.dumps(list(zip(ids, emails, mids, strict=True)))))
        self.conn.commit() if self.pg else cur.execute("COMMIT")


@contextmanager
def raw_floor(kind: str, tmp: Path, pool: int) -> Iterator[RawDispatch]:
    """A database with couponsvc's schema and a class of ``pool`` available codes, and its raw connection."""
    if kind == "sqlite":
        path = tmp / "floor.db"
        create_engine(f"sqlite:///{path}").dispose()
        engine = create_engine(f"sqlite:///{path}")
        schema.metadata.create_all(engine)
        engine.dispose()
        conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        _populate(conn, "?", pool, now=datetime(2026, 1, 1).strftime("%Y-%m-%d %H:%M:%S.%f"))
        try:
            yield RawDispatch(conn, False, 1)
        finally:
            conn.close()
        return
    import psycopg
    from tests.support.databases import postgres_schema_url

    with postgres_schema_url() as url:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        schema.metadata.create_all(engine)
        engine.dispose()
        with psycopg.connect(url) as conn:
            _populate(conn, "%s", pool, now=datetime(2026, 1, 1))
            conn.commit()
            yield RawDispatch(conn, True, 1)


def _populate(conn: Any, p: str, pool: int, now: Any) -> None:
    cur = conn.cursor()
    cur.execute(f"INSERT INTO customers (id, name) VALUES (222, {p})", ("floor",))
    cur.execute(f"INSERT INTO coupon_classes (id, customer_id, name, name_key) VALUES (1, 222, {p}, {p})",
                ("FLOOR", "floor"))
    cur.executemany(f"INSERT INTO coupons (class_id, code, state, origin, created_at) "
                    f"VALUES (1, {p}, 'available', 'import', {p})", [(f"FLOOR-{i:08d}", now) for i in range(pool)])
    cur.execute("ANALYZE")


# --- couponsvc over HTTP ------------------------------------------------------------------------------------
def run(kind: str, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with _server_database(kind, tmp) as url:
            env = {"COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_DELIVERY_TIMEOUT": "0", "COUPONSVC_WORKER": "false"}
            if url:
                env["COUPONSVC_DATABASE_URL"] = url
            server = ServerProcess(tmp / "server", env)
            seed = {**BASE_SEED, "customers": [dict(c) for c in BASE_SEED["customers"]]}
            pool = N * (2 * rounds + 4)
            seed["customers"][0]["coupon_classes"] = [
                {"name": "BENCH", "amount": 10.0, "currency_code": "USD", "generate": pool}]
            server.load(seed)
            server.start()
            counter = iter(range(10**9))
            headers = {"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "CustomerId": "222",
                       "CustomerAccountId": "111", "Content-Type": "application/json"}
            try:
                with httpx.Client(base_url=server.url, timeout=60) as client, \
                        raw_floor(kind, tmp, N * (2 * rounds + 4)) as raw:
                    def health() -> None:
                        assert client.get("/health").status_code == 200

                    def rest() -> None:
                        n = next(counter)
                        emails = [f"r{n}-{i}@example.com" for i in range(N)]
                        r = client.post("/CustomerBilling/v13/Coupons/Dispatch", headers=headers,
                                        json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": "BENCH"})
                        assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]

                    def soap() -> None:
                        n = next(counter)
                        body = envelope(dispatch_body([f"s{n}-{i}@example.com" for i in range(N)], 222, "BENCH"))
                        r = client.post("/Api/Billing/v13/CustomerBillingService.svc", content=body,
                                        headers={"Content-Type": "text/xml; charset=utf-8"})
                        assert r.status_code == 200 and b"BatchError" not in r.content, r.text[:300]

                    def floor(set_based: bool) -> Callable[[], None]:
                        return lambda: raw.run(f"f{next(counter)}", set_based)

                    for fn in (health, rest, soap, floor(False), floor(True)):  # warm up
                        fn()
                    samples: dict[str, list[float]] = {k: [] for k in ("health", "many", "set", "rest", "soap")}
                    for _ in range(rounds):  # interleaved, so that every figure sees the same machine
                        samples["health"] += timed(health, 4)
                        samples["many"] += timed(floor(False), 1)
                        samples["set"] += timed(floor(True), 1)
                        samples["rest"] += timed(rest, 1)
                        samples["soap"] += timed(soap, 1)
            finally:
                server.stop()
    raw_best = min(median(samples["many"]), median(samples["set"]))
    floor_ms = raw_best + median(samples["health"])
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    print(f"DispatchCoupons, {N} addresses, delivery off, {name}, 1 server process ({rounds} rounds, interleaved)")
    print(spread("floor part: GET /health round trip", samples["health"]))
    print(spread("floor part: raw writes, executemany", samples["many"]))
    print(spread("floor part: raw writes, one set-based statement per step", samples["set"]))
    print(spread(f"REST DispatchCoupons x{N}", samples["rest"]))
    print(spread(f"SOAP DispatchCoupons x{N}", samples["soap"]))
    print(verdict(f"dispatch REST {name}", median(samples["rest"]), floor_ms, TARGET))
    print(verdict(f"dispatch SOAP {name}", median(samples["soap"]), floor_ms, TARGET))
    # /health does more than a round trip now (it counts the outbox backlog): the ratio to the raw writes
    # alone shows how much of the floor that part is
    print(f"  (REST against the raw writes alone: {median(samples['rest']) / raw_best:.2f}x)")
    print()
    return {"rest": median(samples["rest"]), "soap": median(samples["soap"]), "floor": floor_ms}


@contextmanager
def _server_database(kind: str, tmp: Path) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    from tests.support.databases import postgres_schema_url

    with postgres_schema_url() as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    args = parser.parse_args()
    started = time.perf_counter()
    for kind in args.db.split(","):
        run(kind.strip(), args.rounds)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
