"""The audit log: every operator action (console or CLI), written in the same transaction as the action."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime

from couponsvc.adapters import console_auth as db
from couponsvc.adapters.console_auth import AuditRow
from couponsvc.adapters.store import SqlStore
from couponsvc.service_layer.unit_of_work import UnitOfWork

PAGE = 50


@dataclass(frozen=True, slots=True)
class Actor:
    """Who does something: ``operator:NAME`` in the console, ``cli:USER`` on the command line."""

    label: str

    @classmethod
    def operator(cls, name: str) -> Actor:
        return cls(f"operator:{name}")

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers)
            user = "unknown"
        return cls(f"cli:{user}")


def record(store: SqlStore, now: datetime, actor: Actor, action: str, obj: str, detail: str | None = None) -> None:
    db.audit(store.conn, now, actor.label, action, obj, detail)


def page(uow: UnitOfWork, before_id: int | None = None, limit: int = PAGE) -> list[AuditRow]:
    with uow.read() as store:
        return db.audit_page(store.conn, before_id, limit)
