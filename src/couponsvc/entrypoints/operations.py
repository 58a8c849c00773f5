"""The operation table: for each Customer Billing operation, its REST path, its codecs and its service call.

SOAP and REST handlers look operations up here and run the same ``execute`` sequence, so the two
protocols cannot drift apart in ordering (authentication first, then parsing, then the operation).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from couponsvc.bootstrap import Container
from couponsvc.domain.deadlines import current_deadline, detached
from couponsvc.domain.errors import BatchError, Err, ServiceFault
from couponsvc.entrypoints.rest import codecs as rest
from couponsvc.entrypoints.rest import family_codecs as rest_family
from couponsvc.entrypoints.soap import codecs as soap
from couponsvc.entrypoints.soap import family_codecs as soap_family
from couponsvc.service_layer import dispatch_log
from couponsvc.service_layer.auth import Credentials, Principal
from couponsvc.service_layer.coupons import get_coupon_info, redeem_coupon, search_coupons
from couponsvc.service_layer.dispatch import DispatchOutcome, dispatch_coupons
from couponsvc.service_layer.distribute import DistributeOutcome, distribute_coupons
from couponsvc.service_layer.feature_adoption import check_eligibility, claim_coupons

log = logging.getLogger(__name__)
#: seconds kept free before the request deadline for recording a delivery and writing the answer
RECORD_RESERVE_S = 2.0


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    rest_path: str
    run: Callable[[Container, Principal, Any, str], Any] | None = None  # None: answers 204
    parse_soap: Callable[[Any], Any] = lambda el: el
    write_soap: Callable[[Any, Any], None] = lambda parent, result: None
    parse_json: Callable[[Any], Any] = lambda body: body
    render_json: Callable[[Any], dict[str, Any]] = lambda result: {}
    #: runs on the event loop after the operation's transaction committed (DispatchCoupons: delivery)
    after: Callable[[Container, Any, str], Awaitable[Any]] | None = None
    rest_method: str = "POST"


def _dispatch(c: Container, principal: Principal, request: Any, tracking_id: str) -> Any:
    return dispatch_coupons(c.uow, c.clock, c.dispatch_config, principal, request, tracking_id)


def delivery_budget(c: Container, transaction_seconds: float) -> float:
    """Seconds the call may still spend sending: its delivery time counted from its arrival (SPEC section 9),
    so waiting for the database or for other calls eats into it.  The answer then comes after recording
    what was sent, a transaction about as long as the call's own: delivery time + its own transaction time.
    Never past the request deadline, less a reserve to answer."""
    deadline = current_deadline()
    if deadline is None:
        return c.settings.delivery_timeout
    # sending stops early enough to record the outcome (a transaction much like the call's own) in the bound
    end = deadline.started + c.settings.delivery_timeout
    end = min(end, deadline.at - min(RECORD_RESERVE_S, deadline.seconds / 10) - transaction_seconds)
    return max(0.0, end - time.monotonic())


async def _deliver_dispatched(c: Container, outcome: DispatchOutcome, tracking_id: str) -> DispatchOutcome:
    """Deliver the call's messages within the call's delivery budget; a permanent refusal becomes a 3005."""
    if outcome.dispatch_id is None or not outcome.allocations or not outcome.delivered_by_call:
        return outcome
    budget = delivery_budget(c, outcome.transaction_seconds)
    until = asyncio.get_running_loop().time() + budget  # the claim counts against the budget too
    # the claim and the record of what was sent must not be cut by the request deadline (a sent message
    # not recorded would be sent again): they run detached, the sending itself is bounded by ``until``
    with detached():
        refused = set(await c.deliverer().deliver_dispatch(outcome.dispatch_id, tracking_id, budget, until))
    if not refused:
        return outcome
    failed = [a for a in outcome.allocations if a.coupon.id in refused]
    refusals = [BatchError.of(Err.EMAIL_DELIVERY_FAILED, a.candidate.index, a.candidate.address) for a in failed]
    await asyncio.to_thread(dispatch_log.add_delivery_failures, c.uow, outcome.dispatch_id, refusals)
    errors = outcome.partial_errors + refusals
    return replace(outcome, partial_errors=sorted(errors, key=lambda e: e.index),
                   allocations=[a for a in outcome.allocations if a.coupon.id not in refused])


def _search(c: Container, principal: Principal, request: Any, tracking_id: str) -> Any:
    return search_coupons(c.uow, principal, request)


def _redeem(c: Container, principal: Principal, request: Any, tracking_id: str) -> Any:
    return redeem_coupon(c.uow, c.clock, principal, request)


def _coupon_info(c: Container, principal: Principal, request: Any, tracking_id: str) -> Any:
    return get_coupon_info(c.uow, c.clock, principal, request)


def _distribute(c: Container, principal: Principal, request: Any, tracking_id: str) -> Any:
    return distribute_coupons(c.uow, c.clock, c.dispatch_config, principal, request, tracking_id)


async def _notify_distributed(c: Container, outcome: DistributeOutcome, tracking_id: str) -> DistributeOutcome:
    """Send the call's notifications within the delivery time; a refusal is no error of the call (the coupon
    is the account's already), and whatever is not sent by then is left to the workers."""
    if outcome.distribution_id is not None and outcome.notifications and c.dispatch_config.deliver_in_call:
        budget = delivery_budget(c, 0.0)  # counted from the call's arrival, as for DispatchCoupons
        until = asyncio.get_running_loop().time() + budget
        with detached():
            await c.deliverer().deliver_dispatch(outcome.distribution_id, tracking_id, budget, until)
    return outcome


def _check_eligibility(c: Container, principal: Principal, request: Any, tracking_id: str) -> Any:
    return check_eligibility(c.uow, c.clock, principal, request)


def _claim(c: Container, principal: Principal, request: Any, tracking_id: str) -> Any:
    return claim_coupons(c.uow, c.clock, principal, request)


_IMPLEMENTED = [
    Operation(
        "DispatchCoupons", "/CustomerBilling/v13/Coupons/Dispatch", _dispatch,
        soap.parse_dispatch_coupons, soap.write_dispatch_coupons,
        rest.parse_dispatch_coupons, rest.render_dispatch_coupons, _deliver_dispatched,
    ),
    Operation(
        "SearchCoupons", "/CustomerBilling/v13/Coupons/Search", _search,
        soap.parse_search_coupons, soap.write_search_coupons, rest.parse_search_coupons, rest.render_search_coupons,
    ),
    Operation(
        "RedeemCoupon", "/CustomerBilling/v13/Coupon/Redeem", _redeem,
        soap.parse_redeem_coupon, soap.write_redeem_coupon, rest.parse_redeem_coupon, rest.render_redeem_coupon,
    ),
    Operation(
        "GetCouponInfo", "/CustomerBilling/v13/CouponInfo/Query", _coupon_info,
        soap.parse_get_coupon_info, soap.write_get_coupon_info, rest.parse_get_coupon_info,
        rest.render_get_coupon_info,
    ),
    Operation(
        "DistributeCoupons", "/CustomerBilling/v13/Coupons/Distribute", _distribute,
        soap_family.parse_distribute_coupons, soap_family.write_distribute_coupons,
        rest_family.parse_distribute_coupons, rest_family.render_distribute_coupons, _notify_distributed,
    ),
    Operation(
        "CheckFeatureAdoptionCouponEligibility", "/CustomerBilling/v13/FeatureAdoptionCouponEligibility/Check",
        _check_eligibility, soap_family.parse_check_eligibility, soap_family.write_check_eligibility,
        rest_family.parse_check_eligibility, rest_family.render_check_eligibility,
    ),
    Operation(
        "ClaimFeatureAdoptionCoupons", "/CustomerBilling/v13/FeatureAdoptionCoupons/Claim", _claim,
        soap_family.parse_claim_coupons, soap_family.write_claim_coupons, rest_family.parse_claim_coupons,
        rest_family.render_claim_coupons,
    ),
]

# The rest of the Customer Billing v13 surface: recognised, authenticated, then refused with 204.
# (name, REST method, REST path): AddInsertionOrder and UpdateInsertionOrder share a path (POST / PUT).
_NOT_SUPPORTED = [
    ("GetBillingDocumentsInfo", "POST", "/CustomerBilling/v13/BillingDocumentsInfo/Query"),
    ("GetBillingDocuments", "POST", "/CustomerBilling/v13/BillingDocuments/Query"),
    ("AddInsertionOrder", "POST", "/CustomerBilling/v13/InsertionOrder"),
    ("UpdateInsertionOrder", "PUT", "/CustomerBilling/v13/InsertionOrder"),
    ("SearchInsertionOrders", "POST", "/CustomerBilling/v13/InsertionOrders/Search"),
    ("GetAccountMonthlySpend", "POST", "/CustomerBilling/v13/AccountMonthlySpend/Query"),
    ("GetBillingGroups", "POST", "/CustomerBilling/v13/BillingGroups/Query"),
    ("GetUngroupedAccounts", "POST", "/CustomerBilling/v13/UngroupedAccounts/Query"),
    ("UpdateBillingGroupAccounts", "PUT", "/CustomerBilling/v13/BillingGroupAccounts"),
]

OPERATIONS: dict[str, Operation] = {op.name: op for op in _IMPLEMENTED}
for _name, _method, _path in _NOT_SUPPORTED:
    OPERATIONS.setdefault(_name, Operation(_name, _path, rest_method=_method))

#: (method, lower-case path) → operation; a path called with another method still finds its operation
REST_ROUTES: dict[tuple[str, str], Operation] = {}
for _op in OPERATIONS.values():
    REST_ROUTES.setdefault((_op.rest_method, _op.rest_path.lower()), _op)
for _op in OPERATIONS.values():
    for _m in ("POST", "PUT"):
        REST_ROUTES.setdefault((_m, _op.rest_path.lower()), _op)


def rest_operation(method: str, path: str) -> Operation | None:
    return REST_ROUTES.get((method.upper(), path.rstrip("/").lower()))


def unknown_operation(name: str | None) -> Operation:
    return Operation(name or "", "")


def execute(
    container: Container,
    operation: Operation,
    creds: Credentials,
    parse: Callable[[], Any],
    tracking_id: str,
) -> Any:
    """Authenticate, then parse, then run: the order every call follows on both protocols."""
    principal = container.authenticate(creds)
    container.throttle.admit(creds, principal, operation.name)  # 117 before anything is parsed or changed
    if not operation.name:
        raise ServiceFault(Err.NULL_REQUEST, "The SOAP Body holds no request element")
    if operation.run is None:
        raise ServiceFault(Err.OPERATION_NOT_SUPPORTED, operation.name)
    with container.throttle.counting_guesses(principal, operation.name) as count_guesses:  # 3006s feed the guess limit
        result = operation.run(container, principal, parse(), tracking_id)
        count_guesses(result)
        return result


async def run_after(container: Container, operation: Operation, result: Any, tracking_id: str) -> Any:
    """The operation's post-commit step.  Its failure never turns a committed call into an error: what it
    did not finish (e.g. delivery) is left to the workers."""
    if operation.after is None:
        return result
    try:
        return await operation.after(container, result, tracking_id)
    except Exception:
        log.exception("tracking_id=%s %s: post-commit step failed; left to the workers", tracking_id,
                      operation.name)
        return result
