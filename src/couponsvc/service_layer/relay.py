"""The mail relay's state: what delivery last saw of it (ok / failing, last reply, since when).

Each process keeps its own view (``RelayMonitor``) from the results of its sends and writes it to the
database inside the transaction that records those results, only when the state changes or at most about
once a second, never per message.  Every server reads it back for ``/health`` (``relay_status``), so an
operator sees a relay that refuses our sender or credentials on whichever server they ask.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from couponsvc.adapters import relay_state
from couponsvc.domain.delivery import DeliveryResult, relay_is_ok
from couponsvc.service_layer.unit_of_work import UnitOfWork

OK = "ok"
FAILING = "failing"
UNKNOWN = "unknown"  # nothing was sent through this relay yet


@dataclass(frozen=True, slots=True)
class RelayStatus:
    relay: str
    state: str  # ok | failing | unknown
    last_code: int | None = None
    last_reply: str | None = None
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The ``relay`` object of ``/health`` (and of the twin's and the metrics' views)."""
        return {
            "state": self.state, "last_code": self.last_code, "last_reply": self.last_reply,
            "since": None if self.since is None else self.since.isoformat(timespec="seconds") + "Z",
        }


@dataclass(frozen=True, slots=True)
class _Seen:
    state: str
    code: int | None
    reply: str


class RelayMonitor:
    """One process's view of its relay, shared by the call deliveries and the in-process worker."""

    def __init__(self, relay: str, min_interval: float = 1.0) -> None:
        self.relay = relay
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._latest: _Seen | None = None
        self._written: _Seen | None = None
        self._written_at = float("-inf")

    @property
    def state(self) -> str:
        latest = self._latest
        return UNKNOWN if latest is None else latest.state

    def observe(self, results: Sequence[DeliveryResult]) -> None:
        """Take note of a batch's results; the latest one that says anything about the relay wins."""
        for r in reversed(results):
            ok = relay_is_ok(r)
            if ok is not None:
                reply = r.detail if r.smtp_code is None else f"{r.smtp_code} {r.detail}"
                with self._lock:
                    self._latest = _Seen(OK if ok else FAILING, r.smtp_code, reply)
                return

    def write_due(self, conn: Connection, now: datetime) -> bool:
        """Write the latest view if the state changed since this process last wrote it, or if it is at
        least ``min_interval`` since then and anything changed; call inside a write transaction."""
        with self._lock:
            latest = self._latest
            if latest is None or latest == self._written:
                return False
            elapsed = time.monotonic() - self._written_at
            if self._written is not None and latest.state == self._written.state and elapsed < self.min_interval:
                return False
            self._written, self._written_at = latest, time.monotonic()
        relay_state.record(conn, self.relay, latest.state, latest.code, latest.reply, now)
        return True


def relay_status(uow: UnitOfWork, relay: str) -> RelayStatus:
    """The relay's state as recorded by the delivery processes (``unknown`` before the first send)."""
    with uow.read() as store:
        return read_relay_status(store.conn, relay)


def read_relay_status(conn: Connection, relay: str) -> RelayStatus:
    """``relay_status`` within a read the caller already has open (the metrics read it with the rest)."""
    row = relay_state.read(conn, relay)
    if row is None:
        return RelayStatus(relay, UNKNOWN)
    return RelayStatus(relay, row.state, row.last_code, row.last_reply, row.since)
