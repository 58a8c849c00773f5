"""Call-rate limits: ``N/SECONDS`` means at most N admitted calls in any window of that many seconds.

A sliding window (a log of admission times), not fixed buckets: fixed buckets let 2N calls through
around a bucket boundary.  A refused call is never written to the log, so it counts against nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(s?)\s*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    calls: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.calls}/{self.seconds:g}"


def parse_rate_limit(text: str) -> RateLimit:
    """``"100/60"`` (or ``"100/60s"``) → RateLimit(100, 60.0); ValueError with a hint otherwise."""
    m = _SPEC.match(text)
    if not m:
        raise ValueError("write it as N/SECONDS, e.g. 100/60 (at most 100 calls in any 60 seconds)")
    calls, seconds = int(m.group(1)), float(m.group(2))
    if not 1 <= calls <= 10_000_000:
        raise ValueError("N must be between 1 and 10000000")
    if not 0.001 <= seconds <= 7 * 86400:
        raise ValueError("SECONDS must be between 0.001 and 604800 (a week)")
    return RateLimit(calls, seconds)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One window to check for a call: ``key`` names whose log it is (``user:42``), ``count``: whether an
    admitted call is written to it (False: only checked, e.g. the code-guess log, written on a 3006)."""

    key: str
    kind: str  # user | developer_token | code_guesses: the metrics label and what the 117 names
    limit: RateLimit
    count: bool = True


def wait_seconds(times_in_window: Sequence[float], limit: RateLimit, now: float) -> float:
    """0 when one more call fits; else the seconds until the window frees a slot.

    ``times_in_window``: the admission times still inside the window (``> now - seconds``), any order.
    With c of them and room for N, the (c - N + 1)-th oldest must leave: at its time + seconds.
    """
    c = len(times_in_window)
    if c < limit.calls:
        return 0.0
    ordered = sorted(times_in_window)
    return max(ordered[c - limit.calls] + limit.seconds - now, 0.001)


def retry_after(seconds: float) -> int:
    """Whole seconds for ``Retry-After``, rounded up (a client that waits exactly that long is admitted)."""
    return max(1, math.ceil(seconds - 1e-9))
