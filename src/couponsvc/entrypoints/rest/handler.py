"""The REST endpoint: JSON in, the shared operation table, JSON out with ApplicationFault bodies."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from couponsvc.bootstrap import Container
from couponsvc.domain.deadlines import request_deadline
from couponsvc.domain.errors import DeadlineExceeded, Err, ServiceFault, StoreUnavailable
from couponsvc.entrypoints.http import (
    BodyTooLarge,
    CallLog,
    log,
    media_type,
    read_body,
    too_large_fault,
    with_tracking_id,
)
from couponsvc.entrypoints.operations import Operation, execute, rest_operation, run_after
from couponsvc.service_layer.auth import Credentials

JSON_CT = "application/json; charset=utf-8"


def json_response(call: CallLog, payload: Any, status: int, code: int | None = None,
                  headers: dict[str, str] | None = None) -> Response:
    call.done(status, code)
    body = json.dumps(payload, separators=(",", ":")).encode()
    return with_tracking_id(Response(body, status_code=status, media_type=JSON_CT, headers=headers),
                            call.tracking_id)


def fault_payload(tracking_id: str, fault: ServiceFault) -> dict[str, Any]:
    d = fault.error
    if d.kind.value == "AdApiFaultDetail":
        return {"TrackingId": tracking_id,
                "Errors": [{"Code": d.code, "Detail": fault.details, "ErrorCode": d.error_code, "Message": d.message}],
                "Type": "AdApiFaultDetail"}
    return {"TrackingId": tracking_id,
            "OperationErrors": [{"Code": d.code, "Details": fault.details, "Message": d.message}],
            "Type": "ApiFault"}


def fault_response(call: CallLog, fault: ServiceFault, status: int | None = None) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
    return json_response(call, fault_payload(call.tracking_id, fault), status or fault.http_status,
                         fault.error.code, headers)


def credentials(request: Request) -> Credentials:
    access_token = None
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            access_token = value.strip()
    if access_token is None:
        access_token = request.headers.get("authenticationtoken")
    return Credentials(request.headers.get("developertoken"), access_token)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _has_lone_surrogate(document: Any) -> bool:
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
                return True
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
    return False


def parse_json(body: bytes) -> Any:
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"The body is not valid JSON: {detail}") from exc
    # A \uD800-style escape without its pair is no character: no database can store it and SOAP cannot
    # carry it (XML refuses it), so it is refused here rather than failing later as an internal error.
    if b"\\u" in body and _has_lone_surrogate(document):
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                           "The body is not valid JSON text: it holds a lone UTF-16 surrogate escape")
    return document


def _document(request: Request, body: bytes) -> Any:
    """The JSON document of a request (None for an empty body); runs after authentication."""
    if not body.strip():
        return None
    if media_type(request) != "application/json":
        raise ServiceFault(
            Err.API_INPUT_VALIDATION_ERROR,
            f"Content-Type must be application/json (got {media_type(request) or 'none'!r})",
        )
    return parse_json(body)


def _render(op: Operation, result: Any) -> bytes:
    return json.dumps(op.render_json(result), separators=(",", ":")).encode()


async def rest_endpoint(request: Request) -> Response:
    """The call, bounded by one request deadline taken as it arrives (COUPONSVC_REQUEST_TIMEOUT)."""
    with request_deadline(request.app.state.container.settings.request_timeout):
        return await _rest_call(request)


async def _rest_call(request: Request) -> Response:
    container: Container = request.app.state.container
    call = CallLog("REST")
    op: Operation | None = rest_operation(request.method, request.url.path)
    if op is None:
        fault = ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"No Customer Billing operation at {request.url.path}")
        return fault_response(call, fault, 404)
    call.operation = op.name
    try:
        try:
            body = await read_body(request, container.settings.max_body_bytes)
        except BodyTooLarge as exc:
            return fault_response(call, too_large_fault(exc), 413)
        # credentials first (116/105/109 before any complaint about the body), then the document,
        # parsed in the worker thread with the rest of the call
        result = await run_in_threadpool(
            execute, container, op, credentials(request), lambda: op.parse_json(_document(request, body)),
            call.tracking_id,
        )
        call.timed(result)
        result = await run_after(container, op, result, call.tracking_id)
        payload = await run_in_threadpool(_render, op, result)
        call.done(200)
        return with_tracking_id(Response(payload, status_code=200, media_type=JSON_CT), call.tracking_id)
    except ServiceFault as fault:
        return fault_response(call, fault)
    except DeadlineExceeded as exc:
        log.warning("tracking_id=%s refused: %s", call.tracking_id, exc)
        return fault_response(call, ServiceFault(Err.INTERNAL_ERROR))
    except StoreUnavailable as exc:
        log.error("tracking_id=%s database unavailable: %s", call.tracking_id, exc)
        return fault_response(call, ServiceFault(Err.INTERNAL_ERROR))
    except Exception:
        log.exception("tracking_id=%s unexpected error", call.tracking_id)
        return fault_response(call, ServiceFault(Err.INTERNAL_ERROR))
