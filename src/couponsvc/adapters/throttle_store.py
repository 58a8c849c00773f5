"""Where the sliding-window logs of the throttle live: the database (default) or Redis.

Both answer one question atomically for all the buckets of a call: may it run?  If every bucket has
room, the call is written to each counted bucket; if any has none, nothing is written anywhere (a refused
call counts against nothing) and the wait until the fullest bucket frees a slot is returned.

- Database: a table ``throttle_events`` (one row per admitted call and bucket).  PostgreSQL serialises
  calls of one bucket with a transaction-scoped advisory lock (other buckets are not blocked) and commits
  without waiting for the WAL flush (``synchronous_commit = off``: a crash may forget the last few
  admissions, which only ever lets a few more calls through).  SQLite serialises writers anyway
  (``BEGIN IMMEDIATE``); its throttle connections use ``synchronous=NORMAL`` for the same reason.
- Redis: one Lua script per call on one sorted set per bucket (members = calls, scores = admission
  times by the Redis server's own clock, so servers with skewed clocks still share one window).
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, delete, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from couponsvc.adapters import schema as t
from couponsvc.adapters.db import WRITE, make_engine
from couponsvc.domain.errors import StoreUnavailable
from couponsvc.domain.throttle import Bucket

log = logging.getLogger(__name__)

_LOCK_NAMESPACE = 8008  # first key of pg_advisory_xact_lock(int, int): the throttle's own lock space


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str  # the bucket kind that had no room (the fullest one when several)
    wait: float  # seconds until it frees a slot


class ThrottleStore(Protocol):
    def admit(self, buckets: Sequence[Bucket]) -> Refusal | None: ...
    def record(self, bucket: Bucket) -> None: ...
    def close(self) -> None: ...


# --- database ---------------------------------------------------------------------------------------
class SqlThrottleStore:
    def __init__(self, url: str, clock: Any = time.time) -> None:
        self.engine: Engine = make_engine(url, pool_size=4)
        self.clock = clock
        self._pg = self.engine.dialect.name == "postgresql"
        if not self._pg:
            @event.listens_for(self.engine, "connect")
            def _relaxed(dbapi_conn: Any, _record: Any) -> None:  # runs after make_engine's own hook
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    def _transaction(self, buckets: Sequence[Bucket], fn: Any) -> Any:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{WRITE: True})
                with conn.begin():
                    if self._pg:
                        conn.execute(text("SET LOCAL synchronous_commit = off"))
                        for key in sorted({b.key for b in buckets}):  # one order everywhere: no deadlocks
                            conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :k)"),
                                         {"ns": _LOCK_NAMESPACE, "k": _lock_key(key)})
                    return fn(conn)
        except DBAPIError as exc:
            raise StoreUnavailable(str(exc.orig)) from exc

    def admit(self, buckets: Sequence[Bucket]) -> Refusal | None:
        now = self.clock()

        def run(conn: Connection) -> Refusal | None:
            refusal: Refusal | None = None
            for b in buckets:
                wait = _bucket_wait(conn, b, now)
                if wait > 0 and (refusal is None or wait > refusal.wait):
                    refusal = Refusal(b.kind, wait)
            if refusal is None:
                rows = [{"bucket": b.key, "at": now} for b in buckets if b.count]
                if rows:
                    conn.execute(insert(t.throttle_events), rows)
            return refusal

        return self._transaction(buckets, run)  # type: ignore[no-any-return]

    def record(self, bucket: Bucket) -> None:
        now = self.clock()
        self._transaction([bucket], lambda conn: conn.execute(
            insert(t.throttle_events).values(bucket=bucket.key, at=now)))

    def close(self) -> None:
        self.engine.dispose()


_e = t.throttle_events.c
_DELETE_OLD = delete(t.throttle_events).where(_e.bucket == bindparam("b"), _e.at <= bindparam("edge"))
_COUNT = select(func.count()).where(_e.bucket == bindparam("b"))
_NTH = select(_e.at).where(_e.bucket == bindparam("b")).order_by(_e.at).offset(bindparam("skip")).limit(1)


def _bucket_wait(conn: Connection, b: Bucket, now: float) -> float:
    """Drop the bucket's rows that left the window, then: 0 if one more call fits, else the wait."""
    conn.execute(_DELETE_OLD, {"b": b.key, "edge": now - b.limit.seconds})
    inside = int(conn.scalar(_COUNT, {"b": b.key}) or 0)
    if inside < b.limit.calls:
        return 0.0
    # the (inside - N + 1)-th oldest has to leave the window for one more call to fit
    nth = conn.scalar(_NTH, {"b": b.key, "skip": inside - b.limit.calls})
    return max(float(nth or 0.0) + b.limit.seconds - now, 0.001)


def _lock_key(key: str) -> int:
    """A stable signed 32-bit number for the advisory lock (collisions only make two buckets share a lock)."""
    n = zlib.crc32(key.encode())
    return n - (1 << 32) if n >= 1 << 31 else n


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
    unreachable rate limiter should not take the whole API down with it."""

    def __init__(self, url: str, prefix: str = "couponsvc:") -> None:
        import redis

        self.prefix = prefix + "throttle:"

        self._redis_errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2,
                                           health_check_interval=30)
        self._admit = self.client.register_script(_ADMIT)
        self._record = self.client.register_script(_RECORD)
        self.failures = 0

    def admit(self, buckets: Sequence[Bucket]) -> Refusal | None:
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
        try:
            self._record(keys=[self.prefix + bucket.key], args=[uuid.uuid4().hex, repr(bucket.limit.seconds)])
        except self._redis_errors as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.error("throttle: Redis unavailable, call admitted unchecked: %s", type(exc).__name__)

    def close(self) -> None:
        self.client.close()


def throttle_store(database_url: str, redis_url: str | None, redis_prefix: str = "couponsvc:") -> ThrottleStore:
    return RedisThrottleStore(redis_url, redis_prefix) if redis_url else SqlThrottleStore(database_url)
