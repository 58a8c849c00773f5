"""Mail transports behind one small Protocol: SMTP (smtp_client), Maildir, and in-memory for tests.

A transport sends messages that each have exactly one recipient and reports, per message, what the
relay said for that recipient.  It never raises for a delivery problem: every failure becomes a
TEMPORARY, RELAY or PERMANENT result (with the stage of the conversation it came from), so the caller's
bookkeeping cannot be skipped by an exception.  A message it did not attempt (deadline, stop, a relay
that refused the session) simply has no result: the caller puts it back in the queue.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import mailbox
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from couponsvc.adapters.mail.smtp_client import SmtpConnection, SmtpRefused, SmtpUnsupported
from couponsvc.domain.delivery import DeliveryResult, Outcome, Stage, classify_reply, stops_batch
from couponsvc.domain.errors import ConfigurationError

MAX_DETAIL = 500  # characters of a relay's reply kept in results (history, /health)
BUILD_CHUNK = 32  # messages built per thread hop (see _Builder)


class Outgoing:
    """One message to send.  It may be built lazily (``build``), so that a call whose time runs out
    builds only the messages it actually sends; a message that cannot be built becomes a result."""

    __slots__ = ("outbox_id", "recipient", "_message", "_raw", "_build", "_error")

    def __init__(self, outbox_id: int, recipient: str, message: EmailMessage | None = None, raw: bytes = b"", *,
                 build: Callable[[], EmailMessage] | None = None) -> None:
        if message is None and build is None:
            raise ValueError("an Outgoing needs a message or a way to build it")
        self.outbox_id = outbox_id
        self.recipient = recipient
        self._message = message
        self._raw = raw
        self._build = build
        self._error: Exception | None = None  # why it could not be built (see ``build_ahead``)

    @property
    def built(self) -> bool:
        """Its bytes are ready, or building it failed."""
        return bool(self._raw) or self._error is not None

    @property
    def message(self) -> EmailMessage:
        if self._message is None:
            assert self._build is not None
            self._message = self._build()
        return self._message

    def wire_bytes(self) -> bytes:
        """The message serialised once (CRLF line ends, 7-bit: the email library encodes every part)."""
        if not self._raw:
            self._raw = self.message.as_bytes()
        return self._raw


def unbuildable(item: Outgoing, exc: BaseException) -> DeliveryResult:
    return DeliveryResult(item.outbox_id, Outcome.TEMPORARY, None,
                          f"message cannot be built: {type(exc).__name__}: {exc}"[:MAX_DETAIL], Stage.BUILD)


async def prepare(item: Outgoing) -> bytes | DeliveryResult:
    """The wire bytes, built off the event loop; a build failure becomes the message's result."""
    try:
        return await asyncio.to_thread(item.wire_bytes)
    except Exception as exc:  # noqa: BLE001 - bad data or a broken template: an attempt that failed
        return unbuildable(item, exc)


def _build_all(items: Sequence[Outgoing], until: float | None, stop: asyncio.Event | None) -> None:
    """Build ``items`` in order (in a worker thread), each failure kept on its own message; stop early once
    ``until`` (``time.monotonic()``) passes or a stop is asked for: what is not built then is not sent."""
    for item in items:
        if (until is not None and time.monotonic() >= until) or (stop is not None and stop.is_set()):
            return
        try:
            item.wire_bytes()
        except Exception as exc:  # noqa: BLE001 - bad data or a broken template: this message fails alone
            item._error = exc


class _Builder:
    """Builds a batch's messages a chunk per thread hop, just ahead of the lanes that send them.

    A thread hop per message cost more than building it (prepared bytes: ~20 µs).  The lane that needs a
    message not yet built builds it together with the next few still waiting in the queue, so at most
    ``chunk - 1`` messages are built ahead of what is sent; the builder stops at the run's deadline or stop.
    A message being built by another lane's chunk is awaited, never built twice."""

    def __init__(self, queue: collections.deque[Outgoing], run: _Run, chunk: int) -> None:
        self.queue = queue
        self.run = run
        self.chunk = chunk
        self.pending: dict[int, asyncio.Future[None]] = {}  # id(item) -> the chunk build that took it (kept)

    async def wire(self, item: Outgoing) -> bytes | DeliveryResult:
        if not item.built:
            job = self.pending.get(id(item))
            if job is None:
                take = [item]
                for other in self.queue:
                    if len(take) >= self.chunk:
                        break
                    if not other.built and id(other) not in self.pending:
                        take.append(other)
                loop = asyncio.get_running_loop()
                until = None if self.run.deadline is None else time.monotonic() + (self.run.deadline - loop.time())
                job = asyncio.ensure_future(asyncio.to_thread(_build_all, take, until, self.run.stop))
                for x in take:
                    self.pending[id(x)] = job
            await asyncio.shield(job)
        if item._error is not None:
            return unbuildable(item, item._error)
        if not item.built:  # its chunk stopped at the deadline just before it: as before, build it alone
            return await prepare(item)
        return item.wire_bytes()


class MailTransport(Protocol):
    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None,
                   stop: asyncio.Event | None = None) -> list[DeliveryResult]:
        """Results for the messages it attempted.  None is started after ``deadline`` (loop time) or once
        ``stop`` is set; a send that has a deadline (a caller is waiting) goes before those that have none."""
        ...

    async def aclose(self) -> None: ...


# --- SMTP ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # smtps://: TLS from the first byte
    start_tls: bool = False  # smtp://...?starttls=true
    timeout: float = 30.0
    connections: int = 4
    sender: str = "coupons@couponsvc.localhost"
    validate_certs: bool = True
    #: once a stop is asked for, a transaction in flight gets this long to finish; then it is abandoned
    stop_grace: float = 2.0

    def secrets(self) -> list[str]:
        """What must never appear in a stored reply: the credentials, also as AUTH PLAIN/LOGIN send them."""
        found = [s for s in (self.password, self.username) if s]
        if self.username and self.password:
            found.append(base64.b64encode(f"\0{self.username}\0{self.password}".encode()).decode())
        found += [base64.b64encode(s.encode()).decode() for s in list(found)]
        return sorted({s for s in found if len(s) >= 2}, key=len, reverse=True)


class _Run:
    """One ``send``: its deadline and stop signal, whether the relay refused the session, and the time
    limits of the transactions in flight (cut short when a stop is asked for)."""

    def __init__(self, deadline: float | None, stop: asyncio.Event | None) -> None:
        self.deadline = deadline
        self.stop = stop
        self.halted = False  # the relay refused the session or the sender: start nothing more
        self.inflight: set[asyncio.Timeout] = set()
        self.cut_at: float | None = None  # loop time at which transactions still in flight are abandoned

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def may_start(self, now: float) -> bool:
        return not (self.halted or self.stopping or (self.deadline is not None and now >= self.deadline))


class SmtpTransport:
    """A few reused SMTP connections; messages of a batch are spread over them.

    Callers first: a send with a deadline (a DispatchCoupons call delivering its own messages) is handed
    a free connection before any send without one (the workers'), and keeps it while no other call waits;
    a worker gives its connection back after every message.  So a call never waits behind a worker's
    batch for more than one message, and concurrent calls take turns.
    """

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: list[SmtpConnection] = []
        self._waiters: dict[bool, collections.deque[asyncio.Future[SmtpConnection]]] = {
            True: collections.deque(), False: collections.deque()}
        self._created = 0
        self._secrets = config.secrets()

    def _client(self) -> SmtpConnection:
        c = self.config
        return SmtpConnection(c.host, c.port, username=c.username, password=c.password, use_tls=c.use_tls,
                              start_tls=c.start_tls,
                              tls_context=None if c.validate_certs else ssl._create_unverified_context())

    # --- the connection pool ----------------------------------------------------------------------
    async def _acquire(self, priority: bool) -> SmtpConnection:
        """A connection of the pool, first come first served within each class (callers, then workers): a
        released connection goes straight to the longest waiter, so a sender that releases and asks again
        cannot jump the queue."""
        if self._idle:
            return self._idle.pop()
        if self._created < self.config.connections:
            self._created += 1
            return self._client()
        waiter: asyncio.Future[SmtpConnection] = asyncio.get_running_loop().create_future()
        self._waiters[priority].append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as we gave up: pass it on
                self._release(waiter.result())
            raise

    def _release(self, client: SmtpConnection) -> None:
        for priority in (True, False):
            waiters = self._waiters[priority]
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(client)
                    return
        self._idle.append(client)

    def _callers_waiting(self) -> bool:
        return any(not w.done() for w in self._waiters[True])

    async def _acquire_for(self, run: _Run) -> SmtpConnection | None:
        """A connection, or None when the run's deadline passes or its stop is set while waiting."""
        priority = run.deadline is not None
        if self._idle or self._created < self.config.connections:
            return await self._acquire(priority)
        loop = asyncio.get_running_loop()
        acquire = asyncio.ensure_future(self._acquire(priority))
        stopper = asyncio.ensure_future(run.stop.wait()) if run.stop is not None else None
        timeout = None if run.deadline is None else max(0.0, run.deadline - loop.time())
        try:
            await asyncio.wait([f for f in (acquire, stopper) if f is not None], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled from outside: hand back a connection we may have just been given
            if acquire.done() and not acquire.cancelled():
                self._release(acquire.result())
            raise
        finally:
            if stopper is not None:
                stopper.cancel()
            acquire.cancel()  # no-op once done; else _acquire passes on a connection handed over meanwhile
        return acquire.result() if acquire.done() and not acquire.cancelled() else None

    # --- one message ---------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """A reply as we keep it: one line, bounded, and never carrying our credentials (some relays echo
        what they were sent)."""
        text = " ".join(str(text).split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:MAX_DETAIL]

    def _refused(self, item: Outgoing, stage: Stage, code: int, message: str) -> DeliveryResult:
        text = self._scrub(message)
        where = "" if stage in (Stage.RCPT, Stage.DATA) else f"{stage.value.upper()} refused: "
        return DeliveryResult(item.outbox_id, classify_reply(stage, code, text), code, where + text, stage)

    def _broken(self, item: Outgoing, exc: BaseException) -> DeliveryResult:
        return DeliveryResult(item.outbox_id, Outcome.TEMPORARY, None,
                              self._scrub(f"{type(exc).__name__}: {exc}"), Stage.CONNECT)

    async def _connect(self, client: SmtpConnection, item: Outgoing, timeout: float) -> DeliveryResult | None:
        """Open the session (greeting, EHLO, STARTTLS, AUTH); a refusal becomes the message's result.  Network
        trouble and timeouts propagate (the caller makes them the message's TEMPORARY result)."""
        try:
            async with asyncio.timeout(timeout):
                await client.open()
        except SmtpRefused as exc:
            return self._refused(item, exc.stage, exc.reply.code, exc.reply.text)
        except SmtpUnsupported as exc:  # e.g. credentials given but the relay offers no AUTH
            return DeliveryResult(item.outbox_id, Outcome.RELAY, None,
                                  self._scrub(f"{exc.stage.value.upper()}: {exc}"), exc.stage)
        return None

    async def _send_one(self, client: SmtpConnection, item: Outgoing, raw: bytes,
                        run: _Run) -> DeliveryResult | None:
        """The result of one transaction, or None when a stop cut it short (its outcome is unknown: the
        caller releases the message, which may then be sent again, under the same Message-ID)."""
        loop = asyncio.get_running_loop()
        timeout = self.config.timeout
        limit = None
        if run.deadline is not None:
            now = loop.time()
            timeout = max(0.2, min(timeout, run.deadline - now))
            limit = max(run.deadline, now + 0.2)  # the whole transaction, not just each reply, ends by the deadline
        try:
            async with asyncio.timeout_at(limit) as cm:
                run.inflight.add(cm)
                if run.cut_at is not None:  # started just as the stop came: the same grace applies
                    cm.reschedule(min(run.cut_at, cm.when() or run.cut_at))
                try:
                    if not client.is_connected:
                        refused = await self._connect(client, item, timeout)
                        if refused is not None:
                            return refused
                    async with asyncio.timeout(timeout):
                        stage, reply = await client.transaction(self.config.sender, item.recipient, raw)
                finally:
                    run.inflight.discard(cm)
        except (TimeoutError, OSError) as exc:  # SmtpProtocolError too: the session's state is unknown
            client.close()
            if run.stopping:
                return None
            return self._broken(item, exc)
        except Exception as exc:  # noqa: BLE001 - never let one message abort the batch's bookkeeping
            client.close()
            return self._broken(item, exc)
        if 200 <= reply.code < 300:
            return DeliveryResult(item.outbox_id, Outcome.SENT, reply.code, "accepted", Stage.DATA)
        if stage is Stage.MAIL:  # the sender refused: the next session may be told otherwise
            client.close()
        return self._refused(item, stage, reply.code, reply.text)

    # --- a batch -------------------------------------------------------------------------------------
    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None,
                   stop: asyncio.Event | None = None) -> list[DeliveryResult]:
        loop = asyncio.get_running_loop()
        queue: collections.deque[Outgoing] = collections.deque(batch)
        results: list[DeliveryResult] = []
        run = _Run(deadline, stop)
        builder = _Builder(queue, run, BUILD_CHUNK)

        priority = deadline is not None

        async def lane() -> None:
            # A worker's lane holds a connection for one message at a time, so that a call waiting for one
            # gets it next; a call's lane keeps its connection while no other call waits for one (calls take
            # turns among themselves).  Waiting for a connection counts against the deadline.
            client: SmtpConnection | None = None
            try:
                while queue and run.may_start(loop.time()):
                    if client is None:
                        client = await self._acquire_for(run)
                        if client is None or not queue or not run.may_start(loop.time()):
                            return
                    item = queue.popleft()
                    raw = await builder.wire(item)
                    result = raw if isinstance(raw, DeliveryResult) else await self._send_one(client, item, raw, run)
                    if result is not None:
                        results.append(result)
                        if stops_batch(result):
                            run.halted = True
                    if not priority or self._callers_waiting():
                        self._release(client)
                        client = None
            finally:
                if client is not None:
                    self._release(client)

        async def cut_short_on_stop() -> None:
            assert stop is not None
            await stop.wait()
            until = run.cut_at = loop.time() + self.config.stop_grace
            for cm in list(run.inflight):
                when = cm.when()
                if when is None or when > until:
                    cm.reschedule(until)

        watcher = asyncio.ensure_future(cut_short_on_stop()) if stop is not None else None
        try:
            await asyncio.gather(*(lane() for _ in range(min(self.config.connections, len(batch)))))
        finally:
            if watcher is not None:
                watcher.cancel()
        return results

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        self._created -= len(idle)
        for client in idle:
            try:  # briefly: a stopping process must not wait on a slow relay to say goodbye
                async with asyncio.timeout(min(1.0, self.config.timeout)):
                    await client.quit()
            except (TimeoutError, OSError):
                client.close()
                await client.wait_closed(0.5)


# --- Maildir ------------------------------------------------------------------------------------
class MaildirTransport:
    """Each message a file in a standard Maildir (tmp/ → new/), readable by any mail client."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _add_all(self, batch: Sequence[Outgoing], stop: asyncio.Event | None) -> list[DeliveryResult]:
        box = mailbox.Maildir(self.path, create=True)
        results = []
        for item in batch:
            if stop is not None and stop.is_set():
                break
            try:
                raw = item.wire_bytes()
            except Exception as exc:  # noqa: BLE001 - bad data: an attempt that failed
                results.append(unbuildable(item, exc))
                continue
            try:
                box.add(raw)
                results.append(DeliveryResult(item.outbox_id, Outcome.SENT, None, "stored", Stage.STORE))
            except OSError as exc:
                results.append(DeliveryResult(item.outbox_id, Outcome.TEMPORARY, None, f"maildir: {exc}", Stage.STORE))
        return results

    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None,
                   stop: asyncio.Event | None = None) -> list[DeliveryResult]:
        return await asyncio.to_thread(self._add_all, batch, stop)

    async def aclose(self) -> None:
        return None


# --- in memory ----------------------------------------------------------------------------------
@dataclass
class MemoryTransport:
    """Keeps what was 'sent'; ``outcomes`` maps a recipient to the result it should get (default SENT)."""

    sent: list[Outgoing] = field(default_factory=list)
    outcomes: dict[str, tuple[Outcome, int | None]] = field(default_factory=dict)

    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None,
                   stop: asyncio.Event | None = None) -> list[DeliveryResult]:
        results = []
        for item in batch:
            try:
                item.wire_bytes()
            except Exception as exc:  # noqa: BLE001 - as the real transports do
                results.append(unbuildable(item, exc))
                continue
            outcome, code = self.outcomes.get(item.recipient.lower(), (Outcome.SENT, 250))
            if outcome is Outcome.SENT:
                self.sent.append(item)
            results.append(DeliveryResult(item.outbox_id, outcome, code, "memory"))
        return results

    async def aclose(self) -> None:
        return None


# --- from the settings ------------------------------------------------------------------------------
def relay_name(url: str) -> str:
    """The relay a mail URL points at, without credentials or options: how its state is recorded."""
    parts = urlsplit(url)
    if parts.scheme in ("smtp", "smtps"):
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:
            port = None
        return f"{parts.scheme}://{host}:{port}"[:255]
    return url[:255]


def transport_from_url(url: str, *, sender: str, timeout: float = 30.0, connections: int = 4,
                       key: str = "COUPONSVC_MAIL_URL") -> MailTransport:
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        return MaildirTransport(Path(unquote(parts.netloc + parts.path)))
    if parts.scheme in ("smtp", "smtps"):
        query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "verify"}
        if unknown:
            raise ConfigurationError(f"{key}: unknown option {sorted(unknown)[0]!r}; use starttls=true or verify=false")
        if parts.hostname is None or parts.port is None:
            raise ConfigurationError(f"{key}: write it as {parts.scheme}://[user:pass@]host:port")
        return SmtpTransport(SmtpConfig(
            host=parts.hostname, port=parts.port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=parts.scheme == "smtps", start_tls=query.get("starttls") in ("true", "1", "yes"),
            timeout=timeout, connections=connections, sender=sender,
            validate_certs=query.get("verify", "true") not in ("false", "0", "no"),
        ))
    raise ConfigurationError(f"{key}: the scheme must be smtp://, smtps:// or maildir://")
