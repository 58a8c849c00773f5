"""The one place that builds the engine, the unit of work, the mail transport, the clock and the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from couponsvc.adapters.db import DbLimits, make_engine
from couponsvc.adapters.mail.transports import MailTransport, transport_from_url
from couponsvc.adapters.migrate import upgrade
from couponsvc.domain.delivery import RetryPolicy
from couponsvc.service_layer.auth import Credentials, Principal, authenticate
from couponsvc.service_layer.delivery import Deliverer, DeliveryConfig
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
    transport: MailTransport

    @property
    def dispatch_config(self) -> DispatchConfig:
        s = self.settings
        return DispatchConfig(
            max_addresses=s.max_addresses_per_call,
            message_id_domain=s.message_id_domain,
            deliver_in_call=s.delivery_timeout > 0,
            lease=timedelta(seconds=s.lease_seconds),
            delivery_timeout=s.delivery_timeout,
        )

    @property
    def delivery_config(self) -> DeliveryConfig:
        s = self.settings
        return DeliveryConfig(
            sender=s.mail_from,
            lease=timedelta(seconds=s.lease_seconds),
            batch_size=s.worker_batch,
            poll_interval=s.worker_poll,
            policy=RetryPolicy(
                first=timedelta(seconds=s.retry_first), factor=s.retry_factor,
                cap=timedelta(seconds=s.retry_cap), lifetime=timedelta(seconds=s.retry_lifetime),
            ),
        )

    def deliverer(self, name: str | None = None) -> Deliverer:
        return Deliverer(self.uow, self.transport, self.clock, self.delivery_config, name)

    def authenticate(self, creds: Credentials) -> Principal:
        with self.uow.read() as store:
            return authenticate(store, creds, self.clock())

    def close(self) -> None:
        self.engine.dispose()


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)


def bootstrap(settings: Settings | None = None, *, migrate: bool = True,
              transport: MailTransport | None = None) -> Container:
    settings = settings or load_settings()
    transport = transport or transport_from_url(
        settings.mail_url, sender=settings.mail_from, timeout=settings.smtp_timeout,
        connections=settings.smtp_connections)
    engine = make_engine(settings.database_url, limits=DbLimits(
        pg_lock_timeout=settings.pg_lock_timeout, pg_statement_timeout=settings.pg_statement_timeout))
    if migrate:
        upgrade(engine)
    return Container(settings=settings, engine=engine, uow=SqlUnitOfWork(engine), clock=utcnow,
                     transport=transport)
