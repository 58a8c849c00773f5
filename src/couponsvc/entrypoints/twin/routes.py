"""The routes under /_couponsvc/ (SPEC section 10): JSON in and out, admin header checked in constant time.

Only mounted when the twin is on; when it is off no path under /_couponsvc/ exists (404).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from couponsvc.bootstrap import Container
from couponsvc.domain.errors import ConfigurationError, StoreUnavailable, TwinRequestError
from couponsvc.entrypoints.operations import OPERATIONS
from couponsvc.service_layer.twin import Twin

log = logging.getLogger(__name__)
ADMIN_HEADER = "X-Couponsvc-Admin"
PREFIX = "/_couponsvc"

Handler = Callable[[Twin, Request], Awaitable[Any]]


class _NotFound(TwinRequestError):
    """The thing named in the path does not exist (404)."""


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _authorized(container: Container, request: Request) -> bool:
    expected = container.settings.admin_token or ""
    given = request.headers.get(ADMIN_HEADER, "")
    # compare_digest: the time taken does not depend on how much of the token was right
    return bool(expected) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


async def _json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        if optional:
            return None
        raise TwinRequestError("the body must be a JSON document")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise TwinRequestError(f"the body is not valid JSON: {exc}") from None


def _endpoint(methods: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        container: Container = request.app.state.container
        if not _authorized(container, request):
            return _error(401, f"the {ADMIN_HEADER} header is missing or wrong")
        handler = methods.get(request.method)
        if handler is None:
            return _error(405, f"{request.method} is not allowed here; use {', '.join(methods)}")
        assert container.twin is not None
        try:
            result = await handler(container.twin, request)
            return result if isinstance(result, Response) else JSONResponse(result)
        except _NotFound as exc:
            return _error(404, str(exc))
        except (TwinRequestError, ConfigurationError) as exc:  # a bad rule, clock value, query or seed document
            return _error(400, str(exc))
        except StoreUnavailable as exc:
            log.error("twin %s %s: database unavailable: %s", request.method, request.url.path, exc)
            return _error(503, "the database is unavailable")
    return endpoint


async def _health(twin: Twin, request: Request) -> Any:
    health = await run_in_threadpool(twin.health)
    return health if health["status"] == "ok" else JSONResponse(health, status_code=503)  # not ready


async def _reset(twin: Twin, request: Request) -> Any:
    return await twin.reset(await _json_body(request, optional=True))


async def _seed(twin: Twin, request: Request) -> Any:
    return await run_in_threadpool(twin.load_seed, await _json_body(request))


async def _mail(twin: Twin, request: Request) -> Any:
    return await run_in_threadpool(twin.mail, dict(request.query_params))


async def _calls(twin: Twin, request: Request) -> Any:
    return await twin.calls(dict(request.query_params))


async def _add_fault(twin: Twin, request: Request) -> Any:
    return await run_in_threadpool(twin.add_fault, await _json_body(request), set(OPERATIONS))


async def _faults(twin: Twin, request: Request) -> Any:
    return await run_in_threadpool(twin.faults)


async def _delete_faults(twin: Twin, request: Request) -> Any:
    return {"deleted": await run_in_threadpool(twin.delete_faults)}


async def _delete_fault(twin: Twin, request: Request) -> Any:
    raw = request.path_params["fault_id"]
    if not raw.isdigit():
        raise TwinRequestError(f"{raw!r} is not a fault id")
    deleted = await run_in_threadpool(twin.delete_faults, int(raw))
    if not deleted:
        raise _NotFound(f"no fault rule {raw}")
    return {"deleted": deleted}


async def _set_clock(twin: Twin, request: Request) -> Any:
    return await run_in_threadpool(twin.set_clock, await _json_body(request))


async def _get_clock(twin: Twin, request: Request) -> Any:
    return await run_in_threadpool(twin.get_clock)


async def _unknown(request: Request) -> Response:
    container: Container = request.app.state.container
    if not _authorized(container, request):
        return _error(401, f"the {ADMIN_HEADER} header is missing or wrong")
    return _error(404, f"no twin endpoint at {request.url.path}")


def twin_routes() -> list[BaseRoute]:
    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route(f"{PREFIX}/health", _endpoint({"GET": _health}), methods=every),
        Route(f"{PREFIX}/reset", _endpoint({"POST": _reset}), methods=every),
        Route(f"{PREFIX}/seed", _endpoint({"POST": _seed}), methods=every),
        Route(f"{PREFIX}/mail", _endpoint({"GET": _mail}), methods=every),
        Route(f"{PREFIX}/calls", _endpoint({"GET": _calls}), methods=every),
        Route(f"{PREFIX}/faults", _endpoint({"GET": _faults, "POST": _add_fault, "DELETE": _delete_faults}),
              methods=every),
        Route(PREFIX + "/faults/{fault_id}", _endpoint({"DELETE": _delete_fault}), methods=every),
        Route(f"{PREFIX}/clock", _endpoint({"GET": _get_clock, "POST": _set_clock}), methods=every),
        Route(PREFIX + "/{path:path}", _unknown, methods=every),
    ]
