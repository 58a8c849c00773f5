"""`couponsvc operator add | remove | list`: the people who may sign in to the console."""

from __future__ import annotations

import sys

import click

from couponsvc.entrypoints.cli.common import container, guard


@click.group()
def operator() -> None:
    """Console operators (who may sign in at /console/)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


@operator.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input "
              "(for scripts) instead of prompting for it.")
@guard
def operator_add(name: str, password_stdin: bool) -> None:
    """Add an operator called NAME.  The password (at least 8 characters) is stored as a scrypt hash."""
    from couponsvc.service_layer.audit import Actor
    from couponsvc.service_layer.operators import add_operator

    password = _read_password(password_stdin)
    c = container()
    add_operator(c.uow, c.clock, Actor.cli(), name, password)
    click.echo(f"operator {name.strip()} added; sign in at /console/login", err=True)


@operator.command("remove")
@click.argument("name")
@guard
def operator_remove(name: str) -> None:
    """Remove the operator NAME (their console sessions end at once)."""
    from couponsvc.service_layer.audit import Actor
    from couponsvc.service_layer.operators import remove_operator

    c = container()
    remove_operator(c.uow, c.clock, Actor.cli(), name)
    click.echo(f"operator {name} removed", err=True)


@operator.command("list")
@guard
def operator_list() -> None:
    """Every operator, with the time they were added."""
    from couponsvc.service_layer.operators import list_operators

    c = container()
    for row in list_operators(c.uow):
        click.echo(f"{row.name}\t{row.created_at.isoformat(timespec='seconds')}Z")


def register(cli: click.Group) -> None:
    cli.add_command(operator)
