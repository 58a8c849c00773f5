"""`couponsvc coupons list` (the SearchCoupons filters, for operators) and `couponsvc coupons inventory`
(per class: available / dispatched / redeemed / expired), run as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from couponsvc.adapters import schema as t
from couponsvc.service_layer.auth import Credentials
from couponsvc.service_layer.coupons import RedeemCouponRequest, redeem_coupon
from couponsvc.service_layer.dispatch import DispatchCouponsRequest, dispatch_coupons
from tests.support.cli import Cli
from tests.support.service import make_container

SPRING = [f"SPR-{i:03d}" for i in range(10)]
SEED: dict[str, Any] = {
    "developer_tokens": [{"token": "DEV-CLI-COUPONS", "name": "cli"}],
    "customers": [
        {"id": 222, "name": "Contoso", "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD"}],
         "coupon_classes": [
             {"name": "Spring-100", "amount": 100.0, "currency_code": "USD", "spend_threshold": 25.0,
              "active_duration": 30, "start_date": "2021-01-01T00:00:00Z", "expiration_date": "2099-12-31T00:00:00Z",
              "codes": SPRING},
             {"name": "OLD", "amount": 5.0, "currency_code": "USD", "start_date": "2019-01-01T00:00:00Z",
              "end_date": "2020-06-30T00:00:00Z", "expiration_date": "2020-12-31T00:00:00Z",
              "codes": ["OLD-1", "OLD-2", "OLD-3"]},
             {"name": "Empty"},
         ]},
        {"id": 333, "name": "Fabrikam", "coupon_classes": [{"name": "FAB", "percent_off": 20.0,
                                                            "start_date": "2022-01-01T00:00:00Z",
                                                            "codes": ["FAB-1", "FAB-2"]}]},
    ],
    "users": [{"name": "alice", "customers": [222],
               "access_tokens": [{"token": "AT-cli-coupons", "expires_at": "2099-01-01T00:00:00Z"}]}],
}
COUPON_FIELDS = ["CouponCode", "ClassName", "CouponType", "Amount", "SpendThreshold", "CurrencyCode", "PercentOff",
                 "ActiveDuration", "ExpirationDate", "StartDate", "EndDate", "SendToEmail", "SendToDate",
                 "IsRedeemed", "RedemptionInfo"]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """Spring-100: SPR-000..002 sent (SPR-000 then redeemed), SPR-005 redeemed unsent, one imported code past its
    own expiry; OLD (expired class): OLD-1 sent before it expired; Empty: no codes; 333's FAB untouched."""
    tmp = tmp_path_factory.mktemp("cli-coupons")
    cli = Cli(tmp / "data")
    cli.load(SEED)
    csv = cli.write("expired.csv", "code,expires_at\nSPR-EXP,2020-01-01T00:00:00Z\n")
    cli.run("codes", "import", "--customer", "222", "--class", "Spring-100", str(csv))
    c = make_container(tmp / "svc", DATABASE_URL=cli.database_url)
    try:
        alice = c.authenticate(Credentials("DEV-CLI-COUPONS", "AT-cli-coupons"))
        outcome = dispatch_coupons(c.uow, c.clock, c.dispatch_config, alice, DispatchCouponsRequest(
            ["Ann@Example.com", "bob@example.com", "Carol@example.org"], 222, "spring-100"), "cli-test")
        assert outcome.partial_errors == []
        for code in ("SPR-000", "SPR-005"):
            redeem_coupon(c.uow, c.clock, alice, RedeemCouponRequest(111, code))
        with c.uow.write() as store:
            store.conn.execute(update(t.coupons).where(t.coupons.c.code == "OLD-1").values(
                state="dispatched", send_to_email="old@example.com", send_to_email_key="old@example.com"))
    finally:
        c.close()
    return cli


def lines(cli: Cli, *args: str) -> list[str]:
    result = cli.run("coupons", "list", *args)
    return result.stdout.splitlines()


def listed_codes(cli: Cli, *args: str) -> list[str]:
    return [line.split()[2] for line in lines(cli, *args)]


def test_list_by_class_ignores_case_and_shows_state_and_address(cli: Cli) -> None:
    out = lines(cli, "--class", "SPRING-100")
    assert [line.split()[2] for line in out] == SPRING + ["SPR-EXP"]
    by_code = {line.split()[2]: line.split() for line in out}
    assert by_code["SPR-000"] == ["222", "Spring-100", "SPR-000", "redeemed", "->", "Ann@Example.com"]
    assert by_code["SPR-001"] == ["222", "Spring-100", "SPR-001", "dispatched", "->", "bob@example.com"]
    assert by_code["SPR-005"] == ["222", "Spring-100", "SPR-005", "redeemed"]
    assert by_code["SPR-009"] == ["222", "Spring-100", "SPR-009", "available"]


@pytest.mark.parametrize(("args", "expected"), [
    (("--to", "CAROL@EXAMPLE.ORG"), ["SPR-002"]),
    (("--code", "SPR-005"), ["SPR-005"]),
    (("--code", "spr-005"), []),  # codes are case-sensitive
    (("--redeemed",), ["SPR-000", "SPR-005"]),
    (("--not-redeemed", "--customer", "333"), ["FAB-1", "FAB-2"]),
    (("--customer", "333", "--customer", "222", "--class", "fab"), ["FAB-1", "FAB-2"]),
    (("--class", "spring-100", "--redeemed", "--to", "ann@example.com"), ["SPR-000"]),
    (("--class", "old", "--desc"), ["OLD-3", "OLD-2", "OLD-1"]),
    (("--order", "CouponClassName", "--size", "3", "--page", "1"), ["OLD-2", "OLD-3", "SPR-000"]),
    (("--order", "CouponStartDate", "--desc", "--size", "2"), ["FAB-1", "FAB-2"]),
    (("--order", "CouponStartDate", "--size", "2"), ["OLD-1", "OLD-2"]),
    (("--size", "4", "--page", "3"), ["OLD-3", "FAB-1", "FAB-2", "SPR-EXP"]),
    (("--size", "4", "--page", "4"), []),
])
def test_list_filters_order_and_pages(cli: Cli, args: tuple[str, ...], expected: list[str]) -> None:
    assert listed_codes(cli, *args) == expected


def test_list_covers_every_customer_unless_told(cli: Cli) -> None:
    everything = listed_codes(cli, "--size", "1000")
    assert everything == SPRING + ["OLD-1", "OLD-2", "OLD-3", "FAB-1", "FAB-2", "SPR-EXP"]  # load order
    assert listed_codes(cli, "--customer", "222", "--size", "1000") == [c for c in everything if c[:3] != "FAB"]


def test_list_json_is_the_rest_coupon(cli: Cli) -> None:
    (line,) = lines(cli, "--code", "SPR-000", "--json")
    coupon = json.loads(line)
    assert list(coupon) == COUPON_FIELDS
    assert coupon["SendToEmail"] == "Ann@Example.com" and coupon["IsRedeemed"] is True
    assert coupon["Amount"] == 100.0 and coupon["ActiveDuration"] == 30
    redemption = coupon["RedemptionInfo"]
    assert redemption["AccountId"] == "111" and redemption["AccountNumber"] == "F111AAAA"
    assert redemption["Balance"] == 100.0
    assert redemption["RedemptionDate"].endswith("Z")


def test_list_without_matches_says_so_on_stderr(cli: Cli) -> None:
    result = cli.run("coupons", "list", "--class", "no-such-class")
    assert result.stdout == ""
    assert "no coupons match" in result.stderr


@pytest.mark.parametrize("args", [("--size", "0"), ("--size", "1001"), ("--page", "-1"), ("--order", "Name"),
                                  ("--customer", "0")])
def test_list_refuses_bad_options(cli: Cli, args: tuple[str, ...]) -> None:
    stderr = cli.refused("coupons", "list", *args)
    assert "Error" in stderr or "error" in stderr


def test_list_refuses_a_filter_value_with_control_characters(cli: Cli) -> None:
    stderr = cli.refused("coupons", "list", "--code", "SPR\t000")
    assert "201" in stderr and "control" in stderr


EXPECTED_INVENTORY = [
    {"customer_id": 222, "name": "Empty", "available": 0, "dispatched": 0, "distributed": 0, "redeemed": 0,
     "expired": 0},
    {"customer_id": 222, "name": "OLD", "available": 0, "dispatched": 1, "distributed": 0, "redeemed": 0,
     "expired": 2},
    {"customer_id": 222, "name": "Spring-100", "available": 6, "dispatched": 2, "distributed": 0, "redeemed": 2,
     "expired": 1},
    {"customer_id": 333, "name": "FAB", "available": 2, "dispatched": 0, "distributed": 0, "redeemed": 0,
     "expired": 0},
]


def test_inventory_counts_per_class(cli: Cli) -> None:
    out = cli.run("coupons", "inventory", "--json").stdout.splitlines()
    assert [json.loads(line) for line in out] == EXPECTED_INVENTORY


def test_inventory_for_one_customer(cli: Cli) -> None:
    out = cli.run("coupons", "inventory", "--json", "--customer", "333").stdout.splitlines()
    assert [json.loads(line) for line in out] == EXPECTED_INVENTORY[3:]


def test_inventory_table(cli: Cli) -> None:
    header, *rows = cli.run("coupons", "inventory").stdout.splitlines()
    assert header.split() == ["customer", "class", "available", "dispatched", "distributed", "redeemed", "expired"]
    assert [r.split() for r in rows] == [
        [str(e["customer_id"]), str(e["name"]), str(e["available"]), str(e["dispatched"]), str(e["distributed"]),
         str(e["redeemed"]), str(e["expired"])] for e in EXPECTED_INVENTORY]


def test_inventory_table_groups_thousands(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    cli.load({"customers": [{"id": 9, "name": "Big", "coupon_classes": [{"name": "BULK", "generate": 1500}]}]})
    (row,) = cli.run("coupons", "inventory").stdout.splitlines()[1:]
    assert row.split() == ["9", "BULK", "1,500", "0", "0", "0", "0"]
