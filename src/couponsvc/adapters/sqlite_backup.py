"""Backups of the embedded SQLite database: the online backup API, an in-use lock, atomic restore.

- **Backup** copies the database page by page with SQLite's backup API in one step, i.e. inside one read
  transaction: the copy is the database as of one instant, whole transactions only, while servers keep
  writing (WAL readers never block writers).  It is written next to FILE and renamed into place.
- **In use**: every process that opens the database through ``bootstrap`` (``serve``, ``worker``, the CLI)
  holds a shared ``flock`` on ``DB.lock``; ``restore`` needs it exclusively, so it refuses while any runs.
- **Restore** checks the file (SQLite, intact, a couponsvc schema at a revision this code knows), copies it
  to a temporary file beside the database, keeps the current database as ``DB.pre-restore-TIMESTAMP`` (a
  hard link) and renames the copy over it: at every instant the path holds either the old or the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from couponsvc.domain.errors import ConfigurationError

SQLITE_MAGIC = b"SQLite format 3\x00"
REQUIRED_TABLES = {"alembic_version", "customers", "coupon_classes", "coupons", "outbox", "dispatches"}


class DatabaseInUse(ConfigurationError):
    """A server, worker or command has the database open."""


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    revision: str
    coupons: int
    outbox: int


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def hold_shared_lock(db: Path) -> IO[bytes]:
    """The in-use lock of a process that opened the database; released when the file is closed."""
    db.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path(db), "ab")  # noqa: SIM115 - held for the life of the process's container
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


@contextlib.contextmanager
def exclusive_lock(db: Path) -> Iterator[None]:
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(db), "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(
                f"{db} is in use (a couponsvc serve, worker or command has it open): stop them, then restore"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60, isolation_level=None)
    return sqlite3.connect(path, timeout=60, isolation_level=None)


def _copy(source: sqlite3.Connection, target: Path) -> None:
    """``source`` into a new self-contained file ``target`` (rollback journal, no -wal beside it)."""
    target.unlink(missing_ok=True)
    dest = _connect(target)
    try:
        source.backup(dest, pages=-1)  # all pages in one step: one read transaction, one instant
        dest.execute("PRAGMA journal_mode=DELETE")
        _fsync(target)
    finally:
        dest.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def inspect(path: Path) -> DatabaseFacts:
    """What a database file is, refusing anything that is not an intact couponsvc database."""
    if not path.is_file():
        raise ConfigurationError(f"{path}: no such file")
    with path.open("rb") as f:
        if f.read(16) != SQLITE_MAGIC:
            raise ConfigurationError(f"{path} is not a SQLite database, so not a couponsvc backup")
    conn = _connect(path, readonly=True)
    try:
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"{path} is not a readable SQLite database: {exc}") from None
        if check is None or check[0] != "ok":
            raise ConfigurationError(f"{path} is damaged (SQLite quick_check: {check[0] if check else '?'})")
        missing = REQUIRED_TABLES - tables
        if missing:
            raise ConfigurationError(
                f"{path} is not a couponsvc database (no table {sorted(missing)[0]!r})")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row is None:
            raise ConfigurationError(f"{path} is not a couponsvc database (no schema revision)")
        coupons = int(conn.execute("SELECT count(*) FROM coupons").fetchone()[0])
        outbox = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        return DatabaseFacts(str(row[0]), coupons, outbox)
    finally:
        conn.close()


def backup(db: Path, target: Path) -> DatabaseFacts:
    if not db.is_file():
        raise ConfigurationError(f"there is no database at {db} to back up")
    target = target.resolve()
    if target == db.resolve():
        raise ConfigurationError(f"{target} is the database itself: choose another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    source = _connect(db)
    try:
        _copy(source, partial)
        facts = inspect(partial)
        os.replace(partial, target)
    finally:
        source.close()
        partial.unlink(missing_ok=True)
    return facts


def restore(db: Path, source_file: Path, known_revisions: set[str]) -> tuple[DatabaseFacts, Path | None]:
    """Put ``source_file`` in place of ``db``; returns its facts and where the previous database was kept."""
    facts = inspect(source_file)
    if facts.revision not in known_revisions:
        raise ConfigurationError(
            f"{source_file} has schema revision {facts.revision}, which this version of couponsvc does not know "
            "(a newer version made it): restore it with that version")
    if source_file.resolve() == db.resolve():
        raise ConfigurationError(f"{source_file} is the database itself")
    db.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(db):
        staged = db.with_name(f".{db.name}.restore-{os.getpid()}")
        src = _connect(source_file, readonly=True)
        try:
            _copy(src, staged)
        finally:
            src.close()
        kept: Path | None = None
        try:
            if db.exists():
                _checkpoint(db)  # fold the current WAL in, so that no stale -wal outlives the swap
                kept = db.with_name(f"{db.name}.pre-restore-{time.strftime('%Y%m%dT%H%M%S')}")
                os.link(db, kept)
            for suffix in ("-wal", "-shm"):
                db.with_name(db.name + suffix).unlink(missing_ok=True)
            os.replace(staged, db)
            _fsync(db)
        finally:
            staged.unlink(missing_ok=True)
    return facts, kept


def _checkpoint(db: Path) -> None:
    conn = _connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")  # removes the -wal once this last connection closes
    finally:
        conn.close()
