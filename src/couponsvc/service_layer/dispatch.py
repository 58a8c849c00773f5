"""DispatchCoupons: the checks of SPEC section 5 in their order, and one transaction for all allocations."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from couponsvc.adapters.store import OutboxEntry
from couponsvc.domain.deadlines import current_deadline
from couponsvc.domain.errors import BatchError, Err, ServiceFault
from couponsvc.domain.model import (
    Allocation,
    class_name_key,
    message_id,
    plan_allocation,
    screen_addresses,
)
from couponsvc.domain.values import RawLong, parse_long, positive_long_or_none
from couponsvc.service_layer.auth import Principal
from couponsvc.service_layer.delivery import call_lease_owner
from couponsvc.service_layer.dispatch_log import encode_outcomes
from couponsvc.service_layer.unit_of_work import RetryableConflict, UnitOfWork

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
MIN_DELIVERY_S = 0.25  # less delivery time than this left: not worth claiming the messages


@dataclass(frozen=True, slots=True)
class DispatchCouponsRequest:
    """The request as parsed from either protocol; values are raw so that both share one validation."""

    send_to_emails: list[str | None] | None
    customer_id: RawLong
    coupon_class_name: str | None


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    max_addresses: int = 1000
    message_id_domain: str = "couponsvc.localhost"
    #: the call delivers its own messages right after the commit: they start leased to it
    deliver_in_call: bool = True
    lease: timedelta = timedelta(seconds=30)
    #: the call's delivery time, counted from its arrival (SPEC section 9)
    delivery_timeout: float = 10.0


@dataclass(slots=True)
class DispatchOutcome:
    partial_errors: list[BatchError]
    dispatch_id: int | None = None
    allocations: list[Allocation] = field(default_factory=list)
    #: seconds the committed transaction took, from holding the write lock to the commit: the call's
    #: delivery budget is extended by it (SPEC section 9)
    transaction_seconds: float = 0.0
    #: the messages were written leased to the call, which delivers them; otherwise they are the workers'
    delivered_by_call: bool = False
    #: seconds from the call's arrival until its committed transaction held the write lock
    waited_seconds: float = 0.0


def _call_delivers(config: DispatchConfig) -> bool:
    """Whether the call still has delivery time left once it holds the write lock: a call that queued
    behind others for its whole delivery time leaves its messages to the workers at once (queued, not
    leased to it), so that it answers right after its commit."""
    if not config.deliver_in_call:
        return False
    deadline = current_deadline()
    return deadline is None or deadline.elapsed() < config.delivery_timeout - MIN_DELIVERY_S


def dispatch_coupons(
    uow: UnitOfWork,
    clock: Callable[[], datetime],
    config: DispatchConfig,
    principal: Principal,
    request: DispatchCouponsRequest | None,
    tracking_id: str,
) -> DispatchOutcome:
    """Runs after authentication (the caller's ``principal``); raises ServiceFault for whole-call refusals.

    ``now`` is read inside the transaction, once it holds the write lock, and afresh on every retry: a call
    that queued behind others records the time it actually allocated, not the time it arrived."""
    if request is None:
        raise ServiceFault(Err.NULL_REQUEST)
    wanted = positive_long_or_none(request.customer_id)
    if wanted is not None:
        principal.require_customer(wanted)
    if request.coupon_class_name is None or not request.coupon_class_name.strip():
        raise ServiceFault(Err.NULL_PARAMETER, "CouponClassName")
    customer_id = parse_long(request.customer_id, "CustomerId")
    if customer_id is None:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, "CustomerId is required")
    if customer_id <= 0:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"CustomerId must be positive, got {customer_id}")
    addresses = request.send_to_emails
    if not addresses:
        raise ServiceFault(Err.NULL_ARRAY_ARGUMENT, "SendToEmails")
    if len(addresses) > config.max_addresses:
        raise ServiceFault(
            Err.COUNT_EXCEEDS_LIMIT, f"SendToEmails has {len(addresses)} items; the limit is {config.max_addresses}"
        )
    candidates, screen_errors = screen_addresses(addresses)
    name_key = class_name_key(request.coupon_class_name)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with uow.write() as store:
                began = time.monotonic()
                now = clock()
                by_call = _call_delivers(config)
                coupon_class = store.coupon_class(customer_id, name_key)
                if coupon_class is None:
                    raise ServiceFault(Err.COUPON_CLASS_NOT_FOUND, request.coupon_class_name.strip())
                if coupon_class.is_expired(now):
                    raise ServiceFault(Err.COUPON_CLASS_EXPIRED, coupon_class.name)
                sent = store.keys_already_sent(coupon_class.id, [c.key for c in candidates])
                wanted_count = sum(1 for c in candidates if c.key not in sent)
                pool = store.oldest_available(coupon_class.id, now, wanted_count)
                allocations, alloc_errors = plan_allocation(candidates, sent, pool)
                dispatch_id = store.create_dispatch(
                    tracking_id=tracking_id, customer_id=customer_id, class_id=coupon_class.id,
                    user_id=principal.user_id, requested=len(addresses), allocated=len(allocations), now=now,
                    outcomes=encode_outcomes(screen_errors + alloc_errors),
                )
                store.mark_dispatched(allocations, dispatch_id, now)
                store.enqueue(
                    (OutboxEntry(a.coupon.id, a.candidate.address,
                                 message_id(a.coupon.id, dispatch_id, config.message_id_domain))
                     for a in allocations),
                    dispatch_id,
                    now,
                    holder=call_lease_owner(tracking_id) if by_call else None,
                    lease_until=now + config.lease,
                )
        except RetryableConflict as exc:
            log.info("tracking_id=%s dispatch lost a race (attempt %d): %s", tracking_id, attempt, exc)
            if attempt == MAX_ATTEMPTS:
                raise
            continue
        errors = sorted(screen_errors + alloc_errors, key=lambda e: e.index)
        deadline = current_deadline()
        waited = 0.0 if deadline is None else began - deadline.started
        return DispatchOutcome(errors, dispatch_id, allocations, time.monotonic() - began, by_call, waited)
    raise AssertionError("unreachable")
