"""The operator's settings of the coupon family: `accounts set-email`, `classes set-feature`, seed keys `email`
and `feature_id` (refused when invalid, naming the key), and `coupons list` showing distributed coupons."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Cli
from tests.support.family import SEED, new_class


def test_seed_keys_and_cli_settings(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    cli.load(SEED)
    name, _, seed = new_class(2)
    cli.load(seed, "cls.json")
    assert cli.query("SELECT email FROM accounts WHERE id = 111") == [("owner111@example.com",)]
    assert cli.query("SELECT feature_id FROM coupon_classes WHERE name = 'FAB-F'") == [(7001,)]
    cli.run("accounts", "set-email", "113", "new113@example.com")
    assert cli.query("SELECT email FROM accounts WHERE id = 113") == [("new113@example.com",)]
    cli.run("accounts", "set-email", "113", "--clear")
    assert cli.query("SELECT email FROM accounts WHERE id = 113") == [(None,)]
    cli.run("classes", "set-feature", "--customer", "222", "--class", name.lower(), "--feature-id", "99")
    assert cli.query("SELECT feature_id FROM coupon_classes WHERE name = ?", name) == [(99,)]
    cli.run("classes", "set-feature", "--customer", "222", "--class", name, "--clear")
    assert cli.query("SELECT feature_id FROM coupon_classes WHERE name = ?", name) == [(None,)]
    assert "not a valid email" in cli.refused("accounts", "set-email", "113", "bad address")
    assert "does not exist" in cli.refused("accounts", "set-email", "98765", "a@example.com")
    assert "no coupon class" in cli.refused("classes", "set-feature", "--customer", "222", "--class", "NOPE",
                                            "--feature-id", "1")


def test_bad_seed_values_name_the_key(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    cli.run("db", "upgrade")
    bad_email = {"customers": [{"id": 9, "name": "X", "accounts": [{"id": 9, "email": "nope"}]}]}
    assert "customers[0].accounts[0].email" in cli.refused("load", str(cli.write("a.json", bad_email)))
    bad_feature = {"customers": [{"id": 9, "name": "X", "coupon_classes": [{"name": "C", "feature_id": 2**31}]}]}
    assert "customers[0].coupon_classes[0].feature_id" in cli.refused("load", str(cli.write("b.json", bad_feature)))
    assert cli.query("SELECT count(*) FROM customers") == [(0,)]


def test_inventory_counts_the_coupons_distributed_to_accounts(tmp_path: Path) -> None:
    from couponsvc.service_layer.auth import Credentials
    from couponsvc.service_layer.distribute import DistributeCouponsRequest, distribute_coupons
    from tests.support.family import BOB, DEV
    from tests.support.service import make_container

    cli = Cli(tmp_path / "cli")
    cli.load(SEED)
    c = make_container(cli.data_dir, DATABASE_URL=cli.database_url, DELIVERY_TIMEOUT="0")
    try:  # DistributeCoupons as the API runs it: one FAB-F coupon to Bob's account 444
        outcome = distribute_coupons(c.uow, c.clock, c.dispatch_config, c.authenticate(Credentials(DEV, BOB)),
                                     DistributeCouponsRequest(["444"], "FAB-F", None, False), "tid-inventory")
        assert outcome.partial_errors == [[]], outcome
    finally:
        c.close()
    (line,) = cli.run("coupons", "inventory", "--json", "--customer", "333").stdout.splitlines()
    assert '"available": 1, "dispatched": 0, "distributed": 1, "redeemed": 0' in line
    header, row = cli.run("coupons", "inventory", "--customer", "333").stdout.splitlines()
    assert header.split()[4] == "distributed" and row.split() == ["333", "FAB-F", "1", "0", "1", "0", "0"]
