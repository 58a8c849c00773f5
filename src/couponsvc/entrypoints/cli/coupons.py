"""Operator views of coupons: `coupons list` (the SearchCoupons filters) and `coupons inventory`."""

from __future__ import annotations

import json

import click

from couponsvc.entrypoints.cli.common import container, guard


@click.group()
def coupons() -> None:
    """Look at coupons: what was sent to whom, what was redeemed, what is left."""


@coupons.command("list")
@click.option("--customer", "customers", multiple=True, type=click.IntRange(1),
              help="Only this customer's coupons (repeatable; default: every customer).")
@click.option("--class", "class_name", help="Coupon class name (case-insensitive).")
@click.option("--code", help="Coupon code (exact).")
@click.option("--to", "send_to", help="Sent to this address (case-insensitive).")
@click.option("--redeemed/--not-redeemed", default=None, help="Only redeemed, or only unredeemed, coupons.")
@click.option("--order", type=click.Choice(["Id", "CouponClassName", "CouponStartDate"]), default="Id",
              show_default=True, help="Sort field (Id is load order).")
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option("--page", default=0, show_default=True, type=click.IntRange(0), help="Zero-based page.")
@click.option("--size", default=100, show_default=True, type=click.IntRange(1, 1000), help="Page size.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as the REST API writes them.")
@guard
def coupons_list(customers: tuple[int, ...], class_name: str | None, code: str | None, send_to: str | None,
                 redeemed: bool | None, order: str, desc: bool, page: int, size: int, as_json: bool) -> None:
    """List coupons with the same filters, ordering and paging as SearchCoupons."""
    from couponsvc.entrypoints.wire import coupon_fields, to_json
    from couponsvc.service_layer.inventory import search_coupons

    c = container()
    rows = search_coupons(c.uow, list(customers) or None, class_name=class_name, code=code, send_to=send_to,
                          redeemed=redeemed, order=order, descending=desc, page=page, size=size)
    for v in rows:
        if as_json:
            click.echo(json.dumps(to_json(coupon_fields(v))))
        else:
            state = "redeemed" if v.is_redeemed else ("dispatched" if v.send_to_email else "available")
            sent = f" -> {v.send_to_email}" if v.send_to_email else ""
            if v.state == "distributed":
                state, sent = "distributed", f" -> account {v.distributed_account_id}"
            elif v.claim is not None:
                state, sent = "claimed", f" -> account {v.claim.account_id} on {v.claim.claim_date:%Y-%m-%d %H:%M}"
            elif v.distributed_account_id is not None:
                sent = f" -> account {v.distributed_account_id} (distributed)"
            click.echo(f"{v.customer_id}  {v.class_name:<20} {v.code:<24} {state:<11}{sent}")
    if not rows:
        click.echo("no coupons match", err=True)


@coupons.command("inventory")
@click.option("--customer", "customers", multiple=True, type=click.IntRange(1),
              help="Only this customer's classes (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@guard
def coupons_inventory(customers: tuple[int, ...], as_json: bool) -> None:
    """Per coupon class: how many coupons are available, dispatched (sent by email), distributed (given to an
    account by DistributeCoupons), redeemed, and expired unused."""
    from couponsvc.service_layer.inventory import overview

    c = container()
    inventories, _total = overview(c.uow, c.clock, list(customers) or None, page_size=1_000_000)
    rows = [inv.as_dict() for inv in inventories]
    if as_json:
        for r in rows:
            click.echo(json.dumps(r))
        return
    click.echo(f"{'customer':>9}  {'class':<24} {'available':>10} {'dispatched':>10} {'distributed':>11} "
               f"{'redeemed':>10} {'expired':>8}")
    for r in rows:
        click.echo(f"{r['customer_id']:>9}  {r['name']:<24} {r['available']:>10,} {r['dispatched']:>10,} "
                   f"{r['distributed']:>11,} {r['redeemed']:>10,} {r['expired']:>8,}")


def register(cli: click.Group) -> None:
    cli.add_command(coupons)
