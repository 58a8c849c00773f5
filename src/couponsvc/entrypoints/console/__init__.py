"""The operator console under /console/: server-rendered pages over the same service layer as the CLI."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from couponsvc.entrypoints.console import views_activity as act
from couponsvc.entrypoints.console import views_admin as adm
from couponsvc.entrypoints.console import views_catalog as cat
from couponsvc.entrypoints.console.security import guarded

CLASS = "/classes/{customer_id:int}/{class_name:path}"
STATIC = Path(__file__).parent / "static"


def console_routes() -> list[BaseRoute]:
    g = guarded
    routes: list[BaseRoute] = [
        Route("/login", adm.login_form, methods=["GET"]),
        Route("/login", adm.login, methods=["POST"]),
        Route("/logout", g(adm.logout), methods=["POST"]),
        Route("/", g(cat.overview), methods=["GET"]),
        # a class's sub-pages before the class page itself (its name may hold a slash)
        Route(CLASS + "/unused.csv", g(cat.class_export), methods=["GET"]),
        Route(CLASS + "/threshold", g(cat.class_threshold), methods=["POST"]),
        Route(CLASS + "/import", g(cat.class_import), methods=["POST"]),
        Route(CLASS + "/generate", g(cat.class_generate), methods=["POST"]),
        Route(CLASS + "/template/preview", g(cat.template_preview), methods=["POST"]),
        Route(CLASS + "/template", g(cat.template_page), methods=["GET"]),
        Route(CLASS + "/template", g(cat.template_save), methods=["POST"]),
        Route(CLASS, g(cat.class_page), methods=["GET"]),
        Route("/dispatches", g(act.dispatches), methods=["GET"]),
        Route("/dispatches/{dispatch_id:int}", g(act.dispatch), methods=["GET"]),
        Route("/mail", g(act.mail), methods=["GET"]),
        Route("/mail/retry", g(act.mail_retry_all), methods=["POST"]),
        Route("/mail/{message_id:int}", g(act.message), methods=["GET"]),
        Route("/mail/{message_id:int}/retry", g(act.message_retry), methods=["POST"]),
        Route("/redemptions", g(act.redemptions_view), methods=["GET"]),
        Route("/tokens", g(adm.tokens_page), methods=["GET"]),
        Route("/tokens/access", g(adm.token_issue), methods=["POST"]),
        Route("/tokens/access/revoke", g(adm.token_revoke_user), methods=["POST"]),
        Route("/tokens/access/{token_id:int}/revoke", g(adm.token_revoke), methods=["POST"]),
        Route("/tokens/developer", g(adm.devtoken_create), methods=["POST"]),
        Route("/tokens/developer/{token_id:int}/{action:str}", g(adm.devtoken_toggle), methods=["POST"]),
        Route("/operators", g(adm.operators_page), methods=["GET"]),
        Route("/operators", g(adm.operator_add), methods=["POST"]),
        Route("/operators/remove", g(adm.operator_remove), methods=["POST"]),
        Route("/audit", g(adm.audit_page), methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="console-static"),
        Route("/{rest:path}", g(cat.not_found), methods=["GET", "POST"]),  # unknown: sign-in first, then 404
    ]
    return [Mount("/console", routes=routes)]
