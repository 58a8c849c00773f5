"""HTTP plumbing shared by the SOAP and REST handlers: tracking ids, bounded bodies, the access log."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.entrypoints.operations import OPERATIONS
from couponsvc.service_layer.metrics import record_call

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

    def done(self, status: int, code: int | None = None) -> None:
        seconds = time.perf_counter() - self.started
        operation = self.operation if self.operation in OPERATIONS else "unknown"  # bounded metric labels
        record_call(self.protocol, operation, status, code, seconds)
        access_log.info(
            "tracking_id=%s protocol=%s operation=%s status=%d error=%s ms=%.1f",
            self.tracking_id, self.protocol, self.operation, status,
            "-" if code is None else code, seconds * 1000,
            extra={"tracking_id": self.tracking_id, "protocol": self.protocol, "operation": self.operation,
                   "status": status, "error_code": code, "duration": round(seconds * 1000, 1)},
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (before reading it all) anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
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
