"""The dispatch log: every DispatchCoupons call and, per call, each address's outcome.

Per-address outcomes are stored cheaply: the coupons a call allocated are its outbox rows (address, code,
delivery status), and its PartialErrors are one JSON text on the dispatch row, written in the dispatch
transaction and extended when delivery reports 3005s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from couponsvc.adapters import console_queries as q
from couponsvc.adapters.console_queries import DispatchRow, MessageRow
from couponsvc.domain.errors import BatchError, NotFound, OperationError, lookup
from couponsvc.service_layer.unit_of_work import RetryableConflict, UnitOfWork

PAGE = 50


def _outcome(index: int, code: int, error_code: str, message: str, details: str | None) -> dict[str, object]:
    """One stored outcome: the shape of a PartialErrors item, whichever call it came from."""
    return {"Index": index, "Code": code, "ErrorCode": error_code, "Message": message, "Details": details}


def encode_outcomes(errors: Sequence[BatchError]) -> str | None:
    if not errors:
        return None
    return json.dumps([_outcome(e.index, e.code, e.error_code, e.message, e.details)
                       for e in sorted(errors, key=lambda e: e.index)])


def encode_account_outcomes(errors: Sequence[Sequence[OperationError]]) -> str | None:
    """A DistributeCoupons call's per-account errors (``errors[i]``: those of the i-th AccountId) in the same
    shape as a dispatch's, so that the console shows both alike."""
    flat = [_outcome(i, e.code, lookup(e.code).error_code, e.message, e.details)
            for i, item in enumerate(errors) for e in item]
    return json.dumps(flat) if flat else None


def decode_outcomes(text: str | None) -> list[dict[str, object]]:
    return [] if not text else list(json.loads(text))


def add_delivery_failures(uow: UnitOfWork, dispatch_id: int, errors: Sequence[BatchError]) -> None:
    """Append the 3005s that delivery found after the call committed."""
    if not errors:
        return
    for _ in range(5):
        try:
            with uow.write() as store:
                have = decode_outcomes(q.dispatch_outcomes(store.conn, dispatch_id))
                seen = {(e["Index"], e["Code"]) for e in have}
                extra = [e for e in errors if (e.index, e.code) not in seen]
                merged = have + json.loads(encode_outcomes(extra) or "[]")
                q.set_dispatch_outcomes(store.conn, dispatch_id,
                                        json.dumps(sorted(merged, key=lambda e: int(str(e["Index"])))))
            return
        except RetryableConflict:
            continue


@dataclass(frozen=True, slots=True)
class DispatchDetail:
    dispatch: DispatchRow
    messages: list[MessageRow]  # one per allocated coupon: address, code, delivery status
    errors: list[dict[str, object]]  # the PartialErrors: Index, Code, ErrorCode, Message, Details


def page(uow: UnitOfWork, *, before_id: int | None = None, tracking_id: str | None = None,
         limit: int = PAGE) -> list[DispatchRow]:
    with uow.read() as store:
        return q.dispatches_page(store.conn, before_id=before_id, limit=limit, tracking_id=tracking_id)


def detail(uow: UnitOfWork, dispatch_id: int) -> DispatchDetail:
    with uow.read() as store:
        row = q.dispatch(store.conn, dispatch_id)
        if row is None:
            raise NotFound(f"no dispatch {dispatch_id}")
        return DispatchDetail(row, q.dispatch_messages(store.conn, dispatch_id), decode_outcomes(row.outcomes))
