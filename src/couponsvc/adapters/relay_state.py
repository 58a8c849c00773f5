"""The relay state row in SQL: one row per relay, upserted; ``since`` only moves when the state changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, case, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from couponsvc.adapters import schema as t

r = t.relay_state.c


@dataclass(frozen=True, slots=True)
class RelayRow:
    relay: str
    state: str
    last_code: int | None
    last_reply: str | None
    since: datetime
    updated_at: datetime


def record(conn: Connection, relay: str, state: str, code: int | None, reply: str, now: datetime) -> None:
    """Write what was last seen of ``relay``.  Several processes may write it: the last one wins, and the
    state's ``since`` is kept when the row is already in that state."""
    values = {"state": state, "last_code": code, "last_reply": reply[:2000], "updated_at": now}
    changed = conn.execute(
        update(t.relay_state).where(r.relay == relay)
        .values(**values, since=case((r.state == literal(state), r.since), else_=now))
    ).rowcount
    if changed:
        return
    try:
        with conn.begin_nested():
            conn.execute(insert(t.relay_state).values(relay=relay, since=now, **values))
    except IntegrityError:  # another process inserted it first: update theirs
        conn.execute(update(t.relay_state).where(r.relay == relay)
                     .values(**values, since=case((r.state == literal(state), r.since), else_=now)))


def read(conn: Connection, relay: str) -> RelayRow | None:
    row = conn.execute(select(r.relay, r.state, r.last_code, r.last_reply, r.since, r.updated_at)
                       .where(r.relay == relay)).first()
    return None if row is None else RelayRow(*row)
