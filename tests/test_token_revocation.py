"""Token revocation and operator commands as an operator runs them: `token list | revoke`, `devtoken disable |
enable`, `operator add | list | remove`; a revoked token is refused (105) at once by every server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support import restkit
from tests.support.console import ConsoleClient
from tests.support.databases import postgres_schema_url
from tests.support.seeds import BASE_SEED, CUSTOMER, DEV
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers on one PostgreSQL database (each its own data directory and port)."""
    with postgres_schema_url() as url:
        env = {"COUPONSVC_DATABASE_URL": url, "COUPONSVC_DELIVERY_TIMEOUT": "0", "COUPONSVC_WORKER": "false"}
        a = ServerProcess(tmp_path_factory.mktemp("revoke-a"), env)
        b = ServerProcess(tmp_path_factory.mktemp("revoke-b"), env)
        a.load(BASE_SEED, "base")
        a.start()
        b.start()
        yield a, b
        a.stop()
        b.stop()


def issue(server: ServerProcess, user: str) -> tuple[str, int, str]:
    r = server.cli("token", "issue", user, "--customer", str(CUSTOMER))
    secret = r.stdout.strip()
    m = re.search(r"\(id (\d+), prefix (cst_[A-Za-z0-9_-]{8})\)", r.stderr)
    assert m and secret.startswith(m.group(2)), r.stderr
    assert secret not in r.stderr
    return secret, int(m.group(1)), m.group(2)


def answer(server: ServerProcess, token: str, dev: str = DEV) -> int | list[int]:
    r = restkit.dispatch(server.url, ["x@example.com"], class_name="NO-SUCH-CLASS", auth=token, dev=dev)
    return r.status_code if r.status_code != 401 else restkit.fault_codes(r)


def test_revoked_by_prefix_id_or_user_is_refused_at_once_by_both_servers(
        servers: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = servers
    by_prefix, _, prefix = issue(a, "rita")
    by_id, token_id, _ = issue(a, "rita")
    other, _, _ = issue(a, "sam")
    for token in (by_prefix, by_id, other):
        assert answer(a, token) == answer(b, token) == 400  # authenticated (3000: no such class)
    listing = a.cli("token", "list", "--user", "rita").stdout
    assert prefix in listing and by_prefix not in listing and by_id not in listing
    assert "active" in listing

    assert "revoked 1 access token(s)" in a.cli("token", "revoke", prefix).stdout
    assert answer(a, by_prefix) == answer(b, by_prefix) == [105]
    assert answer(b, by_id) == 400  # the other one of the same user still works

    a.cli("token", "revoke", "--id", str(token_id))
    assert answer(b, by_id) == answer(a, by_id) == [105]
    assert "revoked" in a.cli("token", "list", "--user", "rita").stdout

    assert "revoked 1 access token(s)" in a.cli("token", "revoke", "--user", "sam").stdout
    assert answer(a, other) == answer(b, other) == [105]
    # unknown or ambiguous choices are refused with a message (exit 2), not a silent 0
    for args in (["--user", "nobody"], ["--id", "999999"], ["cst_NOPE1234"], []):
        r = a.cli("token", "revoke", *args, check=False)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)


def test_a_disabled_developer_token_is_refused_by_both_servers_until_enabled(
        servers: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = servers
    r = a.cli("devtoken", "create", "partner-app")
    dev = r.stdout.strip()
    token, _, _ = issue(a, "tess")
    assert answer(a, token, dev) == answer(b, token, dev) == 400
    assert "disabled 1 developer token(s)" in a.cli("devtoken", "disable", "partner-app").stdout
    assert answer(a, token, dev) == answer(b, token, dev) == [105]
    assert answer(a, token) == 400  # the token itself is fine with another application's developer token
    assert "disabled" in a.cli("devtoken", "list").stdout and dev not in a.cli("devtoken", "list").stdout
    a.cli("devtoken", "enable", "partner-app")
    assert answer(a, token, dev) == answer(b, token, dev) == 400
    assert a.cli("devtoken", "disable", "no-such-app", check=False).returncode == 2


def test_operator_add_list_remove_and_its_sessions_end(servers: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = servers
    r = a.cli("operator", "add", "olga", "--password-stdin", input="s3cret-passphrase\n")
    assert "s3cret" not in r.stdout + r.stderr
    assert a.cli("operator", "add", "olga", "--password-stdin", input="another-one\n", check=False).returncode == 2
    assert a.cli("operator", "add", "shorty", "--password-stdin", input="short\n", check=False).returncode == 2
    assert "olga" in a.cli("operator", "list").stdout
    with ConsoleClient(b) as console:  # signed in on the other server
        assert console.sign_in("olga", "s3cret-passphrase").status_code == 303
        assert console.get("/console/").status_code == 200
        a.cli("operator", "remove", "olga")
        assert console.get("/console/").status_code == 303  # the session ended with the operator
    assert "olga" not in a.cli("operator", "list").stdout
    assert a.cli("operator", "remove", "olga", check=False).returncode == 2
