"""HTTP plumbing shared by the SOAP and REST handlers: tracking ids, bounded bodies, the access log."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from couponsvc.domain.deadlines import current_deadline
from couponsvc.domain.errors import DeadlineExceeded, Err, ServiceFault
from couponsvc.entrypoints.operations import OPERATIONS
from couponsvc.service_layer.metrics import record_call

T = TypeVar("T")
#: bodies up to this size are parsed on the event loop (a thread hop costs more); larger ones in a thread
OFFLOAD_BYTES = 16 * 1024

access_log = logging.getLogger("couponsvc.access")
log = logging.getLogger("couponsvc.api")


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")
        self.limit = limit


def too_large_fault(exc: BodyTooLarge) -> ServiceFault:
    return ServiceFault(Err.API_INPUT_VALIDATION_ERROR, str(exc))


@dataclass
class CallLog:
    protocol: str
    tracking_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    operation: str = "-"
    started: float = field(default_factory=time.perf_counter)

    #: DispatchCoupons: from arrival to holding the write lock, and its own transaction (SPEC section 9's
    #: bound is the delivery time plus the latter); logged so that operators and tests can check it
    wait_ms: float | None = None
    transaction_ms: float | None = None

    def timed(self, result: object) -> None:
        waited = getattr(result, "waited_seconds", None)
        took = getattr(result, "transaction_seconds", None)
        if isinstance(waited, float) and isinstance(took, float):
            self.wait_ms, self.transaction_ms = waited * 1000, took * 1000

    def done(self, status: int, code: int | None = None) -> None:
        db = "" if self.transaction_ms is None else f" wait_ms={self.wait_ms:.1f} txn_ms={self.transaction_ms:.1f}"
        seconds = time.perf_counter() - self.started
        operation = self.operation if self.operation in OPERATIONS else "unknown"  # bounded metric labels
        record_call(self.protocol, operation, status, code, seconds)
        access_log.info(
            "tracking_id=%s protocol=%s operation=%s status=%d error=%s ms=%.1f%s",
            self.tracking_id, self.protocol, self.operation, status,
            "-" if code is None else code, seconds * 1000, db,
            extra={"tracking_id": self.tracking_id, "protocol": self.protocol, "operation": self.operation,
                   "status": status, "error_code": code, "duration": round(seconds * 1000, 1)},
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (before reading it all) anything over ``limit`` bytes; a body that does not
    arrive within the request deadline ends the call (DeadlineExceeded)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    deadline = current_deadline()
    if deadline is None:
        return await _read_all(request, limit)
    try:
        return await asyncio.wait_for(_read_all(request, limit), deadline.remaining())
    except TimeoutError:
        raise DeadlineExceeded("the request body did not arrive within the request deadline") from None


async def _read_all(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def with_tracking_id(response: Response, tracking_id: str) -> Response:
    """Add the ``TrackingId`` header, spelled as the vendor spells it (Starlette would lower-case it)."""
    response.raw_headers.append((b"TrackingId", tracking_id.encode("ascii")))
    return response


async def off_loop(size: int, fn: Callable[[], T]) -> T:
    """``fn()`` in a worker thread when it handles ``size`` bytes or more (parsing, rendering), so that the
    event loop keeps answering other calls and /health; small work stays on the loop."""
    if size < OFFLOAD_BYTES:
        return fn()
    return await run_in_threadpool(fn)
