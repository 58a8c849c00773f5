"""Operator-side writes (seed files, CLI): customers, classes, code pools, tokens.  Set-based and idempotent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from couponsvc.adapters import schema as t

CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class CodeRow:
    code: str
    expires_at: datetime | None = None


@dataclass(slots=True)
class InsertReport:
    inserted: int = 0
    already_in_class: int = 0
    #: codes that exist in another class (the caller refuses the whole load when this is not empty)
    conflicts: list[str] | None = None


def _upsert_insert(conn: Connection, table: Any) -> Any:
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


def upsert_customer(conn: Connection, customer_id: int, name: str) -> None:
    stmt = _upsert_insert(conn, t.customers).values(id=customer_id, name=name)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"name": name}))


def customer_exists(conn: Connection, customer_id: int) -> bool:
    return conn.scalar(select(t.customers.c.id).where(t.customers.c.id == customer_id)) is not None


def account_owner(conn: Connection, account_id: int) -> int | None:
    return conn.scalar(select(t.accounts.c.customer_id).where(t.accounts.c.id == account_id))


def upsert_account(conn: Connection, account_id: int, customer_id: int, number: str, currency: str) -> None:
    stmt = _upsert_insert(conn, t.accounts).values(
        id=account_id, customer_id=customer_id, number=number, currency_code=currency
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"number": number, "currency_code": currency}))


def find_class_id(conn: Connection, customer_id: int, name_key: str) -> int | None:
    c = t.coupon_classes.c
    return conn.scalar(select(c.id).where(c.customer_id == customer_id, c.name_key == name_key))


def upsert_class(conn: Connection, customer_id: int, name_key: str, values: dict[str, Any]) -> int:
    """Create the class or bring its attributes to ``values``; returns its id."""
    class_id = find_class_id(conn, customer_id, name_key)
    if class_id is None:
        result = conn.execute(
            insert(t.coupon_classes)
            .values(customer_id=customer_id, name_key=name_key, **values)
            .returning(t.coupon_classes.c.id)
        )
        return int(result.scalar_one())
    conn.execute(update(t.coupon_classes).where(t.coupon_classes.c.id == class_id).values(**values))
    return class_id


def count_codes(conn: Connection, class_id: int, origin: str | None = None) -> int:
    c = t.coupons.c
    query = select(func.count()).select_from(t.coupons).where(c.class_id == class_id)
    if origin is not None:
        query = query.where(c.origin == origin)
    return int(conn.scalar(query) or 0)


def insert_codes(
    conn: Connection, class_id: int, rows: Sequence[CodeRow], origin: str, now: datetime,
    progress: Any = None,
) -> InsertReport:
    """Insert new codes (oldest first, in the given order); codes already in this class are skipped.

    ``rows`` must hold no duplicate codes.  Codes already in another class are collected in
    ``conflicts`` and not inserted; the caller rolls the transaction back when there are any.
    """
    report = InsertReport(conflicts=[])
    stmt = _upsert_insert(conn, t.coupons).on_conflict_do_nothing(index_elements=["code"])
    c = t.coupons.c
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        params = [
            {"class_id": class_id, "code": r.code, "state": "available", "origin": origin,
             "expires_at": r.expires_at, "created_at": now}
            for r in chunk
        ]
        inserted = conn.execute(stmt, params).rowcount
        report.inserted += inserted
        if inserted != len(chunk):
            elsewhere = list(conn.scalars(
                select(c.code).where(c.code.in_(bindparam("codes", expanding=True)), c.class_id != class_id),
                {"codes": [r.code for r in chunk]},
            ))
            assert report.conflicts is not None
            report.conflicts.extend(elsewhere)
            report.already_in_class += len(chunk) - inserted - len(elsewhere)
        if progress is not None:
            progress.update(len(chunk))
    return report


def generate_into_class(
    conn: Connection, class_id: int, codes_factory: Any, count: int, origin: str, now: datetime,
    progress: Any = None,
) -> int:
    """Insert ``count`` new random codes, drawing again for the rare ones that collide; returns count."""
    missing = count
    for _ in range(20):
        if missing == 0:
            return count
        rows = [CodeRow(code) for code in dict.fromkeys(codes_factory(missing))]
        report = insert_codes(conn, class_id, rows, origin, now, progress)
        missing -= report.inserted
    raise RuntimeError("could not draw enough unique codes; use a pattern with more random characters")


# --- principals -----------------------------------------------------------------------------
def upsert_developer_token(conn: Connection, name: str, token_hash: str, enabled: bool, now: datetime) -> None:
    stmt = _upsert_insert(conn, t.developer_tokens).values(
        name=name, token_hash=token_hash, enabled=enabled, created_at=now
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["token_hash"], set_={"name": name, "enabled": enabled}))


def ensure_user(conn: Connection, name: str) -> int:
    user_id = conn.scalar(select(t.users.c.id).where(t.users.c.name == name))
    if user_id is None:
        user_id = conn.execute(insert(t.users).values(name=name).returning(t.users.c.id)).scalar_one()
    return int(user_id)


def find_user(conn: Connection, name: str) -> int | None:
    user_id = conn.scalar(select(t.users.c.id).where(t.users.c.name == name))
    return None if user_id is None else int(user_id)


def link_customers(conn: Connection, user_id: int, customer_ids: Iterable[int]) -> None:
    wanted = set(customer_ids)
    have = set(conn.scalars(select(t.user_customers.c.customer_id).where(t.user_customers.c.user_id == user_id)))
    rows = [{"user_id": user_id, "customer_id": cid} for cid in sorted(wanted - have)]
    if rows:
        conn.execute(insert(t.user_customers), rows)


def access_token_owner(conn: Connection, token_hash: str) -> int | None:
    c = t.access_tokens.c
    owner = conn.scalar(select(c.user_id).where(c.token_hash == token_hash))
    return None if owner is None else int(owner)


def put_access_token(
    conn: Connection, user_id: int, token_hash: str, expires_at: datetime | None, now: datetime,
    default_expiry: datetime,
) -> None:
    """Create the token (``expires_at`` or ``default_expiry``), or set the given expiry on an existing one."""
    c = t.access_tokens.c
    if access_token_owner(conn, token_hash) is None:
        conn.execute(insert(t.access_tokens).values(
            user_id=user_id, token_hash=token_hash, expires_at=expires_at or default_expiry, created_at=now))
    elif expires_at is not None:
        conn.execute(update(t.access_tokens).where(c.token_hash == token_hash).values(expires_at=expires_at))
