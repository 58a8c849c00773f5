"""The twin control plane as service functions: reset, seed, mail, journal, faults, clock, health.

Built only when the twin is on (``serve --twin``).  The routes under ``/_couponsvc/`` are thin wrappers
over ``Twin``; the API calls reach it at two points only: ``apply_api_faults`` right after authentication
(``entrypoints.operations.execute``) and ``pick_mail_faults`` inside the mail transport.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from couponsvc.adapters import journal as journal_store
from couponsvc.adapters import twin_store as store_
from couponsvc.adapters.mail.message import DISTRIBUTION_TEMPLATE, CouponFacts, render
from couponsvc.adapters.seed import Seed, apply_seed, parse_seed
from couponsvc.adapters.twin_store import ClockState, FaultRow
from couponsvc.domain.deadlines import current_deadline
from couponsvc.domain.errors import CATALOGUE, DeadlineExceeded, Err, FaultKind, ServiceFault, TwinRequestError
from couponsvc.domain.model import class_name_key
from couponsvc.service_layer.clock import SharedClock, real_utcnow
from couponsvc.service_layer.journal import JournalRecorder
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

#: tables reset leaves alone: schema bookkeeping, the operators of the console with their sessions, sign-in
#: limits and audit trail (people, not test data), and the last seen state of the mail relay
KEEP_ON_RESET: tuple[str, ...] = ("alembic_version", "operators", "console_sessions", "signin_failures",
                                  "audit_log", "relay_state")
MAIL_KINDS = ("4xx", "5xx", "drop")
MAX_LATENCY_MS = 600_000
_API_KEYS = ("operation", "error_code", "latency_ms", "probability", "count", "retry_after")
_MAIL_KEYS = ("smtp", "recipient", "probability", "count")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(body: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise TwinRequestError(f"{key}: must be a whole number from {low} to {high}")
    return int(value)


def _probability(body: Mapping[str, Any]) -> float:
    value = body.get("probability", 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise TwinRequestError("probability: must be a number from 0 to 1")
    return float(value)


def _object(body: Any, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TwinRequestError("the body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise TwinRequestError(f"{key}: unknown key; allowed: {', '.join(allowed)}")
    return body


def parse_instant(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise TwinRequestError(f'{key}: must be an ISO-8601 date-time such as "2030-01-01T00:00:00Z" or null')
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TwinRequestError(f'{key}: {value!r} is not an ISO-8601 date-time such as "2030-01-01T00:00:00Z"') \
            from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _rule_json(r: FaultRow) -> dict[str, Any]:
    if r.kind == "mail":
        return {"id": r.id, "smtp": r.smtp, "recipient": r.recipient, "probability": r.probability,
                "count": r.remaining}
    return {"id": r.id, "operation": r.operation, "error_code": r.error_code, "latency_ms": r.latency_ms,
            "probability": r.probability, "count": r.remaining, "retry_after": r.retry_after}


@dataclass
class Twin:
    uow: SqlUnitOfWork  # the service's own (reset and seed run in its transactions)
    twin_uow: SqlUnitOfWork  # a separate small pool: clock, rules and journal never wait behind API calls
    clock: SharedClock
    journal: JournalRecorder
    #: the seeds named at start (serve --seed FILE, --demo), loaded again by reset: (source, parsed seed)
    start_seeds: list[tuple[str, Seed]] = field(default_factory=list)
    #: the mail relay's recorded state as /health shows it (service_layer.relay, through the container)
    relay_probe: Callable[[], dict[str, Any]] = lambda: {"state": "unknown", "last_code": None,
                                                         "last_reply": None, "since": None}
    #: run by reset after the database part: clears what lives elsewhere (the throttle's Redis counters)
    on_reset: Callable[[], None] | None = None

    # --- hooks on the API path ---------------------------------------------------------------------------
    def _fires(self, rule: FaultRow) -> bool:
        if rule.probability < 1 and random.random() >= rule.probability:
            return False
        if rule.remaining is None:
            return True
        with self.twin_uow.write() as store:  # atomic: with a count, servers never overspend the rule
            return store_.use_fault(store.conn, rule.id)

    def apply_api_faults(self, operation: str) -> None:
        """Wait and/or refuse as the matching rules say (runs in the call's worker thread, after
        authentication and before the operation reads or changes anything)."""
        with self.twin_uow.read() as store:
            rules = store_.list_faults(store.conn, "api")
        latency_ms = 0
        refusal: FaultRow | None = None
        for rule in rules:
            if rule.operation not in ("*", operation) or not self._fires(rule):
                continue
            latency_ms += rule.latency_ms or 0
            if rule.error_code is not None:
                refusal = rule
                break
        if latency_ms:
            # a worker thread sleeps; the event loop serves other calls.  No longer than the call may run
            # (SPEC 9): past the request deadline the call ends as a real one would, with 0 InternalError.
            deadline = current_deadline()
            if deadline is not None and latency_ms / 1000 >= (left := deadline.remaining()):
                time.sleep(left)
                raise DeadlineExceeded(f"injected latency of {latency_ms} ms: the request deadline of "
                                       f"{deadline.seconds:g} s has passed")
            time.sleep(latency_ms / 1000)
        if refusal is not None and refusal.error_code is not None:
            code = Err(refusal.error_code)
            retry_after = (refusal.retry_after or 1) if code is Err.CALL_RATE_EXCEEDED else None
            raise ServiceFault(code, retry_after=retry_after)

    def pick_mail_faults(self, recipients: Sequence[str]) -> list[str | None]:
        """For each recipient, the injected SMTP fault it meets (``4xx``, ``5xx``, ``drop``) or None."""
        with self.twin_uow.read() as store:
            rules = store_.list_faults(store.conn, "mail")
        if not rules:
            return [None] * len(recipients)
        compiled = [(rule, re.compile(rule.recipient or "", re.IGNORECASE)) for rule in rules]
        out: list[str | None] = []
        for recipient in recipients:
            kind = None
            for rule, pattern in compiled:
                if pattern.search(recipient) and self._fires(rule):
                    kind = rule.smtp
                    break
            out.append(kind)
        return out

    # --- control plane ------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        try:
            with self.uow.read() as store:
                store.conn.execute(text("SELECT 1"))
                outbox = store_.outbox_counts(store.conn)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return {"status": "unavailable", "database": type(exc).__name__, "relay": None, "outbox": None}
        return {"status": "ok", "database": "ok", "relay": self.relay_probe(), "outbox": outbox}

    async def reset(self, document: Any | None) -> dict[str, Any]:
        """Remove all data (every table but ``KEEP_ON_RESET``: customers, classes, coupons, tokens, messages,
        journal, faults, the clock setting) and load the start seeds, or ``document`` instead, in one
        transaction.  A bad document changes nothing."""
        seeds = self.start_seeds if document is None else [("request body", parse_seed(document, "request body"))]
        await self.journal.flush()  # calls answered before the reset go with it

        def work() -> None:
            now = real_utcnow()
            with self.uow.write() as store:
                store_.clear_tables(store.conn, store_.tables_to_clear(KEEP_ON_RESET))
                for source, seed in seeds:
                    apply_seed(store.conn, seed, now, source)

        await asyncio.to_thread(work)
        if self.on_reset is not None:  # what lives outside the database: the throttle's counters in Redis
            await asyncio.to_thread(self.on_reset)
        self.clock.remember(ClockState())
        return {"reset": True, "seeds": [source for source, _ in seeds]}

    def load_seed(self, document: Any) -> dict[str, Any]:
        seed = parse_seed(document, "request body")
        with self.uow.write() as store:
            report = apply_seed(store.conn, seed, self.clock(), "request body")
        return {"loaded": {"customers": report.customers, "classes": report.classes,
                           "codes_added": report.codes_added, "codes_generated": report.codes_generated,
                           "users": report.users, "tokens": report.tokens}}

    def mail(self, query: Mapping[str, str]) -> dict[str, Any]:
        limit = _query_int(query, "limit", 100, 1, 1000)
        to = query.get("to") or None
        class_name = query.get("class") or None
        with self.uow.read() as store:
            key = class_name_key(class_name) if class_name else None
            rows = store_.list_mail(store.conn, to=to, class_name_key=key, limit=limit)
        messages = []
        for r in rows:
            limits = [d for d in (r.end_date, r.expiration_date, r.expires_at) if d is not None]
            facts = CouponFacts(r.code, r.class_name, r.amount, r.currency_code, r.percent_off, r.spend_threshold,
                                r.active_duration, min(limits) if limits else None, r.account_number)
            # the parts as delivery builds them (service_layer.delivery.build_outgoing)
            parts = (render(None, facts, base=DISTRIBUTION_TEMPLATE) if r.kind == "distribution"
                     else render(r.template, facts))
            messages.append({
                "message_id": r.message_id, "to": r.recipient, "subject": parts["subject"], "code": r.code,
                "coupon_class": r.class_name, "customer_id": r.customer_id, "status": r.status,
                "attempts": r.attempts, "queued_at": iso(r.queued_at), "sent_at": iso(r.sent_at),
                "last_error": r.last_error, "tracking_id": r.tracking_id, "text": parts["text"],
                "html": parts["html"],
            })
        return {"messages": messages}

    async def calls(self, query: Mapping[str, str]) -> dict[str, Any]:
        limit = _query_int(query, "limit", 100, 1, self.journal.size)
        await self.journal.flush()

        def read() -> list[dict[str, Any]]:
            with self.twin_uow.read() as store:
                return journal_store.list_calls(store.conn, limit=limit, operation=query.get("operation") or None,
                                                tracking_id=query.get("tracking_id") or None)

        return {"calls": await asyncio.to_thread(read)}

    def add_fault(self, body: Any, operations: Collection[str]) -> dict[str, Any]:
        if isinstance(body, dict) and "smtp" in body:
            values = self._mail_rule(_object(body, _MAIL_KEYS))
        else:
            values = self._api_rule(_object(body, _API_KEYS), operations)
        with self.twin_uow.write() as store:
            fault_id = store_.add_fault(store.conn, values, real_utcnow())
            rule = next(r for r in store_.list_faults(store.conn) if r.id == fault_id)
        return _rule_json(rule)

    @staticmethod
    def _api_rule(body: dict[str, Any], operations: Collection[str]) -> dict[str, Any]:
        operation = body.get("operation")
        if not isinstance(operation, str):
            raise TwinRequestError('operation: is required: an operation name such as "DispatchCoupons", or "*"')
        if operation != "*" and operation not in operations:
            raise TwinRequestError(f"operation: {operation!r} is not a Customer Billing operation; use one of "
                                   f"{', '.join(sorted(operations))} or *")
        error_code = body.get("error_code")
        if error_code is not None:
            if not _is_int(error_code) or error_code not in {int(e) for e in CATALOGUE}:
                raise TwinRequestError(f"error_code: {error_code!r} is not a code of the error catalogue")
            kind = CATALOGUE[Err(error_code)].kind
            if kind is FaultKind.BATCH:
                raise TwinRequestError(f"error_code: {error_code} is a per-address error (PartialErrors), not a "
                                       "fault of a whole call; use a mail fault for 3005")
            if kind is FaultKind.OPERATION:
                raise TwinRequestError(f"error_code: {error_code} is a per-account error (PartialErrors of "
                                       "DistributeCoupons), not a fault of a whole call; give an account a "
                                       "coupon of the class first to get it for real")
        latency_ms = _int(body, "latency_ms", 0, MAX_LATENCY_MS)
        if error_code is None and not latency_ms:
            raise TwinRequestError("error_code or latency_ms: give at least one")
        return {"kind": "api", "operation": operation, "error_code": error_code, "latency_ms": latency_ms,
                "retry_after": _int(body, "retry_after", 1, 86400), "probability": _probability(body),
                "remaining": _int(body, "count", 1, 1_000_000_000)}

    @staticmethod
    def _mail_rule(body: dict[str, Any]) -> dict[str, Any]:
        smtp = body.get("smtp")
        if smtp not in MAIL_KINDS:
            raise TwinRequestError(f"smtp: must be one of {', '.join(MAIL_KINDS)}")
        recipient = body.get("recipient", "")
        if not isinstance(recipient, str) or len(recipient) > 1000:
            raise TwinRequestError("recipient: must be a regular expression (text of at most 1000 characters)")
        try:
            re.compile(recipient, re.IGNORECASE)
        except re.error as exc:
            raise TwinRequestError(f"recipient: {recipient!r} is not a valid regular expression: {exc}") from None
        return {"kind": "mail", "smtp": smtp, "recipient": recipient, "probability": _probability(body),
                "remaining": _int(body, "count", 1, 1_000_000_000)}

    def faults(self) -> dict[str, Any]:
        with self.twin_uow.read() as store:
            return {"faults": [_rule_json(r) for r in store_.list_faults(store.conn)]}

    def delete_faults(self, fault_id: int | None = None) -> int:
        with self.twin_uow.write() as store:
            return store_.delete_faults(store.conn, fault_id)

    def get_clock(self) -> dict[str, Any]:
        with self.twin_uow.read() as store:
            state = store_.read_clock(store.conn)
        self.clock.remember(state)
        return self._clock_json(state)

    def set_clock(self, body: Any) -> dict[str, Any]:
        body = _object(body, ("now", "advance_seconds", "frozen"))
        if ("now" in body) == ("advance_seconds" in body):
            raise TwinRequestError("now or advance_seconds: give exactly one")
        frozen = body.get("frozen", True)
        if not isinstance(frozen, bool):
            raise TwinRequestError("frozen: must be true or false")
        real = real_utcnow()
        if "now" in body:
            if body["now"] is None:
                state = ClockState()
            else:
                target = parse_instant(body["now"], "now")
                state = ClockState(target, 0.0) if frozen else ClockState(None, (target - real).total_seconds())
        else:
            step = body["advance_seconds"]
            if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) \
                    or abs(step) > 100 * 365 * 86400:
                raise TwinRequestError("advance_seconds: must be a number of seconds (at most 100 years either way)")
            with self.twin_uow.read() as store:
                current = store_.read_clock(store.conn)
            if current.frozen_at is not None:
                state = ClockState(current.frozen_at + timedelta(seconds=step), 0.0)
            else:
                state = ClockState(None, current.offset_seconds + float(step))
        self.clock.set(state)
        return self._clock_json(state)

    @staticmethod
    def _clock_json(state: ClockState) -> dict[str, Any]:
        if state.frozen_at is not None:
            now = state.frozen_at
        else:
            now = real_utcnow() + timedelta(seconds=state.offset_seconds)
        return {"now": iso(now), "frozen": state.frozen_at is not None, "offset_seconds": state.offset_seconds}


def _query_int(query: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise TwinRequestError(f"{key}: must be a whole number from {low} to {high}")
    return int(raw)
