"""Unit of work: a transaction on the store, with database errors mapped to the service's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from couponsvc.adapters.db import WRITE
from couponsvc.adapters.store import ConcurrentUpdate, SqlStore
from couponsvc.domain.errors import StoreUnavailable


class RetryableConflict(Exception):
    """The transaction lost a race (unique constraint, serialization failure, rows taken): run it again."""


class UnitOfWork(Protocol):
    def read(self) -> AbstractContextManager[SqlStore]: ...
    def write(self) -> AbstractContextManager[SqlStore]: ...


class SqlUnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def read(self) -> Iterator[SqlStore]:
        with self._transaction(write=False) as store:
            yield store

    @contextmanager
    def write(self) -> Iterator[SqlStore]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing)."""
        with self._transaction(write=True) as store:
            yield store

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[SqlStore]:
        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield SqlStore(conn)
        except ConcurrentUpdate as exc:
            raise RetryableConflict(str(exc)) from exc
        except IntegrityError as exc:
            raise RetryableConflict(str(exc.orig)) from exc
        except OperationalError as exc:
            if _is_serialization_failure(exc):
                raise RetryableConflict(str(exc.orig)) from exc
            raise StoreUnavailable(str(exc.orig)) from exc
        except DBAPIError as exc:
            raise StoreUnavailable(str(exc.orig)) from exc


def _is_serialization_failure(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in ("40001", "40P01")
