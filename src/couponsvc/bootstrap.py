"""The one place that builds the engine, the unit of work, the mail transport, the clock and the settings."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING

from sqlalchemy import Engine

from couponsvc.adapters.db import DbLimits, make_engine
from couponsvc.adapters.mail.transports import MailTransport, relay_name, transport_from_url
from couponsvc.adapters.migrate import upgrade
from couponsvc.domain.delivery import RetryPolicy
from couponsvc.service_layer.auth import Credentials, Principal, authenticate
from couponsvc.service_layer.backups import hold_in_use_lock
from couponsvc.service_layer.delivery import Deliverer, DeliveryConfig
from couponsvc.service_layer.dispatch import DispatchConfig
from couponsvc.service_layer.relay import RelayMonitor, RelayStatus, relay_status
from couponsvc.service_layer.throttling import Throttle
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork
from couponsvc.settings import Settings, load_settings

if TYPE_CHECKING:
    from couponsvc.service_layer.twin import Twin


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
    in_use: IO[bytes] | None = None  # the embedded database's in-use lock (db restore waits for its release)
    twin: Twin | None = None  # the /_couponsvc/ control plane (serve --twin); None: not there at all

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
        return Deliverer(self.uow, self.transport, self.clock, self.delivery_config, name, self.relay_monitor)

    @functools.cached_property
    def relay_monitor(self) -> RelayMonitor:
        """This process's view of its mail relay, shared by every delivery it runs (see service_layer.relay)."""
        return RelayMonitor(relay_name(self.settings.mail_url))

    def relay_status(self) -> RelayStatus:
        """The mail relay's recorded state (for /health, the metrics and the twin)."""
        return relay_status(self.uow, self.relay_monitor.relay)

    def authenticate(self, creds: Credentials) -> Principal:
        with self.uow.read() as store:
            return authenticate(store, creds, self.clock())

    @functools.cached_property
    def throttle(self) -> Throttle:
        from couponsvc.adapters.throttle_store import throttle_store

        s = self.settings
        return Throttle(s, lambda: throttle_store(s.database_url, s.redis_url, s.redis_prefix))

    def close(self) -> None:
        if "throttle" in self.__dict__:
            self.throttle.close()
        self.engine.dispose()
        if self.in_use is not None:
            self.in_use.close()
        if self.twin is not None:
            self.twin.twin_uow.engine.dispose()


def configure_logging(level: str, fmt: str = "text") -> None:
    from couponsvc.logformat import install

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install(fmt)
    if level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)


def bootstrap(settings: Settings | None = None, *, migrate: bool = True,
              transport: MailTransport | None = None) -> Container:
    settings = settings or load_settings()
    transport = transport or transport_from_url(
        settings.mail_url, sender=settings.mail_from, timeout=settings.smtp_timeout,
        connections=settings.smtp_connections)
    in_use = hold_in_use_lock(settings)
    engine = make_engine(settings.database_url, limits=DbLimits(
        pg_lock_timeout=settings.pg_lock_timeout, pg_statement_timeout=settings.pg_statement_timeout))
    if migrate:
        upgrade(engine)
    uow = SqlUnitOfWork(engine)
    if settings.twin:
        return _twin_container(settings, engine, uow, transport, in_use)
    return Container(settings=settings, engine=engine, uow=uow, clock=utcnow, transport=transport,
                     in_use=in_use)


def _twin_container(settings: Settings, engine: Engine, uow: SqlUnitOfWork, transport: MailTransport,
                    in_use: IO[bytes] | None) -> Container:
    """The twin: a shared clock, mail faults inside the transport, the journal (see service_layer/twin.py)."""
    from couponsvc.adapters.mail.faulty import FaultInjectingTransport
    from couponsvc.service_layer.clock import SharedClock
    from couponsvc.service_layer.journal import JournalRecorder
    from couponsvc.service_layer.twin import Twin

    twin_uow = SqlUnitOfWork(make_engine(settings.database_url, pool_size=2))
    clock = SharedClock(twin_uow)
    twin = Twin(uow, twin_uow, clock, JournalRecorder(twin_uow, settings.journal_size))
    container = Container(settings=settings, engine=engine, uow=uow, clock=clock,
                          transport=FaultInjectingTransport(transport, twin.pick_mail_faults), twin=twin,
                          in_use=in_use)
    twin.relay_probe = lambda: container.relay_status().as_json()
    twin.on_reset = lambda: container.throttle.clear()
    return container
