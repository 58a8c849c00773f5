"""One migration history for SQLite and PostgreSQL, and it builds exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from couponsvc.adapters.db import make_engine
from couponsvc.adapters.migrate import current_revision, head_revision, upgrade
from couponsvc.adapters.schema import metadata
from tests.support.databases import database_url


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
