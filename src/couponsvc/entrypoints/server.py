"""The HTTP server of ``serve``: uvicorn's h11 protocol with the connection bounds uvicorn lacks.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but starts no timer while a client
sends its request line and headers, so a client that never finishes them holds its connection forever
(slowloris), and it has no cap on open connections (``limit_concurrency`` answers 503 only once a request
was read, and counts the stalled connections too).  ``GuardedH11Protocol`` adds both:

- a header timer, armed when a connection opens and whenever a new request starts on a kept-alive one,
  cancelled once h11 has the complete request head; on expiry the client gets ``408 Request Timeout`` and
  the connection is closed;
- a cap on open connections: a connection over it is answered ``503`` with ``Retry-After: 1`` and closed at
  once, before anything of it is read.

The request body and the call itself are bounded by the request deadline (``COUPONSVC_REQUEST_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from couponsvc.settings import Settings

log = logging.getLogger("couponsvc.server")



def _plain_response(status: str, text: str, *headers: str) -> bytes:
    body = text.encode()
    head = [f"HTTP/1.1 {status}", "Connection: close", *headers, "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_TIMEOUT_408 = _plain_response("408 Request Timeout", "The request headers did not arrive in time.\n")
_BUSY_503 = _plain_response("503 Service Unavailable", "Too many open connections; retry in a moment.\n",
                            "Retry-After: 1")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout and a cap on open connections."""

    header_timeout: float = 10.0
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.server_state.connections) >= self.max_connections:
            self._refused = True
            self.transport = transport  # type: ignore[assignment]
            log.warning("connection refused: %d connections open (COUPONSVC_MAX_CONNECTIONS)",
                        len(self.server_state.connections))
            transport.write(_BUSY_503)  # type: ignore[attr-defined]
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the first bytes of a new request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()  # the request head is complete (or the connection is done)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is h11.IDLE:
            self.transport.write(_TIMEOUT_408)
        self._unset_keepalive_if_required()
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn's ``http=`` option, carrying this server's bounds."""
    return type("CouponsvcH11Protocol", (GuardedH11Protocol,), {
        "header_timeout": settings.header_timeout,
        "max_connections": settings.max_connections,
    })


def run_server(app: Any, settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                timeout_graceful_shutdown=10, http=guarded_protocol(settings),
                timeout_keep_alive=settings.keepalive_timeout,  # type: ignore[arg-type]
                backlog=min(2048, settings.max_connections * 2),
                log_config=None)  # our log format (couponsvc.logformat), not uvicorn's
