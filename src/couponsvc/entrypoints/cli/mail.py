"""Mail commands: the standalone delivery worker and the outbox views (status, retry, history, templates)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import click

from couponsvc.domain.errors import ConfigurationError
from couponsvc.entrypoints.cli.common import container, guard


@click.command()
@click.option("--until-idle", is_flag=True,
              help="Exit once nothing is due (messages waiting for a later retry are left for later).")
@guard
def worker(until_idle: bool) -> None:
    """Run a delivery worker alone: it sends queued coupon emails, retries temporary failures with backoff and
    gives up after the lifetime.  Several workers (and `serve` processes) may run at once on one database:
    each message is held by one worker at a time under a lease."""
    from couponsvc.service_layer.delivery import worker_name

    c = container()
    deliverer = c.deliverer(worker_name("worker"))
    if c.settings.metrics_port and c.settings.metrics:  # this worker's counters for Prometheus
        from couponsvc.service_layer.metrics import serve_process_metrics

        serve_process_metrics(c.settings.metrics_port)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if until_idle:
                await deliverer.run_until_idle(stop)
            else:
                await deliverer.run_forever(stop)
        finally:
            await c.transport.aclose()

    click.echo(f"delivery worker {deliverer.name} ({c.settings.mail_url.split('@')[-1]})", err=True)
    asyncio.run(run())


@click.group()
def mail() -> None:
    """The outbox of coupon emails: status, retries, per-message history and templates."""


@mail.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@guard
def mail_status(as_json: bool) -> None:
    """How many messages are queued, sent and failed, how long the oldest queued one has waited, and the
    mail relay's state as the delivery processes last saw it (ok / failing, its last reply, since when)."""
    from couponsvc.service_layer.mail_admin import status_counts

    c = container()
    counts = status_counts(c.uow, c.clock)
    relay = c.relay_status().as_json()
    if as_json:
        click.echo(json.dumps({**counts, "relay": relay}))
        return
    age = counts["oldest_queued_seconds"]
    click.echo(f"queued  {counts['queued']:>9,}   (being sent now: {counts['sending']:,})")
    click.echo(f"sent    {counts['sent']:>9,}")
    click.echo(f"failed  {counts['failed']:>9,}   (coupons returned to the pool; see `couponsvc mail retry`)")
    click.echo("oldest queued: " + ("-" if age is None else f"{age:,.0f} s ago"))
    last = "" if relay["last_reply"] is None else f": {relay['last_reply']}"
    since = "" if relay["since"] is None else f" since {relay['since']}"
    click.echo(f"relay: {relay['state']}{since}{last}")


@mail.command("retry")
@guard
def mail_retry() -> None:
    """Queue failed messages again.  A message is requeued only if its coupon is still unused, and that
    coupon is given back to the same address; otherwise it is skipped (the coupon went to someone else)."""
    from couponsvc.service_layer.audit import Actor
    from couponsvc.service_layer.mail_admin import retry

    c = container()
    requeued, skipped = retry(c.uow, c.clock, Actor.cli())
    click.echo(f"requeued {requeued:,} failed messages; skipped {skipped:,} whose coupon is no longer free")


@mail.command("history")
@click.option("--to", "recipient", help="Messages to this address (case-insensitive).")
@click.option("--code", help="Messages carrying this coupon code.")
@click.option("--message-id", help="One message, by its Message-ID header.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of text.")
@guard
def mail_history(recipient: str | None, code: str | None, message_id: str | None, limit: int,
                 as_json: bool) -> None:
    """Every delivery attempt of the selected messages, oldest first."""
    from couponsvc.service_layer.mail_admin import history

    if not (recipient or code or message_id):
        raise click.UsageError("choose messages with --to, --code or --message-id")
    c = container()
    rows = history(c.uow, recipient=recipient, code=code, message_id=message_id, limit=limit)
    if not rows:
        click.echo("no such message", err=True)
        raise SystemExit(1)
    for r in rows:
        if as_json:
            click.echo(json.dumps(r, default=str))
            continue
        when = "-" if r["attempted_at"] is None else r["attempted_at"].isoformat(timespec="seconds") + "Z"
        smtp = "" if r["smtp_code"] is None else f" {r['smtp_code']}"
        click.echo(f"{r['message_id']} to {r['recipient']} [{r['status']}] code {r['code']}: "
                   f"{when} {r['outcome'] or 'not attempted yet'}{smtp} {r['detail'] or ''}".rstrip())


@mail.command("template")
@click.option("--customer", required=True, type=click.IntRange(1), help="Customer id that owns the class.")
@click.option("--class", "class_name", required=True, help="Coupon class name.")
@click.argument("file", required=False, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--reset", is_flag=True, help="Go back to the default template.")
@click.option("--show", is_flag=True, help="Print the template in use.")
@guard
def mail_template(customer: int, class_name: str, file: Path | None, reset: bool, show: bool) -> None:
    """Set the email template of a class from FILE (UTF-8): Jinja2 blocks {% block subject %},
    {% block text %} and {% block html %} override the default ones (a block left out stays the
    default; {{ super() }} inside a block renders the default one).  Variables: code, class_name, value,
    threshold, redeem_by, active_days; the html block is HTML-escaped.  The template is checked before it
    is stored: it must compile, use only those variables and nothing the sandbox forbids, and show
    {{ code }} in both the text and the html part; a refusal names the line."""
    from couponsvc.service_layer import mail_admin
    from couponsvc.service_layer.audit import Actor

    if sum((file is not None, reset, show)) != 1:
        raise click.UsageError("give exactly one of FILE, --reset or --show")
    c = container()
    if show:
        cls = mail_admin.coupon_class(c.uow, customer, class_name)
        click.echo(cls.template if cls.template else f"(the default template, {mail_admin.DEFAULT_TEMPLATE})")
        return
    source = None
    if file is not None:
        try:
            source = file.read_text("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"{file}: not UTF-8 text (byte {exc.start}); save the template as UTF-8") from None
        try:
            mail_admin.check_source(source)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{file}: {exc}") from exc
    mail_admin.save_template(c.uow, c.clock, Actor.cli(), customer, class_name, source)
    click.echo("template reset to the default" if reset else f"template of {class_name} set from {file}")


def register(cli: click.Group) -> None:
    cli.add_command(worker)
    cli.add_command(mail)
