"""Server-side rendering of the console pages: one autoescaping Jinja2 environment on the package's templates."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from couponsvc.entrypoints.console import charts
from couponsvc.entrypoints.console.security import CSRF_FIELD, Ctx

NOTICES = {
    "imported": "Imported {n} codes.",
    "generated": "Generated {n} codes.",
    "threshold": "Low-stock threshold saved.",
    "template": "Template saved.",
    "template-reset": "Template reset to the default.",
    "retried": "Requeued {n} message(s).",
    "revoked": "Revoked {n} access token(s).",
    "devtoken-disabled": "Developer token disabled.",
    "devtoken-enabled": "Developer token enabled.",
    "operator-added": "Operator added.",
    "operator-removed": "Operator removed.",
}


def _num(value: Any) -> str:
    return f"{int(value):,}" if value is not None else "–"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def _class_url(customer_id: int, name: str, suffix: str = "") -> str:
    return f"/console/classes/{customer_id}/{quote(name, safe='')}{suffix}"


def _query(**params: Any) -> str:
    return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("couponsvc.entrypoints.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters.update(num=_num, when=_when)
    env.globals.update(class_url=_class_url, query=_query, stacked_bar=charts.stacked_bar,
                       daily_chart=charts.daily_chart, csrf_field=CSRF_FIELD)
    return env


def page(template: str, ctx: Ctx | None, status_code: int = 200, **values: Any) -> Response:
    notice = None
    if ctx is not None:
        key = ctx.request.query_params.get("notice")
        if key in NOTICES:
            n = ctx.request.query_params.get("n", "")
            notice = NOTICES[key].format(n=f"{int(n):,}" if n.isdigit() else n)
    html = environment().get_template(template).render(
        operator=ctx.session.operator if ctx else None, csrf=ctx.session.csrf_token if ctx else "",
        path=ctx.request.url.path if ctx else "", notice=notice, **values)
    return HTMLResponse(html, status_code=status_code)
