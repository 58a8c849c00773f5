"""Per-address outcomes and retries through the console, with a real SMTP relay that refuses one address:
the 3005 the call reported is on the dispatch's page, the failed message in the outbox, and a retry from the
console sends it once the relay accepts it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support import restkit
from tests.support.console import ConsoleClient, add_operator, query
from tests.support.seeds import BASE_SEED, new_class_seed
from tests.support.server import ServerProcess
from tests.support.smtp_sink import Fault, SmtpSink


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture(scope="module")
def server(sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("console-outcomes"),
                         {"COUPONSVC_MAIL_URL": sink.url, "COUPONSVC_WORKER_POLL": "0.1"})
    proc.load(BASE_SEED, "base")
    add_operator(proc)
    proc.start()
    yield proc
    proc.stop()


def test_a_refused_address_shows_as_3005_and_a_console_retry_sends_it(server: ServerProcess,
                                                                        sink: SmtpSink) -> None:
    name, seed = new_class_seed(5, prefix="OUT")
    server.load(seed, "outcomes")
    sink.standing("refused@example.com", Fault.rcpt(550))
    r = restkit.dispatch(server.url, ["ok@example.com", "nope", "refused@example.com"], class_name=name)
    assert r.status_code == 200
    assert [(e["Code"], e["Index"]) for e in r.json()["PartialErrors"]] == [(3001, 1), (3005, 2)]
    (dispatch_id,), = query(server, "SELECT id FROM dispatches WHERE tracking_id = ?", r.headers["TrackingId"])
    with ConsoleClient(server) as console:
        assert console.sign_in().status_code == 303
        page = console.get(f"/console/dispatches/{dispatch_id}").text
        errors = re.findall(r'<td class="n">(\d+)</td><td>([^<]*)</td><td><span class="badge low">(\d+)', page)
        assert errors == [("1", "nope", "3001"), ("2", "refused@example.com", "3005")]
        assert "ok@example.com" in page and "failed" in page
        mail = console.get("/console/mail?status=failed&to=refused@example.com").text
        (message_id,) = re.findall(r'href="/console/mail/(\d+)"', mail)
        message = console.get(f"/console/mail/{message_id}").text
        assert "550" in message and "Retry this message" in message
        sink.clear("refused@example.com")
        token = console.csrf(f"/console/mail/{message_id}")
        r = console.post(f"/console/mail/{message_id}/retry", data={"csrf_token": token})
        assert r.status_code == 303 and "notice=retried&n=1" in r.headers["location"]
        sink.wait_for(lambda: len(sink.to("refused@example.com")) == 1, 20, "the retried message")
        sink.wait_for(lambda: query(server, "SELECT status FROM outbox WHERE id = ?", int(message_id)) == [("sent",)],
                      20, "the message marked sent")
        history = console.get(f"/console/mail/{message_id}").text
        assert "requeued" in history and "operator:ops" in history


def test_the_mail_search_finds_an_address_in_any_case(server: ServerProcess) -> None:
    name, seed = new_class_seed(2, prefix="CASE")
    server.load(seed, "case")
    r = restkit.dispatch(server.url, ["Mixed.Case@Example.COM"], class_name=name)
    assert r.status_code == 200 and r.json()["PartialErrors"] == []
    (message_id,), = query(server, "SELECT o.id FROM outbox o JOIN dispatches d ON d.id = o.dispatch_id "
                                   "WHERE d.tracking_id = ?", r.headers["TrackingId"])
    with ConsoleClient(server) as console:
        assert console.sign_in().status_code == 303
        for typed in ("Mixed.Case@Example.COM", "mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM",
                      " mixed.case@example.com "):
            page = console.get("/console/mail", params={"to": typed}).text
            assert re.findall(r'href="/console/mail/(\d+)"', page) == [str(message_id)], typed
        assert re.findall(r'href="/console/mail/(\d+)"',
                          console.get("/console/mail", params={"to": "other@example.com"}).text) == []
