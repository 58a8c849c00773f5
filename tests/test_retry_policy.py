"""RetryPolicy (exponential backoff, capped, given up after a lifetime) and what an SMTP reply code means."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from couponsvc.domain.delivery import Outcome, RetryPolicy, classify_smtp_code
from tests.support.service import make_container

T0 = datetime(2030, 6, 1, 12, 0, 0)
s = timedelta(seconds=1)
minute = timedelta(minutes=1)


def schedule(policy: RetryPolicy, created_at: datetime = T0, limit: int = 10_000) -> list[datetime]:
    """When each retry happens if every attempt fails (the first attempt is at ``created_at``)."""
    times: list[datetime] = []
    now, attempts = created_at, 0
    while len(times) < limit:
        attempts += 1
        nxt = policy.next_attempt(created_at, attempts, now)
        if nxt is None:
            return times
        assert nxt >= now
        times.append(nxt)
        now = nxt
    raise AssertionError(f"still retrying after {limit} attempts")


def test_defaults_are_the_documented_ones() -> None:
    p = RetryPolicy()
    assert (p.first, p.factor, p.cap, p.lifetime) == (minute, 2.0, timedelta(hours=1), timedelta(hours=24))


def test_first_retry_waits_first_then_multiplies_by_factor() -> None:
    p = RetryPolicy(first=10 * s, factor=3.0, cap=timedelta(days=1), lifetime=timedelta(days=30))
    assert [p.delay(n) for n in range(1, 6)] == [10 * s, 30 * s, 90 * s, 270 * s, 810 * s]
    assert p.delay(0) == 10 * s  # "no failure yet" is treated as the first one, never a shorter wait


def test_defaults_double_from_one_minute_up_to_one_hour() -> None:
    p = RetryPolicy()
    assert [p.delay(n) / minute for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_cap_bounds_every_delay() -> None:
    p = RetryPolicy(first=7 * s, factor=2.5, cap=100 * s)
    delays = [p.delay(n) for n in range(1, 40)]
    assert max(delays) == 100 * s
    assert delays == sorted(delays)  # never shorter than the previous wait
    assert delays[:3] == [7 * s, 17.5 * s, 43.75 * s]
    assert all(d == 100 * s for d in delays[3:])


def test_factor_one_is_a_constant_delay_and_first_zero_retries_at_once() -> None:
    assert {RetryPolicy(first=42 * s, factor=1.0).delay(n) for n in range(1, 50)} == {42 * s}
    assert {RetryPolicy(first=timedelta(0)).delay(n) for n in range(1, 50)} == {timedelta(0)}


def test_cap_below_first_wins() -> None:
    assert RetryPolicy(first=10 * minute, cap=minute).delay(1) == minute


@pytest.mark.parametrize("attempts", [200, 1_100, 10**6])
def test_a_huge_number_of_attempts_is_still_the_cap(attempts: int) -> None:
    # RETRY_CAP=0 / RETRY_FIRST=0 (or a large factor) make attempts pile up within one lifetime; the
    # delay must stay the cap rather than overflow a float
    p = RetryPolicy(first=s, factor=2.0, cap=timedelta(hours=1))
    assert p.delay(attempts) == timedelta(hours=1)
    assert RetryPolicy(first=s, factor=100.0, cap=minute).delay(attempts) == minute


def test_schedule_of_a_message_that_always_fails() -> None:
    p = RetryPolicy(first=10 * s, factor=3.0, cap=100 * s, lifetime=300 * s)
    # waits 10, 30, 90, then the cap 100, 100 -- the last one cut to the end of the lifetime
    assert [(t - T0).total_seconds() for t in schedule(p)] == [10, 40, 130, 230, 300]


def test_default_schedule_gives_up_after_24_hours() -> None:
    times = schedule(RetryPolicy())
    offsets = [(t - T0) / minute for t in times]
    # waits of 1, 2, 4, 8, 16, 32 minutes, then hourly (the cap), then one last try when the lifetime ends
    assert offsets == [1, 3, 7, 15, 31, 63, *(63 + 60 * k for k in range(1, 23)), 24 * 60]


def test_no_retry_is_scheduled_past_the_lifetime() -> None:
    p = RetryPolicy(first=minute, factor=2.0, cap=timedelta(hours=1), lifetime=timedelta(minutes=90))
    created = T0
    for attempts in range(1, 12):
        for elapsed in (0, 30, 60, 89, 89.99):
            now = created + timedelta(minutes=elapsed)
            nxt = p.next_attempt(created, attempts, now)
            assert nxt is not None
            assert now < nxt <= created + p.lifetime
            assert nxt == min(now + p.delay(attempts), created + p.lifetime)


@pytest.mark.parametrize("late", [timedelta(0), s, timedelta(days=3)])
def test_at_or_after_the_end_of_the_lifetime_it_gives_up(late: timedelta) -> None:
    p = RetryPolicy(lifetime=timedelta(hours=2))
    assert p.next_attempt(T0, 1, T0 + timedelta(hours=2) + late) is None
    assert p.next_attempt(T0, 30, T0 + timedelta(hours=2) + late) is None


def test_zero_lifetime_gives_up_on_the_first_failure() -> None:
    assert RetryPolicy(lifetime=timedelta(0)).next_attempt(T0, 1, T0) is None
    assert schedule(RetryPolicy(lifetime=timedelta(0))) == []


def test_lifetime_counts_from_when_the_message_was_queued_not_from_the_last_attempt() -> None:
    p = RetryPolicy(first=minute, lifetime=timedelta(hours=1))
    assert p.next_attempt(T0, 1, T0 + timedelta(minutes=59)) == T0 + timedelta(hours=1)
    assert p.next_attempt(T0 + timedelta(minutes=30), 1, T0 + timedelta(minutes=59)) == T0 + timedelta(minutes=60)
    assert p.next_attempt(T0 - timedelta(minutes=2), 1, T0 + timedelta(minutes=59)) is None


def test_settings_build_the_policy(tmp_path: Path) -> None:
    c = make_container(tmp_path, RETRY_FIRST="5", RETRY_FACTOR="3", RETRY_CAP="120", RETRY_LIFETIME="7200")
    try:
        assert c.delivery_config.policy == RetryPolicy(first=5 * s, factor=3.0, cap=120 * s,
                                                       lifetime=timedelta(hours=2))
    finally:
        c.close()


@pytest.mark.parametrize("code", [200, 250, 251, 252, 299])
def test_2xx_is_sent(code: int) -> None:
    assert classify_smtp_code(code) is Outcome.SENT


@pytest.mark.parametrize("code", [500, 501, 503, 550, 551, 552, 553, 554, 555, 599])
def test_5xx_is_permanent(code: int) -> None:
    assert classify_smtp_code(code) is Outcome.PERMANENT


@pytest.mark.parametrize("code", [421, 450, 451, 452, 454, 499])
def test_4xx_is_temporary(code: int) -> None:
    assert classify_smtp_code(code) is Outcome.TEMPORARY


@pytest.mark.parametrize("code", [-1, 0, 199, 334, 354, 399, 600, 999])
def test_an_unexpected_reply_is_retried_neither_given_up_nor_counted_as_sent(code: int) -> None:
    # 334 / 354 are intermediate replies (AUTH, DATA), not a delivery; anything out of range is a broken relay
    assert classify_smtp_code(code) is Outcome.TEMPORARY
