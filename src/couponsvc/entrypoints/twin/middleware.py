"""Journals every API call (SOAP and REST) after its response has been sent: one place both protocols pass.

The handlers' ``CallLog`` announces itself through ``CALL_SLOT``; this middleware keeps references to the
request and response bytes and hands one record to the journal once the last byte is out.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from couponsvc.entrypoints.http import CALL_SLOT, CallLog
from couponsvc.service_layer.clock import real_utcnow
from couponsvc.service_layer.journal import CallRecord, JournalRecorder

API_PROTOCOLS = ("SOAP", "REST")
API_PREFIXES = ("/api/", "/customerbilling/")  # SOAP and REST: bodies elsewhere (uploads...) are not held


class JournalMiddleware:
    def __init__(self, app: ASGIApp, journal: JournalRecorder) -> None:
        self.app = app
        self.journal = journal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http" or not scope["path"].lower().startswith(API_PREFIXES):  # the API only, nothing else
            await self.app(scope, receive, send)
            return
        slot: list[CallLog] = []
        token = CALL_SLOT.set(slot)
        started, at = time.perf_counter(), real_utcnow()
        request: list[bytes] = []
        response: list[bytes] = []
        status = 0

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.append(message.get("body", b""))
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                response.append(message.get("body", b""))
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and slot \
                    and slot[0].protocol in API_PROTOCOLS:
                call = slot[0]
                self.journal.record(CallRecord(
                    tracking_id=call.tracking_id, protocol=call.protocol, operation=call.operation,
                    http_status=status, time=at, duration_ms=(time.perf_counter() - started) * 1000,
                    request_headers=list(scope.get("headers", [])), request=b"".join(request),
                    response=b"".join(response)))

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            CALL_SLOT.reset(token)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapper() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.journal.aclose()  # what is pending is written before the process ends
            return message
        return wrapper
