"""Database URLs for parametrised tests: a fresh SQLite file, or a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("COUPONSVC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: not reachable here
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}"


def require_postgres() -> None:
    """Skip when PostgreSQL is not reachable; fail instead where COUPONSVC_REQUIRE_POSTGRES=1 (CI)."""
    reason = postgres_reachable()
    if reason is None:
        return
    if os.environ.get("COUPONSVC_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (COUPONSVC_REQUIRE_POSTGRES=1: the PostgreSQL tests must run)")
    pytest.skip(reason)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema; the schema is dropped afterwards."""
    import psycopg

    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/couponsvc.db"
    else:
        with postgres_schema_url() as url:
            yield url
