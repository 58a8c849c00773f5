"""Database waits are bounded by the request deadline, and only real races are retried (issue 10, 3/4/8).

Real SQLite files and a real PostgreSQL schema; another connection holds the locks.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from couponsvc.adapters import schema as t
from couponsvc.bootstrap import Container
from couponsvc.domain.deadlines import request_deadline
from couponsvc.domain.errors import DeadlineExceeded
from couponsvc.service_layer.unit_of_work import RetryableConflict
from tests.support.databases import database_url
from tests.support.seeds import BASE_SEED
from tests.support.service import make_container


@pytest.fixture(params=["sqlite", "postgresql"])
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Container]:
    with database_url(request.param, tmp_path) as url:
        c = make_container(tmp_path, BASE_SEED, DATABASE_URL=url)
        try:
            yield c
        finally:
            c.close()


def _class_id(c: Container, name: str = "SPRING-100") -> int:
    with c.uow.read() as store:
        return int(store.conn.scalar(select(t.coupon_classes.c.id).where(t.coupon_classes.c.name == name)))


def _hold_write_lock(c: Container, seconds: float) -> threading.Thread:
    """Another session holds the write lock (SQLite) / every coupon row and the table lock (PostgreSQL)."""
    ready = threading.Event()
    url = c.settings.database_url

    def hold() -> None:
        if url.startswith("sqlite"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            ready.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
            conn.close()
            return
        schema = url.split("search_path%3D", 1)[1]
        with psycopg.connect(url.split("?", 1)[0]) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("SELECT id FROM coupons FOR UPDATE")
            conn.execute("LOCK TABLE dispatches IN ACCESS EXCLUSIVE MODE")
            ready.set()
            time.sleep(seconds)
            conn.rollback()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert ready.wait(10)
    return thread


def test_a_locked_database_fails_the_call_at_its_deadline_not_after_the_engine_limit(container: Container) -> None:
    holder = _hold_write_lock(container, 6.0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), request_deadline(1.0):
        with container.uow.write() as store:
            store.conn.execute(text("SELECT id FROM coupons WHERE state = 'available' ORDER BY id LIMIT 5 FOR UPDATE")
                               if container.settings.database_url.startswith("postgresql")
                               else text("UPDATE coupons SET state = state WHERE id < 0"))
            store.conn.execute(insert(t.dispatches).values(
                tracking_id="x", customer_id=222, class_id=_class_id(container), user_id=None,
                requested=1, allocated=0, created_at=container.clock()))
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"waited {elapsed:.1f}s for a lock with a 1s deadline"
    holder.join()


def test_an_exhausted_pool_fails_the_call_at_its_deadline(container: Container) -> None:
    held = [container.engine.connect() for _ in range(16)]  # pool_size 8 + max_overflow 8
    try:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded), request_deadline(0.5), container.uow.read() as store:
            store.conn.execute(text("SELECT 1"))
        assert time.monotonic() - started < 2.5
    finally:
        for conn in held:
            conn.close()


def test_time_running_out_before_the_commit_changes_nothing(container: Container) -> None:
    before = _count_dispatches(container)
    with pytest.raises(DeadlineExceeded), request_deadline(0.3):
        with container.uow.write() as store:
            store.conn.execute(insert(t.dispatches).values(
                tracking_id="late", customer_id=222, class_id=_class_id(container), user_id=None,
                requested=1, allocated=0, created_at=container.clock()))
            time.sleep(0.5)
    assert _count_dispatches(container) == before


def _count_dispatches(c: Container) -> int:
    with c.uow.read() as store:
        return int(store.conn.scalar(text("SELECT count(*) FROM dispatches")))


def test_a_known_unique_race_is_retryable(container: Container) -> None:
    with pytest.raises(RetryableConflict), container.uow.write() as store:
        store.conn.execute(insert(t.coupons).values(class_id=_class_id(container), code="SPR-0001",
                                                    state="available", created_at=container.clock()))


def test_any_other_integrity_error_is_not_a_race(container: Container) -> None:
    """A foreign-key bug must fail at once (an internal error), not be retried eight times as a 'race'."""
    with pytest.raises(IntegrityError), container.uow.write() as store:
        store.conn.execute(insert(t.coupons).values(class_id=999_999, code="ORPHAN-1", state="available",
                                                    created_at=container.clock()))


def test_postgres_sessions_carry_lock_and_statement_timeouts(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path) as url:
        c = make_container(tmp_path, None, DATABASE_URL=url, PG_LOCK_TIMEOUT="4", PG_STATEMENT_TIMEOUT="9")
        try:
            with c.uow.read() as store:
                assert store.conn.scalar(text("SHOW lock_timeout")) == "4s"
                assert store.conn.scalar(text("SHOW statement_timeout")) == "9s"
            with request_deadline(2.0), c.uow.read() as store:  # lowered to what is left of the call
                lock = store.conn.scalar(text("SHOW lock_timeout"))
                assert lock.endswith("ms") and 1000 < int(lock[:-2]) <= 2000, lock
        finally:
            c.close()


def test_sqlite_busy_timeout_never_exceeds_the_remaining_request_time(tmp_path: Path) -> None:
    c = make_container(tmp_path)
    try:
        with request_deadline(1.5), c.uow.read() as store:
            busy = int(store.conn.scalar(text("PRAGMA busy_timeout")))
            assert 1000 < busy <= 1500
        with c.uow.read() as store:  # outside a request: the engine's own limit
            assert int(store.conn.scalar(text("PRAGMA busy_timeout"))) == 60_000
    finally:
        c.close()
