"""SQL for issuing, listing, revoking and disabling tokens (the operator side; authentication reads store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from couponsvc.adapters import schema as t

at = t.access_tokens.c
dt = t.developer_tokens.c
u = t.users.c


@dataclass(frozen=True, slots=True)
class AccessTokenInfo:
    id: int
    user: str
    prefix: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeveloperTokenInfo:
    id: int
    name: str
    prefix: str | None
    enabled: bool
    created_at: datetime


def insert_access_token(conn: Connection, user_id: int, token_hash: str, prefix: str, expires_at: datetime,
                        now: datetime) -> int:
    return int(conn.execute(insert(t.access_tokens).values(
        user_id=user_id, token_hash=token_hash, prefix=prefix, expires_at=expires_at, created_at=now)
        .returning(at.id)).scalar_one())


def insert_developer_token(conn: Connection, name: str, token_hash: str, prefix: str, now: datetime) -> int:
    return int(conn.execute(insert(t.developer_tokens).values(
        name=name, token_hash=token_hash, prefix=prefix, enabled=True, created_at=now)
        .returning(dt.id)).scalar_one())


def access_tokens(conn: Connection, *, user: str | None = None, before_id: int | None = None,
                  limit: int = 100) -> list[AccessTokenInfo]:
    q = (select(at.id, u.name, at.prefix, at.created_at, at.expires_at, at.revoked_at)
         .join(t.users, u.id == at.user_id).order_by(at.id.desc()).limit(limit))
    if user is not None:
        q = q.where(u.name == user)
    if before_id is not None:
        q = q.where(at.id < before_id)
    return [AccessTokenInfo(r.id, r.name, r.prefix, r.created_at, r.expires_at, r.revoked_at) for r in conn.execute(q)]


def developer_tokens(conn: Connection, *, name: str | None = None, limit: int = 1000) -> list[DeveloperTokenInfo]:
    q = select(dt.id, dt.name, dt.prefix, dt.enabled, dt.created_at).order_by(dt.id.desc()).limit(limit)
    if name is not None:
        q = q.where(dt.name == name)
    return [DeveloperTokenInfo(r.id, r.name, r.prefix, bool(r.enabled), r.created_at) for r in conn.execute(q)]


def access_token_ids(conn: Connection, *, user_id: int | None = None, token_id: int | None = None,
                     prefix: str | None = None) -> list[int]:
    """Ids of the unrevoked tokens that match every given criterion."""
    q = select(at.id).where(at.revoked_at.is_(None))
    if user_id is not None:
        q = q.where(at.user_id == user_id)
    if token_id is not None:
        q = q.where(at.id == token_id)
    if prefix is not None:
        q = q.where(at.prefix == prefix)
    return [int(i) for i in conn.scalars(q)]


def access_token_exists(conn: Connection, token_id: int) -> bool:
    return conn.scalar(select(func.count()).where(at.id == token_id)) == 1


def revoke_access_tokens(conn: Connection, ids: list[int], now: datetime) -> int:
    if not ids:
        return 0
    return int(conn.execute(update(t.access_tokens).where(at.id.in_(ids), at.revoked_at.is_(None))
                            .values(revoked_at=now)).rowcount)


def set_developer_tokens_enabled(conn: Connection, enabled: bool, *, name: str | None = None,
                                 token_id: int | None = None) -> int:
    q = update(t.developer_tokens).values(enabled=enabled)
    if name is not None:
        q = q.where(dt.name == name)
    if token_id is not None:
        q = q.where(dt.id == token_id)
    return int(conn.execute(q).rowcount)


def user_names(conn: Connection, limit: int = 1000) -> list[str]:
    return list(conn.scalars(select(u.name).order_by(u.name).limit(limit)))
