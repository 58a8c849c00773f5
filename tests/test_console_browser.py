"""The operator console in a real browser (Playwright driving Debian's Chromium) against a real server:
what an operator sees after real API calls, and what they can do from the pages."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import restkit
from tests.support.console import PAGES, SCREENSHOTS_ENV, add_operator, chromium, query, sign_in_page
from tests.support.seeds import BASE_SEED, CUSTOMER, DEV, new_class_seed
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("console-browser"))
    proc.load(BASE_SEED, "base")
    add_operator(proc)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get(SCREENSHOTS_ENV)
    return Path(target) if target else tmp_path_factory.mktemp("screenshots")


def shot(page: Any, name: str, folder: Path) -> None:
    """The README's screenshots come from these tests (the page at its full height)."""
    height = page.evaluate_handle("document.documentElement").get_property("scrollHeight").json_value()
    page.set_viewport_size({"width": 1280, "height": max(900, int(height))})
    page.wait_for_timeout(200)  # let iframes paint at the new size
    page.screenshot(path=str(folder / f"console-{name}.png"))
    assert (folder / f"console-{name}.png").stat().st_size > 10_000  # a real picture, not a blank page


def fresh_class(server: ServerProcess, codes: int = 20) -> str:
    name, seed = new_class_seed(codes, prefix="UI")
    server.load(seed, "class")
    return name


def row_numbers(page: Any, class_name: str) -> dict[str, int]:
    row = page.locator(f'#classes tr[data-class="{class_name}"]')
    return {k: int(row.locator(f"td.{k}").inner_text().replace(",", ""))
            for k in ("available", "dispatched", "redeemed", "expired")}


def test_every_page_redirects_to_sign_in_without_a_session(server: ServerProcess, page: Any) -> None:
    for path in PAGES:
        response = page.goto(server.url + path)
        assert response is not None and response.ok
        assert page.url.startswith(f"{server.url}/console/login?next="), path
        assert page.locator("input[name=password]").count() == 1


def test_overview_numbers_after_real_api_dispatches(server: ServerProcess, page: Any, shots_dir: Path) -> None:
    name = fresh_class(server, 20)
    r = restkit.dispatch(server.url, ["ann@example.com", "bob@example.com", "not-an-address"], class_name=name)
    assert r.status_code == 200, r.text
    r = restkit.dispatch(server.url, ["cy@example.com"], class_name=name)
    assert r.status_code == 200, r.text
    sign_in_page(page, server)
    assert row_numbers(page, name) == {"available": 17, "dispatched": 3, "redeemed": 0, "expired": 0}
    # the seed's main class: read from the database the page must agree with
    (avail,), = query(server, "SELECT count(*) FROM coupons c JOIN coupon_classes k ON k.id = c.class_id "
                              "WHERE k.name = 'SPRING-100' AND c.state = 'available'")
    assert row_numbers(page, "SPRING-100")["available"] == avail
    assert page.locator("svg.chart").count() == 1 and page.locator("svg.bar").count() >= 3
    shot(page, "overview", shots_dir)


def test_follow_a_dispatch_to_its_addresses_and_open_a_message(server: ServerProcess, page: Any,
                                                               shots_dir: Path) -> None:
    name = fresh_class(server, 5)
    r = restkit.dispatch(server.url, ["dee@example.com", "bad address", "eve@example.com"], class_name=name)
    tracking_id = r.headers["TrackingId"]
    sign_in_page(page, server)
    page.goto(f"{server.url}/console/dispatches?tracking_id={tracking_id}")
    page.click(f"text={tracking_id}")
    sent = {row.locator("td").nth(0).inner_text(): row.locator("td").nth(1).inner_text()
            for row in page.locator("#sent tbody tr").all()}
    stored = dict(query(server, "SELECT c.send_to_email, c.code FROM coupons c JOIN dispatches d ON d.id = "
                                "c.dispatch_id WHERE d.tracking_id = ?", tracking_id))
    assert sent == stored and set(sent) == {"dee@example.com", "eve@example.com"}
    errors = page.locator("#errors tbody tr").all()
    assert len(errors) == 1 and "bad address" in errors[0].inner_text() and "3001" in errors[0].inner_text()
    shot(page, "dispatch", shots_dir)
    page.locator("#sent tbody tr", has_text="dee@example.com").locator("a").click()
    page.wait_for_url(re.compile(r".*/console/mail/\d+$"))
    code = stored["dee@example.com"]
    assert code in page.locator("#text-part").inner_text()
    html = page.frame_locator("#html-part").locator("body")
    assert code in html.inner_text()
    assert page.locator("#html-part").get_attribute("sandbox") == ""
    assert page.locator("#history tbody tr").count() >= 1
    shot(page, "message", shots_dir)


def test_upload_a_csv_then_export_the_unused_codes(server: ServerProcess, page: Any, tmp_path: Path,
                                                  shots_dir: Path) -> None:
    name = fresh_class(server, 3)
    sign_in_page(page, server)
    page.goto(f"{server.url}/console/classes/{CUSTOMER}/{name}")
    bad = tmp_path / "bad.csv"
    bad.write_text("code\nUP-OK-1\nhas space\n")
    page.set_input_files("input[type=file]", str(bad))
    page.click("text=Upload and import")
    page.wait_for_selector("#import-error")
    assert "bad.csv:3" in page.locator("#import-error").inner_text()
    assert query(server, "SELECT count(*) FROM coupons WHERE code = 'UP-OK-1'") == [(0,)]
    good = tmp_path / "more codes.csv"
    good.write_text("code\n" + "".join(f"UP-{name}-{i:04d}\n" for i in range(250)))
    page.set_input_files("input[type=file]", str(good))
    page.click("text=Upload and import")
    page.wait_for_selector("text=Imported 250 codes.")
    assert page.locator("#n-available").inner_text() == "253"
    restkit.dispatch(server.url, ["fay@example.com"], class_name=name)
    with page.expect_download() as info:
        page.click("text=Export unused codes (CSV)")
    exported = Path(info.value.path()).read_text()
    lines = list(csv.reader(io.StringIO(exported)))
    expected = [code for (code,) in query(
        server, "SELECT c.code FROM coupons c JOIN coupon_classes k ON k.id = c.class_id WHERE k.name = ? "
                "AND c.state = 'available' ORDER BY c.id", name)]
    assert lines[0] == ["code"] and [line[0] for line in lines[1:]] == expected and len(expected) == 252
    page.goto(f"{server.url}/console/classes/{CUSTOMER}/{name}?q=UP-{name}-000")
    assert page.locator("#codes tbody tr").count() == 10
    shot(page, "class", shots_dir)


def test_edit_a_template_with_live_preview_and_save(server: ServerProcess, page: Any, shots_dir: Path) -> None:
    name = fresh_class(server, 2)
    sign_in_page(page, server)
    page.goto(f"{server.url}/console/classes/{CUSTOMER}/{name}/template")
    source = ("{% block subject %}Your {{ class_name }} code is here{% endblock %}\n"
              "{% block text %}Use {{ code }} before {{ redeem_by }}.{% endblock %}\n"
              "{% block html %}<h1>Hello!</h1><p>Your code: <b>{{ code }}</b></p>{% endblock %}\n")
    page.fill("textarea[name=source]", source)
    # the page's script previews while typing (no button pressed)
    expect(page.locator("#preview-subject")).to_have_text(f"Your {name} code is here")
    first_code = query(server, "SELECT c.code FROM coupons c JOIN coupon_classes k ON k.id = c.class_id "
                               "WHERE k.name = ? ORDER BY c.id LIMIT 1", name)[0][0]
    assert f"Use {first_code} before" in page.locator("#preview-text").inner_text()
    assert "Hello!" in page.frame_locator("#preview-html").locator("h1").inner_text()
    page.click("button[value=save]")
    page.wait_for_selector("text=Template saved.")
    assert query(server, "SELECT template FROM coupon_classes WHERE name = ?", name) == [(source,)]
    shot(page, "template", shots_dir)
    # a template that does not render is refused, and the stored one stays
    page.fill("textarea[name=source]", "{% block text %}{{ code }} {{ nope }}{% endblock %}")
    page.click("button[value=save]")
    page.wait_for_selector("#template-error")
    assert "Not saved" in page.locator("#template-error").inner_text()
    assert query(server, "SELECT template FROM coupon_classes WHERE name = ?", name) == [(source,)]


def test_issue_then_revoke_a_token_and_the_api_refuses_it(server: ServerProcess, page: Any, shots_dir: Path) -> None:
    sign_in_page(page, server)
    page.goto(f"{server.url}/console/tokens")
    page.fill("form[action='/console/tokens/access'] input[name=user]", "dora")
    page.fill("form[action='/console/tokens/access'] input[name=customers]", str(CUSTOMER))
    page.click("form[action='/console/tokens/access'] button")
    secret = page.locator("#secret").inner_text().strip()
    assert secret.startswith("cst_") and len(secret) > 40
    ok = restkit.dispatch(server.url, ["gus@example.com"], auth=secret, dev=DEV)
    assert ok.status_code == 200, ok.text
    page.goto(f"{server.url}/console/tokens")
    assert secret not in page.content()  # shown once, never again
    row = page.locator("#access-tokens tbody tr", has_text="dora").first
    row.locator("button", has_text="Revoke").click()
    page.wait_for_selector("text=Revoked 1 access token(s).")
    refused = restkit.dispatch(server.url, ["hal@example.com"], auth=secret, dev=DEV)
    assert refused.status_code == 401 and restkit.fault_codes(refused) == [105]
    shot(page, "tokens", shots_dir)
    page.goto(f"{server.url}/console/audit")
    assert page.locator("#audit tbody tr", has_text="token.revoke").count() >= 1
