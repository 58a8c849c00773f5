"""How relay replies are read (whose fault is it?), how the relay's state is recorded, and that the stored
reply never carries our credentials.  Pure rules, plus the relay_state row on real SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from couponsvc.adapters import relay_state
from couponsvc.adapters.db import make_engine
from couponsvc.adapters.mail.transports import SmtpConfig, SmtpTransport, relay_name
from couponsvc.adapters.migrate import upgrade
from couponsvc.domain.delivery import (
    DeliveryResult,
    Outcome,
    Stage,
    classify_reply,
    enhanced_status,
    relay_is_ok,
    stops_batch,
)
from couponsvc.service_layer.relay import RelayMonitor, relay_status
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork
from tests.support.databases import database_url

T0 = datetime(2030, 1, 1, 12, 0, 0)


@pytest.mark.parametrize("stage, code, text, outcome", [
    # the session and the sender: never the address, whatever the code
    (Stage.GREETING, 554, "5.3.2 no service", Outcome.RELAY),
    (Stage.GREETING, 421, "4.3.2 busy", Outcome.RELAY),
    (Stage.EHLO, 550, "5.7.1 go away", Outcome.RELAY),
    (Stage.AUTH, 535, "5.7.8 Authentication credentials invalid", Outcome.RELAY),
    (Stage.MAIL, 553, "5.7.1 sender rejected", Outcome.RELAY),
    (Stage.MAIL, 451, "4.3.0 try later", Outcome.RELAY),
    # the recipient's own answer
    (Stage.RCPT, 550, "5.1.1 unknown", Outcome.PERMANENT),
    (Stage.RCPT, 554, "", Outcome.PERMANENT),
    (Stage.RCPT, 451, "4.2.0 greylisted", Outcome.TEMPORARY),
    # after DATA (one recipient): the mailbox's, or the message's / transaction's
    (Stage.DATA, 550, "5.1.1 <a@example.com>: recipient mailbox unavailable", Outcome.PERMANENT),
    (Stage.DATA, 552, "5.2.2 mailbox full", Outcome.PERMANENT),
    (Stage.DATA, 550, "5.1.0 address rejected", Outcome.PERMANENT),
    (Stage.DATA, 554, "5.7.1 message content rejected", Outcome.RELAY),
    (Stage.DATA, 552, "5.3.4 message too big", Outcome.RELAY),
    (Stage.DATA, 550, "5.1.8 bad sender's system address", Outcome.RELAY),
    (Stage.DATA, 553, "5.1.7 bad sender's mailbox syntax", Outcome.RELAY),
    (Stage.DATA, 554, "Transaction failed", Outcome.RELAY),
    (Stage.DATA, 451, "4.3.0 local error", Outcome.TEMPORARY),
    (Stage.DATA, 250, "2.0.0 queued", Outcome.SENT),
])
def test_whose_fault_a_reply_is(stage: Stage, code: int, text: str, outcome: Outcome) -> None:
    assert classify_reply(stage, code, text) is outcome


def test_enhanced_status_is_read_only_at_the_start_of_the_text() -> None:
    assert enhanced_status("5.1.1 User unknown") == (5, 1, 1)
    assert enhanced_status("  4.2.0 later") == (4, 2, 0)
    assert enhanced_status("User 5.1.1 unknown") is None
    assert enhanced_status("5.1.10 x") == (5, 1, 10)
    assert enhanced_status("5.1.1234 x") is None
    assert enhanced_status("") is None


def test_only_session_and_sender_refusals_stop_the_batch() -> None:
    def r(outcome: Outcome, stage: Stage) -> DeliveryResult:
        return DeliveryResult(1, outcome, 500, "", stage)

    assert all(stops_batch(r(Outcome.RELAY, s)) for s in (Stage.GREETING, Stage.EHLO, Stage.TLS, Stage.AUTH,
                                                          Stage.MAIL))
    assert not stops_batch(r(Outcome.RELAY, Stage.DATA))  # one message refused: the next may pass
    assert not stops_batch(r(Outcome.PERMANENT, Stage.RCPT))
    assert not stops_batch(r(Outcome.TEMPORARY, Stage.CONNECT))  # each attempt is its own (and backs off)


def test_what_a_result_says_of_the_relay() -> None:
    assert relay_is_ok(DeliveryResult(1, Outcome.SENT, 250, "", Stage.DATA)) is True
    assert relay_is_ok(DeliveryResult(1, Outcome.PERMANENT, 550, "", Stage.RCPT)) is True
    assert relay_is_ok(DeliveryResult(1, Outcome.TEMPORARY, 451, "", Stage.RCPT)) is True
    assert relay_is_ok(DeliveryResult(1, Outcome.RELAY, 535, "", Stage.AUTH)) is False
    assert relay_is_ok(DeliveryResult(1, Outcome.TEMPORARY, None, "refused", Stage.CONNECT)) is False
    assert relay_is_ok(DeliveryResult(1, Outcome.TEMPORARY, None, "bad data", Stage.BUILD)) is None


def test_credentials_never_reach_a_stored_reply() -> None:
    config = SmtpConfig("relay.example", 587, username="mailer", password="pa55:w@rd")
    transport = SmtpTransport(config)
    plain = base64.b64encode(b"\0mailer\0pa55:w@rd").decode()
    for echoed in ("535 5.7.8 bad password pa55:w@rd for mailer", f"535 5.7.8 bad AUTH PLAIN {plain}",
                   "535 " + base64.b64encode(b"pa55:w@rd").decode()):
        scrubbed = transport._scrub(echoed)
        assert "pa55:w@rd" not in scrubbed and plain not in scrubbed and "mailer" not in scrubbed, scrubbed
        assert "***" in scrubbed
    assert len(transport._scrub("x" * 10_000)) == 500
    assert transport._scrub("two\r\nlines") == "two lines"


def test_relay_name_carries_no_credentials() -> None:
    assert relay_name("smtp://user:secret@mail.example.com:587?starttls=true") == "smtp://mail.example.com:587"
    assert relay_name("smtps://u:p@[::1]:465") == "smtps://[::1]:465"
    assert relay_name("maildir:///var/mail/coupons") == "maildir:///var/mail/coupons"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_relay_state_is_written_on_change_or_once_a_second_and_keeps_its_since(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            uow = SqlUnitOfWork(engine)
            relay = "smtp://relay.example:25"
            assert relay_status(uow, relay).as_json() == {"state": "unknown", "last_code": None,
                                                          "last_reply": None, "since": None}
            monitor = RelayMonitor(relay, min_interval=0.5)
            ok = DeliveryResult(1, Outcome.SENT, 250, "accepted", Stage.DATA)
            refused = DeliveryResult(2, Outcome.RELAY, 553, "MAIL refused: 5.7.1 sender rejected", Stage.MAIL)

            def write(results: list[DeliveryResult], now: datetime) -> bool:
                monitor.observe(results)
                with uow.write() as store:
                    return monitor.write_due(store.conn, now)

            assert write([ok], T0) is True
            assert write([ok], T0 + timedelta(seconds=1)) is False, "nothing changed: no write"
            assert write([ok, refused], T0 + timedelta(seconds=2)) is True, "a change of state is written at once"
            status = relay_status(uow, relay)
            assert (status.state, status.last_code, status.since) == ("failing", 553, T0 + timedelta(seconds=2))
            assert status.last_reply == "553 MAIL refused: 5.7.1 sender rejected"
            other = DeliveryResult(3, Outcome.RELAY, 554, "GREETING refused: 5.3.2 no service", Stage.GREETING)
            assert write([other], T0 + timedelta(seconds=3)) is False, "same state, within the interval: later"
            time.sleep(0.6)
            assert write([other], T0 + timedelta(seconds=4)) is True
            status = relay_status(uow, relay)
            assert (status.state, status.last_code) == ("failing", 554)
            assert status.since == T0 + timedelta(seconds=2), "still failing since the first refusal"

            # another process (its own monitor) sees it failing too: the row keeps its since
            second = RelayMonitor(relay)
            second.observe([refused])
            with uow.write() as store:
                assert second.write_due(store.conn, T0 + timedelta(seconds=9))
            assert relay_status(uow, relay).since == T0 + timedelta(seconds=2)
            assert write([ok], T0 + timedelta(seconds=10)) is True
            status = relay_status(uow, relay)
            assert (status.state, status.last_code, status.since) == ("ok", 250, T0 + timedelta(seconds=10))
            assert status.as_json()["since"] == "2030-01-01T12:00:10Z"
            with uow.read() as store:
                row = relay_state.read(store.conn, relay)
            assert row is not None and row.updated_at == T0 + timedelta(seconds=10)
        finally:
            engine.dispose()
