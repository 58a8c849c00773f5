"""``couponsvc``: run the service and operate it (data, tokens, code pools)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from couponsvc.domain.errors import ConfigurationError
from couponsvc.entrypoints.cli.common import container as build_container
from couponsvc.entrypoints.cli.common import guard


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="couponsvc")
def cli() -> None:
    """couponsvc: the coupon operations of the Microsoft Advertising Customer Billing API v13,
    on the same SOAP and REST wire formats, with real state and real email.

    Settings come from COUPONSVC_* environment variables (COUPONSVC_DATABASE_URL,
    COUPONSVC_MAIL_URL, COUPONSVC_MAIL_FROM, COUPONSVC_DATA_DIR, ...); the defaults keep
    everything in ./couponsvc-data (SQLite and a Maildir).
    """


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--demo", is_flag=True, help="Load a demo customer, class, codes and tokens, and print a request to try.")
@guard
def serve(host: str, port: int, demo: bool) -> None:
    """Run the API (SOAP and REST) after bringing the database schema up to date."""
    from couponsvc.adapters.seed import apply_seed, parse_seed
    from couponsvc.domain.redaction import redact_url
    from couponsvc.entrypoints.asgi import create_app
    from couponsvc.entrypoints.cli.demo import DEMO_SEED, demo_banner
    from couponsvc.entrypoints.server import run_server

    container = build_container()
    # with COUPONSVC_LOG_FORMAT=json every line of output is a JSON log line, the banner included
    say = click.echo if container.settings.log_format == "text" else logging.getLogger("couponsvc.serve").info
    if demo:
        with container.uow.write() as store:
            apply_seed(store.conn, parse_seed(DEMO_SEED, "demo data"), container.clock(), "demo data")
        say(demo_banner(f"http://{host}:{port}"))
    say(f"couponsvc listening on http://{host}:{port} (database {redact_url(container.settings.database_url)})")
    run_server(create_app(container), container.settings, host, port)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@guard
def load(file: Path) -> None:
    """Load a seed file (JSON): developer tokens, customers, accounts, coupon classes and codes, users and
    access tokens.  All or nothing; loading the same file twice changes nothing the second time."""
    from couponsvc.adapters.seed import apply_seed, read_seed_file

    seed = read_seed_file(file)
    container = build_container()
    with container.uow.write() as store:
        report = apply_seed(store.conn, seed, container.clock(), str(file))
    click.echo(
        f"loaded {file}: {report.customers} customers, {report.classes} coupon classes, "
        f"{report.codes_added} codes added, {report.codes_generated} generated, {report.users} users, "
        f"{report.tokens} tokens"
    )


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@guard
def db_upgrade() -> None:
    """Bring the database schema to the newest version (serve does this on start too)."""
    from couponsvc.adapters.migrate import current_revision

    container = build_container(migrate=True)
    click.echo(f"database schema at revision {current_revision(container.engine)}")


@cli.group()
def token() -> None:
    """Access tokens (what API callers send as AuthenticationToken or Authorization: Bearer)."""


MAX_TTL = timedelta(days=36500)


def _parse_ttl(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    hint = "use a positive number with a unit: 3600s, 90m, 12h, 30d"
    try:
        number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
        seconds = float(number) * unit
        if not 0 < seconds <= MAX_TTL.total_seconds():  # also refuses nan and inf
            raise ValueError(hint)
        return timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        raise click.BadParameter(f"{text!r}: {hint} (at most {MAX_TTL.days} days)", param_hint="--ttl") from None


def _check_name(value: str, what: str) -> str:
    if not value.strip() or len(value) > 255 or not value.isprintable():
        raise click.BadParameter(f"{value!r}: the {what} must be 1 to 255 printable characters", param_hint=what)
    return value


@token.command("issue")
@click.argument("user")
@click.option("--ttl", default="30d", show_default=True, help="Lifetime: 3600s, 90m, 12h, 30d.")
@click.option("--customer", "customers", multiple=True, type=click.IntRange(1), help="Link the user to this "
              "customer id (repeatable); the user is created if new.")
@guard
def token_issue(user: str, ttl: str, customers: tuple[int, ...]) -> None:
    """Issue a new access token for USER and print it (once: only its hash is stored)."""
    from couponsvc.adapters import admin
    from couponsvc.domain.tokens import new_secret, token_hash

    _check_name(user, "USER")
    lifetime = _parse_ttl(ttl)
    container = build_container()
    secret = new_secret("cst_")
    now = container.clock()
    with container.uow.write() as store:
        missing = [c for c in customers if not admin.customer_exists(store.conn, c)]
        if missing:
            raise ConfigurationError(f"--customer {missing[0]}: no such customer (load it with `couponsvc load`)")
        user_id = admin.ensure_user(store.conn, user)
        admin.link_customers(store.conn, user_id, customers)
        admin.put_access_token(store.conn, user_id, token_hash(secret), now + lifetime, now, now + lifetime)
    click.echo(secret)
    click.echo(f"access token for {user}, valid until {(now + lifetime).isoformat(timespec='seconds')}Z", err=True)


@cli.group()
def devtoken() -> None:
    """Developer tokens (what API callers send as DeveloperToken)."""


@devtoken.command("create")
@click.argument("name")
@guard
def devtoken_create(name: str) -> None:
    """Register an application called NAME and print its developer token (once: only its hash is stored)."""
    from couponsvc.adapters import admin
    from couponsvc.domain.tokens import new_secret, token_hash

    _check_name(name, "NAME")
    container = build_container()
    secret = new_secret("dev_")
    with container.uow.write() as store:
        admin.upsert_developer_token(store.conn, name, token_hash(secret), True, container.clock())
    click.echo(secret)
    click.echo(f"developer token for {name}; it is not shown again", err=True)


@cli.group()
def codes() -> None:
    """Coupon code pools: import codes from a CSV file or generate random ones."""


def _class_id(conn: Any, customer: int, name: str) -> int:
    from couponsvc.adapters import admin
    from couponsvc.domain.model import class_name_key

    class_id = admin.find_class_id(conn, customer, class_name_key(name))
    if class_id is None:
        raise ConfigurationError(
            f"customer {customer} has no coupon class {name!r}; define it in a seed file and `couponsvc load` it")
    return class_id


@contextmanager
def _progress(length: int, label: str) -> Iterator[Callable[[int], object]]:
    """A progress bar on stderr when it is a terminal; nothing at all otherwise (logs, pipes, CI)."""
    if not sys.stderr.isatty():
        yield lambda _n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


@codes.command("import")
@click.option("--customer", required=True, type=click.IntRange(1), help="Customer id that owns the class.")
@click.option("--class", "class_name", required=True, help="Coupon class name.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@guard
def codes_import(customer: int, class_name: str, file: Path) -> None:
    """Import codes from a CSV FILE (UTF-8): one code per line, optionally `,expires_at` (ISO-8601), optional
    header `code[,expires_at]`.  Codes are dispatched in file order.

    All or nothing: a bad line (named as FILE:LINE), or a code that belongs to another class, imports
    nothing.  Codes already in this class are skipped, so an interrupted import can simply be run again."""
    from couponsvc.adapters import admin
    from couponsvc.adapters.csvcodes import CsvError, read_codes_csv

    started = time.perf_counter()
    container = build_container()
    with container.uow.read() as store:
        _class_id(store.conn, customer, class_name)  # a mistyped class fails before a long read
    parsed = read_codes_csv(file)
    rows = parsed.rows
    with container.uow.write() as store:
        class_id = _class_id(store.conn, customer, class_name)
        with _progress(len(rows), f"importing {len(rows):,} codes") as progress:
            report = admin.insert_codes(store.conn, class_id, rows, "import", container.clock(), progress)
        if report.conflicts:
            code = report.conflicts[0]
            raise CsvError(f"{parsed.where(code)}: code {code!r} already belongs to another coupon class;"
                           " nothing was imported")
    click.echo(f"imported {report.inserted:,} codes into {class_name} ({report.already_in_class:,} were already "
               f"there) in {time.perf_counter() - started:.1f}s")


@codes.command("generate")
@click.option("--customer", required=True, type=click.IntRange(1), help="Customer id that owns the class.")
@click.option("--class", "class_name", required=True, help="Coupon class name.")
@click.option("--count", required=True, type=click.IntRange(1, 10_000_000), help="How many codes to add.")
@click.option("--pattern", default="XXXX-XXXX-XXXX", show_default=True,
              help="X = random letter or digit (no look-alikes), 9 = digit, A = letter, \\ = next char literal; "
                   "anything else is copied.")
@guard
def codes_generate(customer: int, class_name: str, count: int, pattern: str) -> None:
    """Add COUNT cryptographically random codes (from os.urandom) to a class.  All or nothing.

    The pattern must allow at least 1000 times COUNT codes, so that random collisions stay rare."""
    from couponsvc.adapters import admin
    from couponsvc.domain.codes import check_capacity, generate_codes

    try:
        check_capacity(pattern, count)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pattern") from None
    started = time.perf_counter()
    container = build_container()
    with container.uow.write() as store:
        class_id = _class_id(store.conn, customer, class_name)
        with _progress(count, f"generating {count:,} codes") as progress:
            admin.generate_into_class(store.conn, class_id, lambda n: generate_codes(pattern, n), count,
                                      "generated", container.clock(), progress)
    click.echo(f"added {count:,} codes to {class_name} in {time.perf_counter() - started:.1f}s")


@cli.command()
def errors() -> None:
    """Print the error catalogue (codes, ErrorCodes, where they travel, HTTP statuses) as Markdown."""
    from couponsvc.domain.errors import catalogue_markdown

    click.echo(catalogue_markdown(), nl=False)


def _register_modules() -> None:
    from couponsvc.entrypoints.cli import backup, coupons, family, mail

    mail.register(cli)
    coupons.register(cli)
    family.register(cli)
    backup.register(cli)


_register_modules()


def main() -> None:  # pragma: no cover - console script entry
    cli()


_ = datetime  # re-exported for type checkers of callers
