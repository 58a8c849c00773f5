"""The ASGI application: SOAP, REST, the WSDL and /health on one Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from couponsvc.adapters.migrate import current_revision
from couponsvc.bootstrap import Container
from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.entrypoints.console import console_routes
from couponsvc.entrypoints.http import CallLog
from couponsvc.entrypoints.rest.handler import fault_response, rest_endpoint
from couponsvc.entrypoints.soap.handler import soap_endpoint
from couponsvc.entrypoints.soap.wsdl import wsdl_endpoint
from couponsvc.service_layer.delivery import worker_name
from couponsvc.service_layer.health import outbox_backlog
from couponsvc.service_layer.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from couponsvc.service_layer.metrics import Scrape

SOAP_PATH = "/Api/Billing/v13/CustomerBillingService.svc"
REST_METHODS = ["POST", "PUT"]
SHUTDOWN_BOUND = 10.0  # seconds the in-process worker may take to stop (normally the transport's stop grace)


async def health(request: Request) -> Response:
    container: Container = request.app.state.container

    def probe() -> tuple[str | None, dict[str, Any], dict[str, Any]]:
        with container.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return (current_revision(container.engine), outbox_backlog(container.uow, container.clock),
                container.relay_status().as_json())

    try:
        revision, backlog, relay = await run_in_threadpool(probe)
    except Exception as exc:  # the database is down: not ready
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "schema": revision, "outbox": backlog, "relay": relay})


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format: this process's counters, then the database gauges (COUPONSVC_METRICS=false: 404)."""
    scrape: Scrape = request.app.state.scrape
    return Response(await run_in_threadpool(scrape.render), media_type=METRICS_CONTENT_TYPE)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    fault = ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{request.method} {request.url.path}: {exc.detail}")
    return fault_response(CallLog("HTTP"), fault, exc.status_code)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Runs the in-process delivery worker beside the API (COUPONSVC_WORKER=false turns it off)."""
    container: Container = app.state.container
    stop = asyncio.Event()
    task = None
    if container.settings.worker_in_process:
        task = asyncio.create_task(container.deliverer(worker_name("serve")).run_forever(stop))
    try:
        yield
    finally:
        stop.set()  # the worker starts no new send; one in flight gets a short grace, the rest is released
        if task is not None:
            try:
                await asyncio.wait_for(task, SHUTDOWN_BOUND)
            except TimeoutError:
                logging.getLogger(__name__).error("delivery worker did not stop within %s s", SHUTDOWN_BOUND)
        await container.transport.aclose()


def create_app(container: Container) -> Starlette:
    routes: list[BaseRoute] = [
        Route(SOAP_PATH, soap_endpoint, methods=["POST"]),
        Route(SOAP_PATH, wsdl_endpoint, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/CustomerBilling/v13/{path:path}", rest_endpoint, methods=REST_METHODS),
        *console_routes(),
    ]
    if container.settings.metrics:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    if container.twin is not None:  # serve --twin: the control plane exists (else every /_couponsvc/ path is 404)
        from couponsvc.entrypoints.twin.routes import twin_routes

        routes += twin_routes()
    handlers: dict[Any, Any] = {HTTPException: _http_error}
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.container = container
    app.state.scrape = Scrape(container.uow, container.clock, container.settings.metrics_cache,
                              container.relay_monitor.relay)
    if container.twin is not None:
        from couponsvc.entrypoints.twin.middleware import JournalMiddleware

        app.add_middleware(JournalMiddleware, journal=container.twin.journal)
    return app
