"""Builds the SQLAlchemy engine: the one place that knows the dialect quirks.

SQLite runs in WAL mode; a write transaction starts with ``BEGIN IMMEDIATE`` so that it holds
the write lock from its first statement: concurrent writers queue on the busy timeout instead
of failing halfway with "database is locked" when they upgrade a read lock.

Every wait is bounded by the request deadline of the calling API request (``domain/deadlines.py``):
the wait for a pooled connection, SQLite's busy wait for the write lock (set on each checkout) and
PostgreSQL's ``lock_timeout`` / ``statement_timeout`` (session defaults from the settings, lowered with
``SET LOCAL`` in each transaction to what remains of the deadline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from couponsvc.domain.deadlines import current_deadline, no_deadline, remaining_or

WRITE = "couponsvc_write"  # execution option: this connection's transactions will write
SQLITE_BUSY_TIMEOUT_S = 60
POOL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DbLimits:
    """Waits outside a request (workers, CLI); inside one, the request deadline lowers them."""

    pool_timeout: float = POOL_TIMEOUT_S
    sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT_S
    pg_lock_timeout: float = 10.0
    pg_statement_timeout: float = 25.0


class DeadlinePool(QueuePool):
    """A QueuePool whose checkout wait is capped by the request deadline of the calling thread's context.

    QueuePool reads ``self._timeout`` on every checkout; here it is a property, so the cap follows each
    caller without a lock or a second pool.
    """

    @property
    def _timeout(self) -> float:
        return remaining_or(self._default_timeout)

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._default_timeout = value

    def recreate(self) -> QueuePool:
        with no_deadline():  # the new pool (after a database restart) keeps the engine's own limit
            return super().recreate()


def make_engine(url: str, *, pool_size: int = 8, limits: DbLimits | None = None) -> Engine:
    limits = limits or DbLimits()
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(url, limits)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    # pre-ping: connections broken by a database restart are replaced instead of failing a call;
    # connect_timeout: an unreachable database fails a call in seconds instead of hanging it
    engine = create_engine(u, poolclass=DeadlinePool, pool_size=pool_size, max_overflow=pool_size,
                           pool_pre_ping=True, pool_timeout=limits.pool_timeout,
                           connect_args={"connect_timeout": 5})
    _bound_postgres_waits(engine, limits)
    return engine


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _bound_postgres_waits(engine: Engine, limits: DbLimits) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {_ms(limits.pg_lock_timeout)}")
            cur.execute(f"SET statement_timeout = {_ms(limits.pg_statement_timeout)}")
        dbapi_conn.autocommit = autocommit

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        deadline = current_deadline()
        if deadline is None:
            return
        left = deadline.remaining()
        if left < limits.pg_lock_timeout or left < limits.pg_statement_timeout:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {_ms(min(left, limits.pg_lock_timeout))}")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {_ms(min(left, limits.pg_statement_timeout))}")


def _sqlite_engine(url: str, limits: DbLimits) -> Engine:
    u = make_url(url)
    if u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        u, connect_args={"timeout": limits.sqlite_busy_timeout, "check_same_thread": False},
        poolclass=DeadlinePool, pool_size=8, max_overflow=8, pool_timeout=limits.pool_timeout,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver must not open transactions; we do below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        # the busy wait (for the write lock) never outlasts the request that waits
        busy = remaining_or(limits.sqlite_busy_timeout)
        dbapi_conn.execute(f"PRAGMA busy_timeout={_ms(busy) if busy > 0 else 0}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine
