"""The SOAP endpoint: parse the envelope, run the operation through the shared table, write the envelope."""

from __future__ import annotations

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
    off_loop,
    read_body,
    too_large_fault,
    with_tracking_id,
)
from couponsvc.entrypoints.operations import OPERATIONS, Operation, execute, run_after, unknown_operation
from couponsvc.entrypoints.soap import envelope

XML_CT = "text/xml; charset=utf-8"


def _reply(call: CallLog, body: bytes, status: int, code: int | None = None) -> Response:
    call.done(status, code)
    return with_tracking_id(Response(body, status_code=status, media_type=XML_CT), call.tracking_id)


def _operation(parsed: envelope.SoapRequest) -> Operation:
    op = OPERATIONS.get(parsed.operation or "")
    if op is not None:
        return op
    # an empty (or nil) Body names no known operation: the request is missing (100), whatever SOAPAction says
    return unknown_operation(None if parsed.body_element is None else parsed.operation)


async def soap_endpoint(request: Request) -> Response:
    """The call, bounded by one request deadline taken as it arrives (COUPONSVC_REQUEST_TIMEOUT)."""
    with request_deadline(request.app.state.container.settings.request_timeout):
        return await _soap_call(request)


async def _soap_call(request: Request) -> Response:
    container: Container = request.app.state.container
    settings = container.settings
    call = CallLog("SOAP")
    try:
        ctype = media_type(request)
        if ctype == "application/soap+xml":
            raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                               "SOAP 1.2 (application/soap+xml) is not supported; send SOAP 1.1 as text/xml")
        if ctype != "text/xml":
            raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR,
                               f"Content-Type must be text/xml; charset=utf-8 (got {ctype or 'none'!r})")
        try:
            body = await read_body(request, settings.max_body_bytes)
        except BodyTooLarge as exc:
            return _reply(call, envelope.fault(call.tracking_id, too_large_fault(exc)), 413, 201)
        # parsing and the depth walk of a large envelope run in a worker thread, off the event loop
        parsed = await off_loop(len(body), lambda: envelope.read_request(
            body, request.headers.get("soapaction"), settings.max_xml_depth))
        op = _operation(parsed)
        call.operation = op.name or "-"
        result = await run_in_threadpool(
            execute, container, op, parsed.credentials, lambda: op.parse_soap(parsed.body_element), call.tracking_id
        )
        call.timed(result)
        result = await run_after(container, op, result, call.tracking_id)
        answer = await run_in_threadpool(
            envelope.response, call.tracking_id, op.name, lambda el: op.write_soap(el, result))
        return _reply(call, answer, 200)
    except ServiceFault as fault:
        return _reply(call, envelope.fault(call.tracking_id, fault), 500, fault.error.code)
    except DeadlineExceeded as exc:
        log.warning("tracking_id=%s refused: %s", call.tracking_id, exc)
        return _reply(call, envelope.fault(call.tracking_id, ServiceFault(Err.INTERNAL_ERROR)), 500, 0)
    except StoreUnavailable as exc:
        log.error("tracking_id=%s database unavailable: %s", call.tracking_id, exc)
        return _reply(call, envelope.fault(call.tracking_id, ServiceFault(Err.INTERNAL_ERROR)), 500, 0)
    except Exception:
        log.exception("tracking_id=%s unexpected error", call.tracking_id)
        return _reply(call, envelope.fault(call.tracking_id, ServiceFault(Err.INTERNAL_ERROR)), 500, 0)
