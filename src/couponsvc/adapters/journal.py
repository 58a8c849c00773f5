"""The journal of API calls (twin only), in SQL: written in batches, trimmed to its size, newest first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from couponsvc.adapters import schema as t

_j = t.twin_calls.c


def insert_calls(conn: Connection, rows: Sequence[dict[str, Any]], size: int) -> None:
    """Add a batch and drop the oldest entries beyond ``size`` (ids grow, so the oldest have the lowest)."""
    if not rows:
        return
    conn.execute(insert(t.twin_calls), list(rows))
    newest = conn.scalar(select(func.max(_j.id)))
    if newest is not None and newest > size:
        conn.execute(delete(t.twin_calls).where(_j.id <= newest - size))


def list_calls(conn: Connection, *, limit: int, operation: str | None, tracking_id: str | None) -> list[dict[str, Any]]:
    q = select(t.twin_calls).order_by(_j.id.desc()).limit(limit)
    if operation is not None:
        q = q.where(func.lower(_j.operation) == operation.lower())
    if tracking_id is not None:
        q = q.where(_j.tracking_id == tracking_id)
    out = []
    for r in conn.execute(q):
        out.append({
            "tracking_id": r.tracking_id,
            "time": r.time.isoformat(timespec="milliseconds") + "Z",
            "protocol": r.protocol,
            "operation": r.operation,
            "http_status": r.http_status,
            "error_codes": json.loads(r.error_codes),
            "duration_ms": round(float(r.duration_ms), 3),
            "customer_id": r.customer_id,
            "request": r.request,
            "request_headers": json.loads(r.request_headers),
            "response": r.response,
        })
    return out
