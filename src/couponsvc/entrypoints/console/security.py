"""The console's guard, in one place: the session cookie, the CSRF check, same-origin checks, headers.

Every console URL but the sign-in page and the static files goes through :func:`guarded`: without a valid
session it redirects to the sign-in page (an export URL too: never a file); a POST must carry the session's
CSRF token and, when the browser says where it comes from (``Origin``, ``Sec-Fetch-Site``), come from this
site.  A refused POST answers 403 before the handler runs, so it changes nothing.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from couponsvc.bootstrap import Container
from couponsvc.service_layer import operators
from couponsvc.service_layer.audit import Actor
from couponsvc.service_layer.operators import Session

SESSION_COOKIE = "couponsvc_session"
LOGIN_COOKIE = "couponsvc_login"  # CSRF token of the sign-in form (there is no session yet to tie it to)
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
MAX_FIELDS = 50
MAX_UPLOAD_BYTES = 512 * 1024 * 1024

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Ctx:
    """What a console handler gets: the request, the signed-in operator's session, the parsed form."""

    request: Request
    container: Container
    session: Session
    form: FormData = field(default_factory=FormData)

    @property
    def actor(self) -> Actor:
        return Actor.operator(self.session.operator)

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return value if isinstance(value, str) else default


Handler = Callable[[Ctx], Awaitable[Response]]


def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


def secure_cookies(request: Request) -> bool:
    """Secure cookies when the browser talks https to us or to the proxy in front (COUPONSVC_PUBLIC_URL)."""
    public = container(request).settings.public_url
    return request.url.scheme == "https" or bool(public and public.startswith("https://"))


def own_origin(request: Request) -> str:
    public = container(request).settings.public_url
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return f"{request.url.scheme}://{request.headers.get('host', '')}".lower()


def cross_site(request: Request) -> bool:
    """True when the browser tells us the request comes from another site (as Datasette checks)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(request):
        return True
    fetch_site = request.headers.get("sec-fetch-site")
    return fetch_site is not None and fetch_site.lower() not in ("same-origin", "none")


def forbidden(reason: str) -> Response:
    return secure_headers(PlainTextResponse(f"403 Forbidden: {reason}. Nothing was changed.", status_code=403))


def secure_headers(response: Response) -> Response:
    for key, value in HEADERS.items():
        response.headers.setdefault(key, value)
    return response


def tokens_equal(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="lax",
                        secure=secure_cookies(request))


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure_cookies(request))


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return secure_headers(RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303))


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


async def read_form(request: Request) -> FormData:
    return await request.form(max_files=1, max_fields=MAX_FIELDS)


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The one gate of every console page and action (see the module docstring)."""

    async def endpoint(request: Request) -> Response:
        c = container(request)
        session = await run_in_threadpool(operators.session, c.uow, c.clock, request.cookies.get(SESSION_COOKIE))
        if session is None:
            return login_redirect(request)
        ctx = Ctx(request, c, session)
        if request.method not in ("GET", "HEAD"):
            if cross_site(request):
                return forbidden("cross-site request")
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
                return secure_headers(PlainTextResponse("413 the upload is too large", status_code=413))
            ctx.form = await read_form(request)
            given = ctx.form.get(CSRF_FIELD)
            header = request.headers.get("x-csrf-token")
            token = given if isinstance(given, str) else header
            if not tokens_equal(token, session.csrf_token):
                await ctx.form.close()
                return forbidden("missing or invalid CSRF token")
        try:
            return secure_headers(await handler(ctx))
        finally:
            await ctx.form.close()

    return endpoint


