"""Operators of the console: accounts, sign-in (rate-limited), server-side sessions with a CSRF token each."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from couponsvc.adapters import console_auth as db
from couponsvc.adapters.console_auth import OperatorRow
from couponsvc.domain.errors import NotFound, OperatorInputError, SignInThrottled
from couponsvc.domain.passwords import hash_password, password_problem, verify_password
from couponsvc.service_layer import audit
from couponsvc.service_layer.audit import Actor
from couponsvc.service_layer.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class SignInPolicy:
    session_lifetime: timedelta = timedelta(hours=8)
    window: timedelta = timedelta(minutes=15)
    max_per_name: int = 5  # failures of one operator name within the window
    max_per_client: int = 20  # failures from one client address within the window


@dataclass(frozen=True, slots=True)
class Session:
    operator_id: int
    operator: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie: str  # the secret the browser holds; only its hash is stored
    session: Session


def _hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise OperatorInputError("an operator name must be 1 to 100 printable characters")
    return name


def add_operator(uow: UnitOfWork, clock: Clock, actor: Actor, name: str, password: str) -> int:
    name = check_name(name)
    problem = password_problem(password)
    if problem:
        raise OperatorInputError(problem)
    hashed = hash_password(password)  # before the transaction: it takes a while
    with uow.write() as store:
        if db.operator(store.conn, name) is not None:
            raise OperatorInputError(f"operator {name!r} already exists")
        operator_id = db.add_operator(store.conn, name, hashed, clock())
        audit.record(store, clock(), actor, "operator.add", f"operator {name}")
    return operator_id


def remove_operator(uow: UnitOfWork, clock: Clock, actor: Actor, name: str) -> None:
    """Remove the operator and end their sessions at once."""
    with uow.write() as store:
        row = db.operator(store.conn, name)
        if row is None:
            raise NotFound(f"no operator {name!r}")
        db.remove_operator(store.conn, row.id)
        audit.record(store, clock(), actor, "operator.remove", f"operator {name}")


def list_operators(uow: UnitOfWork) -> list[OperatorRow]:
    with uow.read() as store:
        return db.operators(store.conn)


def sign_in(uow: UnitOfWork, clock: Clock, policy: SignInPolicy, name: str, password: str,
            client: str) -> NewSession | None:
    """A new session (a new id every time: no fixation), None for a wrong name or password.

    Raises SignInThrottled, before looking at the password, once the name or the client has failed too
    often within the window; failures are counted in the database, so every server shares the limit.
    Each attempt is counted as a failure before its password is checked (and the count is taken under a
    lock per key), so that many attempts at once cannot all slip under the limit; a right password then
    takes its own count back.
    """
    name = name.strip()[:100]
    keys = [f"name:{name.lower()}", f"client:{client}"]
    limits = [policy.max_per_name, policy.max_per_client]
    with uow.write() as store:
        now = clock()
        db.lock_failure_keys(store.conn, keys)
        for key, limit in zip(keys, limits, strict=True):
            count, oldest = db.count_failures(store.conn, key, now - policy.window)
            if count >= limit and oldest is not None:
                raise SignInThrottled(int((oldest + policy.window - now).total_seconds()) + 1)
        pending = db.add_failure(store.conn, keys, now)
        row = db.operator(store.conn, name)
    if not verify_password(password, row.password_hash if row else None) or row is None:
        with uow.write() as store:
            audit.record(store, clock(), Actor(f"client:{client}"), "signin.failed", f"operator {name}")
        return None
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with uow.write() as store:
        now = clock()
        db.delete_failures(store.conn, pending)
        db.clear_failures(store.conn, keys[0], before=now - policy.window)
        db.create_session(store.conn, _hash(cookie), row.id, csrf, now, now + policy.session_lifetime)
        audit.record(store, now, Actor.operator(row.name), "signin", f"operator {row.name}", f"from {client}")
    return NewSession(cookie, Session(row.id, row.name, csrf, now + policy.session_lifetime))


def session(uow: UnitOfWork, clock: Clock, cookie: str | None) -> Session | None:
    if not cookie or len(cookie) > 200:
        return None
    with uow.read() as store:
        row = db.session(store.conn, _hash(cookie), clock())
    return None if row is None else Session(row.operator_id, row.operator_name, row.csrf_token, row.expires_at)


def sign_out(uow: UnitOfWork, clock: Clock, cookie: str, operator: str) -> None:
    with uow.write() as store:
        db.delete_session(store.conn, _hash(cookie))
        audit.record(store, clock(), Actor.operator(operator), "signout", f"operator {operator}")


def sign_out_quietly(uow: UnitOfWork, cookie: str) -> None:
    """End a session the browser still carried at a new sign-in (not an operator action: not audited)."""
    if cookie and len(cookie) <= 200:
        with uow.write() as store:
            db.delete_session(store.conn, _hash(cookie))
