"""The console on PostgreSQL: every page answers, and imports, exports, templates, thresholds, retries and
tokens work on the same queries as on SQLite (over real HTTP against a real server)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from couponsvc.adapters.db import make_engine
from tests.support import restkit
from tests.support.console import ConsoleClient, add_operator
from tests.support.databases import postgres_schema_url
from tests.support.seeds import BASE_SEED, CUSTOMER, DEV
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    with postgres_schema_url() as url:
        proc = ServerProcess(tmp_path_factory.mktemp("console-pg"), {"COUPONSVC_DATABASE_URL": url})
        proc.load(BASE_SEED, "base")
        add_operator(proc)
        proc.start()
        yield proc, url
        proc.stop()


def sql(url: str, statement: str, **params: object) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(statement), params)]
    finally:
        engine.dispose()


def test_the_console_on_postgresql(pg: tuple[ServerProcess, str]) -> None:
    server, url = pg
    r = restkit.dispatch(server.url, ["pg1@example.com", "broken", "pg2@example.com"])
    assert r.status_code == 200
    (dispatch_id,), = sql(url, "SELECT id FROM dispatches WHERE tracking_id = :t", t=r.headers["TrackingId"])
    (message_id,), = sql(url, "SELECT min(id) FROM outbox")
    cls = f"/console/classes/{CUSTOMER}/SPRING-100"
    with ConsoleClient(server) as console:
        assert console.sign_in().status_code == 303
        for path in ["/console/", cls, f"{cls}?q=SPR-", f"{cls}?q=pg1%40example.com", f"{cls}?state=dispatched",
                     f"{cls}/template", "/console/dispatches",
                     f"/console/dispatches?tracking_id={r.headers['TrackingId']}",
                     f"/console/dispatches/{dispatch_id}", "/console/mail", "/console/mail?status=sent",
                     "/console/mail?to=PG1@example.com", f"/console/mail/{message_id}", "/console/redemptions",
                     "/console/tokens", "/console/operators", "/console/audit"]:
            page = console.get(path)
            assert page.status_code == 200, (path, page.text[:500])
        assert "pg1@example.com" in console.get("/console/mail?to=pg1@example.com").text
        detail = console.get(f"/console/dispatches/{dispatch_id}").text
        assert "broken" in detail and "3001" in detail and "pg2@example.com" in detail

        token = console.csrf(cls)
        up = console.post(cls + "/import", data={"csrf_token": token},
                          files={"file": ("pg.csv", b"code,expires_at\nPG-CODE-1,\nPG-CODE-2,2099-01-01T00:00:00Z\n")})
        assert up.status_code == 303, up.text[:500]
        bad = console.post(cls + "/import", data={"csrf_token": token},
                           files={"file": ("pg-bad.csv", b"code\nPG-CODE-3\nWIN-0001\n")})
        assert bad.status_code == 400 and "pg-bad.csv:3" in bad.text and "another coupon class" in bad.text
        assert sql(url, "SELECT count(*) FROM coupons WHERE code = 'PG-CODE-3'") == [(0,)]
        gen = console.post(cls + "/generate", data={"csrf_token": token, "count": "100", "pattern": "PG-XXXXXXXX"})
        assert gen.status_code == 303
        assert console.post(cls + "/threshold", data={"csrf_token": token, "threshold": "7"}).status_code == 303

        exported = console.get(cls + "/unused.csv").text
        rows = list(csv.reader(io.StringIO(exported)))
        expected = sql(url, "SELECT c.code FROM coupons c JOIN coupon_classes k ON k.id = c.class_id WHERE "
                            "k.name = 'SPRING-100' AND c.state = 'available' ORDER BY c.id")
        assert rows[0] == ["code", "expires_at"] and [r[0] for r in rows[1:]] == [e[0] for e in expected]
        assert ["PG-CODE-2", "2099-01-01T00:00:00Z"] in rows

        source = "{% block text %}PG {{ code }}{% endblock %}"
        saved = console.post(cls + "/template", data={"csrf_token": token, "action": "save", "source": source})
        assert saved.status_code == 303
        preview = console.post(cls + "/template/preview", data={"csrf_token": token, "source": source},
                               headers={"Accept": "application/json"}).json()
        assert preview["text"].startswith("PG ")

        issued = console.post("/console/tokens/access", data={"csrf_token": token, "user": "pg-user",
                                                              "customers": str(CUSTOMER), "ttl": "1h"})
        secret = re.search(r"<output id=\"secret\"><code>(cst_[^<]+)</code>", issued.text)
        assert secret
        assert restkit.dispatch(server.url, ["pg3@example.com"], auth=secret.group(1), dev=DEV).status_code == 200
        (token_id,), = sql(url, "SELECT max(id) FROM access_tokens")
        assert console.post(f"/console/tokens/access/{token_id}/revoke", data={"csrf_token": token}
                            ).status_code == 303
        refused = restkit.dispatch(server.url, ["pg4@example.com"], auth=secret.group(1), dev=DEV)
        assert restkit.fault_codes(refused) == [105]
        overview = console.get("/console/").text
        assert "SPRING-100" in overview
    actions = {a for (a,) in sql(url, "SELECT action FROM audit_log")}
    assert {"signin", "codes.import", "codes.generate", "class.threshold", "codes.export", "template.save",
            "token.issue", "token.revoke"} <= actions
