"""The one place that builds the engine, the unit of work, the clock and the settings, and wires them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from couponsvc.adapters.db import make_engine
from couponsvc.adapters.migrate import upgrade
from couponsvc.service_layer.auth import Credentials, Principal, authenticate
from couponsvc.service_layer.dispatch import DispatchConfig
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork
from couponsvc.settings import Settings, load_settings


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the database stores."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow: SqlUnitOfWork
    clock: Callable[[], datetime]

    @property
    def dispatch_config(self) -> DispatchConfig:
        return DispatchConfig(
            max_addresses=self.settings.max_addresses_per_call,
            message_id_domain=self.settings.message_id_domain,
        )

    def authenticate(self, creds: Credentials) -> Principal:
        with self.uow.read() as store:
            return authenticate(store, creds, self.clock())

    def close(self) -> None:
        self.engine.dispose()


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)


def bootstrap(settings: Settings | None = None, *, migrate: bool = True) -> Container:
    settings = settings or load_settings()
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    return Container(settings=settings, engine=engine, uow=SqlUnitOfWork(engine), clock=utcnow)
