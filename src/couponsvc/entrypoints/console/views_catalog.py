"""Console pages of the coupon catalogue: the overview, a class's page, its codes, template and export."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response, StreamingResponse

from couponsvc.domain.errors import ConfigurationError
from couponsvc.entrypoints.console.common import back, call, error_page, friendly, int_param
from couponsvc.entrypoints.console.render import _class_url, page
from couponsvc.entrypoints.console.security import Ctx
from couponsvc.service_layer import codes, inventory, mail_admin

UPLOAD_CHUNK = 1024 * 1024


def _class_args(ctx: Ctx) -> tuple[int, str]:
    return int(ctx.request.path_params["customer_id"]), str(ctx.request.path_params["class_name"])


@friendly
async def overview(ctx: Ctx) -> Response:
    c = ctx.container
    page_no = int_param(ctx.request.query_params.get("page"), 0) or 0
    # three independent reads, side by side (each its own connection): the page waits for the slowest only
    (rows, total), activity, mail = await asyncio.gather(
        call(inventory.overview, c.uow, c.clock, page=page_no), call(inventory.daily_activity, c.uow, c.clock),
        call(mail_admin.status_counts, c.uow, c.clock))
    return page("overview.html", ctx, rows=rows, total=total, page_no=page_no, page_size=inventory.CLASSES_PAGE,
                activity=activity, mail=mail, title="Overview")


async def _class_page(ctx: Ctx, status: int = 200, **extra: object) -> Response:
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    cls = await call(mail_admin.coupon_class, c.uow, customer_id, class_name)
    params = ctx.request.query_params
    search = (params.get("q") or "").strip()[:254]
    state = params.get("state") or ""
    after = int_param(params.get("after"), 0) or 0
    inv, rows, activity = await asyncio.gather(  # independent reads, side by side
        call(inventory.class_inventory, c.uow, c.clock, customer_id, class_name),
        call(inventory.codes, c.uow, cls.id, after_id=after, search=search, state=state,
             limit=inventory.CODES_PAGE + 1),
        call(inventory.daily_activity, c.uow, c.clock, 30, cls.id))
    more = len(rows) > inventory.CODES_PAGE
    rows = rows[:inventory.CODES_PAGE]
    return page("class.html", ctx, status, inv=inv, cls=inv.cls, rows=rows, more=more, search=search, state=state,
                after=after, activity=activity, title=inv.cls.name, **extra)


@friendly
async def class_page(ctx: Ctx) -> Response:
    return await _class_page(ctx)


@friendly
async def class_threshold(ctx: Ctx) -> Response:
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    raw = ctx.field("threshold").strip()
    threshold = None if raw == "" else int_param(raw, -1)
    if threshold == -1:
        return error_page(ctx, f"{raw!r} is not a whole number", 400, _class_url(customer_id, class_name))
    await call(inventory.set_low_stock_threshold, c.uow, c.clock, ctx.actor, customer_id, class_name, threshold)
    return back(_class_url(customer_id, class_name), "threshold")


def _safe_filename(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.replace("\\", "/")).name).strip("._") or "upload"
    return base[:100]


@friendly
async def class_import(ctx: Ctx) -> Response:
    """CSV upload: spooled to a private temporary file, then imported all or nothing."""
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    upload = ctx.form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _class_page(ctx, 400, import_error="Choose a CSV file to upload.")
    shown = _safe_filename(upload.filename)
    with tempfile.TemporaryDirectory(prefix="couponsvc-upload-") as folder:
        path = Path(folder) / shown
        with path.open("wb") as out:
            while chunk := await upload.read(UPLOAD_CHUNK):
                out.write(chunk)
        try:
            report = await call(codes.import_codes, c.uow, c.clock, ctx.actor, customer_id, class_name, path,
                                display_name=shown)
        except ConfigurationError as exc:
            return await _class_page(ctx, 400, import_error=str(exc))
    return back(_class_url(customer_id, class_name), "imported", report.inserted)


@friendly
async def class_generate(ctx: Ctx) -> Response:
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    count = int_param(ctx.field("count"), 0) or 0
    pattern = ctx.field("pattern").strip() or "XXXX-XXXX-XXXX"
    try:
        n = await call(codes.generate_codes, c.uow, c.clock, ctx.actor, customer_id, class_name, count, pattern)
    except ConfigurationError as exc:
        return await _class_page(ctx, 400, generate_error=str(exc))
    return back(_class_url(customer_id, class_name), "generated", n)


@friendly
async def class_export(ctx: Ctx) -> Response:
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    rows = await call(codes.unused_codes_csv, c.uow, c.clock, ctx.actor, customer_id, class_name)
    filename = f"{_safe_filename(class_name)}-unused.csv"
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"})


async def _template_page(ctx: Ctx, source: str | None, status: int = 200, error: str | None = None,
                         preview: dict[str, str] | None = None) -> Response:
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    cls = await call(mail_admin.coupon_class, c.uow, customer_id, class_name)
    if source is None:
        source = cls.template or ""
    if preview is None and error is None:
        try:
            preview = await call(mail_admin.preview, c.uow, c.clock, customer_id, class_name, source or None)
        except ConfigurationError as exc:
            error = str(exc)
    return page("template.html", ctx, status, cls=cls, source=source, error=error, preview=preview,
                default_source=mail_admin.default_template(), title=f"Template of {cls.name}")


@friendly
async def template_page(ctx: Ctx) -> Response:
    return await _template_page(ctx, None)


@friendly
async def template_save(ctx: Ctx) -> Response:
    """Save (refused, with the line at fault, unless the template renders) or reset to the default."""
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    if ctx.field("action") == "reset":
        await call(mail_admin.save_template, c.uow, c.clock, ctx.actor, customer_id, class_name, None)
        return back(_class_url(customer_id, class_name, "/template"), "template-reset")
    source = ctx.field("source").replace("\r\n", "\n")
    try:
        await call(mail_admin.save_template, c.uow, c.clock, ctx.actor, customer_id, class_name, source)
    except ConfigurationError as exc:
        return await _template_page(ctx, source, 400, error=f"Not saved: {exc}")
    return back(_class_url(customer_id, class_name, "/template"), "template")


@friendly
async def template_preview(ctx: Ctx) -> Response:
    """The sample message of the submitted template (JSON for the page's script, else the page itself)."""
    c = ctx.container
    customer_id, class_name = _class_args(ctx)
    source = ctx.field("source").replace("\r\n", "\n")
    wants_json = "application/json" in ctx.request.headers.get("accept", "")
    try:
        parts = await call(mail_admin.preview, c.uow, c.clock, customer_id, class_name, source or None)
    except ConfigurationError as exc:
        if wants_json:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await _template_page(ctx, source, 400, error=str(exc))
    if wants_json:
        return JSONResponse({"error": None, **parts})
    return await _template_page(ctx, source, preview=parts)


async def not_found(ctx: Ctx) -> Response:
    return error_page(ctx, f"There is no console page at {ctx.request.url.path}.", 404, "/console/")
