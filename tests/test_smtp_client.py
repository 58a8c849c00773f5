"""couponsvc's own SMTP client (``adapters/mail/smtp_client.py``), pipelined (RFC 2920) or step by step.

Two kinds of relay: the aiosmtpd sink of ``tests/support/smtp_sink.py`` (with and without PIPELINING
announced), and a scripted relay below, in the test's own event loop, for what a real relay may do that the
sink does not: answer DATA with 354 after refusing the recipient, hang up right after a 421, reply over
several lines, speak no ESMTP, offer only AUTH LOGIN, or say something that is not SMTP.  What is checked
is what a user relies on: only a recipient's own refusal is permanent, each accepted message arrives once
and byte for byte, a refusal mid-transaction leaves the session usable, and pipelining really happens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import subprocess
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from couponsvc.adapters.mail.smtp_client import SmtpConnection, wire_data
from couponsvc.adapters.mail.transports import Outgoing, SmtpConfig, SmtpTransport
from couponsvc.domain.delivery import DeliveryResult, Outcome, Stage, stops_batch
from tests.support.server import free_port
from tests.support.smtp_sink import Fault, SmtpSink, stop_controller

SENDER = "coupons@test.example"


def message(n: int, recipient: str, body: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = recipient
    msg["Subject"] = f"coupon {n}"
    msg["Message-ID"] = f"<coupon-{n}@test.example>"
    msg.set_content(body if body is not None else f"your code: CODE{n:05d}\n")
    return msg


def batch(recipients: list[str]) -> list[Outgoing]:
    return [Outgoing(n, r, message(n, r)) for n, r in enumerate(recipients, 1)]


def send(port: int, items: list[Outgoing], connections: int = 4, **config: object) -> list[DeliveryResult]:
    async def go() -> list[DeliveryResult]:
        transport = SmtpTransport(SmtpConfig("127.0.0.1", port, connections=connections, timeout=10,
                                             sender=SENDER, **config))  # type: ignore[arg-type]
        try:
            return await transport.send(items)
        finally:
            await transport.aclose()
    return asyncio.run(go())


def by_id(results: list[DeliveryResult]) -> dict[int, DeliveryResult]:
    assert len({r.outbox_id for r in results}) == len(results), "a message has two results"
    return {r.outbox_id: r for r in results}


# --- against aiosmtpd, pipelined and step by step ------------------------------------------------------
@pytest.fixture(params=[True, False], ids=["pipelined", "stepwise"])
def sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    with SmtpSink(pipelining=request.param) as s:
        yield s


def test_only_the_refused_recipients_are_permanent_and_every_other_message_arrives_once(sink: SmtpSink) -> None:
    recipients = [f"user{n:02d}@example.com" for n in range(1, 41)]
    refused = {recipients[i] for i in (0, 7, 8, 21, 39)}  # 550 5.1.1 at RCPT: bad addresses
    for r in refused:
        sink.standing(r, Fault.rcpt(550))
    sink.standing(recipients[3], Fault.rcpt(450))  # greylisted: later
    sink.standing(recipients[4], Fault.data_for_recipient(550, "5.1.1"))  # the mailbox, at the end of DATA
    sink.standing(recipients[5], Fault.data(554, "5.7.1"))  # the content: the relay's call, not the address
    connections_before = sink.connections  # (the sink's own readiness probe counts as one)
    results = by_id(send(sink.port, batch(recipients)))

    assert len(results) == len(recipients)
    permanent = {recipients[i - 1] for i, r in results.items() if r.outcome is Outcome.PERMANENT}
    assert permanent == refused | {recipients[4]}
    assert results[4].outcome is Outcome.TEMPORARY and results[4].stage is Stage.RCPT
    assert results[6].outcome is Outcome.RELAY and results[6].stage is Stage.DATA and not stops_batch(results[6])
    sent = {recipients[i - 1] for i, r in results.items() if r.outcome is Outcome.SENT}
    assert sent == set(recipients) - refused - {recipients[3], recipients[4], recipients[5]}
    got = [rcpt for m in sink.accepted() for rcpt in m.rcpt_tos]
    assert sorted(got) == sorted(sent), "each accepted message arrives exactly once, and nothing else does"
    assert sink.connections - connections_before <= 4, "a refusal mid-transaction keeps the session (RSET)"


def test_a_refused_sender_stops_the_batch_and_nothing_is_a_bad_address(sink: SmtpSink) -> None:
    sink.refuse(Fault.mail(553))
    results = send(sink.port, batch([f"user{n}@example.com" for n in range(10)]), connections=1)
    assert [(r.outcome, r.stage, r.smtp_code) for r in results] == [(Outcome.RELAY, Stage.MAIL, 553)]
    assert stops_batch(results[0]) and sink.accepted() == []


def test_the_bytes_arrive_as_sent_with_leading_dots_kept(sink: SmtpSink) -> None:
    body = ".starts with a dot\n..two dots\n.\nthe line above is a lone dot\n"
    items = [Outgoing(1, "dots@example.com", message(1, "dots@example.com", body))]
    assert [r.outcome for r in send(sink.port, items)] == [Outcome.SENT]
    (got,) = sink.accepted()
    assert got.raw.replace(b"\r\n", b"\n") == items[0].wire_bytes().replace(b"\r\n", b"\n")
    assert got.part("text/plain").replace("\r\n", "\n") == body


def test_wire_data_ends_lines_with_crlf_and_doubles_leading_dots() -> None:
    assert wire_data(b"a\r\n.b\r\nc") == b"a\r\n..b\r\nc\r\n.\r\n"
    assert wire_data(b".x\nbare lf\rbare cr\r\n") == b"..x\r\nbare lf\r\nbare cr\r\n.\r\n"
    assert wire_data(b"") == b"\r\n.\r\n"


# --- a scripted relay ------------------------------------------------------------------------------
Script = Callable[[str], "list[str] | None"]


class ScriptedRelay:
    """A small SMTP server for one test: ``replies[VERB](argument)`` gives the reply lines (None: hang up
    without a word); verbs not in ``replies`` get the usual answers.  ``reads`` keeps every chunk read, to
    see which commands arrived together; ``messages`` the content of each accepted DATA."""

    def __init__(self, replies: dict[str, Script] | None = None,
                 ehlo: tuple[str, ...] = ("250-relay.test", "250-PIPELINING", "250 8BITMIME")) -> None:
        self.replies = replies or {}
        self.ehlo = ehlo
        self.reads: list[bytes] = []
        self.messages: list[tuple[str, bytes]] = []
        self.commands: list[str] = []
        self.pending: list[list[str]] = []  # replies to the next bare lines (the steps of AUTH LOGIN)
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> ScriptedRelay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # the relay's side of every session, released before the test ends
            writer.close()
            with contextlib.suppress(OSError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    def _default(self, verb: str, arg: str) -> list[str] | None:
        if verb == "EHLO":
            return list(self.ehlo)
        if verb == "DATA":
            return ["354 go ahead"]
        if verb == "QUIT":
            return ["221 bye"]
        return ["250 ok"]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        writer.write(b"220 relay.test ESMTP\r\n")
        buf, in_data, content, rcpt = b"", False, b"", ""
        try:
            while chunk := await reader.read(65536):
                self.reads.append(chunk)
                buf += chunk
                out: list[str] = []
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if in_data:
                        if line == b".":
                            in_data = False
                            self.commands.append("<end of data>")
                            reply = self.replies.get("END", lambda _: ["250 2.0.0 queued"])(rcpt)
                            if rcpt and reply and reply[-1].startswith("25"):
                                self.messages.append((rcpt, content))
                            content, rcpt = b"", ""
                        else:
                            content += (line[1:] if line.startswith(b".") else line) + b"\r\n"
                            continue
                    elif self.pending:
                        self.commands.append("<auth step> " + line.decode())
                        reply = self.pending.pop(0)
                    else:
                        text = line.decode()
                        self.commands.append(text)
                        verb, _, arg = text.partition(" ")
                        verb = verb.upper()
                        script = self.replies.get(verb)
                        reply = script(arg) if script is not None else self._default(verb, arg)
                        if verb in ("MAIL", "RSET"):
                            rcpt = ""
                        elif verb == "RCPT" and reply and reply[-1].startswith("25"):
                            rcpt = arg.split(":", 1)[1].strip("<>")
                        if reply and reply[-1].startswith("354"):
                            in_data = True
                    if reply is None:
                        writer.write("".join(r + "\r\n" for r in out).encode())
                        writer.close()
                        return
                    out += reply
                    if reply[-1].startswith(("421", "221")):
                        writer.write("".join(r + "\r\n" for r in out).encode())
                        await writer.drain()
                        writer.close()
                        return
                if out:  # every reply to what came in one read goes out in one write, as a relay does
                    writer.write("".join(r + "\r\n" for r in out).encode())
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def run(coro_fn: Callable[[], object]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


async def transport_send(relay: ScriptedRelay, items: list[Outgoing], **config: object) -> list[DeliveryResult]:
    transport = SmtpTransport(SmtpConfig("127.0.0.1", relay.port, connections=1, timeout=5, sender=SENDER,
                                         **config))  # type: ignore[arg-type]
    try:
        return await transport.send(items)
    finally:
        await transport.aclose()


def test_mail_rcpt_and_data_go_in_one_write_when_the_relay_offers_pipelining() -> None:
    async def go() -> None:
        async with ScriptedRelay() as relay:
            results = await transport_send(relay, batch(["a@example.com", "b@example.com"]))
        assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
        grouped = [r for r in relay.reads if r.startswith(b"MAIL FROM:")]
        assert grouped == [b"MAIL FROM:<coupons@test.example>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n",
                           b"MAIL FROM:<coupons@test.example>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"]
        assert [rcpt for rcpt, _ in relay.messages] == ["a@example.com", "b@example.com"]
    run(go)


def test_without_pipelining_or_esmtp_each_command_waits_for_its_reply() -> None:
    async def go() -> None:
        async with ScriptedRelay(replies={"EHLO": lambda _: ["502 5.5.1 EHLO not implemented"]}) as relay:
            results = await transport_send(relay, batch(["a@example.com"]))
        assert [r.outcome for r in results] == [Outcome.SENT]
        assert [c.split(" ")[0] for c in relay.commands] == ["EHLO", "HELO", "MAIL", "RCPT", "DATA",
                                                             "<end", "QUIT"]
        for chunk in relay.reads:  # no read holds two commands: each waited for its reply
            lines = chunk.split(b"\r\n")
            assert sum(line.startswith((b"MAIL ", b"RCPT ", b"DATA")) for line in lines) <= 1, chunk
    run(go)


def test_data_accepted_after_a_refused_recipient_is_ended_empty_and_the_session_goes_on() -> None:
    refuse = {"bad@example.com"}

    def rcpt(arg: str) -> list[str]:
        who = arg.split(":", 1)[1].strip("<>")
        return ["550-5.1.1 no such user here", "550 5.1.1 see you"] if who in refuse else ["250 ok"]

    async def go() -> None:
        async with ScriptedRelay(replies={"RCPT": rcpt}) as relay:  # and DATA gets 354 regardless (RFC 2920 3.1)
            results = await transport_send(relay, batch(["bad@example.com", "good@example.com"]))
        first, second = results
        assert (first.outcome, first.stage, first.smtp_code) == (Outcome.PERMANENT, Stage.RCPT, 550)
        assert "no such user here" in first.detail and "see you" in first.detail  # both lines of the reply
        assert second.outcome is Outcome.SENT
        assert [rcpt for rcpt, _ in relay.messages] == ["good@example.com"]
        assert relay.connections == 1
        assert "RSET" in relay.commands, "the refused transaction was ended before the next one"
    run(go)


def test_a_relay_that_hangs_up_after_a_421_at_rcpt_loses_no_message() -> None:
    calls = {"n": 0}

    def rcpt(arg: str) -> list[str]:
        calls["n"] += 1
        return ["421 4.3.2 shutting down"] if calls["n"] == 1 else ["250 ok"]

    async def go() -> None:
        async with ScriptedRelay(replies={"RCPT": rcpt}) as relay:
            results = await transport_send(relay, batch(["a@example.com", "b@example.com"]))
        first, second = results
        assert (first.outcome, first.stage, first.smtp_code) == (Outcome.TEMPORARY, Stage.RCPT, 421)
        assert second.outcome is Outcome.SENT and relay.connections == 2
    run(go)


def test_a_refused_sender_then_a_hang_up_is_still_the_senders_refusal() -> None:
    async def go() -> None:
        async with ScriptedRelay(replies={"MAIL": lambda _: ["421 4.7.0 too many errors"]}) as relay:
            results = await transport_send(relay, batch(["a@example.com", "b@example.com"]))
        assert [(r.outcome, r.stage, r.smtp_code) for r in results] == [(Outcome.RELAY, Stage.MAIL, 421)]
    run(go)


def test_a_relay_that_drops_the_connection_mid_transaction_gives_a_temporary_result() -> None:
    async def go() -> None:
        async with ScriptedRelay(replies={"DATA": lambda _: None}) as relay:
            results = await transport_send(relay, batch(["a@example.com"]))
        assert [(r.outcome, r.stage) for r in results] == [(Outcome.TEMPORARY, Stage.CONNECT)]
        assert relay.messages == []
    run(go)


def test_a_reply_that_is_not_smtp_gives_a_temporary_result() -> None:
    async def go() -> None:
        async with ScriptedRelay(replies={"RCPT": lambda _: ["hello there"]}) as relay:
            results = await transport_send(relay, batch(["a@example.com"]))
        (result,) = results
        assert (result.outcome, result.stage) == (Outcome.TEMPORARY, Stage.CONNECT)
        assert "not an SMTP reply" in result.detail
    run(go)


@pytest.mark.parametrize("mechanisms", ["PLAIN LOGIN", "LOGIN"])
def test_auth_plain_or_else_login(mechanisms: str) -> None:
    user, password = "relay-user", "pa55-w0rd!"
    relay = ScriptedRelay(ehlo=("250-relay.test", f"250-AUTH {mechanisms}", "250 PIPELINING"))

    def auth(arg: str) -> list[str]:
        if arg.startswith("PLAIN "):
            return ["235 2.7.0 ok"]
        relay.pending = [["334 UGFzc3dvcmQ6"], ["235 2.7.0 ok"]]  # after the user name, after the password
        return ["334 VXNlcm5hbWU6"]

    relay.replies["AUTH"] = auth

    async def go() -> None:
        async with relay:
            results = await transport_send(relay, batch(["a@example.com"]), username=user, password=password)
        assert [r.outcome for r in results] == [Outcome.SENT]
        auth_lines = [c for c in relay.commands if c.startswith(("AUTH", "<auth step>"))]
        if mechanisms == "LOGIN":
            assert auth_lines == ["AUTH LOGIN", "<auth step> " + base64.b64encode(user.encode()).decode(),
                                  "<auth step> " + base64.b64encode(password.encode()).decode()]
        else:
            assert auth_lines == ["AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()]
        assert [rcpt for rcpt, _ in relay.messages] == ["a@example.com"]
    run(go)


def test_refused_credentials_are_a_relay_fault_without_the_password() -> None:
    user, password = "relay-user", "pa55-w0rd!"
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()

    async def go() -> None:
        async with ScriptedRelay(replies={"AUTH": lambda arg: [f"535 5.7.8 bad credentials {arg}"]},
                                 ehlo=("250-relay.test", "250 AUTH PLAIN")) as relay:
            results = await transport_send(relay, batch(["a@example.com", "b@example.com"]),
                                           username=user, password=password)
        (result,) = results
        assert (result.outcome, result.stage, result.smtp_code) == (Outcome.RELAY, Stage.AUTH, 535)
        assert token not in result.detail and password not in result.detail and "***" in result.detail
    run(go)


def test_credentials_for_a_relay_without_auth_are_a_relay_fault() -> None:
    async def go() -> None:
        async with ScriptedRelay() as relay:
            results = await transport_send(relay, batch(["a@example.com"]), username="u", password="p")
        assert [(r.outcome, r.stage) for r in results] == [(Outcome.RELAY, Stage.AUTH)]
    run(go)


def test_an_address_that_could_end_the_command_is_never_written() -> None:
    async def go() -> None:
        async with ScriptedRelay() as relay:
            conn = SmtpConnection("127.0.0.1", relay.port)
            await conn.open()
            with pytest.raises(ValueError):
                await conn.transaction(SENDER, "a@example.com>\r\nRCPT TO:<b@example.com", b"x\r\n")
            await conn.quit()
        assert not any(c.startswith(("MAIL", "RCPT")) for c in relay.commands)
    run(go)


def test_a_closed_session_has_let_go_of_its_socket_once_quit_returns() -> None:
    """A session dropped at an error is closed by the event loop a moment later; a process that then ends
    its loop (a CLI run, a worker's shutdown) must not leave that socket open for the garbage collector."""
    async def go() -> None:
        async with ScriptedRelay() as relay:
            conns = [SmtpConnection("127.0.0.1", relay.port) for _ in range(3)]
            for conn in conns:
                await conn.open()
            socks = [conn._writer.get_extra_info("socket") for conn in conns]  # type: ignore[union-attr]
            conns[0].close()  # dropped, then quit at once: no turn of the loop in between
            await conns[0].quit()
            assert socks[0].fileno() == -1
            await conns[1].quit()  # the polite way
            assert socks[1].fileno() == -1
            conns[2].close()
            await conns[2].wait_closed()
            assert socks[2].fileno() == -1
    run(go)


# --- TLS: STARTTLS and smtps, against aiosmtpd with a self-signed certificate ---------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class _TlsHandler:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], bool]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None
        encrypted = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.received.append((list(envelope.rcpt_tos), encrypted))
        return "250 OK"


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_tls_relays_get_the_message_encrypted_and_an_untrusted_certificate_is_refused(
        certificate: tuple[Path, Path], mode: str) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    handler = _TlsHandler()
    port = free_port()
    if mode == "starttls":
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        tls = {"start_tls": True} if mode == "starttls" else {"use_tls": True}
        ok = send(port, batch(["a@example.com"]), connections=1, validate_certs=False, **tls)
        assert [r.outcome for r in ok] == [Outcome.SENT]
        assert handler.received == [(["a@example.com"], True)]
        refused = send(port, batch(["b@example.com"]), connections=1, validate_certs=True, **tls)
        assert [(r.outcome, r.stage) for r in refused] == [(Outcome.TEMPORARY, Stage.CONNECT)]
        assert "CERTIFICATE_VERIFY_FAILED" in refused[0].detail
        assert len(handler.received) == 1
    finally:
        stop_controller(controller)


def test_starttls_asked_for_but_not_offered_is_a_relay_fault() -> None:
    async def go() -> None:
        async with ScriptedRelay() as relay:
            results = await transport_send(relay, batch(["a@example.com"]), start_tls=True)
        assert [(r.outcome, r.stage) for r in results] == [(Outcome.RELAY, Stage.TLS)]
        assert relay.messages == []
    run(go)
