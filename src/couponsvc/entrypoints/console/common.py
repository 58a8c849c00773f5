"""Helpers shared by the console's views: running service calls off the event loop, redirects, errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from couponsvc.domain.errors import ConfigurationError, NotFound, OperatorInputError
from couponsvc.entrypoints.console.render import page
from couponsvc.entrypoints.console.security import Ctx, Handler

T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A (blocking) service-layer call, in the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)


def back(url: str, notice: str | None = None, n: int | None = None) -> Response:
    params = {k: v for k, v in (("notice", notice), ("n", None if n is None else str(n))) if v is not None}
    sep = "&" if "?" in url else "?"
    return RedirectResponse(url + (sep + urlencode(params) if params else ""), status_code=303)


def error_page(ctx: Ctx, message: str, status: int, back_url: str | None = None) -> Response:
    # the back link is always one of our own paths (never the Referer: it could be a javascript: URL)
    target = back_url if back_url and back_url.startswith("/console/") else ctx.request.url.path
    return page("error.html", ctx, status, message=message, back_url=target,
                title="Not found" if status == 404 else "Cannot do that")


def int_param(value: str | None, default: int | None = None, minimum: int = 0) -> int | None:
    if value is None or not value.strip().isdigit():
        return default
    n = int(value.strip())
    return n if minimum <= n <= 2**62 else default


def friendly(handler: Handler) -> Handler:
    """Operator mistakes become a readable page (400/404) instead of a server error."""

    @functools.wraps(handler)
    async def wrapped(ctx: Ctx) -> Response:
        try:
            return await handler(ctx)
        except NotFound as exc:
            return error_page(ctx, str(exc), 404)
        except (OperatorInputError, ConfigurationError) as exc:
            return error_page(ctx, str(exc), 400)

    return wrapped
