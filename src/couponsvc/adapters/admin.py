"""Operator-side writes (seed files, CLI): customers, classes, code pools, tokens.  Set-based and idempotent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from couponsvc.adapters import schema as t
from couponsvc.domain.codes import NewCodes
from couponsvc.domain.errors import ConfigurationError

#: rows per executemany call; also the granularity of progress reports and of the conflict lookup
CHUNK = 50_000
#: codes per ``IN (...)`` lookup (below every SQLite build's host-parameter limit)
LOOKUP_CHUNK = 5_000
#: SQLite page cache for a bulk insert, in KiB (the default 2 MiB makes random inserts into the
#: unique code index spill to the WAL over and over)
SQLITE_BULK_CACHE_KIB = 256 * 1024
#: ... grown with the import (about 160 bytes of index pages per code), up to this: past the cache, every random
#: insert into the code index rereads its pages, and a 10-million-code import would cost 3x per code
SQLITE_BULK_CACHE_MAX_KIB = 2 * 1024 * 1024


class CodeSpaceExhausted(ConfigurationError):
    """Random codes keep colliding with existing ones: the pattern has too few random characters."""


@dataclass(slots=True)
class InsertReport:
    inserted: int = 0
    already_in_class: int = 0
    #: codes that exist in another class (the caller refuses the whole load when this is not empty)
    conflicts: list[str] = field(default_factory=list)


def _upsert_insert(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _placeholder(conn: Connection) -> str:
    style = conn.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise NotImplementedError(f"bulk code insert does not support the {style} parameter style")


def upsert_customer(conn: Connection, customer_id: int, name: str) -> None:
    stmt = _upsert_insert(conn, t.customers).values(id=customer_id, name=name)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"name": name}))


def customer_exists(conn: Connection, customer_id: int) -> bool:
    return conn.scalar(select(t.customers.c.id).where(t.customers.c.id == customer_id)) is not None


def account_owner(conn: Connection, account_id: int) -> int | None:
    return conn.scalar(select(t.accounts.c.customer_id).where(t.accounts.c.id == account_id))


def upsert_account(conn: Connection, account_id: int, customer_id: int, number: str, currency: str,
                   email: str | None = None) -> None:
    stmt = _upsert_insert(conn, t.accounts).values(
        id=account_id, customer_id=customer_id, number=number, currency_code=currency, email=email
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"],
                                            set_={"number": number, "currency_code": currency, "email": email}))


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


@contextmanager
def _bulk_tuning(conn: Connection, rows: int) -> Iterator[None]:
    """SQLite: a large page cache for the duration of a bulk insert of ``rows`` rows (set back afterwards)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    kib = max(SQLITE_BULK_CACHE_KIB, min(SQLITE_BULK_CACHE_MAX_KIB, rows * 160 // 1024))
    conn.exec_driver_sql(f"PRAGMA cache_size=-{kib}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


def insert_codes(
    conn: Connection, class_id: int, new: NewCodes, origin: str, now: datetime,
    progress: Callable[[int], object] | None = None, *, stop_on_conflict: bool = True,
) -> InsertReport:
    """Insert new codes as ``available`` coupons, in the given order (which is the dispatch order); codes
    already in this class are skipped.

    ``new`` must hold no duplicate codes.  Codes already in another class are not inserted and are
    collected in ``conflicts``; the caller refuses the load (rolls the transaction back) when there are
    any, so by default the work stops after the chunk that found the first ones.  ``progress`` is
    called with the number of codes handled after each chunk.

    This is the bulk path of `codes import` (a million codes is routine), on the caller's connection and
    transaction: one ``INSERT ... SELECT`` per chunk from ``json_each`` on SQLite (instead of a statement per
    row); ``COPY`` on PostgreSQL, or ``INSERT ... SELECT FROM unnest(...)`` for a chunk holding codes that exist.
    """
    report = InsertReport()
    if not len(new):
        return report
    insert_chunk = _chunk_inserter(conn, class_id, origin, now)
    with _bulk_tuning(conn, len(new)):
        for start in range(0, len(new), CHUNK):
            chunk = new.part(start, start + CHUNK)
            inserted = insert_chunk(chunk)
            report.inserted += inserted
            if inserted != len(chunk):
                elsewhere = _codes_in_other_classes(conn, class_id, chunk.codes)
                report.conflicts.extend(elsewhere)
                report.already_in_class += len(chunk) - inserted - len(elsewhere)
            if progress is not None:
                progress(len(chunk))
            if report.conflicts and stop_on_conflict:
                break
    return report


def _chunk_inserter(conn: Connection, class_id: int, origin: str, now: datetime) -> Callable[[NewCodes], int]:
    """A function that inserts one chunk of codes in order, skipping codes that exist
    (``ON CONFLICT (code) DO NOTHING``), and returns how many it inserted."""
    dialect = conn.dialect
    table = dialect.identifier_preparer.format_table(t.coupons)
    columns = "class_id, code, state, origin, expires_at, created_at"
    if dialect.name == "postgresql":
        from psycopg.errors import UniqueViolation

        # WITH ORDINALITY ... ORDER BY keeps the file order, which is the id (dispatch) order
        pg_sql = (f"INSERT INTO {table} ({columns}) "
                  "SELECT %s, u.code, 'available', %s, u.expires_at, %s "
                  "FROM unnest(%s::text[], %s::timestamp[]) WITH ORDINALITY AS u(code, expires_at, n) "
                  "ORDER BY u.n ON CONFLICT (code) DO NOTHING")

        copy_sql = f"COPY {table} ({columns}) FROM STDIN"

        def insert_pg(chunk: NewCodes) -> int:
            expiries = list(chunk.expiries) if chunk.expiries is not None else [None] * len(chunk)
            # COPY first (the common case: new codes): it is the fastest way in, but it cannot skip a code
            # that exists; at the first such code the savepoint undoes the chunk and ON CONFLICT sorts it out
            try:
                with conn.begin_nested(), conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
                    with cur.copy(copy_sql) as copy:
                        for code, exp in zip(chunk.codes, expiries, strict=True):
                            copy.write_row((class_id, code, "available", origin, exp, now))
                return len(chunk)
            except UniqueViolation:
                pass
            return conn.exec_driver_sql(pg_sql, (class_id, origin, now, list(chunk.codes), expiries)).rowcount

        return insert_pg

    if dialect.name != "sqlite":
        raise NotImplementedError(f"bulk code insert does not support {dialect.name}")
    # SQLite: one INSERT ... SELECT per chunk from a JSON array (json_each, in file order): about twice as fast
    # as executemany, which pays a statement (and its journal) per row
    head = f"INSERT INTO {table} ({columns}) SELECT ?, "
    tail = ", 'available', ?, {}, ? FROM json_each(?) ORDER BY key ON CONFLICT (code) DO NOTHING"
    codes_only = head + "value" + tail.format("NULL")
    with_expiry = head + "json_extract(value, '$[0]')" + tail.format("json_extract(value, '$[1]')")
    # datetimes are stored as SQLAlchemy stores them (on SQLite: a fixed-width text form), so that the
    # service's comparisons and reads see exactly what a SQLAlchemy insert would have written
    to_db: Callable[[Any], Any] = t.coupons.c.expires_at.type.dialect_impl(dialect).bind_processor(dialect) \
        or (lambda v: v)
    created = to_db(now)

    def insert_json(chunk: NewCodes) -> int:
        if chunk.expiries is not None:
            data = _to_json([(code, None if exp is None else to_db(exp))
                          for code, exp in zip(chunk.codes, chunk.expiries, strict=True)])
            return conn.exec_driver_sql(with_expiry, (class_id, origin, created, data)).rowcount
        return conn.exec_driver_sql(codes_only, (class_id, origin, created, _json_strings(chunk.codes))).rowcount

    return insert_json


#: compact JSON, non-ASCII as is (a chunk's JSON parameter)
_to_json = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode


def _json_strings(codes: Sequence[str]) -> str:
    """``codes`` as a JSON array.  Valid codes are printable (no control characters), so unless one holds a
    quote or a backslash, each is its own JSON string: a join, ten times faster than the encoder."""
    body = '","'.join(codes)
    # the separators hold two quotes each: any other quote is in a code
    if codes and body.count('"') == 2 * (len(codes) - 1) and "\\" not in body and body.isprintable():
        return f'["{body}"]'
    return _to_json(list(codes))


def _codes_in_other_classes(conn: Connection, class_id: int, codes: Sequence[str]) -> list[str]:
    """Which of ``codes`` exist in a class other than ``class_id``, in the order given."""
    table = conn.dialect.identifier_preparer.format_table(t.coupons)
    found: set[str] = set()
    if conn.dialect.name == "postgresql":
        sql = f"SELECT code FROM {table} WHERE class_id <> %s AND code = ANY(%s::text[])"
        found.update(conn.exec_driver_sql(sql, (class_id, list(codes))).scalars())
    else:
        ph = _placeholder(conn)
        for start in range(0, len(codes), LOOKUP_CHUNK):
            part = codes[start:start + LOOKUP_CHUNK]
            sql = f"SELECT code FROM {table} WHERE class_id <> {ph} AND code IN ({', '.join([ph] * len(part))})"
            found.update(conn.exec_driver_sql(sql, (class_id, *part)).scalars())
    return [code for code in codes if code in found]


def generate_into_class(
    conn: Connection, class_id: int, codes_factory: Callable[[int], Sequence[str]], count: int, origin: str,
    now: datetime, progress: Callable[[int], object] | None = None,
) -> int:
    """Insert ``count`` new random codes, drawing again for the rare ones that collide; returns count.

    Codes are drawn and inserted a chunk at a time (memory stays flat for ten million); a drawn code
    that already exists anywhere is simply not used.
    """
    missing = count
    fruitless = 0
    while missing > 0:
        drawn = list(dict.fromkeys(codes_factory(min(missing, CHUNK))))
        report = insert_codes(conn, class_id, NewCodes(drawn), origin, now,
                              stop_on_conflict=False)
        missing -= report.inserted
        if progress is not None and report.inserted:
            progress(report.inserted)
        # with the capacity check's headroom a draw loses a handful of codes at most; losing half
        # of it again and again means the pattern's space is used up
        fruitless = fruitless + 1 if report.inserted * 2 < len(drawn) else 0
        if fruitless >= 5:
            raise CodeSpaceExhausted(
                f"could not draw {count:,} new unique codes: the pattern's codes are nearly all taken;"
                " use a pattern with more random characters (X)")
    return count


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
