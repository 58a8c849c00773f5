"""Authentication (developer token + access token) and authorization (user ↔ customer links)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from couponsvc.adapters.store import SqlStore
from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.domain.tokens import token_hash


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a call presented; never logged."""

    developer_token: str | None
    access_token: str | None

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return "Credentials(<redacted>)"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    customer_ids: frozenset[int]

    def may_act_for(self, customer_id: int) -> bool:
        return customer_id in self.customer_ids

    def require_customer(self, customer_id: int) -> None:
        """106 for a customer outside the user's set, whether or not it exists."""
        if not self.may_act_for(customer_id):
            raise ServiceFault(Err.USER_IS_NOT_AUTHORIZED)


def _present(value: str | None) -> str | None:
    return value.strip() if value is not None and value.strip() else None


def authenticate(store: SqlStore, creds: Credentials, now: datetime) -> Principal:
    """116 missing header, 105 unknown/disabled/revoked, 109 expired access token.

    Tokens are never compared as text: the store is searched by the SHA-256 of the presented token,
    so response timing depends only on a hash the caller cannot steer byte by byte.
    """
    developer_token = _present(creds.developer_token)
    access_token = _present(creds.access_token)
    missing = [name for name, value in (("DeveloperToken", developer_token),
                                        ("AuthenticationToken", access_token)) if value is None]
    if missing:
        raise ServiceFault(Err.REQUEST_MISSING_HEADERS, "Missing: " + ", ".join(missing))
    assert developer_token is not None and access_token is not None

    dev_hash = token_hash(developer_token)
    if not store.developer_token_enabled(dev_hash):
        raise ServiceFault(Err.INVALID_CREDENTIALS, "The developer token is not valid.")
    at_hash = token_hash(access_token)
    row = store.access_token(at_hash)
    if row is None or row.revoked_at is not None:
        raise ServiceFault(Err.INVALID_CREDENTIALS, "The access token is not valid.")
    if row.expires_at <= now:
        raise ServiceFault(Err.AUTHENTICATION_TOKEN_EXPIRED)
    return Principal(row.user_id, store.user_customer_ids(row.user_id))
