"""Console sign-in and sign-out, tokens, operators and the audit log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from couponsvc.domain.errors import OperatorInputError, SignInThrottled
from couponsvc.entrypoints.console.common import back, call, error_page, friendly, int_param
from couponsvc.entrypoints.console.render import page
from couponsvc.entrypoints.console.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Ctx,
    clear_cookie,
    container,
    cross_site,
    forbidden,
    new_login_token,
    read_form,
    secure_headers,
    set_cookie,
    tokens_equal,
)
from couponsvc.service_layer import audit, operators, tokens
from couponsvc.service_layer.operators import SignInPolicy

POLICY = SignInPolicy()


def _next(target: str | None) -> str:
    """Only our own console paths (no open redirect, no //host)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def _login_page(request: Request, status: int = 200, error: str | None = None, username: str = "") -> Response:
    token = new_login_token()
    response = page("login.html", None, status, login_token=token, error=error, username=username,
                    next=_next(request.query_params.get("next")), title="Sign in")
    set_cookie(response, request, LOGIN_COOKIE, token, 3600)
    return secure_headers(response)


async def login_form(request: Request) -> Response:
    """The sign-in form, also to a signed-in browser (signing in again replaces its session)."""
    return _login_page(request)


async def login(request: Request) -> Response:
    c = container(request)
    if cross_site(request):
        return forbidden("cross-site request")
    form = await read_form(request)
    given = form.get("csrf_token")
    if not tokens_equal(given if isinstance(given, str) else None, request.cookies.get(LOGIN_COOKIE) or "\0"):
        return forbidden("missing or invalid sign-in form token; reload the sign-in page")
    username = form.get("username")
    password = form.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return _login_page(request, 400, "Enter your name and password.")
    client = request.client.host if request.client else "unknown"
    try:
        new = await call(operators.sign_in, c.uow, c.clock, POLICY, username, password, client)
    except SignInThrottled as exc:
        response = _login_page(request, 429, str(exc), username)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if new is None:
        return _login_page(request, 401, "Wrong name or password.", username)
    old = request.cookies.get(SESSION_COOKIE)
    if old:  # whatever session cookie the browser had is dropped: the new id is fresh (no fixation)
        await call(operators.sign_out_quietly, c.uow, old)
    requested = form.get("next")
    target = _next(requested if isinstance(requested, str) else None)
    response = RedirectResponse(target, status_code=303)
    lifetime = int(POLICY.session_lifetime.total_seconds())
    set_cookie(response, request, SESSION_COOKIE, new.cookie, lifetime)
    clear_cookie(response, request, LOGIN_COOKIE)
    return secure_headers(response)


async def logout(ctx: Ctx) -> Response:
    c = ctx.container
    cookie = ctx.request.cookies.get(SESSION_COOKIE, "")
    await call(operators.sign_out, c.uow, c.clock, cookie, ctx.session.operator)
    response = RedirectResponse("/console/login", status_code=303)
    clear_cookie(response, ctx.request, SESSION_COOKIE)
    return response


# --- tokens ----------------------------------------------------------------------------------------
async def _tokens_page(ctx: Ctx, status: int = 200, **extra: object) -> Response:
    c = ctx.container
    before = int_param(ctx.request.query_params.get("before"))
    user = (ctx.request.query_params.get("user") or "").strip() or None
    access = await call(tokens.list_access_tokens, c.uow, user=user, before_id=before, limit=101)
    developer = await call(tokens.list_developer_tokens, c.uow)
    return page("tokens.html", ctx, status, access=access[:100], more=len(access) > 100, developer=developer,
                user=user or "", now=c.clock(), title="Tokens", **extra)


@friendly
async def tokens_page(ctx: Ctx) -> Response:
    return await _tokens_page(ctx)


@friendly
async def token_issue(ctx: Ctx) -> Response:
    c = ctx.container
    user = ctx.field("user").strip()
    raw_customers = [x for x in ctx.field("customers").replace(",", " ").split() if x]
    if not all(x.isdigit() for x in raw_customers):
        return await _tokens_page(ctx, 400, issue_error="Customers: whole numbers separated by commas.")
    try:
        lifetime = tokens.parse_ttl(ctx.field("ttl") or "30d")
        issued = await call(tokens.issue_access_token, c.uow, c.clock, ctx.actor, user,
                            [int(x) for x in raw_customers], lifetime)
    except OperatorInputError as exc:
        return await _tokens_page(ctx, 400, issue_error=str(exc))
    return page("token_issued.html", ctx, issued=issued, kind="access token", owner=user, title="New access token")


@friendly
async def devtoken_create(ctx: Ctx) -> Response:
    c = ctx.container
    name = ctx.field("name").strip()
    try:
        issued = await call(tokens.create_developer_token, c.uow, c.clock, ctx.actor, name)
    except OperatorInputError as exc:
        return await _tokens_page(ctx, 400, devtoken_error=str(exc))
    return page("token_issued.html", ctx, issued=issued, kind="developer token", owner=name,
                title="New developer token")


@friendly
async def token_revoke(ctx: Ctx) -> Response:
    c = ctx.container
    token_id = int(ctx.request.path_params["token_id"])
    n = await call(tokens.revoke_access_tokens, c.uow, c.clock, ctx.actor, token_id=token_id)
    return back("/console/tokens", "revoked", n)


@friendly
async def token_revoke_user(ctx: Ctx) -> Response:
    c = ctx.container
    n = await call(tokens.revoke_access_tokens, c.uow, c.clock, ctx.actor, user=ctx.field("user").strip())
    return back("/console/tokens", "revoked", n)


@friendly
async def devtoken_toggle(ctx: Ctx) -> Response:
    c = ctx.container
    token_id = int(ctx.request.path_params["token_id"])
    action = ctx.request.path_params["action"]
    if action not in ("enable", "disable"):
        return error_page(ctx, f"There is no console page at {ctx.request.url.path}.", 404, "/console/tokens")
    enable = action == "enable"
    await call(tokens.set_developer_token_enabled, c.uow, c.clock, ctx.actor, enable, token_id=token_id)
    return back("/console/tokens", "devtoken-enabled" if enable else "devtoken-disabled")


# --- operators and audit ---------------------------------------------------------------------------
async def _operators_page(ctx: Ctx, status: int = 200, **extra: object) -> Response:
    rows = await call(operators.list_operators, ctx.container.uow)
    return page("operators.html", ctx, status, rows=rows, title="Operators", **extra)


@friendly
async def operators_page(ctx: Ctx) -> Response:
    return await _operators_page(ctx)


@friendly
async def operator_add(ctx: Ctx) -> Response:
    c = ctx.container
    try:
        await call(operators.add_operator, c.uow, c.clock, ctx.actor, ctx.field("name"), ctx.field("password"))
    except OperatorInputError as exc:
        return await _operators_page(ctx, 400, add_error=str(exc))
    return back("/console/operators", "operator-added")


@friendly
async def operator_remove(ctx: Ctx) -> Response:
    c = ctx.container
    name = ctx.field("name")
    if name == ctx.session.operator:
        return error_page(ctx, "You cannot remove yourself; ask another operator (or use the CLI).", 400,
                          "/console/operators")
    await call(operators.remove_operator, c.uow, c.clock, ctx.actor, name)
    return back("/console/operators", "operator-removed")


@friendly
async def audit_page(ctx: Ctx) -> Response:
    before = int_param(ctx.request.query_params.get("before"))
    rows = await call(audit.page, ctx.container.uow, before, audit.PAGE + 1)
    return page("audit.html", ctx, rows=rows[:audit.PAGE], more=len(rows) > audit.PAGE, title="Audit log")
