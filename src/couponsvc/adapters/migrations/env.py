"""Alembic environment: runs on the engine handed over by couponsvc.adapters.migrate."""

from __future__ import annotations

from alembic import context

from couponsvc.adapters.db import WRITE, make_engine
from couponsvc.adapters.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: take the URL from the settings
    from couponsvc.settings import load_settings

    engine = make_engine(load_settings().database_url)

with engine.connect() as connection:
    connection = connection.execution_options(**{WRITE: True})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # migrations are not bounded by the request-path timeouts of the session (adapters/db.py)
            connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            # several `serve` processes may start at once: one migrates, the others wait, then find it done
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4207131)")
        context.run_migrations()
