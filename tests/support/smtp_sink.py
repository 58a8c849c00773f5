"""A real SMTP server on loopback for delivery tests: aiosmtpd in a thread, with fault injection.

The sink records every message it *accepted* (replied 250 to the end of DATA), and separately what it
refused or dropped.  Faults are planned per recipient and consumed one per attempt, so "refuse twice,
then accept" is ``sink.plan(addr, Fault.rcpt(451), Fault.rcpt(451))``; a ``standing`` fault applies to
every attempt until ``sink.clear(addr)``.  ``sink.mute`` makes new connections get no greeting at all (a
relay that does not answer), and ``delay`` slows the reply to every DATA (per connection, so parallel
connections overlap).

Relay-wide faults (``sink.refuse(fault)`` until ``sink.refuse(None)``): the relay refuses every session
or sender, as a misconfigured relay (or couponsvc's settings) would: ``greeting(554)`` (the 220 banner
replaced by a refusal, then the connection closed), ``ehlo(550)`` (EHLO and HELO refused), ``auth(535)``
(the credentials refused: the sink then needs ``auth=(user, password)``, which makes it require AUTH),
``mail(553)`` (MAIL FROM refused).  ``text`` overrides the reply text (e.g. one echoing the credentials).

Faults:
- ``rcpt(code, delay=0)``: reply ``code`` to RCPT TO, ``delay`` seconds late (451: try later, 550: unknown,
  250: accepted, only slowly);
- ``data(code, status=None, text=None)``: take the message, then reply ``code`` to the end of DATA (not
  recorded as accepted), with enhanced status ``status`` (default 5.7.1 "message refused" for 5xx, 4.3.0
  for 4xx: the message, not the mailbox); ``data_for_recipient(code, status="5.1.1")`` answers for that
  recipient as an LMTP server does after DATA (``550 5.1.1 <addr>: recipient mailbox unavailable``);
- ``drop_mid_data()``: after ``354``, read a few lines of the message and close the connection;
- ``drop_after_data()``: read the whole message, record it as accepted (a real relay may already have
  queued it), then close the connection without replying: the sender cannot know, and may send it again.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.server import free_port

SESSION_FAULTS = ("greeting", "ehlo", "auth", "mail")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str  # rcpt | data | drop_mid_data | drop_after_data | greeting | ehlo | auth | mail
    code: int = 0
    delay: float = 0.0  # rcpt: wait this long before replying
    text: str | None = None  # the reply after the code (its enhanced status included); None: a default

    @staticmethod
    def rcpt(code: int, delay: float = 0.0) -> Fault:
        return Fault("rcpt", code, delay)

    @staticmethod
    def data(code: int, status: str | None = None, text: str | None = None) -> Fault:
        status = status or ("4.3.0" if code < 500 else "5.7.1")
        return Fault("data", code, text=f"{status} {text or 'message refused'}")

    @staticmethod
    def data_for_recipient(code: int = 550, status: str = "5.1.1") -> Fault:
        """The recipient's own reply after DATA, as LMTP gives one per recipient ({rcpt} is filled in)."""
        return Fault("data", code, text=f"{status} <{{rcpt}}>: recipient mailbox unavailable")

    @staticmethod
    def greeting(code: int = 554, text: str | None = None) -> Fault:
        return Fault("greeting", code, text=text or "5.3.2 no SMTP service here")

    @staticmethod
    def ehlo(code: int = 550, text: str | None = None) -> Fault:
        return Fault("ehlo", code, text=text or "5.7.1 your host is not welcome here")

    @staticmethod
    def auth(code: int = 535, text: str | None = None) -> Fault:
        return Fault("auth", code, text=text or "5.7.8 Authentication credentials invalid")

    @staticmethod
    def mail(code: int = 553, text: str | None = None) -> Fault:
        return Fault("mail", code, text=text or "5.7.1 sender address rejected: not owned by user")

    def reply(self, recipient: str = "") -> str:
        return f"{self.code} {(self.text or '').replace('{rcpt}', recipient)}".rstrip()

    @staticmethod
    def drop_mid_data() -> Fault:
        return Fault("drop_mid_data")

    @staticmethod
    def drop_after_data() -> Fault:
        return Fault("drop_after_data")


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    at: float
    connection: int

    @cached_property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, content_type: str) -> str:
        """The text of the one part of this type (text/plain or text/html)."""
        parts = [p for p in self.message.walk() if p.get_content_type() == content_type]
        assert len(parts) == 1, (content_type, [p.get_content_type() for p in self.message.walk()])
        content = parts[0].get_content()
        assert isinstance(content, str)
        return content


@dataclass
class Event:
    kind: str  # holding_rcpt | refused_rcpt | refused_data | dropped_mid_data | dropped_after_data | muted
    #            | refused_greeting | refused_ehlo | refused_helo | refused_auth | refused_mail
    recipient: str | None
    code: int | None = None
    at: float = field(default_factory=time.monotonic)


def stop_controller(controller: Controller, timeout: float = 5.0) -> None:
    """Stop an aiosmtpd controller once its server has let go of every connection.

    Stopping the controller stops its event loop at once; a connection still closing then (a TLS
    handshake that failed, a transport whose close is scheduled but not yet run) keeps its socket open
    until the garbage collector finds it, in whichever later test, as a ResourceWarning.  asyncio counts
    a server's live connections in ``Server._active_count`` (private, but the only count there is; 3.11's
    ``wait_closed`` returns at once), so wait for it to reach zero first."""
    server = controller.server
    deadline = time.monotonic() + timeout
    while server is not None and getattr(server, "_active_count", 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    controller.stop()


def _key(address: str) -> str:
    return address.strip().lower()


class SmtpSink:
    def __init__(self, port: int | None = None, *, delay: float = 0.0, auth: tuple[str, str] | None = None,
                 pipelining: bool = True) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.pipelining = pipelining  # announce PIPELINING (RFC 2920), as Postfix does; the client then pipelines
        self.mute = False
        self.auth = auth  # (user, password) the relay requires, over AUTH PLAIN/LOGIN
        self.session_fault: Fault | None = None
        self.logins: list[tuple[str, bool]] = []  # (user, accepted) per AUTH
        self.received: list[Received] = []
        self.events: list[Event] = []
        self.connections = 0
        self._plans: dict[str, list[Fault]] = {}
        self._standing: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._live: set[SMTP] = set()

    # --- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpSink:
        assert self._controller is None
        sink = self

        class _Controller(Controller):
            def factory(self) -> SMTP:
                return _SinkSMTP(sink, self.handler, **self.SMTP_kwargs)

        # the controller's own readiness probe needs a greeting
        muted, self.mute = self.mute, False
        fault, self.session_fault = self.session_fault, None
        kwargs: dict[str, Any] = {}
        if self.auth is not None:
            # AUTH over plain TCP (loopback); required by handle_MAIL (aiosmtpd's auth_required warns without TLS)
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=10, **kwargs)
        controller.start()
        self._controller = controller
        self.mute, self.session_fault = muted, fault
        return self

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        login = password = ""
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
        fault = self._session_fault("auth")
        ok = fault is None and (login, password) == self.auth
        with self._lock:
            self.logins.append((login, ok))
        if ok:
            return AuthResult(success=True)
        if fault is None:
            return AuthResult(success=False, handled=False)
        self._record(Event("refused_auth", None, fault.code))
        return AuthResult(success=False, handled=False, message=fault.reply())

    def stop(self) -> None:
        """Stop listening and close every open connection (the clients see them dropped)."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        done = threading.Event()

        def close_all() -> None:
            for proto in list(self._live):
                if proto.transport is not None:
                    proto.transport.close()
            done.set()

        controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)
        stop_controller(controller)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault planning -------------------------------------------------------------------------
    def refuse(self, fault: Fault | None) -> None:
        """From now on the relay refuses every session or sender at ``fault``'s stage; None: it is fixed."""
        assert fault is None or fault.kind in SESSION_FAULTS, fault
        with self._lock:
            self.session_fault = fault

    def _session_fault(self, stage: str) -> Fault | None:
        with self._lock:
            fault = self.session_fault
        return fault if fault is not None and fault.kind == stage else None

    def plan(self, recipient: str, *faults: Fault) -> None:
        """The next attempts to ``recipient`` meet these faults, one per attempt; later ones are accepted."""
        with self._lock:
            self._plans.setdefault(_key(recipient), []).extend(faults)

    def standing(self, recipient: str, fault: Fault) -> None:
        """Every attempt to ``recipient`` meets ``fault`` until ``clear``."""
        with self._lock:
            self._standing[_key(recipient)] = fault

    def clear(self, recipient: str) -> None:
        with self._lock:
            self._plans.pop(_key(recipient), None)
            self._standing.pop(_key(recipient), None)

    def _next_fault(self, recipient: str, stage: str) -> Fault | None:
        """The fault this attempt meets at ``stage`` ("rcpt" faults at RCPT TO, the others at DATA)."""
        def fits(fault: Fault) -> bool:
            return (fault.kind == "rcpt") == (stage == "rcpt")

        with self._lock:
            key = _key(recipient)
            standing = self._standing.get(key)
            if standing is not None:
                return standing if fits(standing) else None
            planned = self._plans.get(key)
            if planned and fits(planned[0]):
                return planned.pop(0)
            return None

    def _record(self, item: Received | Event) -> None:
        with self._lock:
            if isinstance(item, Received):
                self.received.append(item)
            else:
                self.events.append(item)

    # --- what arrived -----------------------------------------------------------------------------
    def accepted(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def to(self, recipient: str) -> list[Received]:
        return [r for r in self.accepted() if _key(recipient) in {_key(a) for a in r.rcpt_tos}]

    def count_by_message_id(self) -> Counter[str]:
        return Counter(r.message_id for r in self.accepted())

    def events_of(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; sink has "
                             f"{len(self.accepted())} messages, events {[e.kind for e in self.events][-10:]}")

    def __iter__(self) -> Iterator[Received]:
        return iter(self.accepted())


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.sink.pipelining:  # aiosmtpd reads pipelined commands in order; it just does not announce it
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        fault = self.sink._next_fault(address, "rcpt")
        if fault is not None:
            if fault.delay:
                self.sink._record(Event("holding_rcpt", address))
                await asyncio.sleep(fault.delay)
            if fault.code < 300:  # only slow
                envelope.rcpt_tos.append(address)
                return f"{fault.code} OK"
            self.sink._record(Event("refused_rcpt", address, fault.code))
            text = "try again later" if fault.code < 500 else "mailbox unavailable"
            return f"{fault.code} {'4.2.0' if fault.code < 500 else '5.1.1'} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        fault = self.sink._session_fault("mail")
        if fault is not None:
            self.sink._record(Event("refused_mail", None, fault.code))
            return fault.reply()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, _SinkSMTP)
        fault = server.data_fault
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        received = Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(envelope.original_content or b""),
                            time.monotonic(), server.number)
        if fault is not None and fault.kind == "data":
            self.sink._record(Event("refused_data", envelope.rcpt_tos[0], fault.code))
            return fault.reply(envelope.rcpt_tos[0])
        self.sink._record(received)
        return "250 OK: queued"


class _SinkSMTP(SMTP):
    """aiosmtpd's server with three hooks the handler API lacks: no greeting, and drops during DATA."""

    def __init__(self, sink: SmtpSink, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink = sink
        self.data_fault: Fault | None = None
        self.number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sink._live.add(self)
        with self.sink._lock:
            self.sink.connections += 1
            self.number = self.sink.connections
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._live.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self.sink.mute:
            self.sink._record(Event("muted", None))
            await asyncio.sleep(3600)  # no greeting; cancelled when the client gives up and closes
            return
        fault = self.sink._session_fault("greeting")
        if fault is not None:  # the banner is a refusal; then the relay hangs up
            self.sink._record(Event("refused_greeting", None, fault.code))
            await self.push(fault.reply())
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_EHLO(self, hostname: str) -> None:
        fault = self.sink._session_fault("ehlo")
        if fault is not None:
            self.sink._record(Event("refused_ehlo", None, fault.code))
            await self.push(fault.reply())
            return
        await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname: str) -> None:
        fault = self.sink._session_fault("ehlo")
        if fault is not None:
            self.sink._record(Event("refused_helo", None, fault.code))
            await self.push(fault.reply())
            return
        await super().smtp_HELO(hostname)

    async def smtp_DATA(self, arg: str) -> None:
        assert self.envelope is not None
        recipient = self.envelope.rcpt_tos[0] if self.envelope.rcpt_tos else None
        fault = self.sink._next_fault(recipient, "data") if recipient else None
        self.data_fault = fault
        if fault is None or fault.kind == "data":
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        if fault.kind == "drop_mid_data":
            for _ in range(3):  # the headers have started arriving; the end of data has not
                await self._reader.readuntil(b"\r\n")
            self.sink._record(Event("dropped_mid_data", recipient))
        else:  # drop_after_data: the whole message arrived (and is kept), the reply never leaves
            lines = []
            while True:
                line = await self._reader.readuntil(b"\r\n")
                if line == b".\r\n":
                    break
                lines.append(line[1:] if line.startswith(b".") else line)
            self.sink._record(Received(str(self.envelope.mail_from), tuple(self.envelope.rcpt_tos),
                                       b"".join(lines), time.monotonic(), self.number))
            self.sink._record(Event("dropped_after_data", recipient))
        assert self.transport is not None
        self.transport.close()
        await asyncio.sleep(3600)  # read nothing more: connection_lost() cancels this coroutine
