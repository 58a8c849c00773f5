"""Console security over real HTTP against a real server: CSRF, session fixation, cookie flags, the sign-in
rate limit, the template sandbox, and HTML escaping of every field an outsider can choose (XSS probes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import restkit
from tests.support.console import (
    OPERATOR,
    PASSWORD,
    ConsoleClient,
    add_operator,
    chromium,
    form_token,
    query,
    sign_in_page,
    snapshot,
)
from tests.support.seeds import BASE_SEED, CUSTOMER, new_class_seed
from tests.support.server import ServerProcess

XSS_CLASS = '<script>alert("class")</script>'
XSS_CUSTOMER = "<img src=x onerror=alert('customer')>"
XSS_CODE = "<svg/onload=alert('code')>"
XSS_ADDRESS = "<b onmouseover=alert('address')>x</b>@example.com"  # invalid: it ends up in PartialErrors
XSS_GOOD_ADDRESS = "o'neil&co@example.com"  # valid, with characters HTML must escape


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("console-security"))
    proc.load(BASE_SEED, "base")
    proc.load({"customers": [{"id": 777, "name": XSS_CUSTOMER, "coupon_classes": [
        {"name": XSS_CLASS, "amount": 1.0, "currency_code": "USD", "codes": [XSS_CODE, "PLAIN-0001"]}]}],
        "users": [{"name": "xss-user", "customers": [777],
                   "access_tokens": [{"token": "AT-xss-0001", "expires_at": "2099-01-01T00:00:00Z"}]}]}, "xss")
    add_operator(proc)
    add_operator(proc, "other-op", "another password")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[ConsoleClient]:
    with ConsoleClient(server) as c:
        assert c.sign_in().status_code == 303
        yield c


def with_cookie(server: ServerProcess, session: str) -> httpx.Response:
    """GET the overview with this session cookie value (a fresh client: nothing else carried)."""
    return httpx.get(f"{server.url}/console/", headers={"Cookie": f"couponsvc_session={session}"})


def class_path(name: str) -> str:
    from urllib.parse import quote

    return f"/console/classes/{CUSTOMER}/{quote(name, safe='')}"


# --- CSRF ------------------------------------------------------------------------------------------
def test_a_post_without_a_valid_csrf_token_or_from_another_site_is_refused_and_changes_nothing(
        server: ServerProcess, client: ConsoleClient) -> None:
    name, seed = new_class_seed(3, prefix="CSRF")
    server.load(seed, "csrf")
    url = class_path(name) + "/threshold"
    token = client.csrf(class_path(name))
    with ConsoleClient(server) as other:
        other.sign_in("other-op", "another password")
        other_token = other.csrf()
    assert other_token != token
    before = snapshot(server)
    own = client.base_url.scheme + "://" + client.base_url.netloc.decode()
    attempts: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"threshold": "1"}, {}),  # no token
        ({"threshold": "1", "csrf_token": ""}, {}),
        ({"threshold": "1", "csrf_token": other_token}, {}),  # another session's token
        ({"threshold": "1", "csrf_token": token + "x"}, {}),
        ({"threshold": "1", "csrf_token": token}, {"Origin": "http://evil.example"}),  # right token, other site
        ({"threshold": "1", "csrf_token": token}, {"Origin": "null"}),
        ({"threshold": "1", "csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
        ({"threshold": "1", "csrf_token": token}, {"Sec-Fetch-Site": "same-site"}),
    ]
    for data, headers in attempts:
        r = client.post(url, data=data, headers=headers)
        assert r.status_code == 403, (data, headers, r.status_code)
    # the token in a header is no way around the Origin check either
    assert client.post(url, data={"threshold": "1"}, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}
                       ).status_code == 403
    # a multipart upload and a token issue without a token: refused too
    assert client.post(class_path(name) + "/import", files={"file": ("c.csv", b"code\nCSRF-NEW-1\n")}
                       ).status_code == 403
    assert client.post("/console/tokens/access", data={"user": "mallory", "customers": "222"}).status_code == 403
    assert client.post("/console/operators", data={"name": "mallory", "password": "12345678"}).status_code == 403
    assert snapshot(server) == before
    # the same request with its own token from its own origin goes through (so the refusals above meant it)
    r = client.post(url, data={"threshold": "1", "csrf_token": token},
                    headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303
    assert query(server, "SELECT low_stock_threshold FROM coupon_classes WHERE name = ?", name) == [(1,)]


def test_the_sign_in_form_needs_its_own_token_and_the_same_origin(server: ServerProcess) -> None:
    with ConsoleClient(server) as c:
        c.get("/console/login")
        r = c.post("/console/login", data={"username": OPERATOR, "password": PASSWORD})
        assert r.status_code == 403 and "couponsvc_session" not in r.headers.get("set-cookie", "")
    with ConsoleClient(server) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/console/login").text)
        assert token
        r = c.post("/console/login", data={"csrf_token": token.group(1), "username": OPERATOR, "password": PASSWORD},
                   headers={"Origin": "http://evil.example"})
        assert r.status_code == 403


# --- sessions and cookies --------------------------------------------------------------------------
def test_sign_in_always_makes_a_new_session_id(server: ServerProcess) -> None:
    """Session fixation: a session id planted before sign-in is never the one that gets signed in."""
    planted = "attacker-chosen-session-id-0123456789"
    with ConsoleClient(server) as c:
        c.cookies.set("couponsvc_session", planted, domain="127.0.0.1", path="/console")
        assert c.get("/console/").status_code == 303  # the planted id opens nothing
        r = c.sign_in()
        assert r.status_code == 303
        new = re.search(r"couponsvc_session=([^;]+)", r.headers["set-cookie"])
        assert new and new.group(1) != planted
        first = new.group(1)
        assert c.get("/console/").status_code == 200
        # signing in again (e.g. a shared computer) gives yet another id and ends the first session
        r = c.sign_in()
        second = re.search(r"couponsvc_session=([^;]+)", r.headers["set-cookie"])
        assert second and second.group(1) not in (first, planted)
    for value in (planted, first):
        r = with_cookie(server, value)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")


def test_session_cookie_flags_and_secure_behind_https(server: ServerProcess) -> None:
    with ConsoleClient(server) as c:
        cookie = c.sign_in().headers["set-cookie"]
        attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
        assert {"httponly", "path", "max-age"} <= attrs and "samesite=lax" in cookie.lower()
        assert "secure" not in attrs  # plain http on loopback: a Secure cookie would never come back
        assert "Path=/console" in cookie
    # behind a TLS-terminating proxy on this host (uvicorn trusts X-Forwarded-Proto from 127.0.0.1)
    https = {"X-Forwarded-Proto": "https"}
    form = httpx.get(f"{server.url}/console/login", headers=https)
    login_cookie = form.headers["set-cookie"]
    assert "secure" in {a.strip().lower() for a in login_cookie.split(";")}
    r = httpx.post(f"{server.url}/console/login", headers={**https, "Cookie": login_cookie.split(";")[0]},
                   data={"csrf_token": form_token(form.text), "username": OPERATOR, "password": PASSWORD})
    assert r.status_code == 303
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("couponsvc_session="))
    assert "secure" in {a.strip().lower() for a in cookie.split(";")}


def test_sign_out_ends_the_session(server: ServerProcess, client: ConsoleClient) -> None:
    token = client.csrf()
    cookie = client.cookies.get("couponsvc_session")
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 303
    assert cookie and with_cookie(server, cookie).status_code == 303


def test_pages_carry_protective_headers(client: ConsoleClient) -> None:
    r = client.get("/console/")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


# --- the sign-in rate limit ------------------------------------------------------------------------
def test_failed_sign_ins_are_limited_per_name_and_per_client(server: ServerProcess) -> None:
    """Five failures for one name lock that name (even with the right password) for every client; twenty from
    one client lock that client for every name.  Clients are told apart by address (here through the
    X-Forwarded-For that uvicorn trusts from the loopback proxy)."""
    add_operator(server, "victim", "victim password")
    with ConsoleClient(server) as c:
        for i in range(5):
            r = c.sign_in("victim", "wrong password", headers={"X-Forwarded-For": f"10.0.0.{i + 1}"})
            assert r.status_code == 401, i
        r = c.sign_in("victim", "victim password", headers={"X-Forwarded-For": "10.0.0.99"})
        assert r.status_code == 429 and "couponsvc_session" not in r.headers.get("set-cookie", "")
        assert int(r.headers["retry-after"]) > 0 and "Too many failed sign-ins" in r.text
        # another operator from a fresh client is not affected
        assert c.sign_in(headers={"X-Forwarded-For": "10.0.0.98"}).status_code == 303
    with ConsoleClient(server) as c:
        client_ip = {"X-Forwarded-For": "10.9.9.9"}
        for i in range(20):
            assert c.sign_in(f"nobody-{i}", "wrong password", headers=client_ip).status_code == 401
        r = c.sign_in(headers=client_ip)  # the right name and password, from the locked-out client
        assert r.status_code == 429
    failures = query(server, "SELECT count(*) FROM audit_log WHERE action = 'signin.failed'")[0][0]
    assert failures >= 25


# --- the template sandbox --------------------------------------------------------------------------
@pytest.mark.parametrize("source", [
    "{% block text %}{{ code }}{{ ''.__class__.__mro__[1].__subclasses__() }}{% endblock %}",
    "{% block text %}{{ code }}{{ cycler.__init__.__globals__.os.popen('id').read() }}{% endblock %}",
    "{% block text %}{{ code }}{{ self._TemplateReference__context }}{% endblock %}",
])
def test_a_template_reaching_for_python_internals_is_refused(server: ServerProcess, client: ConsoleClient,
                                                              source: str) -> None:
    name, seed = new_class_seed(1, prefix="SBX")
    server.load(seed, "sandbox")
    path = class_path(name) + "/template"
    token = client.csrf(path)
    r = client.post(path, data={"csrf_token": token, "action": "save", "source": source})
    assert r.status_code == 400 and "Not saved" in r.text
    assert query(server, "SELECT template FROM coupon_classes WHERE name = ?", name) == [(None,)]
    preview = client.post(path + "/preview", data={"csrf_token": token, "source": source},
                          headers={"Accept": "application/json"})
    assert preview.status_code == 400 and preview.json()["error"]
    assert "uid=" not in preview.text


# --- XSS probes ------------------------------------------------------------------------------------
def test_html_in_class_names_codes_and_addresses_is_escaped_everywhere(server: ServerProcess,
                                                                       client: ConsoleClient) -> None:
    r = restkit.dispatch(server.url, [XSS_GOOD_ADDRESS, XSS_ADDRESS], customer_id="777", class_name=XSS_CLASS,
                         auth="AT-xss-0001")
    assert r.status_code == 200, r.text
    tracking_id = r.headers["TrackingId"]
    (dispatch_id,), = query(server, "SELECT id FROM dispatches WHERE tracking_id = ?", tracking_id)
    (message_id,), = query(server, "SELECT id FROM outbox WHERE dispatch_id = ?", dispatch_id)
    from urllib.parse import quote

    cls = f"/console/classes/777/{quote(XSS_CLASS, safe='')}"
    pages = ["/console/", cls, cls + "/template", "/console/dispatches", f"/console/dispatches/{dispatch_id}",
             "/console/mail", f"/console/mail/{message_id}", "/console/redemptions", "/console/audit",
             f"/console/mail?to={quote(XSS_GOOD_ADDRESS)}", f"{cls}?q={quote(XSS_CODE)}"]
    raw_probes = [XSS_CLASS, XSS_CUSTOMER, XSS_CODE, "<b onmouseover", XSS_GOOD_ADDRESS]
    seen = {p: False for p in raw_probes}
    for path in pages:
        html = client.get(path).text
        for probe in raw_probes:
            assert probe not in html, (path, probe)
        for probe, escaped in [(XSS_CLASS, "&lt;script&gt;alert(&#34;class&#34;)&lt;/script&gt;"),
                               (XSS_CODE, "&lt;svg/onload=alert(&#39;code&#39;)&gt;"),
                               (XSS_CUSTOMER, "&lt;img src=x onerror=alert(&#39;customer&#39;)&gt;"),
                               ("<b onmouseover", "&lt;b onmouseover"),
                               (XSS_GOOD_ADDRESS, "o&#39;neil&amp;co@example.com")]:
            seen[probe] = seen[probe] or escaped in html
    assert all(seen.values()), seen


def test_no_probe_runs_script_in_a_real_browser(server: ServerProcess) -> None:
    restkit.dispatch(server.url, [XSS_ADDRESS, "probe2@example.com"], customer_id="777", class_name=XSS_CLASS,
                     auth="AT-xss-0001")
    from urllib.parse import quote

    cls = f"/console/classes/777/{quote(XSS_CLASS, safe='')}"
    (dispatch_id,), = query(server, "SELECT max(id) FROM dispatches")
    (message_id,), = query(server, "SELECT max(id) FROM outbox")
    dialogs: list[Any] = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        sign_in_page(page, server)
        for path in ["/console/", cls, "/console/dispatches", f"/console/dispatches/{dispatch_id}",
                     f"/console/mail/{message_id}", "/console/mail", "/console/audit"]:
            page.goto(server.url + path)
            page.hover("body")
            page.wait_for_load_state("load")
        page.goto(server.url + "/console/")
        assert page.get_by_role("link", name=XSS_CLASS).count() == 1  # shown as text, not run
    assert dialogs == []


def test_sign_in_only_returns_to_console_pages(server: ServerProcess) -> None:
    for target, expected in [("/console/mail", "/console/mail"), ("//evil.example/console/", "/console/"),
                             ("https://evil.example/", "/console/"), ("/console/\\evil", "/console/")]:
        with ConsoleClient(server) as c:
            token = form_token(c.get("/console/login").text)
            r = c.post("/console/login", data={"csrf_token": token, "username": OPERATOR, "password": PASSWORD,
                                               "next": target})
            assert r.status_code == 303 and r.headers["location"] == expected, target


def test_low_stock_warning_follows_the_threshold(server: ServerProcess, client: ConsoleClient) -> None:
    name, seed = new_class_seed(10, prefix="LOW")
    server.load(seed, "low")
    page = class_path(name)
    assert "Low stock" not in client.get(page).text  # 10 available, default threshold 1 (10 %)
    token = client.csrf(page)
    assert client.post(page + "/threshold", data={"csrf_token": token, "threshold": "11"}).status_code == 303
    assert "Low stock" in client.get(page).text
    row = re.search(rf'<tr data-class="{name}">.*?</tr>', client.get("/console/").text, re.S)
    assert row and "Low stock" in row.group(0)
    assert client.post(page + "/threshold", data={"csrf_token": token, "threshold": ""}).status_code == 303
    assert "Low stock" not in client.get(page).text
    assert client.post(page + "/threshold", data={"csrf_token": token, "threshold": "-3"}).status_code == 400
