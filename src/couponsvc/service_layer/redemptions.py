"""Redemptions, operator side: the most recent ones (paged) and counts by class and account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from couponsvc.adapters import console_queries as q
from couponsvc.adapters.console_queries import RedemptionRow
from couponsvc.service_layer.unit_of_work import UnitOfWork

PAGE = 50


@dataclass(frozen=True, slots=True)
class RedemptionReport:
    recent: list[RedemptionRow]  # one page, newest first (one row more than PAGE when more follow)
    by_class_account: list[dict[str, Any]]  # since the given time


def report(uow: UnitOfWork, since: datetime, page: int = 0) -> RedemptionReport:
    with uow.read() as store:
        return RedemptionReport(q.redemptions_page(store.conn, offset=page * PAGE, limit=PAGE + 1),
                                q.redemptions_by_class_account(store.conn, since))
