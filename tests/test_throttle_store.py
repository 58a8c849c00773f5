"""The throttle's sliding-window store on SQLite, PostgreSQL and Redis: atomic under concurrency, a true
sliding window, refused calls counting nothing, all-or-nothing across the buckets of one call."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from couponsvc.adapters.db import make_engine
from couponsvc.adapters.migrate import upgrade
from couponsvc.adapters.throttle_store import RedisThrottleStore, SqlThrottleStore, ThrottleStore
from couponsvc.domain.throttle import Bucket, RateLimit, parse_rate_limit, retry_after, wait_seconds
from tests.support.databases import database_url

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThrottleStore]:
    if request.param == "redis":
        if not redis_available():
            pytest.fail("Redis at 127.0.0.1:6379 is needed for the Redis throttle tests")
        s: ThrottleStore = RedisThrottleStore(REDIS_URL)
        yield s
        s.close()
        return
    with database_url(request.param, tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        s = SqlThrottleStore(url)
        yield s
        s.close()


def bucket(calls: int, seconds: float, kind: str = "user", count: bool = True) -> Bucket:
    # a fresh key per test: Redis is shared with other test runs
    return Bucket(f"test:{uuid.uuid4().hex}", kind, RateLimit(calls, seconds), count)


def test_exactly_n_admitted_from_a_burst_of_threads(store: ThrottleStore) -> None:
    b = bucket(25, 60)
    admitted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def caller() -> None:
        start.wait()
        for _ in range(8):
            ok = store.admit([b]) is None
            with lock:
                admitted.append(ok)

    threads = [threading.Thread(target=caller) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 96
    assert admitted.count(True) == 25


def test_sliding_window_frees_slots_as_calls_age_and_refusals_count_nothing(store: ThrottleStore) -> None:
    b = bucket(3, 1.5)
    assert store.admit([b]) is None
    time.sleep(0.6)
    assert store.admit([b]) is None
    assert store.admit([b]) is None
    refusal = store.admit([b])
    assert refusal is not None and refusal.kind == "user"
    # the first call (0.6 s older) frees the first slot: about 0.9 s from now, not a whole window
    assert 0.5 < refusal.wait <= 1.0
    for _ in range(20):  # hammering while full changes nothing: refused calls are not counted
        assert store.admit([b]) is not None
    time.sleep(refusal.wait + 0.05)
    assert store.admit([b]) is None  # exactly one slot came free
    again = store.admit([b])
    assert again is not None and 0.3 < again.wait <= 0.65  # the next frees when the 0.6 s calls age out


def test_no_double_burst_at_a_window_boundary(store: ThrottleStore) -> None:
    """A fixed window would admit N at the end of one window and N more at the start of the next."""
    b = bucket(5, 1.0)
    admitted = []
    deadline = time.monotonic() + 1.6
    while time.monotonic() < deadline:
        if store.admit([b]) is None:
            admitted.append(time.monotonic())
        time.sleep(0.01)
    for t in admitted:  # in any 1 s window, at most 5 (a little slack for the client's own clock)
        assert sum(1 for u in admitted if t <= u < t + 0.95) <= 5
    assert 8 <= len(admitted) <= 10


def test_a_call_is_counted_in_all_its_buckets_or_none(store: ThrottleStore) -> None:
    full, roomy = bucket(1, 60, "user"), bucket(5, 60, "developer_token")
    assert store.admit([full]) is None
    refusal = store.admit([full, roomy])
    assert refusal is not None and refusal.kind == "user"
    # roomy was not written by the refused call: 5 more fit
    assert [store.admit([roomy]) for _ in range(5)] == [None] * 5
    assert store.admit([roomy]) is not None


def test_a_check_only_bucket_is_read_but_not_written(store: ThrottleStore) -> None:
    guesses = bucket(2, 60, "code_guesses", count=False)
    for _ in range(5):
        assert store.admit([guesses]) is None  # checking never fills it
    store.record(guesses)
    store.record(guesses)
    refusal = store.admit([guesses])
    assert refusal is not None and refusal.kind == "code_guesses" and 59 < refusal.wait <= 60


def test_rate_limit_parsing() -> None:
    assert parse_rate_limit("100/60") == RateLimit(100, 60.0)
    assert parse_rate_limit(" 5 / 0.5s ") == RateLimit(5, 0.5)
    for bad in ("100", "0/60", "10/0", "ten/60", "5/60m", "-1/5"):
        with pytest.raises(ValueError):
            parse_rate_limit(bad)


def test_wait_is_until_the_right_call_leaves_the_window() -> None:
    limit = RateLimit(2, 10)
    assert wait_seconds([1.0], limit, 5.0) == 0
    assert wait_seconds([3.0, 1.0], limit, 5.0) == pytest.approx(6.0)  # 1.0 leaves at 11.0
    # a limit lowered under a fuller log: 4 inside, room for 2 → the 3rd oldest must leave
    assert wait_seconds([1.0, 2.0, 3.0, 4.0], limit, 5.0) == pytest.approx(8.0)
    assert [retry_after(x) for x in (0.001, 0.999, 1.0, 1.2, 5.0)] == [1, 1, 1, 2, 5]
