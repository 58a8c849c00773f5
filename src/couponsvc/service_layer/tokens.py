"""Access and developer tokens, operator side: issue (the secret is returned once), list, revoke, disable.

Authentication reads the token rows on every call (no cache), so a revocation or a disabled developer token
is refused (105) on the next call by every server on the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from couponsvc.adapters import admin
from couponsvc.adapters import tokens as db
from couponsvc.adapters.tokens import AccessTokenInfo, DeveloperTokenInfo
from couponsvc.domain.errors import NotFound, OperatorInputError
from couponsvc.domain.tokens import new_secret, token_hash
from couponsvc.service_layer import audit
from couponsvc.service_layer.audit import Actor
from couponsvc.service_layer.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]
PREFIX_LENGTH = 12  # "cst_" or "dev_" and 8 random characters: enough to name a token, far from guessing it
MAX_TTL = timedelta(days=36500)


class UnknownCustomer(NotFound):
    def __init__(self, customer_id: int) -> None:
        super().__init__(f"customer {customer_id}: no such customer (load it with `couponsvc load`)")
        self.customer_id = customer_id


@dataclass(frozen=True, slots=True)
class IssuedToken:
    secret: str  # shown once; only its hash is stored
    id: int
    prefix: str
    expires_at: datetime | None = None


def check_name(value: str, what: str) -> str:
    if not value.strip() or len(value) > 255 or not value.isprintable():
        raise OperatorInputError(f"{value!r}: the {what} must be 1 to 255 printable characters")
    return value


def parse_ttl(text: str) -> timedelta:
    """``3600s``, ``90m``, ``12h``, ``30d`` or a number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    hint = f"use a positive number with a unit: 3600s, 90m, 12h, 30d (at most {MAX_TTL.days} days)"
    text = text.strip()
    try:
        number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
        seconds = float(number) * unit
        if not 0 < seconds <= MAX_TTL.total_seconds():  # also refuses nan and inf
            raise ValueError(hint)
        return timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        raise OperatorInputError(f"{text!r}: {hint}") from None


def issue_access_token(uow: UnitOfWork, clock: Clock, actor: Actor, user: str, customers: Sequence[int],
                       lifetime: timedelta) -> IssuedToken:
    """A new access token for ``user`` (created if new, linked to ``customers``)."""
    check_name(user, "user name")
    secret = new_secret("cst_")
    with uow.write() as store:
        now = clock()
        missing = [c for c in customers if not admin.customer_exists(store.conn, c)]
        if missing:
            raise UnknownCustomer(missing[0])
        user_id = admin.ensure_user(store.conn, user)
        admin.link_customers(store.conn, user_id, customers)
        token_id = db.insert_access_token(store.conn, user_id, token_hash(secret), secret[:PREFIX_LENGTH],
                                          now + lifetime, now)
        audit.record(store, now, actor, "token.issue", f"access token {token_id} ({secret[:PREFIX_LENGTH]}…)",
                     f"user {user}, customers {sorted(set(customers))}, until {(now + lifetime):%Y-%m-%d %H:%M}")
    return IssuedToken(secret, token_id, secret[:PREFIX_LENGTH], now + lifetime)


def create_developer_token(uow: UnitOfWork, clock: Clock, actor: Actor, name: str) -> IssuedToken:
    check_name(name, "application name")
    secret = new_secret("dev_")
    with uow.write() as store:
        now = clock()
        token_id = db.insert_developer_token(store.conn, name, token_hash(secret), secret[:PREFIX_LENGTH], now)
        audit.record(store, now, actor, "devtoken.create", f"developer token {token_id} ({secret[:PREFIX_LENGTH]}…)",
                     f"application {name}")
    return IssuedToken(secret, token_id, secret[:PREFIX_LENGTH])


def revoke_access_tokens(uow: UnitOfWork, clock: Clock, actor: Actor, *, user: str | None = None,
                         token_id: int | None = None, prefix: str | None = None) -> int:
    """Revoke every unrevoked token of ``user``, or the one token with this id or prefix; returns how many.

    A prefix must name exactly one token; an unknown user, id or prefix is an error, not a silent 0.
    """
    if sum(x is not None for x in (user, token_id, prefix)) != 1:
        raise OperatorInputError("choose the tokens by user, by id or by prefix (exactly one)")
    with uow.write() as store:
        now = clock()
        if user is not None:
            user_id = admin.find_user(store.conn, user)
            if user_id is None:
                raise NotFound(f"no user {user!r}")
            ids = db.access_token_ids(store.conn, user_id=user_id)
            what = f"every access token of {user}"
        elif token_id is not None:
            if not db.access_token_exists(store.conn, token_id):
                raise NotFound(f"no access token with id {token_id}")
            ids = db.access_token_ids(store.conn, token_id=token_id)
            what = f"access token {token_id}"
        else:
            assert prefix is not None
            ids = db.access_token_ids(store.conn, prefix=prefix.strip())
            if not ids:
                raise NotFound(f"no unrevoked access token with prefix {prefix!r}")
            if len(ids) > 1:
                raise OperatorInputError(f"{len(ids)} tokens have the prefix {prefix!r}: revoke by id")
            what = f"access token {ids[0]} ({prefix.strip()}…)"
        count = db.revoke_access_tokens(store.conn, ids, now)
        audit.record(store, now, actor, "token.revoke", what, f"{count} revoked")
    return count


def set_developer_token_enabled(uow: UnitOfWork, clock: Clock, actor: Actor, enabled: bool, *,
                                name: str | None = None, token_id: int | None = None) -> int:
    """Disable (or enable again) the developer tokens of application ``name``, or the one with ``token_id``."""
    if (name is None) == (token_id is None):
        raise OperatorInputError("choose the developer token by name or by id (exactly one)")
    with uow.write() as store:
        count = db.set_developer_tokens_enabled(store.conn, enabled, name=name, token_id=token_id)
        what = f"developer token {token_id}" if token_id is not None else f"developer tokens of {name}"
        if count == 0:
            raise NotFound(f"no {what}")
        audit.record(store, clock(), actor, "devtoken.enable" if enabled else "devtoken.disable", what,
                     f"{count} token(s)")
    return count


def list_access_tokens(uow: UnitOfWork, *, user: str | None = None, before_id: int | None = None,
                       limit: int = 100) -> list[AccessTokenInfo]:
    with uow.read() as store:
        return db.access_tokens(store.conn, user=user, before_id=before_id, limit=limit)


def list_developer_tokens(uow: UnitOfWork, *, name: str | None = None) -> list[DeveloperTokenInfo]:
    with uow.read() as store:
        return db.developer_tokens(store.conn, name=name)
