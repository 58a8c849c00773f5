"""Runs the Alembic migrations (one history for SQLite and PostgreSQL) on an engine.

Every command brings the schema up to date first, and almost always it already is: that check reads the
version table with plain SQL, and Alembic (a tenth of a second to import and to load its scripts) is only
loaded when there is a migration to run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = "couponsvc.adapters:migrations"
#: the newest migration's revision.  A new migration must change it: test_migrations checks it against the
#: scripts (an old value here would let an older schema pass as current)
HEAD = "0005"
VERSION_TABLE = "alembic_version"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and current_revision(engine) == HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema's revision as recorded in Alembic's version table (None: not created by us yet)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
