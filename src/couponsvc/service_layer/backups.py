"""``couponsvc db backup`` / ``db restore``: the embedded SQLite database is copied by couponsvc itself;
on PostgreSQL the operator's own tools do it, and couponsvc says how (the password never printed)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy.engine import URL, make_url

from couponsvc.adapters import sqlite_backup
from couponsvc.adapters.sqlite_backup import DatabaseFacts
from couponsvc.settings import Settings


@dataclass(frozen=True, slots=True)
class ExternalTool:
    """PostgreSQL: the command to run instead."""

    command: str


def sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _pg_url(settings: Settings) -> tuple[list[str], str, str | None]:
    """For pg_dump / pg_restore: the environment prefix (``PGPASSWORD='***'`` when the URL has a password:
    it is never printed), a libpq URI without the password, and the search_path schema if one is set."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    schema = None
    options = url.query.get("options")
    if isinstance(options, str) and "search_path" in options:
        schema = options.split("search_path", 1)[1].lstrip("=").split(",")[0].split()[0] or None
    env = ["PGPASSWORD=***"] if url.password else []
    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
    return env, bare.render_as_string(hide_password=False), schema


def backup(settings: Settings, target: Path) -> DatabaseFacts | ExternalTool:
    db = sqlite_path(settings)
    if db is None:
        env, uri, schema = _pg_url(settings)
        parts = ["pg_dump", "--format=custom", f"--file={target}", *([f"--schema={schema}"] if schema else []),
                 f"--dbname={uri}"]
        return ExternalTool(" ".join([*env, shlex.join(parts)]))
    return sqlite_backup.backup(db, target)


def restore(settings: Settings, source: Path) -> tuple[DatabaseFacts, Path | None] | ExternalTool:
    db = sqlite_path(settings)
    if db is None:
        env, uri, _ = _pg_url(settings)
        return ExternalTool(" ".join([*env, shlex.join(["pg_restore", "--clean", "--if-exists",
                                                        "--single-transaction", f"--dbname={uri}", str(source)])]))
    return sqlite_backup.restore(db, source, known_revisions())


def known_revisions() -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from couponsvc.adapters.migrate import SCRIPT_LOCATION

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}


def hold_in_use_lock(settings: Settings) -> IO[bytes] | None:
    """For every process that opens the embedded database: ``db restore`` refuses while any holds it."""
    db = sqlite_path(settings)
    return None if db is None else sqlite_backup.hold_shared_lock(db)
