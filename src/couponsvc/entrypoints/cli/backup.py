"""``couponsvc db backup FILE`` and ``couponsvc db restore FILE``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from couponsvc.entrypoints.cli.common import guard
from couponsvc.settings import Settings


def _settings() -> Settings:
    from couponsvc.bootstrap import configure_logging
    from couponsvc.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@guard
def db_backup(file: Path) -> None:
    """Copy the embedded SQLite database to FILE while servers keep running (SQLite's online backup API:
    one consistent instant, whole calls only).  On PostgreSQL, print the pg_dump command to use instead."""
    from couponsvc.service_layer.backups import ExternalTool, backup

    result = backup(_settings(), file)
    if isinstance(result, ExternalTool):
        click.echo("couponsvc does not copy a PostgreSQL database itself; back it up with pg_dump "
                   "(password shown as ***: give it with PGPASSWORD or ~/.pgpass):", err=True)
        click.echo(result.command)
        sys.exit(3)
    click.echo(f"backed up to {file}: schema {result.revision}, {result.coupons:,} coupons, "
               f"{result.outbox:,} outbox messages")


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@guard
def db_restore(file: Path) -> None:
    """Replace the embedded SQLite database with the backup FILE (stop every server and worker first: it
    refuses while any has the database open).  The current database is kept beside it as
    *.pre-restore-TIMESTAMP.  Refuses a file that is not a couponsvc database or whose schema is newer than
    this version knows; an older one is brought up to date by the next `serve` or `db upgrade`.
    On PostgreSQL, print the pg_restore command to use instead."""
    from couponsvc.service_layer.backups import ExternalTool, restore

    result = restore(_settings(), file)
    if isinstance(result, ExternalTool):
        click.echo("couponsvc does not restore a PostgreSQL database itself; use pg_restore "
                   "(password shown as ***: give it with PGPASSWORD or ~/.pgpass):", err=True)
        click.echo(result.command)
        sys.exit(3)
    facts, kept = result
    click.echo(f"restored {file}: schema {facts.revision}, {facts.coupons:,} coupons, {facts.outbox:,} outbox "
               "messages" + (f"; the previous database is kept as {kept}" if kept else ""))


def register(cli: click.Group) -> None:
    db = cli.commands["db"]
    assert isinstance(db, click.Group)
    db.add_command(db_backup)
    db.add_command(db_restore)
