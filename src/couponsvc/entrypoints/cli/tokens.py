"""`couponsvc token issue | list | revoke` and `couponsvc devtoken create | list | disable | enable`."""

from __future__ import annotations

import json
from datetime import datetime

import click

from couponsvc.domain.errors import OperatorInputError
from couponsvc.entrypoints.cli.common import container, guard


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds") + "Z"


@click.group()
def token() -> None:
    """Access tokens (what API callers send as AuthenticationToken or Authorization: Bearer)."""


@token.command("issue")
@click.argument("user")
@click.option("--ttl", default="30d", show_default=True, help="Lifetime: 3600s, 90m, 12h, 30d.")
@click.option("--customer", "customers", multiple=True, type=click.IntRange(1), help="Link the user to this "
              "customer id (repeatable); the user is created if new.")
@guard
def token_issue(user: str, ttl: str, customers: tuple[int, ...]) -> None:
    """Issue a new access token for USER and print it (once: only its hash is stored).  Its id and prefix,
    printed on stderr, name it later in `token list` and `token revoke`."""
    from couponsvc.service_layer import tokens
    from couponsvc.service_layer.audit import Actor

    tokens.check_name(user, "USER")
    try:
        lifetime = tokens.parse_ttl(ttl)
    except OperatorInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    c = container()
    try:
        issued = tokens.issue_access_token(c.uow, c.clock, Actor.cli(), user, customers, lifetime)
    except tokens.UnknownCustomer as exc:
        raise OperatorInputError(f"--{exc}") from None
    click.echo(issued.secret)
    click.echo(f"access token for {user}, valid until {_iso(issued.expires_at)} (id {issued.id}, prefix "
               f"{issued.prefix}); it is not shown again", err=True)


@token.command("list")
@click.option("--user", help="Only this user's tokens.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@guard
def token_list(user: str | None, limit: int, as_json: bool) -> None:
    """Access tokens, newest first: id, prefix, user, expiry and state (never the secret)."""
    from couponsvc.service_layer import tokens

    c = container()
    now = c.clock()
    for t in tokens.list_access_tokens(c.uow, user=user, limit=limit):
        state = "revoked" if t.revoked_at else ("expired" if t.expires_at <= now else "active")
        if as_json:
            click.echo(json.dumps({"id": t.id, "prefix": t.prefix, "user": t.user, "created_at": _iso(t.created_at),
                                   "expires_at": _iso(t.expires_at), "revoked_at": _iso(t.revoked_at) if
                                   t.revoked_at else None, "state": state}))
        else:
            click.echo(f"{t.id:>6}  {(t.prefix or '(seeded)'):<14} {t.user:<20} {state:<8} expires "
                       f"{_iso(t.expires_at)}")


@token.command("revoke")
@click.argument("prefix", required=False)
@click.option("--user", help="Revoke every access token of this user.")
@click.option("--id", "token_id", type=click.IntRange(1), help="Revoke the token with this id.")
@guard
def token_revoke(prefix: str | None, user: str | None, token_id: int | None) -> None:
    """Revoke access tokens: the one whose PREFIX (shown at issue time) is given, the one with --id, or every
    token of --user.  Every server refuses them (105) from their next call."""
    from couponsvc.service_layer import tokens
    from couponsvc.service_layer.audit import Actor

    if sum(x is not None for x in (prefix, user, token_id)) != 1:
        raise click.UsageError("give exactly one of PREFIX, --user or --id")
    c = container()
    n = tokens.revoke_access_tokens(c.uow, c.clock, Actor.cli(), user=user, token_id=token_id, prefix=prefix)
    click.echo(f"revoked {n} access token(s)")


@click.group()
def devtoken() -> None:
    """Developer tokens (what API callers send as DeveloperToken)."""


@devtoken.command("create")
@click.argument("name")
@guard
def devtoken_create(name: str) -> None:
    """Register an application called NAME and print its developer token (once: only its hash is stored)."""
    from couponsvc.service_layer import tokens
    from couponsvc.service_layer.audit import Actor

    tokens.check_name(name, "NAME")
    c = container()
    issued = tokens.create_developer_token(c.uow, c.clock, Actor.cli(), name)
    click.echo(issued.secret)
    click.echo(f"developer token for {name} (id {issued.id}, prefix {issued.prefix}); it is not shown again",
               err=True)


@devtoken.command("list")
@guard
def devtoken_list() -> None:
    """Developer tokens: id, prefix, application name, enabled or disabled (never the secret)."""
    from couponsvc.service_layer import tokens

    c = container()
    for t in tokens.list_developer_tokens(c.uow):
        click.echo(f"{t.id:>6}  {(t.prefix or '(seeded)'):<14} {t.name:<24} {'enabled' if t.enabled else 'disabled'}")


def _toggle(name: str, enabled: bool) -> None:
    from couponsvc.service_layer import tokens
    from couponsvc.service_layer.audit import Actor

    c = container()
    n = tokens.set_developer_token_enabled(c.uow, c.clock, Actor.cli(), enabled, name=name)
    click.echo(f"{'enabled' if enabled else 'disabled'} {n} developer token(s) of {name}")


@devtoken.command("disable")
@click.argument("name")
@guard
def devtoken_disable(name: str) -> None:
    """Disable the developer token(s) of application NAME: every server refuses them (105) at once."""
    _toggle(name, False)


@devtoken.command("enable")
@click.argument("name")
@guard
def devtoken_enable(name: str) -> None:
    """Enable the developer token(s) of application NAME again."""
    _toggle(name, True)


def register(cli: click.Group) -> None:
    cli.add_command(token)
    cli.add_command(devtoken)
