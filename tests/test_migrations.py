"""One migration history for SQLite and PostgreSQL, and it builds exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from couponsvc.adapters.db import make_engine
from couponsvc.adapters.migrate import HEAD, current_revision, head_revision, upgrade
from couponsvc.adapters.schema import metadata
from tests.support.databases import database_url


def test_the_head_the_start_up_check_knows_is_the_scripts_head(tmp_path: Path) -> None:
    """Start-up skips Alembic when the schema is at migrate.HEAD: a new migration must move HEAD too."""
    engine = make_engine(f"sqlite:///{tmp_path}/db.sqlite")
    try:
        assert HEAD == head_revision(engine), "a new migration: set couponsvc.adapters.migrate.HEAD to its revision"
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_build_the_declared_schema(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            assert current_revision(engine) == head_revision(engine)
            with engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == []
            upgrade(engine)  # a second upgrade is a no-op
        finally:
            engine.dispose()


def test_concurrent_upgrades_on_postgresql_all_succeed(tmp_path: Path) -> None:
    """Several servers starting at once on one database: one migrates, the others wait and find it done."""
    import os
    import subprocess
    import sys

    with database_url("postgresql", tmp_path) as url:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("COUPONSVC_")},
               "COUPONSVC_DATABASE_URL": url, "COUPONSVC_DATA_DIR": str(tmp_path)}
        procs = [subprocess.Popen([sys.executable, "-m", "couponsvc", "db", "upgrade"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
        outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
        engine = make_engine(url)
        try:
            assert current_revision(engine) == head_revision(engine)
        finally:
            engine.dispose()
