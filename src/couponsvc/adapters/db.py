"""Builds the SQLAlchemy engine: the one place that knows the dialect quirks.

SQLite runs in WAL mode; a write transaction starts with ``BEGIN IMMEDIATE`` so that it holds
the write lock from its first statement: concurrent writers queue on the busy timeout instead
of failing halfway with "database is locked" when they upgrade a read lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

WRITE = "couponsvc_write"  # execution option: this connection's transactions will write
SQLITE_BUSY_TIMEOUT_S = 60


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    # pre-ping: connections broken by a database restart are replaced instead of failing a call;
    # connect_timeout: an unreachable database fails a call in seconds instead of hanging it
    return create_engine(u, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                         connect_args={"connect_timeout": 5})


def _sqlite_engine(url: str) -> Engine:
    u = make_url(url)
    if u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        u, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}, pool_size=8, max_overflow=8
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver must not open transactions; we do below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine
