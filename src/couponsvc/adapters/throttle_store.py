"""Where the sliding-window logs of the throttle live: the database (default) or Redis.

Both answer one question atomically for all the buckets of a call: may it run?  If every bucket has
room, the call is written to each counted bucket; if any has none, nothing is written anywhere (a refused
call counts against nothing) and the wait until the fullest bucket frees a slot is returned.

- Database: a table ``throttle_events`` (one row per admitted call and bucket) and ``throttle_buckets``
  (per bucket, how many of its rows are inside the window; its row lock serialises that bucket's callers,
  other buckets are not blocked).  PostgreSQL runs the whole admission as one function call
  (``couponsvc_throttle_admit``, migration 0008: one round trip), on the database's clock, and commits
  without waiting for the WAL flush (``synchronous_commit = off``: a crash may forget the last few
  admissions, which only ever lets a few more calls through).  SQLite serialises writers anyway
  (``BEGIN IMMEDIATE``); its throttle connections use ``synchronous=NORMAL`` for the same reason.
- Redis: one Lua script per call on one sorted set per bucket (members = calls, scores = admission
  times by the Redis server's own clock, so servers with skewed clocks still share one window).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from couponsvc.adapters.db import make_engine
from couponsvc.domain.errors import StoreUnavailable
from couponsvc.domain.throttle import Bucket

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str  # the bucket kind that had no room (the fullest one when several)
    wait: float  # seconds until it frees a slot


class ThrottleStore(Protocol):
    def admit(self, buckets: Sequence[Bucket]) -> Refusal | None: ...
    def record(self, bucket: Bucket) -> None: ...
    def clear(self) -> None:
        """Forget every call counted so far (the twin's reset)."""
        ...
    def close(self) -> None: ...


# --- database ---------------------------------------------------------------------------------------
# Per bucket and call: lock the bucket's row (``throttle_buckets``: how many of its calls are inside the
# window), delete its calls that left the window (an index probe, amortised O(1)), and only when the count
# says "full" count exactly and find the call whose leaving frees a slot.  So a call costs the same
# whatever N is, instead of scanning a window of N rows.
_NTH_OLDEST = "SELECT at FROM throttle_events WHERE bucket = ? ORDER BY at LIMIT 1 OFFSET ?"


class SqlThrottleStore:
    """The log in ``throttle_events``.  Driver-level statements on a small pool of its own: this runs on
    every throttled call, so it avoids the ORM layer's per-statement cost and the pool's pre-ping."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._pg = make_url(url).get_backend_name() == "postgresql"
        if self._pg:
            self.engine: Engine = create_engine(
                make_url(url).set(drivername="postgresql+psycopg"), pool_size=4, max_overflow=4,
                pool_reset_on_return=None, connect_args={"connect_timeout": 5, "autocommit": True})
        else:
            self.engine = make_engine(url)

            @event.listens_for(self.engine, "connect")
            def _relaxed(dbapi_conn: Any, _record: Any) -> None:  # runs after make_engine's own hook
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    def _run(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(dbapi connection)``; a connection broken by a database restart is replaced and tried once more."""
        for attempt in (1, 2):
            raw = self.engine.raw_connection()
            try:
                result = fn(raw.driver_connection)
            except Exception as exc:
                if _is_disconnect(exc):
                    raw.invalidate()
                    if attempt == 1:
                        continue
                else:
                    raw.close()
                if isinstance(exc, (sqlite3.Error, psycopg.Error)):
                    raise StoreUnavailable(f"throttle: {exc}") from exc
                raise
            raw.close()
            return result
        raise AssertionError("unreachable")

    def admit(self, buckets: Sequence[Bucket]) -> Refusal | None:
        if self._pg:
            answer = self._run(lambda c: c.execute(
                "SELECT couponsvc_throttle_admit(%s, %s, %s, %s)",
                ([b.key for b in buckets], [b.limit.calls for b in buckets],
                 [b.limit.seconds for b in buckets], [b.count for b in buckets])).fetchone()[0])
            if answer == "0":
                return None
            index, wait = str(answer).split(":")
            return Refusal(buckets[int(index) - 1].kind, float(wait))
        return self._run(lambda c: self._sqlite_admit(c, buckets))  # type: ignore[no-any-return]

    def _sqlite_admit(self, conn: sqlite3.Connection, buckets: Sequence[Bucket]) -> Refusal | None:
        conn.execute("BEGIN IMMEDIATE")  # SQLite has one writer at a time: this is the lock
        try:
            now = self.clock()
            refusal: Refusal | None = None
            counts: list[int] = []
            for b in buckets:
                row = conn.execute("SELECT inside FROM throttle_buckets WHERE bucket = ?", (b.key,)).fetchone()
                dropped = conn.execute("DELETE FROM throttle_events WHERE bucket = ? AND at <= ?",
                                       (b.key, now - b.limit.seconds)).rowcount
                inside = max((row[0] if row else 0) - dropped, 0)
                if inside >= b.limit.calls:  # full by the counter: count exactly (repairs a drifted counter)
                    inside = conn.execute("SELECT count(*) FROM throttle_events WHERE bucket = ?",
                                          (b.key,)).fetchone()[0]
                if inside >= b.limit.calls:
                    nth = conn.execute(_NTH_OLDEST, (b.key, inside - b.limit.calls)).fetchone()[0]
                    wait = max(float(nth) + b.limit.seconds - now, 0.001)
                    if refusal is None or wait > refusal.wait:
                        refusal = Refusal(b.kind, wait)
                counts.append(inside)
            if refusal is None:
                conn.executemany("INSERT INTO throttle_events (bucket, at) VALUES (?, ?)",
                                 [(b.key, now) for b in buckets if b.count])
                counts = [n + 1 if b.count else n for n, b in zip(counts, buckets, strict=True)]
            conn.executemany("INSERT OR REPLACE INTO throttle_buckets (bucket, inside) VALUES (?, ?)",
                             [(b.key, n) for b, n in zip(buckets, counts, strict=True)])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return refusal

    def record(self, bucket: Bucket) -> None:
        if self._pg:
            self._run(lambda c: c.execute("SELECT couponsvc_throttle_record(%s)", (bucket.key,)).fetchone())
            return

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT INTO throttle_events (bucket, at) VALUES (?, ?)", (bucket.key, self.clock()))
                conn.execute("INSERT INTO throttle_buckets (bucket, inside) VALUES (?, 1) "
                             "ON CONFLICT (bucket) DO UPDATE SET inside = inside + 1", (bucket.key,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        self._run(insert)

    def clear(self) -> None:
        def delete(conn: Any) -> None:
            if not self._pg:
                conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM throttle_events")
            conn.execute("DELETE FROM throttle_buckets")
            if not self._pg:
                conn.execute("COMMIT")

        self._run(delete)

    def close(self) -> None:
        self.engine.dispose()


def _is_disconnect(exc: Exception) -> bool:
    return isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) in (None, "57P01", "08006",
                                                                                            "08003", "08000")


# --- Redis ------------------------------------------------------------------------------------------
# KEYS: one sorted set per bucket.  ARGV: member, then per bucket: calls, window (s), counted (1/0).
# Returns "0" when admitted (and then written to every counted set), else "<index>:<wait seconds>".
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local worst, worst_wait = 0, 0
for i, key in ipairs(KEYS) do
  local n, w = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w)
  local c = redis.call('ZCARD', key)
  if c >= n then
    local nth = redis.call('ZRANGE', key, c - n, c - n, 'WITHSCORES')
    local wait = math.max(tonumber(nth[2]) + w - now, 0.001)
    if wait > worst_wait then worst, worst_wait = i, wait end
  end
end
if worst > 0 then return tostring(worst) .. ':' .. string.format('%.6f', worst_wait) end
for i, key in ipairs(KEYS) do
  if ARGV[3 * i + 1] == '1' then
    redis.call('ZADD', key, now, ARGV[1])
    redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[3 * i]) * 1000) + 1000)
  end
end
return '0'
"""

_RECORD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return 1
"""


class RedisThrottleStore:
    """Fails open: while Redis cannot be reached calls are admitted (and an error is logged), since an
    unreachable rate limiter should not take the whole API down with it.  After a failure Redis is left
    alone for ``RETRY_SECONDS``, so that a Redis that does not answer does not add its timeout to every call."""

    RETRY_SECONDS = 5.0

    def __init__(self, url: str, prefix: str = "couponsvc:") -> None:
        import redis

        self.prefix = prefix + "throttle:"

        self._redis_errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2,
                                           health_check_interval=30)
        self._admit = self.client.register_script(_ADMIT)
        self._record = self.client.register_script(_RECORD)
        self.failures = 0
        self._down_until = 0.0

    def admit(self, buckets: Sequence[Bucket]) -> Refusal | None:
        if time.monotonic() < self._down_until:
            return None
        args: list[Any] = [uuid.uuid4().hex]
        for b in buckets:
            args += [b.limit.calls, repr(b.limit.seconds), "1" if b.count else "0"]
        try:
            answer = self._admit(keys=[self.prefix + b.key for b in buckets], args=args)
        except self._redis_errors as exc:
            self._failed(exc)
            return None
        answer = answer.decode() if isinstance(answer, bytes) else str(answer)
        if answer == "0":
            return None
        index, wait = answer.split(":")
        return Refusal(buckets[int(index) - 1].kind, float(wait))

    def record(self, bucket: Bucket) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            self._record(keys=[self.prefix + bucket.key], args=[uuid.uuid4().hex, repr(bucket.limit.seconds)])
        except self._redis_errors as exc:
            self._failed(exc)

    def clear(self) -> None:
        """Delete this prefix's throttle keys (SCAN, not KEYS: a shared Redis is not blocked meanwhile)."""
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start:start + 1000])

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self._down_until = time.monotonic() + self.RETRY_SECONDS
        log.error("throttle: Redis unavailable (%s): calls are admitted unchecked for the next %g s",
                  type(exc).__name__, self.RETRY_SECONDS)

    def close(self) -> None:
        self.client.close()


def throttle_store(database_url: str, redis_url: str | None, redis_prefix: str = "couponsvc:") -> ThrottleStore:
    return RedisThrottleStore(redis_url, redis_prefix) if redis_url else SqlThrottleStore(database_url)
