"""SQL for operators, their console sessions, failed sign-ins and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select

from couponsvc.adapters import schema as t

op_ = t.operators.c
s_ = t.console_sessions.c
f_ = t.signin_failures.c
a_ = t.audit_log.c
#: the first key of the PostgreSQL advisory locks on sign-in failure keys (the second is the key's hash)
SIGNIN_LOCK_CLASS = 7713


@dataclass(frozen=True, slots=True)
class OperatorRow:
    id: int
    name: str
    password_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRow:
    operator_id: int
    operator_name: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    object: str
    detail: str | None


def operator(conn: Connection, name: str) -> OperatorRow | None:
    r = conn.execute(select(op_.id, op_.name, op_.password_hash, op_.created_at).where(op_.name == name)).first()
    return None if r is None else OperatorRow(r.id, r.name, r.password_hash, r.created_at)


def operators(conn: Connection) -> list[OperatorRow]:
    rows = conn.execute(select(op_.id, op_.name, op_.password_hash, op_.created_at).order_by(op_.name))
    return [OperatorRow(r.id, r.name, r.password_hash, r.created_at) for r in rows]


def add_operator(conn: Connection, name: str, password_hash: str, now: datetime) -> int:
    return int(conn.execute(insert(t.operators).values(name=name, password_hash=password_hash, created_at=now)
                            .returning(op_.id)).scalar_one())


def set_password(conn: Connection, operator_id: int, password_hash: str) -> None:
    conn.execute(t.operators.update().where(op_.id == operator_id).values(password_hash=password_hash))


def remove_operator(conn: Connection, operator_id: int) -> None:
    conn.execute(delete(t.console_sessions).where(s_.operator_id == operator_id))
    conn.execute(delete(t.operators).where(op_.id == operator_id))


# --- sessions --------------------------------------------------------------------------------------
def create_session(conn: Connection, session_hash: str, operator_id: int, csrf_token: str, now: datetime,
                   expires_at: datetime) -> None:
    conn.execute(delete(t.console_sessions).where(s_.expires_at < now))  # housekeeping, on an index-less table
    conn.execute(insert(t.console_sessions).values(id=session_hash, operator_id=operator_id, csrf_token=csrf_token,
                                                   created_at=now, expires_at=expires_at))


def session(conn: Connection, session_hash: str, now: datetime) -> SessionRow | None:
    r = conn.execute(
        select(s_.operator_id, op_.name, s_.csrf_token, s_.expires_at)
        .join(t.operators, op_.id == s_.operator_id)
        .where(s_.id == session_hash, s_.expires_at > now)
    ).first()
    return None if r is None else SessionRow(r.operator_id, r.name, r.csrf_token, r.expires_at)


def delete_session(conn: Connection, session_hash: str) -> None:
    conn.execute(delete(t.console_sessions).where(s_.id == session_hash))


# --- failed sign-ins -------------------------------------------------------------------------------
def count_failures(conn: Connection, key: str, since: datetime) -> tuple[int, datetime | None]:
    """How many failures under ``key`` since ``since``, and the oldest of them."""
    r = conn.execute(select(func.count(), func.min(f_.at)).where(f_.key == key, f_.at >= since)).one()
    return int(r[0]), r[1]


def lock_failure_keys(conn: Connection, keys: list[str]) -> None:
    """Hold, until the transaction ends, the right to count and add failures under ``keys``: two sign-ins
    at once under one key then count one after the other.  SQLite's write transaction is already the only
    writer; PostgreSQL takes a transaction-scoped advisory lock per key (in one order: no deadlock), bounded
    by the session's lock timeout like any other lock."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (SIGNIN_LOCK_CLASS, key))


def add_failure(conn: Connection, keys: list[str], now: datetime) -> list[int]:
    """Count a failure under each key; returns the new rows' ids."""
    return [int(conn.execute(insert(t.signin_failures).values(key=k, at=now).returning(f_.id)).scalar_one())
            for k in keys]


def delete_failures(conn: Connection, ids: list[int]) -> None:
    conn.execute(delete(t.signin_failures).where(f_.id.in_(ids)))


def clear_failures(conn: Connection, key: str, before: datetime | None = None) -> None:
    stmt = delete(t.signin_failures).where(f_.key == key)
    conn.execute(stmt)
    if before is not None:
        conn.execute(delete(t.signin_failures).where(f_.at < before))


# --- audit log -------------------------------------------------------------------------------------
def audit(conn: Connection, now: datetime, actor: str, action: str, obj: str, detail: str | None) -> None:
    conn.execute(insert(t.audit_log).values(at=now, actor=actor[:300], action=action[:64], object=obj[:500],
                                            detail=detail))


def audit_page(conn: Connection, before_id: int | None, limit: int, action: str | None = None) -> list[AuditRow]:
    q = select(a_.id, a_.at, a_.actor, a_.action, a_.object, a_.detail).order_by(a_.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(a_.id < before_id)
    if action:
        q = q.where(a_.action == action)
    return [AuditRow(r.id, r.at, r.actor, r.action, r.object, r.detail) for r in conn.execute(q)]
