"""The operator CLI (SPEC section 7): help texts, tokens, `codes generate`, `db upgrade` — run as a user runs
them, in a subprocess on a fresh data directory.  (`load` and `codes import` have their own test files.)"""

from __future__ import annotations

import hashlib
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from couponsvc.domain.codes import ALPHABETS
from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.service_layer.auth import Credentials, authenticate
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork
from tests.support.cli import Cli

SEED: dict[str, Any] = {
    "developer_tokens": [{"token": "DEV-CLI-0001", "name": "cli tests"}],
    "customers": [
        {"id": 222, "name": "Contoso", "coupon_classes": [{"name": "SPRING-100", "codes": ["SPR-0001"]}]},
        {"id": 333, "name": "Fabrikam"},
    ],
    "users": [{"name": "alice", "customers": [222], "access_tokens": [{"token": "AT-alice-0001"}]}],
}


def utcnow() -> datetime:
    """Now as the store keeps it: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("seeded") / "data")
    cli.load(SEED)
    return cli


@pytest.fixture
def cli(seeded: Cli, tmp_path: Path) -> Cli:
    """A fresh data directory holding SEED."""
    return seeded.clone(tmp_path / "data")


@pytest.fixture
def uow(cli: Cli) -> Iterator[SqlUnitOfWork]:
    with cli.engine() as engine:
        yield SqlUnitOfWork(engine)


def stored_bytes(cli: Cli) -> bytes:
    return b"".join(f.read_bytes() for f in cli.data_dir.glob("couponsvc.db*"))


# --- help -------------------------------------------------------------------------------------------
def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    out = Cli(tmp_path / "data").run("--help").stdout
    for command in ("serve", "load", "db", "token", "devtoken", "codes"):
        assert re.search(rf"^\s+{command}\s+\S", out, re.MULTILINE), f"{command} missing from --help:\n{out}"
    text = " ".join(out.split())
    assert "COUPONSVC_DATABASE_URL" in text and "Customer Billing API" in text


@pytest.mark.parametrize(("command", "words"), [
    (["load"], ["seed file", "All or nothing", "twice changes nothing"]),
    (["db"], ["upgrade"]),
    (["db", "upgrade"], ["schema", "newest version"]),
    (["token"], ["issue", "AuthenticationToken"]),
    (["token", "issue"], ["USER", "--ttl", "30d", "--customer", "once", "hash"]),
    (["devtoken"], ["create", "DeveloperToken"]),
    (["devtoken", "create"], ["NAME", "developer token", "once"]),
    (["codes"], ["import", "generate"]),
    (["codes", "import"], ["--customer", "--class", "CSV", "expires_at", "All or nothing", "skipped"]),
    (["codes", "generate"], ["--customer", "--class", "--count", "--pattern", "XXXX-XXXX-XXXX", "random",
                             "digit", "letter", "literal"]),
    (["serve"], ["--host", "--port", "--demo"]),
])
def test_each_command_explains_itself(tmp_path: Path, command: list[str], words: list[str]) -> None:
    result = Cli(tmp_path / "data").run(*command, "--help")
    text = " ".join(result.stdout.split())  # help is wrapped: compare with single spaces
    missing = [w for w in words if w not in text]
    assert not missing, f"{missing} not in `{' '.join(command)} --help`:\n{result.stdout}"


def test_version(tmp_path: Path) -> None:
    assert re.search(r"\d+\.\d+", Cli(tmp_path / "data").run("--version").stdout)


def test_db_upgrade_reports_the_revision(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data")
    assert re.search(r"database schema at revision \w+", cli.run("db", "upgrade").stdout)
    assert cli.query("SELECT count(*) FROM alembic_version") == [(1,)]


# --- token issue / devtoken create ----------------------------------------------------------------------
def test_token_issue_prints_a_token_once_and_stores_only_its_hash(cli: Cli, uow: SqlUnitOfWork) -> None:
    result = cli.run("token", "issue", "carol", "--customer", "222", "--customer", "333", "--ttl", "2h")
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and re.fullmatch(r"cst_[A-Za-z0-9_-]{43}", token)  # 256 random bits
    assert token not in result.stderr and "access token for carol, valid until" in result.stderr
    [(user_id, token_hash, expires_at)] = cli.query(
        "SELECT u.id, a.token_hash, a.expires_at FROM access_tokens a JOIN users u ON u.id = a.user_id "
        "WHERE u.name = 'carol'")
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in stored_bytes(cli)
    expires = datetime.fromisoformat(expires_at)
    assert abs(expires - (utcnow() + timedelta(hours=2))) < timedelta(minutes=2)
    assert cli.query("SELECT customer_id FROM user_customers WHERE user_id = ? ORDER BY 1", user_id) == [(222,), (333,)]
    # the token works, and expires
    with uow.read() as store:
        principal = authenticate(store, Credentials("DEV-CLI-0001", token), utcnow())
        assert principal.customer_ids == {222, 333}
        with pytest.raises(ServiceFault) as info:
            authenticate(store, Credentials("DEV-CLI-0001", token), expires + timedelta(seconds=1))
        assert info.value.error.code == Err.AUTHENTICATION_TOKEN_EXPIRED
    # another token for an existing user: different, and both work
    second = cli.run("token", "issue", "alice").stdout.strip()
    assert second != token
    with uow.read() as store:
        assert authenticate(store, Credentials("DEV-CLI-0001", second), utcnow()).customer_ids == {222}
        assert authenticate(store, Credentials("DEV-CLI-0001", "AT-alice-0001"), utcnow()).customer_ids == {222}


@pytest.mark.parametrize(("args", "words"), [
    (["carol", "--customer", "999"], "--customer 999: no such customer"),
    (["carol", "--ttl", "soon"], "--ttl"),
    (["carol", "--ttl", "-5d"], "positive number"),
    (["carol", "--ttl", "0"], "positive number"),
    (["carol", "--ttl", "inf"], "positive number"),
    (["carol", "--ttl", "99999999d"], "at most 36500 days"),
    (["", "--ttl", "1d"], "1 to 255 printable characters"),
])
def test_token_issue_refusals_change_nothing(cli: Cli, args: list[str], words: str) -> None:
    before = cli.snapshot()
    err = cli.refused("token", "issue", *args)
    assert words in err
    assert cli.snapshot() == before


def test_devtoken_create(cli: Cli, uow: SqlUnitOfWork) -> None:
    result = cli.run("devtoken", "create", "My App")
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and re.fullmatch(r"dev_[A-Za-z0-9_-]{43}", token)
    assert token not in result.stderr
    assert cli.query("SELECT name, enabled FROM developer_tokens WHERE token_hash = ?",
                     hashlib.sha256(token.encode()).hexdigest()) == [("My App", 1)]
    assert token.encode() not in stored_bytes(cli)
    with uow.read() as store:
        assert authenticate(store, Credentials(token, "AT-alice-0001"), utcnow()).customer_ids == {222}
        with pytest.raises(ServiceFault) as info:
            authenticate(store, Credentials(token + "x", "AT-alice-0001"), utcnow())
        assert info.value.error.code == Err.INVALID_CREDENTIALS
    assert cli.run("devtoken", "create", "My App").stdout.strip() != token  # a new one each time


# --- codes generate ---------------------------------------------------------------------------------------
def generated(cli: Cli, class_name: str = "SPRING-100") -> list[str]:
    return [r[0] for r in cli.query(
        "SELECT c.code FROM coupons c JOIN coupon_classes k ON k.id = c.class_id "
        "WHERE k.name = ? AND c.origin = 'generated' ORDER BY c.id", class_name)]


def test_codes_generate_adds_unique_codes_matching_the_pattern(cli: Cli) -> None:
    result = cli.run("codes", "generate", "--customer", "222", "--class", "SPRING-100", "--count", "400",
                     "--pattern", "SPR-\\X9A-XXXX")
    assert "added 400 codes to SPRING-100" in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    codes = generated(cli)
    x, a = ALPHABETS["X"], ALPHABETS["A"]
    assert len(codes) == len(set(codes)) == 400
    assert all(re.fullmatch(rf"SPR-X[0-9][{a}]-[{x}]{{4}}", c) for c in codes), codes[:5]
    # default pattern, adding to what is there
    cli.run("codes", "generate", "--customer", "222", "--class", "spring-100", "--count", "50")
    codes = generated(cli)
    assert len(codes) == len(set(codes)) == 450
    assert all(re.fullmatch(rf"[{x}]{{4}}-[{x}]{{4}}-[{x}]{{4}}", c) for c in codes[400:])
    assert cli.query("SELECT count(*) FROM coupons WHERE state = 'available'") == [(451,)]


@pytest.mark.parametrize(("args", "words"), [
    (["--count", "11", "--pattern", "9999"], "allows 10,000 codes, too few for 11"),
    (["--count", "1", "--pattern", "PROMO"], "no random character"),
    (["--count", "1", "--pattern", "XX XX XX"], "spaces"),
    (["--count", "1", "--pattern", "XXXXXX\\"], "lone backslash"),
    (["--count", "0"], "--count"),
])
def test_codes_generate_refuses_bad_patterns_and_counts(cli: Cli, args: list[str], words: str) -> None:
    before = cli.snapshot()
    err = cli.refused("codes", "generate", "--customer", "222", "--class", "SPRING-100", *args)
    assert words in err
    assert cli.snapshot() == before


def test_codes_generate_into_an_unknown_class(cli: Cli) -> None:
    err = cli.refused("codes", "generate", "--customer", "333", "--class", "SPRING-100", "--count", "5")
    assert "customer 333 has no coupon class 'SPRING-100'" in err


def test_progress_bar_on_a_terminal(cli: Cli) -> None:
    """On a terminal, long operations show a progress bar on stderr."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "couponsvc", "codes", "generate", "--customer", "222", "--class", "SPRING-100",
             "--count", "2000"], env=cli.env, stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL,
            timeout=120, check=True)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert b"added 2,000 codes" in proc.stdout
    assert b"generating 2,000 codes" in shown and b"100%" in shown
