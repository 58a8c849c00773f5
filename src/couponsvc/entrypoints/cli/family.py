"""Operator settings of the coupon family: an account's notification email, a class's FeatureId."""

from __future__ import annotations

import click

from couponsvc.entrypoints.cli.common import container, guard


@click.group()
def accounts() -> None:
    """Accounts: where DistributeCoupons notifications go."""


@accounts.command("set-email")
@click.argument("account_id", type=click.IntRange(1))
@click.argument("email", required=False)
@click.option("--clear", is_flag=True, help="Remove the account's email (no notifications).")
@guard
def accounts_set_email(account_id: int, email: str | None, clear: bool) -> None:
    """Set the notification EMAIL of ACCOUNT_ID (DistributeCoupons with SendNotification writes to it)."""
    from couponsvc.service_layer.feature_adoption import set_account_email

    if clear == (email is not None):
        raise click.UsageError("give either EMAIL or --clear")
    set_account_email(container().uow, account_id, None if clear else email)
    click.echo(f"account {account_id}: email {'cleared' if clear else email}")


@click.group()
def classes() -> None:
    """Coupon classes: feature-adoption settings."""


@classes.command("set-feature")
@click.option("--customer", required=True, type=click.IntRange(1), help="Customer id that owns the class.")
@click.option("--class", "class_name", required=True, help="Coupon class name.")
@click.option("--feature-id", type=click.IntRange(1, 2**31 - 1), help="The FeatureId (an int).")
@click.option("--clear", is_flag=True, help="Make it a plain class again.")
@guard
def classes_set_feature(customer: int, class_name: str, feature_id: int | None, clear: bool) -> None:
    """Make a class a feature-adoption class: DistributeCoupons then leaves its coupons `distributed` to each
    account until ClaimFeatureAdoptionCoupons."""
    from couponsvc.service_layer.feature_adoption import set_class_feature

    if clear == (feature_id is not None):
        raise click.UsageError("give either --feature-id or --clear")
    set_class_feature(container().uow, customer, class_name, None if clear else feature_id)
    click.echo(f"class {class_name!r}: feature id {'cleared' if clear else feature_id}")


def register(cli: click.Group) -> None:
    cli.add_command(accounts)
    cli.add_command(classes)
