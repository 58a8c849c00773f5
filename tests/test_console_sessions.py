"""Operators, sessions and the sign-in limit in the service layer, on a real database, with a clock the
test moves: sessions expire, the limit's window slides, passwords are stored only as scrypt hashes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from couponsvc.bootstrap import Container
from couponsvc.domain.errors import OperatorInputError, SignInThrottled
from couponsvc.domain.passwords import verify_password
from couponsvc.service_layer import audit, operators
from couponsvc.service_layer.audit import Actor
from couponsvc.service_layer.operators import SignInPolicy
from tests.support.databases import database_url
from tests.support.service import make_container


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Container]:
    with database_url(request.param, tmp_path) as url:
        c = make_container(tmp_path, DATABASE_URL=url)
        yield c
        c.close()


POLICY = SignInPolicy(session_lifetime=timedelta(hours=8), window=timedelta(minutes=15), max_per_name=3,
                      max_per_client=5)


def test_sessions_expire_and_end_with_the_operator(container: Container) -> None:
    clock = Clock()
    operators.add_operator(container.uow, clock, Actor.cli(), "ann", "long enough pw")
    new = operators.sign_in(container.uow, clock, POLICY, "ann", "long enough pw", "10.0.0.1")
    assert new is not None and new.session.operator == "ann"
    again = operators.sign_in(container.uow, clock, POLICY, "ann", "long enough pw", "10.0.0.1")
    assert again is not None and again.cookie != new.cookie and again.session.csrf_token != new.session.csrf_token
    clock.now += timedelta(hours=7, minutes=59)
    assert operators.session(container.uow, clock, new.cookie) is not None
    clock.now += timedelta(minutes=2)
    assert operators.session(container.uow, clock, new.cookie) is None  # 8 hours after sign-in
    third = operators.sign_in(container.uow, clock, POLICY, "ann", "long enough pw", "10.0.0.1")
    assert third is not None
    operators.remove_operator(container.uow, clock, Actor.cli(), "ann")
    assert operators.session(container.uow, clock, third.cookie) is None


def test_the_sign_in_limit_slides_with_its_window(container: Container) -> None:
    clock = Clock()
    operators.add_operator(container.uow, clock, Actor.cli(), "bea", "long enough pw")
    for _ in range(3):
        assert operators.sign_in(container.uow, clock, POLICY, "bea", "wrong", "10.0.0.2") is None
        clock.now += timedelta(minutes=1)
    with pytest.raises(SignInThrottled) as refused:
        operators.sign_in(container.uow, clock, POLICY, "bea", "long enough pw", "10.0.0.3")
    assert 0 < refused.value.retry_after <= 15 * 60
    clock.now += timedelta(minutes=13)  # the first failure leaves the window: one more try is allowed
    assert operators.sign_in(container.uow, clock, POLICY, "bea", "long enough pw", "10.0.0.3") is not None
    # per client: five failures under any names lock the client out
    for i in range(5):
        assert operators.sign_in(container.uow, clock, POLICY, f"who-{i}", "x", "10.0.0.9") is None
    with pytest.raises(SignInThrottled):
        operators.sign_in(container.uow, clock, POLICY, "bea", "long enough pw", "10.0.0.9")
    actions = [r.action for r in audit.page(container.uow)]
    assert actions.count("signin.failed") == 8 and actions.count("signin") == 1


def test_passwords_are_stored_as_scrypt_hashes_only(container: Container) -> None:
    clock = Clock()
    with pytest.raises(OperatorInputError):
        operators.add_operator(container.uow, clock, Actor.cli(), "cid", "short")
    operators.add_operator(container.uow, clock, Actor.cli(), "cid", "a long passphrase")
    with pytest.raises(OperatorInputError):
        operators.add_operator(container.uow, clock, Actor.cli(), "cid", "another passphrase")
    [row] = operators.list_operators(container.uow)
    assert row.password_hash.startswith("scrypt$16384$8$1$") and "passphrase" not in row.password_hash
    assert verify_password("a long passphrase", row.password_hash)
    assert not verify_password("a long passphrasE", row.password_hash)
    assert operators.sign_in(container.uow, clock, POLICY, "nobody", "a long passphrase", "c") is None


def test_sign_ins_at_once_cannot_slip_under_the_limit(container: Container) -> None:
    """Eight wrong passwords for one name at the same moment: three are checked (the limit), five refused.
    A right password takes its own count back: a client that keeps signing in right is never locked out."""
    clock = Clock()
    operators.add_operator(container.uow, clock, Actor.cli(), "dee", "long enough pw")

    def attempt(i: int) -> str:
        try:
            result = operators.sign_in(container.uow, clock, POLICY, "dee", "wrong", f"10.1.0.{i}")
        except SignInThrottled:
            return "throttled"
        return "checked" if result is None else "signed in"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes) == ["checked"] * 3 + ["throttled"] * 5
    assert operators.sign_in(container.uow, clock, POLICY, "nobody", "x", "10.2.0.1") is None  # one failure
    operators.add_operator(container.uow, clock, Actor.cli(), "eve", "long enough pw")
    for _ in range(POLICY.max_per_client + 2):
        assert operators.sign_in(container.uow, clock, POLICY, "eve", "long enough pw", "10.2.0.1") is not None
