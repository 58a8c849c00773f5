"""The operator console for tests: a signed-in HTTP client, Playwright on Debian's Chromium, DB looks."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import ServerProcess

OPERATOR = "ops"
PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parents[2] / "docs"
#: where the browser tests write their screenshots: a temporary folder unless COUPONSVC_SCREENSHOTS names one
#: (`make screenshots` points it at docs/ to refresh the README's pictures), so a test run leaves the tree clean
SCREENSHOTS_ENV = "COUPONSVC_SCREENSHOTS"

#: every console page an operator can open (GET), for the "no session: redirected" checks
PAGES = [
    "/console/", "/console/classes/222/SPRING-100", "/console/classes/222/SPRING-100/unused.csv",
    "/console/classes/222/SPRING-100/template", "/console/dispatches", "/console/dispatches/1", "/console/mail",
    "/console/mail/1", "/console/redemptions", "/console/tokens", "/console/operators", "/console/audit",
    "/console/no-such-page",
]


def add_operator(server: ServerProcess, name: str = OPERATOR, password: str = PASSWORD) -> None:
    server.cli("operator", "add", name, "--password-stdin", input=password + "\n")


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


class ConsoleClient(httpx.Client):
    """An HTTP client signed in to the console (cookies kept, redirects not followed)."""

    def __init__(self, server: ServerProcess, **kw: Any) -> None:
        super().__init__(base_url=server.url, timeout=60, **kw)
        self.server = server

    def sign_in(self, name: str = OPERATOR, password: str = PASSWORD, *,
                headers: dict[str, str] | None = None) -> httpx.Response:
        token = form_token(self.get("/console/login", headers=headers).text)
        return self.post("/console/login", data={"csrf_token": token, "username": name, "password": password,
                                                 "next": "/console/"}, headers=headers)

    def csrf(self, path: str = "/console/") -> str:
        return form_token(self.get(path).text)


def query(server: ServerProcess, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(server.data_dir / "couponsvc.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def snapshot(server: ServerProcess, tables: tuple[str, ...] = ("coupons", "coupon_classes", "access_tokens",
                                                                "developer_tokens", "operators", "outbox")) -> Any:
    """The rows an operator action would change (audit and sessions aside): equal snapshots, nothing changed."""
    return {t: sorted(query(server, f'SELECT * FROM "{t}"'), key=repr) for t in tables}


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in_page(page: Any, server: ServerProcess, name: str = OPERATOR, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/console/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/console/")
