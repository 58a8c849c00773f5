"""Seed files (`couponsvc load`, `serve --demo`): parsed and checked whole, then applied in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from couponsvc.adapters.migrate import current_revision
from couponsvc.adapters.seed import Seed, SeedReport, apply_seed, parse_seed, read_seed_file
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork, UnitOfWork

Clock = Callable[[], datetime]


def read_seed(path: Path) -> Seed:
    """The whole file parsed and checked (SeedError naming the key at fault), before any database work."""
    return read_seed_file(path)


def load_seed(uow: UnitOfWork, clock: Clock, seed: Seed, source: str) -> SeedReport:
    """All or nothing; loading the same seed twice changes nothing the second time."""
    with uow.write() as store:
        return apply_seed(store.conn, seed, clock(), source)


def load_seed_document(uow: UnitOfWork, clock: Clock, document: Any, source: str) -> SeedReport:
    seed = parse_seed(document, source)
    with uow.write() as store:
        return apply_seed(store.conn, seed, clock(), source)


def schema_revision(uow: SqlUnitOfWork) -> str | None:
    return current_revision(uow.engine)
