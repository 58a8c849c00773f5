"""``couponsvc``: run the service and operate it (data, tokens, code pools)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import click

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
    from couponsvc.domain.redaction import redact_url
    from couponsvc.entrypoints.asgi import create_app
    from couponsvc.entrypoints.cli.demo import DEMO_SEED, demo_banner
    from couponsvc.entrypoints.server import run_server
    from couponsvc.service_layer.seeding import load_seed_document

    container = build_container()
    # with COUPONSVC_LOG_FORMAT=json every line of output is a JSON log line, the banner included
    say = click.echo if container.settings.log_format == "text" else logging.getLogger("couponsvc.serve").info
    if demo:
        load_seed_document(container.uow, container.clock, DEMO_SEED, "demo data")
        say(demo_banner(f"http://{host}:{port}"))
    say(f"couponsvc listening on http://{host}:{port} (database {redact_url(container.settings.database_url)})")
    run_server(create_app(container), container.settings, host, port)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@guard
def load(file: Path) -> None:
    """Load a seed file (JSON): developer tokens, customers, accounts, coupon classes and codes, users and
    access tokens.  All or nothing; loading the same file twice changes nothing the second time."""
    from couponsvc.service_layer.seeding import load_seed, read_seed

    seed = read_seed(file)
    container = build_container()
    report = load_seed(container.uow, container.clock, seed, str(file))
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
    from couponsvc.service_layer.seeding import schema_revision

    container = build_container(migrate=True)
    click.echo(f"database schema at revision {schema_revision(container.uow)}")


@cli.group()
def codes() -> None:
    """Coupon code pools: import codes from a CSV file or generate random ones."""


@contextmanager
def _progress_factory(label: str) -> Iterator[Callable[[int], Callable[[int], object]]]:
    """A progress bar on stderr when it is a terminal (nothing otherwise: logs, pipes, CI), made once the
    length is known: the service calls the factory with it and then the returned callback per chunk."""
    with ExitStack() as stack:
        def start(length: int) -> Callable[[int], object]:
            if not sys.stderr.isatty():
                return lambda _n: None
            bar = stack.enter_context(click.progressbar(length=length, label=label.format(length), file=sys.stderr))
            return bar.update
        yield start


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
    from couponsvc.service_layer.audit import Actor
    from couponsvc.service_layer.codes import import_codes

    container = build_container()
    with _progress_factory("importing {:,} codes") as progress:
        report = import_codes(container.uow, container.clock, Actor.cli(), customer, class_name, file,
                              progress=progress)
    click.echo(f"imported {report.inserted:,} codes into {class_name} ({report.already_in_class:,} were already "
               f"there) in {report.seconds:.1f}s")


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
    from couponsvc.domain.codes import check_capacity
    from couponsvc.service_layer.audit import Actor
    from couponsvc.service_layer.codes import generate_codes

    try:
        check_capacity(pattern, count)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pattern") from None
    started = time.perf_counter()
    container = build_container()
    with _progress_factory("generating {:,} codes") as progress:
        generate_codes(container.uow, container.clock, Actor.cli(), customer, class_name, count, pattern,
                       progress=progress)
    click.echo(f"added {count:,} codes to {class_name} in {time.perf_counter() - started:.1f}s")


@cli.command()
def errors() -> None:
    """Print the error catalogue (codes, ErrorCodes, where they travel, HTTP statuses) as Markdown."""
    from couponsvc.domain.errors import catalogue_markdown

    click.echo(catalogue_markdown(), nl=False)


def _register_modules() -> None:
    from couponsvc.entrypoints.cli import backup, coupons, family, mail, operators, tokens

    mail.register(cli)
    coupons.register(cli)
    family.register(cli)
    backup.register(cli)
    operators.register(cli)
    tokens.register(cli)


_register_modules()


def main() -> None:  # pragma: no cover - console script entry
    cli()


_ = datetime  # re-exported for type checkers of callers
