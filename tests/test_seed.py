"""`couponsvc load FILE` (SPEC section 7): seed files, as an operator or a CI job uses them.

The main paths run the real CLI in a subprocess on a fresh data directory and look at the database
afterwards; the many ways a seed file can be wrong are checked against the parser directly.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from couponsvc.adapters.seed import SeedError, parse_seed, read_seed_file
from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.service_layer.auth import Credentials, authenticate
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork
from tests.support.cli import Cli

# The example of SPEC section 7, verbatim.
SPEC_SEED: dict[str, Any] = json.loads("""
{
  "developer_tokens": [{"token": "DEV-LOCAL-0001", "name": "local"}],
  "customers": [{
    "id": 222, "name": "Contoso Agency",
    "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD"}],
    "coupon_classes": [{
      "name": "SPRING-100", "coupon_type": "Acquisition",
      "amount": 100.0, "currency_code": "USD", "spend_threshold": 25.0,
      "percent_off": null, "active_duration": 30,
      "start_date": "2026-01-01T00:00:00Z", "end_date": "2027-12-31T23:59:59Z",
      "expiration_date": "2027-12-31T23:59:59Z",
      "codes": ["SPR-0001", "SPR-0002"], "generate": 1000
    }]
  }],
  "users": [{"name": "alice", "customers": [222],
             "access_tokens": [{"token": "AT-alice-0001", "expires_at": "2030-01-01T00:00:00Z"}]}]
}
""")

DEFAULT_CODE = re.compile(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}(-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{4}){2}")


# --- helpers --------------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


@pytest.fixture
def uow(cli: Cli) -> Iterator[SqlUnitOfWork]:
    """The service's own unit of work on the CLI's database (for authentication checks)."""
    with cli.engine() as engine:
        yield SqlUnitOfWork(engine)


def refused(cli: Cli, seed: Any) -> str:
    """Load a seed that must be refused (exit status 2, a one-line message); returns the error output."""
    return cli.refused("load", str(cli.write("bad.json", seed)))


# --- loading ----------------------------------------------------------------------------------------
def test_the_spec_example_seed_loads(cli: Cli, uow: SqlUnitOfWork) -> None:
    result = cli.load(SPEC_SEED)
    assert "1000 generated" in result.stdout
    assert cli.query("SELECT id, name FROM customers") == [(222, "Contoso Agency")]
    assert cli.query("SELECT id, customer_id, number, currency_code FROM accounts") == [(111, 222, "F111AAAA", "USD")]
    [cls] = cli.query("SELECT id, name, coupon_type, amount, currency_code, spend_threshold, percent_off, "
                      "active_duration, start_date, end_date, expiration_date FROM coupon_classes")
    assert cls[1:8] == ("SPRING-100", "Acquisition", 100.0, "USD", 25.0, None, 30)
    assert [c[:19] for c in cls[8:]] == ["2026-01-01 00:00:00", "2027-12-31 23:59:59", "2027-12-31 23:59:59"]
    coupons = cli.query("SELECT code, state, origin FROM coupons WHERE class_id = ? ORDER BY id", cls[0])
    assert coupons[:2] == [("SPR-0001", "available", "seed"), ("SPR-0002", "available", "seed")]
    generated = [code for code, state, origin in coupons[2:] if state == "available" and origin == "seed-generated"]
    assert len(generated) == 1000 == len(set(generated))
    assert all(DEFAULT_CODE.fullmatch(code) for code in generated)
    # tokens are stored as SHA-256 hashes only
    assert cli.query("SELECT name, token_hash, enabled FROM developer_tokens") == [
        ("local", hashlib.sha256(b"DEV-LOCAL-0001").hexdigest(), 1)]
    assert cli.query("SELECT token_hash, expires_at FROM access_tokens") == [
        (hashlib.sha256(b"AT-alice-0001").hexdigest(), "2030-01-01 00:00:00.000000")]
    stored = b"".join(f.read_bytes() for f in cli.data_dir.glob("couponsvc.db*"))
    assert b"AT-alice-0001" not in stored and b"DEV-LOCAL-0001" not in stored
    # ... and they work
    with uow.read() as store:
        principal = authenticate(store, Credentials("DEV-LOCAL-0001", "AT-alice-0001"), datetime(2029, 1, 1))
    assert principal.customer_ids == frozenset({222})


def test_loading_twice_changes_nothing_the_second_time(cli: Cli) -> None:
    cli.load(SPEC_SEED)
    before = cli.snapshot()
    assert len(before["coupons"]) == 1002
    cli.load(SPEC_SEED)
    assert cli.snapshot() == before


def test_generate_tops_up_to_n_and_is_idempotent(cli: Cli) -> None:
    seed = copy.deepcopy(SPEC_SEED)
    cls = seed["customers"][0]["coupon_classes"][0]
    cls["generate"], cls["code_pattern"] = 10, "GEN-99999"

    def generated() -> list[str]:
        return [r[0] for r in cli.query("SELECT code FROM coupons WHERE origin = 'seed-generated' "
                                                  "ORDER BY id")]

    cli.load(seed)
    first = generated()
    assert len(first) == 10 and all(re.fullmatch(r"GEN-\d{5}", c) for c in first)
    cls["generate"] = 25
    cli.load(seed)
    second = generated()
    assert len(second) == 25 and second[:10] == first  # topped up: the first ten are kept
    cli.load(seed)
    assert generated() == second
    cls["generate"] = 5  # lowering the figure removes nothing
    cli.load(seed)
    assert generated() == second
    assert len(cli.query("SELECT code FROM coupons")) == 27  # + the two listed codes


def test_expired_access_tokens_can_be_given_literally(cli: Cli, uow: SqlUnitOfWork) -> None:
    seed = copy.deepcopy(SPEC_SEED)
    seed["users"][0]["access_tokens"].append({"token": "AT-alice-expired", "expires_at": "2020-01-01T00:00:00Z"})
    seed["users"].append({"name": "bob", "access_tokens": [{"token": "AT-bob-no-expiry"}]})
    cli.load(seed)
    now = datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC
    with uow.read() as store:
        assert authenticate(store, Credentials("DEV-LOCAL-0001", "AT-alice-0001"), now).customer_ids == {222}
        with pytest.raises(ServiceFault) as info:
            authenticate(store, Credentials("DEV-LOCAL-0001", "AT-alice-expired"), now)
        assert info.value.error.code == Err.AUTHENTICATION_TOKEN_EXPIRED
        # no expires_at: valid (a year by default), and bob may act for no customer
        assert authenticate(store, Credentials("DEV-LOCAL-0001", "AT-bob-no-expiry"), now).customer_ids == set()


# --- refusals: nothing is written -------------------------------------------------------------------
def test_unknown_key_is_refused_naming_its_path(cli: Cli) -> None:
    seed = copy.deepcopy(SPEC_SEED)
    seed["customers"][0]["coupon_classes"][0]["colour"] = "red"
    err = refused(cli, seed)
    assert "bad.json: customers[0].coupon_classes[0].colour: unknown key" in err
    assert cli.snapshot().get("coupons", []) == []


def test_invalid_json_is_reported_with_line_and_column(cli: Cli) -> None:
    text = json.dumps(SPEC_SEED, indent=2).replace('"SPR-0002"', "'SPR-0002'", 1)  # single quotes
    line, column = next((i, ln.index("'") + 1) for i, ln in enumerate(text.splitlines(), 1) if "'SPR" in ln)
    err = refused(cli, text)
    assert f"bad.json: line {line}, column {column}: not valid JSON" in err


@pytest.mark.parametrize(("mutate", "key_path"), [
    # a code that already belongs to another class (after the new customer and class were written)
    (lambda s: s["customers"].append({"id": 333, "name": "Fabrikam", "coupon_classes": [
        {"name": "FAB", "codes": ["FAB-1", "OLD-1"], "generate": 5}]}),
     "customers[1].coupon_classes[0].codes[1]: code 'OLD-1' already belongs to another coupon class"),
    # a user linked to a customer that is not defined (checked last, after everything else was written)
    (lambda s: s["users"].append({"name": "carol", "customers": [222, 999],
                                  "access_tokens": [{"token": "AT-carol"}]}),
     "users[1].customers: customer 999 is not defined"),
    # an account that belongs to another customer
    (lambda s: (s["customers"][0].pop("accounts"),
                s["customers"].append({"id": 333, "name": "Fabrikam", "accounts": [{"id": 111}]})),
     "customers[1].accounts[0].id: account 111 belongs to customer 222"),
    # an access token already issued to another user
    (lambda s: s["users"].append({"name": "dave", "access_tokens": [{"token": "AT-alice-0001"}]}),
     "users[1].access_tokens[0].token: this token is already issued to another user"),
])
def test_a_seed_that_fails_halfway_leaves_the_database_as_it_was(
    cli: Cli, mutate: Any, key_path: str,
) -> None:
    first = copy.deepcopy(SPEC_SEED)
    first["customers"][0]["coupon_classes"].append({"name": "OLD", "codes": ["OLD-1"]})
    cli.load(first)
    before = cli.snapshot()
    # the bad seed also changes existing rows and adds new ones before it fails
    seed = copy.deepcopy(SPEC_SEED)
    seed["developer_tokens"].append({"token": "DEV-NEW", "name": "new app"})
    seed["customers"][0]["name"] = "Contoso Renamed"
    seed["customers"][0]["coupon_classes"][0]["amount"] = 5.0
    seed["customers"][0]["coupon_classes"][0]["codes"].append("SPR-0003")
    seed["customers"][0]["coupon_classes"][0]["generate"] = 1500
    mutate(seed)
    assert parse_seed(seed, "bad.json")  # valid as a document: the failure comes from applying it
    err = refused(cli, seed)
    assert f"bad.json: {key_path}" in err
    assert cli.snapshot() == before


# --- the parser: every problem names its key ----------------------------------------------------------
def _bad(path: str, value: Any) -> dict[str, Any]:
    """SPEC_SEED with the value at a dotted path (list indexes as numbers) replaced."""
    seed = copy.deepcopy(SPEC_SEED)
    *parents, last = path.split(".")
    node: Any = seed
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return seed


CLASS = "customers.0.coupon_classes.0"


@pytest.mark.parametrize(("path", "value", "key", "words"), [
    ("customers.0.id", "222", "customers[0].id", "positive whole number"),
    ("customers.0.id", True, "customers[0].id", "positive whole number"),
    ("customers.0.id", -1, "customers[0].id", "positive whole number"),
    ("customers.0.id", 2**63, "customers[0].id", "positive whole number"),
    ("customers.0.name", "", "customers[0].name", "non-empty string"),
    ("customers.0.name", 7, "customers[0].name", "non-empty string"),
    ("customers.0.accounts.0.currency_code", "US", "customers[0].accounts[0].currency_code", "three-letter"),
    ("customers.0.accounts.0.currency_code", "U$D", "customers[0].accounts[0].currency_code", "three-letter"),
    (f"{CLASS}.currency_code", 840, "customers[0].coupon_classes[0].currency_code", "three-letter"),
    (f"{CLASS}.currency_code", None, "customers[0].coupon_classes[0].currency_code", "required when amount"),
    (f"{CLASS}.amount", "100", "customers[0].coupon_classes[0].amount", "number"),
    (f"{CLASS}.amount", -1, "customers[0].coupon_classes[0].amount", "number ≥ 0"),
    (f"{CLASS}.amount", float("nan"), "customers[0].coupon_classes[0].amount", "number ≥ 0"),
    (f"{CLASS}.amount", float("inf"), "customers[0].coupon_classes[0].amount", "number ≥ 0"),
    (f"{CLASS}.percent_off", 150, "customers[0].coupon_classes[0].percent_off", "at most 100"),
    (f"{CLASS}.active_duration", "30", "customers[0].coupon_classes[0].active_duration", "whole number"),
    (f"{CLASS}.start_date", "2026-13-01T00:00:00Z", "customers[0].coupon_classes[0].start_date", "ISO-8601"),
    (f"{CLASS}.end_date", "next year", "customers[0].coupon_classes[0].end_date", "ISO-8601"),
    (f"{CLASS}.expiration_date", 20271231, "customers[0].coupon_classes[0].expiration_date", "ISO-8601"),
    (f"{CLASS}.end_date", "2025-01-01T00:00:00Z", "customers[0].coupon_classes[0].end_date", "before start_date"),
    (f"{CLASS}.codes", "SPR-0001", "customers[0].coupon_classes[0].codes", "must be a list"),
    (f"{CLASS}.codes.1", "SPR 0002", "customers[0].coupon_classes[0].codes[1]", "spaces"),
    (f"{CLASS}.codes.1", 2, "customers[0].coupon_classes[0].codes[1]", "must be a string"),
    (f"{CLASS}.codes.1", "SPR-0001", "customers[0].coupon_classes[0].codes[1]", "already listed at"),
    (f"{CLASS}.generate", -5, "customers[0].coupon_classes[0].generate", "whole number"),
    (f"{CLASS}.generate", 10_000_001, "customers[0].coupon_classes[0].generate", "whole number"),
    (f"{CLASS}.code_pattern", "99", "customers[0].coupon_classes[0].code_pattern", "too few"),
    (f"{CLASS}.name", "", "customers[0].coupon_classes[0].name", "non-empty string"),
    ("developer_tokens.0.enabled", "yes", "developer_tokens[0].enabled", "true or false"),
    ("developer_tokens.0", {"token": "T"}, "developer_tokens[0].name", "is required"),
    ("users.0.customers.0", "222", "users[0].customers[0]", "positive whole number"),
    ("users.0.access_tokens.0.expires_at", "soon", "users[0].access_tokens[0].expires_at", "ISO-8601"),
    ("users.0.access_tokens.0.token", "", "users[0].access_tokens[0].token", "non-empty string"),
    ("users.0.access_tokens.0.scope", "all", "users[0].access_tokens[0].scope", "unknown key"),
    ("customers", {"id": 1}, "customers", "must be a list"),
    ("customers.0", [222], "customers[0]", "must be an object"),
    ("extra", 1, "extra", "unknown key"),
])
def test_bad_values_are_refused_naming_the_key(path: str, value: Any, key: str, words: str) -> None:
    with pytest.raises(SeedError) as info:
        parse_seed(_bad(path, value), "seed.json")
    message = str(info.value)
    assert message.startswith(f"seed.json: {key}: "), message
    assert words in message


def test_duplicates_within_a_file_are_refused() -> None:
    seed = copy.deepcopy(SPEC_SEED)
    seed["customers"][0]["coupon_classes"].append({"name": "spring-100"})
    with pytest.raises(SeedError, match=r"customers\[0\]\.coupon_classes\[1\]\.name: .* already defined at "
                                        r"customers\[0\]\.coupon_classes\[0\] \(names ignore case\)"):
        parse_seed(seed, "seed.json")
    seed = copy.deepcopy(SPEC_SEED)
    seed["customers"].append({"id": 222, "name": "Contoso again"})
    with pytest.raises(SeedError, match=r"customers\[1\]\.id: customer 222 is already defined at customers\[0\]"):
        parse_seed(seed, "seed.json")
    seed = copy.deepcopy(SPEC_SEED)
    seed["customers"].append({"id": 333, "name": "Fabrikam", "coupon_classes": [{"name": "F", "codes": ["SPR-0002"]}]})
    with pytest.raises(SeedError, match=r"customers\[1\]\.coupon_classes\[0\]\.codes\[0\]: 'SPR-0002' is already "
                                        r"listed at customers\[0\]\.coupon_classes\[0\]\.codes\[1\]"):
        parse_seed(seed, "seed.json")
    seed = copy.deepcopy(SPEC_SEED)
    seed["users"].append({"name": "alice"})
    with pytest.raises(SeedError, match=r"users\[1\]\.name: user 'alice' is already defined at users\[0\]"):
        parse_seed(seed, "seed.json")


def test_only_ids_and_names_are_required() -> None:
    seed = parse_seed({"customers": [{"id": 1, "name": "C", "coupon_classes": [{"name": "K"}]}],
                       "users": [{"name": "u"}], "developer_tokens": []}, "seed.json")
    assert seed.customers[0].classes[0].codes == [] and seed.customers[0].classes[0].generate == 0
    assert parse_seed({}, "seed.json").customers == []


def test_the_document_must_be_an_object() -> None:
    with pytest.raises(SeedError, match=r"^seed\.json: the document: must be an object$"):
        parse_seed([SPEC_SEED], "seed.json")


def test_seed_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="missing.json: cannot be read"):
        read_seed_file(tmp_path / "missing.json")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"customers": [{"id": 1, "name": "Caf\u00e9"}]}'.encode("latin-1"))
    with pytest.raises(SeedError, match="latin1.json: is not UTF-8 text"):
        read_seed_file(latin1)
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "customers": [\n    {"id": 1 "name": "x"}\n  ]\n}\n')
    with pytest.raises(SeedError, match=r"broken\.json: line 3, column 14: not valid JSON"):
        read_seed_file(broken)
