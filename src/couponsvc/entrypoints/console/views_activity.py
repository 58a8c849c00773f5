"""Console pages of what happened: dispatch calls, the outbox and its messages, redemptions."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from couponsvc.entrypoints.console.common import back, call, friendly, int_param
from couponsvc.entrypoints.console.render import page
from couponsvc.entrypoints.console.security import Ctx
from couponsvc.service_layer import dispatch_log, inventory, mail_admin, redemptions


@friendly
async def dispatches(ctx: Ctx) -> Response:
    c = ctx.container
    params = ctx.request.query_params
    tracking_id = (params.get("tracking_id") or "").strip()[:64]
    before = int_param(params.get("before"))
    rows = await call(dispatch_log.page, c.uow, before_id=before, tracking_id=tracking_id or None,
                      limit=dispatch_log.PAGE + 1)
    more = len(rows) > dispatch_log.PAGE
    rows = rows[:dispatch_log.PAGE]
    return page("dispatches.html", ctx, rows=rows, more=more, tracking_id=tracking_id, before=before,
                error_count=lambda r: len(dispatch_log.decode_outcomes(r.outcomes)), title="Dispatches")


@friendly
async def dispatch(ctx: Ctx) -> Response:
    c = ctx.container
    detail = await call(dispatch_log.detail, c.uow, int(ctx.request.path_params["dispatch_id"]))
    return page("dispatch.html", ctx, d=detail.dispatch, messages=detail.messages, errors=detail.errors,
                title=f"Dispatch {detail.dispatch.tracking_id}")


@friendly
async def mail(ctx: Ctx) -> Response:
    c = ctx.container
    params = ctx.request.query_params
    status = params.get("status") or ""
    to = (params.get("to") or "").strip()[:254]
    before = int_param(params.get("before"))
    counts = await call(mail_admin.status_counts, c.uow, c.clock)
    rows = await call(mail_admin.messages, c.uow, status=status, to=to, before_id=before,
                      limit=mail_admin.PAGE + 1)
    more = len(rows) > mail_admin.PAGE
    rows = rows[:mail_admin.PAGE]
    return page("mail.html", ctx, counts=counts, rows=rows, more=more, status=status, to=to,
                statuses=mail_admin.STATUSES, title="Mail")


@friendly
async def message(ctx: Ctx) -> Response:
    c = ctx.container
    view = await call(mail_admin.message, c.uow, int(ctx.request.path_params["message_id"]))
    return page("message.html", ctx, v=view, m=view.message, title=f"Message to {view.message.recipient}")


@friendly
async def message_retry(ctx: Ctx) -> Response:
    c = ctx.container
    outbox_id = int(ctx.request.path_params["message_id"])
    requeued, _skipped = await call(mail_admin.retry, c.uow, c.clock, ctx.actor, outbox_id)
    return back(f"/console/mail/{outbox_id}", "retried", requeued)


@friendly
async def mail_retry_all(ctx: Ctx) -> Response:
    c = ctx.container
    requeued, _skipped = await call(mail_admin.retry, c.uow, c.clock, ctx.actor, None)
    return back("/console/mail?status=failed", "retried", requeued)


@friendly
async def redemptions_view(ctx: Ctx) -> Response:
    c = ctx.container
    page_no = int_param(ctx.request.query_params.get("page"), 0) or 0
    since = c.clock() - timedelta(days=30)
    report = await call(redemptions.report, c.uow, since, page_no)
    activity = await call(inventory.daily_activity, c.uow, c.clock)
    return page("redemptions.html", ctx, recent=report.recent[:redemptions.PAGE],
                more=len(report.recent) > redemptions.PAGE, by_class=report.by_class_account, page_no=page_no,
                activity=activity, title="Redemptions")
