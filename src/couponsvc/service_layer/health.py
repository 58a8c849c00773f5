"""What ``/health`` reports beyond "the database answers": the outbox backlog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from couponsvc.adapters import ops_queries
from couponsvc.service_layer.unit_of_work import UnitOfWork


def outbox_backlog(uow: UnitOfWork, clock: Callable[[], datetime]) -> dict[str, Any]:
    """``{"queued", "sending", "failed", "oldest_queued_seconds"}``; queued includes messages being sent."""
    with uow.read() as store:
        b = ops_queries.outbox_backlog(store.conn, clock(), with_sent=False)
    age = b.oldest_queued_seconds
    return {
        "queued": b.by_status["queued"] + b.by_status["sending"],
        "sending": b.by_status["sending"],
        "failed": b.by_status["failed"],
        "oldest_queued_seconds": None if age is None else round(age, 1),
    }
