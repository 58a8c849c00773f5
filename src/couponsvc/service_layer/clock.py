"""The service clock: what "now" is for token expiry, class and coupon expiry, redemption dates and delivery.

Without the twin it is plain real time (``bootstrap.utcnow``, no cost).  With the twin (``SharedClock``) it may be
frozen at an instant or offset from real time; the setting is a row in the database, so every server and
worker on one database shares it.  Reading it is cheap: the row is read at most every ``ttl`` seconds per
process (and at once after this process changed it), so another process follows a change within ``ttl``.
Only the twin control plane changes it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from couponsvc.adapters.twin_store import ClockState, read_clock, write_clock
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)


def real_utcnow() -> datetime:
    """Real time, as the naive UTC datetime the database stores."""
    return datetime.now(UTC).replace(tzinfo=None)


class SharedClock:
    """Frozen or offset time, shared through the database (twin only)."""

    def __init__(self, uow: SqlUnitOfWork, ttl: float = 0.5) -> None:
        self.uow = uow
        self.ttl = ttl
        self._lock = threading.Lock()
        self._state = ClockState()
        self._read_at = -1e18

    @staticmethod
    def real_now() -> datetime:
        return real_utcnow()

    def state(self) -> ClockState:
        if time.monotonic() - self._read_at < self.ttl:
            return self._state
        with self._lock:  # one thread refreshes; the others wait a moment for the fresh value
            if time.monotonic() - self._read_at >= self.ttl:
                try:
                    with self.uow.read() as store:
                        self._state = read_clock(store.conn)
                except Exception as exc:  # database trouble: keep the last known setting
                    log.warning("twin clock: could not read the clock setting (%s); keeping the last one",
                                type(exc).__name__)
                self._read_at = time.monotonic()
        return self._state

    def __call__(self) -> datetime:
        state = self.state()
        if state.frozen_at is not None:
            return state.frozen_at
        now = real_utcnow()
        return now + timedelta(seconds=state.offset_seconds) if state.offset_seconds else now

    def set(self, state: ClockState) -> None:
        with self.uow.write() as store:
            write_clock(store.conn, state)
        self.remember(state)

    def remember(self, state: ClockState) -> None:
        """This process changed the setting (or reset it): use it at once."""
        with self._lock:
            self._state = state
            self._read_at = time.monotonic()
