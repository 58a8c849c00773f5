"""Request bounds over real HTTP against a real server process (issue 10, defects 3, 4 and 8).

A test-held lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``FOR UPDATE`` on every coupon and ``LOCK TABLE``)
makes the calls wait for the database: they must answer ``0 InternalError`` at their request deadline and
change nothing; ``now`` of a dispatch is taken once it holds the lock; REST authenticates before it looks
at the body; an empty SOAP Body is a 100 whatever the SOAPAction; no password reaches the output.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support import restkit, soapkit
from tests.support.databases import PG_ADMIN_URL, postgres_schema_url
from tests.support.seeds import BASE_SEED, CLASS
from tests.support.server import ServerProcess

REQUEST_TIMEOUT = 2.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def bounded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"COUPONSVC_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT), "COUPONSVC_WORKER": "false"}
    if request.param == "sqlite":
        proc = ServerProcess(tmp_path_factory.mktemp("bounds-sqlite"), env)
        proc.load(BASE_SEED, "base")
        proc.start()
        yield proc
        proc.stop()
        return
    with postgres_schema_url() as url:
        proc = ServerProcess(tmp_path_factory.mktemp("bounds-pg"), {**env, "COUPONSVC_DATABASE_URL": url})
        proc.load(BASE_SEED, "base")
        proc.start()
        yield proc
        proc.stop()


class Locker:
    """Holds the database's write path from another session until released."""

    def __init__(self, server: ServerProcess) -> None:
        self.url = server.env.get("COUPONSVC_DATABASE_URL", f"sqlite:///{server.data_dir}/couponsvc.db")
        self.release = threading.Event()
        self.ready = threading.Event()
        self.released_at: datetime | None = None
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        if self.url.startswith("sqlite"):
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            self.ready.set()
            self.release.wait(30)
            self.released_at = datetime.now(UTC).replace(tzinfo=None)
            conn.execute("ROLLBACK")
            conn.close()
            return
        schema = self.url.split("search_path%3D", 1)[1]
        with psycopg.connect(PG_ADMIN_URL) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("SELECT id FROM coupons FOR UPDATE")
            conn.execute("LOCK TABLE dispatches IN ACCESS EXCLUSIVE MODE")
            self.ready.set()
            self.release.wait(30)
            self.released_at = datetime.now(UTC).replace(tzinfo=None)
            conn.rollback()

    def __enter__(self) -> Locker:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(10)


def inventory(server: ServerProcess) -> str:
    return server.cli("coupons", "inventory").stdout


def test_calls_waiting_for_a_locked_database_fail_cleanly_at_their_deadline(bounded: ServerProcess) -> None:
    before = inventory(bounded)

    def soap(i: int) -> tuple[float, soapkit.SoapResult]:
        t0 = time.monotonic()
        r = soapkit.dispatch(bounded.soap_url, [f"locked-soap-{i}@example.com"])
        return time.monotonic() - t0, r

    def rest(i: int) -> tuple[float, httpx.Response]:
        t0 = time.monotonic()
        r = restkit.dispatch(bounded.url, [f"locked-rest-{i}@example.com"])
        return time.monotonic() - t0, r

    with Locker(bounded), ThreadPoolExecutor(8) as pool:
        soaps = [pool.submit(soap, i) for i in range(4)]
        rests = [pool.submit(rest, i) for i in range(4)]
        soap_results = [f.result() for f in soaps]
        rest_results = [f.result() for f in rests]
    for elapsed, s in soap_results:
        assert s.status == 500 and s.fault_codes == [0], (s.status, s.fault_codes)
        assert s.header_tracking_id
        assert elapsed < REQUEST_TIMEOUT + 2.5, f"SOAP call took {elapsed:.1f}s with a {REQUEST_TIMEOUT}s bound"
    for elapsed, r in rest_results:
        assert r.status_code == 500 and restkit.fault_codes(r) == [0], r.text
        assert r.json()["Type"] == "AdApiFaultDetail" and r.headers["TrackingId"]
        assert elapsed < REQUEST_TIMEOUT + 2.5, f"REST call took {elapsed:.1f}s with a {REQUEST_TIMEOUT}s bound"
    assert inventory(bounded) == before
    # the server is fine afterwards
    ok = restkit.dispatch(bounded.url, ["after-the-lock@example.com"])
    assert ok.status_code == 200 and ok.json() == {"PartialErrors": []}, ok.text


def test_dispatch_time_is_taken_once_the_call_holds_the_lock(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"COUPONSVC_WORKER": "false", "COUPONSVC_DELIVERY_TIMEOUT": "0"})
    server.load(BASE_SEED, "base")
    server.start()
    try:
        with ThreadPoolExecutor(1) as pool, Locker(server) as locker:
            future = pool.submit(restkit.dispatch, server.url, ["late-clock@example.com"])
            time.sleep(1.5)
            locker.release.set()
            r = future.result()
        assert r.status_code == 200, r.text
        assert locker.released_at is not None
        conn = sqlite3.connect(tmp_path / "couponsvc.db")
        (sent,) = conn.execute("SELECT send_to_date FROM coupons WHERE send_to_email = 'late-clock@example.com'"
                               ).fetchone()
        conn.close()
        sent_at = datetime.fromisoformat(sent)
        assert sent_at >= locker.released_at.replace(microsecond=0), (sent_at, locker.released_at)
    finally:
        server.stop()


def _bad_json(base: str, **kw: Any) -> httpx.Response:
    return restkit.post(base, restkit.DISPATCH, raw=b'{"SendToEmails": [', **kw)


def test_rest_authenticates_before_refusing_the_body(bounded: ServerProcess) -> None:
    assert restkit.fault_codes(_bad_json(bounded.url, auth=None, dev=None)) == [116]
    assert restkit.fault_codes(_bad_json(bounded.url, dev="NOT-A-DEV-TOKEN")) == [105]
    wrong_type = restkit.post(bounded.url, restkit.DISPATCH, raw=b"<xml/>", content_type="text/xml", auth=None)
    assert wrong_type.status_code == 401 and restkit.fault_codes(wrong_type) == [116]
    # authenticated, the body is judged: 201
    bad = _bad_json(bounded.url)
    assert bad.status_code == 400 and restkit.fault_codes(bad) == [201]
    typed = restkit.post(bounded.url, restkit.DISPATCH, raw=b"{}", content_type="text/plain")
    assert typed.status_code == 400 and restkit.fault_codes(typed) == [201]


def test_an_empty_soap_body_is_a_null_request_whatever_the_soapaction(bounded: ServerProcess) -> None:
    for action in ("NoSuchOperation", '"https://bingads.microsoft.com/Billing/v13/Frobnicate"', "DispatchCoupons"):
        r = soapkit.post(bounded.soap_url, soapkit.envelope(""), extra_headers={"SOAPAction": action})
        assert r.fault_codes == [100], (action, r.fault_codes)
    nil = soapkit.post(bounded.soap_url, soapkit.envelope(
        f'<FrobnicateRequest xmlns="{soapkit.BIL}" i:nil="true"/>'))
    assert nil.fault_codes == [100]
    # a real request element of an operation the service does not implement is still a 204
    unknown = soapkit.post(bounded.soap_url, soapkit.envelope(f'<GetBillingGroupsRequest xmlns="{soapkit.BIL}"/>'))
    assert unknown.fault_codes == [204]


def test_serve_never_prints_the_database_password(tmp_path: Path) -> None:
    with postgres_schema_url() as url:
        secret = "s3cr3t-pw"
        with_password = url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
        server = ServerProcess(tmp_path, {"COUPONSVC_DATABASE_URL": with_password, "COUPONSVC_WORKER": "false"})
        server.start()
        try:
            assert restkit.post(server.url, restkit.DISPATCH, {}).status_code == 401
        finally:
            server.stop()
        log = server.log_text()
        assert "couponsvc listening" in log and "postgres:***@" in log
        assert secret not in log


@pytest.mark.parametrize("key,value", [
    ("DATABASE_URL", "mysql://admin:s3cr3t-pw@db.example.com/coupons"),
    ("DATABASE_URL", "postgresql://admin:s3cr3t-pw@[::1/coupons"),
    ("MAIL_URL", "ftp://mailer:s3cr3t-pw@relay.example.com:25"),
    ("MAIL_URL", "smtp://mailer:s3cr3t-pw@relay.example.com:25?bogus=1"),
    ("MAIL_URL", "smtp://mailer:s3cr3t-pw@relay.example.com"),
    ("PUBLIC_URL", "ftp://user:s3cr3t-pw@coupons.example.com"),
])
def test_settings_errors_redact_secrets_in_urls(tmp_path: Path, key: str, value: str) -> None:
    server = ServerProcess(tmp_path, {f"COUPONSVC_{key}": value})
    result = server.cli("coupons", "inventory", check=False)
    assert result.returncode == 2, result.stderr
    assert f"COUPONSVC_{key}" in result.stderr and "***" in result.stderr
    assert "s3cr3t-pw" not in result.stderr + result.stdout


def test_a_dispatch_waiting_on_locked_coupons_in_postgres_gives_up_inside_its_deadline(tmp_path: Path) -> None:
    """The waiting FOR UPDATE re-read of allocation (after SKIP LOCKED found too few) is cut by lock_timeout
    lowered to the request's remaining time, not the session's default."""
    with postgres_schema_url() as url:
        server = ServerProcess(tmp_path, {"COUPONSVC_DATABASE_URL": url, "COUPONSVC_REQUEST_TIMEOUT": "3",
                                          "COUPONSVC_PG_LOCK_TIMEOUT": "3", "COUPONSVC_PG_STATEMENT_TIMEOUT": "3",
                                          "COUPONSVC_WORKER": "false"})
        server.load(BASE_SEED, "base")
        server.start()
        schema = url.split("search_path%3D", 1)[1]
        try:
            before = inventory(server)
            with psycopg.connect(PG_ADMIN_URL) as conn:
                conn.execute(f'SET search_path TO "{schema}"')
                conn.execute("SELECT c.id FROM coupons c JOIN coupon_classes k ON k.id = c.class_id "
                             "WHERE k.name = %s FOR UPDATE OF c", (CLASS,))
                t0 = time.monotonic()
                r = restkit.dispatch(server.url, ["pg-wait@example.com"])
                elapsed = time.monotonic() - t0
                conn.rollback()
            assert restkit.fault_codes(r) == [0], r.text
            assert elapsed < 3 + 2.0, elapsed
            assert inventory(server) == before
        finally:
            server.stop()
