"""The request deadline: taken once when a call arrives, it bounds everything the call waits for.

The entrypoint opens ``request_deadline(seconds)`` around the call; the context variable travels with the
call into worker threads (``asyncio.to_thread`` and Starlette's thread pool copy the context), so the unit
of work bounds its waits for a pooled connection, the SQLite write lock and PostgreSQL locks and statements
by ``remaining()`` without any signature carrying it.  Code outside a call (workers, the CLI) has no
deadline and keeps the engine's own limits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from couponsvc.domain.errors import DeadlineExceeded


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on the monotonic clock (the clock asyncio's loop uses) by which the call must be done."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    @property
    def at(self) -> float:
        return self.started + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self, what: str) -> None:
        if self.expired():
            raise DeadlineExceeded(f"{what}: the request deadline of {self.seconds:g} s has passed")


_current: ContextVar[Deadline | None] = ContextVar("couponsvc_request_deadline", default=None)
_urgent: ContextVar[bool] = ContextVar("couponsvc_urgent", default=False)


def current_deadline() -> Deadline | None:
    return _current.get()


def remaining_or(default: float) -> float:
    """Seconds this call may still wait: ``default`` capped by the request deadline, if any."""
    deadline = _current.get()
    return default if deadline is None else min(default, deadline.remaining())


@contextmanager
def request_deadline(seconds: float) -> Iterator[Deadline]:
    deadline = Deadline(seconds)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def is_urgent() -> bool:
    """Whether this code runs for a caller that is waiting on it right now (see ``detached``)."""
    return _urgent.get()


@contextmanager
def no_deadline() -> Iterator[None]:
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def detached() -> Iterator[None]:
    """Run without the request deadline: for steps that must finish once started (recording a delivery)
    and carry their own explicit bound.  They are marked urgent: their caller is waiting for them, so
    their database writes go before new calls' and the workers'."""
    urgent = _urgent.set(True)
    try:
        with no_deadline():
            yield
    finally:
        _urgent.reset(urgent)
