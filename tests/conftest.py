"""Shared fixtures: one real server process per test session, on its own data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import postgres_schema_url
from tests.support.seeds import BASE_SEED
from tests.support.server import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running `couponsvc serve` (SQLite, Maildir) loaded with BASE_SEED."""
    proc = ServerProcess(tmp_path_factory.mktemp("server"))
    proc.load(BASE_SEED, "base")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def api_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running server loaded with BASE_SEED, once on SQLite and once on PostgreSQL (a fresh schema):
    the API tests that use it run against both databases."""
    if request.param == "sqlite":
        proc = ServerProcess(tmp_path_factory.mktemp("api-sqlite"))
        proc.load(BASE_SEED, "base")
        proc.start()
        yield proc
        proc.stop()
        return
    with postgres_schema_url() as url:
        proc = ServerProcess(tmp_path_factory.mktemp("api-postgresql"), {"COUPONSVC_DATABASE_URL": url})
        proc.load(BASE_SEED, "base")
        proc.start()
        yield proc
        proc.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
