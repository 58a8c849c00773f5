"""Unit of work: a transaction on the store, with database errors mapped to the service's exceptions.

Only lost races are retried: the unique constraints two concurrent calls can trip over (an address, an
account or a code allocated twice, a message queued twice), serialization failures and deadlocks, and rows taken
under us.  Any other integrity error is a bug and fails the call at once.  Within an API request every
wait is bounded by the request deadline (``domain/deadlines.py``, ``adapters/db.py``); running out of it
is ``DeadlineExceeded`` and the transaction is rolled back (also when the time ran out just before
the commit), so a late call changes nothing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from couponsvc.adapters.db import SQLITE_BUSY_TIMEOUT_S, WRITE
from couponsvc.adapters.schema import metadata
from couponsvc.adapters.store import ConcurrentUpdate, SqlStore
from couponsvc.domain.deadlines import current_deadline, is_urgent, remaining_or
from couponsvc.domain.errors import DeadlineExceeded, StoreUnavailable

#: the unique constraints concurrent calls can race on; violating any other constraint is a bug
RACE_CONSTRAINTS = frozenset({"uq_coupons_class_email", "uq_coupons_class_account", "uq_coupons_code",
                              "uq_outbox_coupon_dispatch", "uq_outbox_message_id"})
SERIALIZATION_FAILURES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
WAIT_TIMEOUTS = frozenset({"55P03", "57014"})  # lock_timeout, statement_timeout (query canceled)


class RetryableConflict(Exception):
    """The transaction lost a race (unique constraint, serialization failure, rows taken): run it again."""


class UnitOfWork(Protocol):
    def read(self) -> AbstractContextManager[SqlStore]: ...
    def write(self) -> AbstractContextManager[SqlStore]: ...


class SqlUnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer at a time and its busy handler polls with sleeps of up to 100 ms, so under
        # load some writers starve while others win again and again.  Writers of this process queue on a
        # gate instead, handed over the moment a commit ends; the busy wait is left for other processes.
        self._write_gate = WriteGate() if engine.dialect.name == "sqlite" else None

    @contextmanager
    def read(self) -> Iterator[SqlStore]:
        with self._transaction(write=False) as store:
            yield store

    @contextmanager
    def write(self) -> Iterator[SqlStore]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing)."""
        gate = self._write_gate
        if gate is None:
            with self._transaction(write=True) as store:
                yield store
            return
        if not gate.acquire(remaining_or(SQLITE_BUSY_TIMEOUT_S), first=is_urgent()):
            if current_deadline() is not None:
                raise DeadlineExceeded("the database write lock was not free within the request deadline")
            raise StoreUnavailable("the database write lock was not free in time")
        try:
            with self._transaction(write=True) as store:
                yield store
        finally:
            gate.release()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[SqlStore]:
        deadline = current_deadline()
        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield SqlStore(conn)
                    if deadline is not None:
                        deadline.check("before commit")  # rolls back: a late call changes nothing
        except ConcurrentUpdate as exc:
            raise RetryableConflict(str(exc)) from exc
        except IntegrityError as exc:
            if violated_constraint(exc) in RACE_CONSTRAINTS:
                raise RetryableConflict(str(exc.orig)) from exc
            raise  # a bug, not a race: an internal error at once, with its traceback in the log
        except PoolTimeout as exc:
            if deadline is not None:
                raise DeadlineExceeded(f"no database connection free within the request deadline: {exc}") from exc
            raise StoreUnavailable(f"no database connection free: {exc}") from exc
        except OperationalError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate in SERIALIZATION_FAILURES:
                raise RetryableConflict(str(exc.orig)) from exc
            if deadline is not None and (sqlstate in WAIT_TIMEOUTS or _is_sqlite_busy(exc)):
                raise DeadlineExceeded(f"database wait cut at the request deadline: {exc.orig}") from exc
            raise StoreUnavailable(str(exc.orig)) from exc
        except DBAPIError as exc:
            raise StoreUnavailable(str(exc.orig)) from exc


class WriteGate:
    """One writer at a time; waiters marked ``first`` (a call recording its own delivery, which its caller
    is waiting for) go before the others (new dispatches, the worker's batches)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holder: int | None = None
        self._depth = 0
        self._urgent_waiting = 0

    def acquire(self, timeout: float, *, first: bool = False) -> bool:
        me = threading.get_ident()
        end = time.monotonic() + timeout
        with self._cond:
            if self._holder == me:  # re-entrant, as a nested write would be on the same thread
                self._depth += 1
                return True
            if first:
                self._urgent_waiting += 1
            try:
                while self._holder is not None or (not first and self._urgent_waiting):
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                self._holder, self._depth = me, 1
                return True
            finally:
                if first:
                    self._urgent_waiting -= 1
                    self._cond.notify_all()  # the others may go now, if the gate is free

    def release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._holder = None
                self._cond.notify_all()


def _is_sqlite_busy(exc: DBAPIError) -> bool:
    return "database is locked" in str(exc.orig) or "database is busy" in str(exc.orig)


def _unique_columns() -> dict[tuple[str, frozenset[str]], str]:
    """(table, columns) → constraint name, to name SQLite's violations (it reports columns, not names)."""
    out: dict[tuple[str, frozenset[str]], str] = {}
    for table in metadata.tables.values():
        for constraint in table.constraints:
            cols = frozenset(c.name for c in getattr(constraint, "columns", ()))
            if constraint.name and cols:
                out[(table.name, cols)] = str(constraint.name)
    return out


_UNIQUE_BY_COLUMNS = _unique_columns()
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<cols>[\w.]+(?:, [\w.]+)*)")


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError violated, when the database says which."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name:
        return str(name)
    match = _SQLITE_UNIQUE.search(str(exc.orig))
    if match is None:
        return None
    qualified = [c.split(".", 1) for c in match["cols"].split(", ")]
    tables = {t for t, _ in qualified}
    if len(tables) != 1:
        return None
    return _UNIQUE_BY_COLUMNS.get((tables.pop(), frozenset(c for _, c in qualified)))
