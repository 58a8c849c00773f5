"""Prometheus metrics (``GET /metrics``).

Two kinds, kept apart so that several processes can be summed correctly:

- **Process counters** (``couponsvc_calls_total``, ``couponsvc_call_duration_seconds``,
  ``couponsvc_throttled_calls_total``, ``couponsvc_smtp_replies_total``): what *this* process did.  Every
  ``serve`` (and a ``worker`` with ``COUPONSVC_METRICS_PORT``) exposes its own; sum them across processes
  (``sum by (...) (rate(...))``).
- **Database gauges** (``couponsvc_db_*``): read from the shared database at scrape time and cached
  ``CACHE_SECONDS``; they are the same in every process: take ``max``/any, never ``sum``.  The relay's
  state is one of them: the delivery processes record it in the database (``service_layer.relay``), so
  every server reports what the workers saw, as ``/health`` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from couponsvc.adapters import ops_queries
from couponsvc.domain.delivery import DeliveryResult, Outcome, Stage
from couponsvc.service_layer.relay import FAILING, OK, UNKNOWN, RelayStatus, read_relay_status
from couponsvc.service_layer.unit_of_work import UnitOfWork

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CACHE_SECONDS = 5.0

disable_created_metrics()  # type: ignore[no-untyped-call] # the *_created series only double the scrape
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

CALLS = Counter(
    "couponsvc_calls", "API calls answered by this process, by operation, protocol, HTTP status and error "
    "code (the whole-call fault's code; none: no fault).",
    ["operation", "protocol", "status", "error_code"], registry=REGISTRY)
CALL_SECONDS = Histogram(
    "couponsvc_call_duration_seconds", "Time from request to response, by operation (this process).",
    ["operation"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
THROTTLED = Counter(
    "couponsvc_throttled_calls", "Calls refused with 117 CallRateExceeded by this process, by the limit that "
    "was full (user, developer_token, code_guesses).", ["limit"], registry=REGISTRY)
SMTP_REPLIES = Counter(
    "couponsvc_smtp_replies", "Replies of the SMTP relay to this process's deliveries, by class "
    "(2xx, 4xx, 5xx, connection_error: no reply at all: refused, dropped, timed out).",
    ["class"], registry=REGISTRY)


def record_call(protocol: str, operation: str, status: int, code: int | None, seconds: float) -> None:
    """``operation`` must already be a known operation name or ``unknown`` (bounded label values)."""
    CALLS.labels(operation, protocol, str(status), "none" if code is None else str(code)).inc()
    CALL_SECONDS.labels(operation).observe(seconds)


def count_replies(results: Iterable[DeliveryResult]) -> None:
    """SMTP replies by class.  A result with no code is a connection error when it failed; a success with
    no code is a Maildir write (no relay involved) and is not counted."""
    for r in results:
        if r.stage is Stage.BUILD:  # the message could not be built: no relay was involved
            continue
        if r.smtp_code is not None:
            SMTP_REPLIES.labels(f"{r.smtp_code // 100}xx").inc()
        elif r.outcome is not Outcome.SENT:
            SMTP_REPLIES.labels("connection_error").inc()


class DatabaseCollector(Collector):
    """The outbox backlog, the coupon pools and the relay's state, read at scrape time (cached a few
    seconds)."""

    def __init__(self, uow: UnitOfWork, clock: Callable[[], datetime], cache_seconds: float = CACHE_SECONDS,
                 relay: str | None = None):
        self.uow = uow
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.relay = relay
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                self._cached = (now, self._read())
            yield from self._cached[1]

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily("couponsvc_db_up", "1 when the database answered the last scrape's queries.")
        try:
            with self.uow.read() as store:
                backlog = ops_queries.outbox_backlog(store.conn, self.clock())
                pools = ops_queries.coupons_by_class_and_state(store.conn)
                relay = None if self.relay is None else read_relay_status(store.conn, self.relay)
        except Exception:  # the database is down: say so instead of failing the whole scrape
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *_backlog_metrics(backlog), _pool_metric(pools), *([] if relay is None else _relay_metrics(relay))]


def _backlog_metrics(backlog: ops_queries.OutboxBacklog) -> list[Metric]:
    by_status = GaugeMetricFamily("couponsvc_db_outbox_messages", "Outbox messages by status (the whole "
                                  "database: the same in every process).", labels=["status"])
    for status, n in backlog.by_status.items():
        by_status.add_metric([status], n)
    age = GaugeMetricFamily("couponsvc_db_outbox_oldest_queued_age_seconds",
                            "Age of the oldest message not yet sent (queued or being sent); 0 when none.")
    age.add_metric([], backlog.oldest_queued_seconds or 0.0)
    return [by_status, age]


def _pool_metric(pools: Sequence[ops_queries.ClassCount]) -> Metric:
    g = GaugeMetricFamily("couponsvc_db_coupons", "Coupons by customer, class and state (the whole database).",
                          labels=["customer_id", "coupon_class", "state"])
    for p in pools:
        g.add_metric([str(p.customer_id), p.class_name, p.state], p.count)
    return g


def _relay_metrics(relay: RelayStatus) -> list[Metric]:
    """The relay as ``/health`` reports it: a state set (alert on failing), its last reply, and since when."""
    state = GaugeMetricFamily("couponsvc_db_relay_state", "The mail relay's state as the delivery processes last "
                              "saw it: 1 for the current state (ok, failing, unknown: nothing sent yet).",
                              labels=["relay", "state"])
    for name in (OK, FAILING, UNKNOWN):
        state.add_metric([relay.relay, name], 1 if relay.state == name else 0)
    reply = GaugeMetricFamily("couponsvc_db_relay_last_reply", "The relay's last reply that said something of it: "
                              "its code, and while failing its text (credentials scrubbed); the value is the SMTP "
                              "code, 0 for none.", labels=["relay", "code", "reply"])
    code = relay.last_code or 0
    # the text only while failing: an accepting relay's replies carry a queue id each, a new series per message
    text = (relay.last_reply or "") if relay.state == FAILING else ""
    reply.add_metric([relay.relay, str(code) if relay.last_code is not None else "", text], code)
    since = GaugeMetricFamily("couponsvc_db_relay_state_since_timestamp_seconds",
                              "When the relay entered its current state (Unix time); absent while unknown.",
                              labels=["relay"])
    if relay.since is not None:
        since.add_metric([relay.relay], relay.since.replace(tzinfo=UTC).timestamp())
    return [state, reply, since]


class Scrape:
    """What ``GET /metrics`` answers for one server: this process's counters, then the database gauges."""

    def __init__(self, uow: UnitOfWork, clock: Callable[[], datetime], cache_seconds: float = CACHE_SECONDS,
                 relay: str | None = None) -> None:
        self.database = CollectorRegistry()
        self.database.register(DatabaseCollector(uow, clock, cache_seconds, relay))

    def render(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.database)


def serve_process_metrics(port: int, host: str = "0.0.0.0") -> None:
    """For ``couponsvc worker``: this process's counters on their own port (a thread in the background)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY)
