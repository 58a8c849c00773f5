"""Delivery rules: what an SMTP outcome means for a message, and when a failed attempt is retried."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class Outcome(enum.StrEnum):
    SENT = "sent"  # the relay accepted the message for its recipient
    TEMPORARY = "temporary"  # 4xx, timeout, dropped connection, relay down: try again later
    PERMANENT = "permanent"  # 5xx for the recipient (or the message): never retried


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outbox_id: int
    outcome: Outcome
    smtp_code: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: first retry after ``first``, times ``factor`` each attempt, at most ``cap``;
    a message still undelivered ``lifetime`` after it was queued is given up."""

    first: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)
    lifetime: timedelta = timedelta(hours=24)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 for the first failure)."""
        first, cap = self.first.total_seconds(), self.cap.total_seconds()
        if first <= 0:
            return timedelta(0)
        try:
            seconds = first * self.factor ** max(0, attempts - 1)
        except OverflowError:  # thousands of attempts (first or cap 0, a big factor): long past the cap
            seconds = cap
        return timedelta(seconds=min(seconds, cap))

    def next_attempt(self, created_at: datetime, attempts: int, now: datetime) -> datetime | None:
        """When to try again, or None when the message's lifetime is over (give up)."""
        deadline = created_at + self.lifetime
        if now >= deadline:
            return None
        return min(now + self.delay(attempts), deadline)


def classify_smtp_code(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.SENT
    if 500 <= code < 600:
        return Outcome.PERMANENT
    return Outcome.TEMPORARY
