"""Mail transports behind one small Protocol: SMTP (aiosmtplib), Maildir, and in-memory for tests.

A transport sends messages that each have exactly one recipient and reports, per message, what the
relay said for that recipient.  It never raises for a delivery problem: every failure becomes a
TEMPORARY or PERMANENT result, so the caller's bookkeeping cannot be skipped by an exception.
"""

from __future__ import annotations

import asyncio
import collections
import mailbox
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from couponsvc.domain.delivery import DeliveryResult, Outcome, classify_smtp_code
from couponsvc.domain.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Outgoing:
    outbox_id: int
    recipient: str
    message: EmailMessage
    #: the message serialised once, off the event loop (CRLF line ends, 7-bit: the email library encodes
    #: every part), so sending does not re-serialise it
    raw: bytes = b""

    def wire_bytes(self) -> bytes:
        return self.raw or self.message.as_bytes()


class MailTransport(Protocol):
    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None) -> list[DeliveryResult]:
        """Results for the messages it attempted; none is started after ``deadline`` (loop time)."""
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


class SmtpTransport:
    """A few reused SMTP connections; messages of a batch are spread over them."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: list[aiosmtplib.SMTP] = []
        self._waiters: collections.deque[asyncio.Future[aiosmtplib.SMTP]] = collections.deque()
        self._created = 0

    def _client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, username=c.username, password=c.password, use_tls=c.use_tls,
            start_tls=c.start_tls if c.start_tls else False, timeout=c.timeout, validate_certs=c.validate_certs,
            tls_context=None if c.validate_certs else ssl._create_unverified_context(),
        )

    async def _acquire(self) -> aiosmtplib.SMTP:
        """A connection of the pool, first come first served: a released connection goes straight to the
        longest waiter, so a sender that releases and asks again cannot jump the queue."""
        if self._idle:
            return self._idle.pop()
        if self._created < self.config.connections:
            self._created += 1
            return self._client()
        waiter: asyncio.Future[aiosmtplib.SMTP] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just as we gave up: pass it on
                self._release(waiter.result())
            raise

    def _release(self, client: aiosmtplib.SMTP) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(client)
                return
        self._idle.append(client)

    async def _send_one(self, client: aiosmtplib.SMTP, item: Outgoing, deadline: float | None) -> DeliveryResult:
        timeout = self.config.timeout
        limit = None
        if deadline is not None:
            now = asyncio.get_running_loop().time()
            timeout = max(0.2, min(timeout, deadline - now))
            limit = max(deadline, now + 0.2)  # the whole transaction, not just each reply, ends by the deadline
        try:
            async with asyncio.timeout_at(limit):
                if not client.is_connected:
                    await client.connect(timeout=timeout)
                errors, _ = await client.sendmail(self.config.sender, [item.recipient], item.wire_bytes(),
                                                  timeout=timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else 550
            return DeliveryResult(item.outbox_id, classify_smtp_code(code), code, str(refused or exc))
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the relay is closing the connection
                await _drop(client)
            return DeliveryResult(item.outbox_id, classify_smtp_code(exc.code), exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            await _drop(client)
            return DeliveryResult(item.outbox_id, Outcome.TEMPORARY, None, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - never let one message abort the batch's bookkeeping
            await _drop(client)
            return DeliveryResult(item.outbox_id, Outcome.TEMPORARY, None, f"unexpected {type(exc).__name__}: {exc}")
        # An SMTP transaction can "succeed" while refusing some recipients: check ours explicitly.
        if item.recipient in errors:
            reply = errors[item.recipient]
            return DeliveryResult(item.outbox_id, classify_smtp_code(reply.code), reply.code, reply.message)
        return DeliveryResult(item.outbox_id, Outcome.SENT, 250, "accepted")

    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None) -> list[DeliveryResult]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        for item in batch:
            queue.put_nowait(item)
        results: list[DeliveryResult] = []

        async def lane() -> None:
            # A connection is held for one message at a time, so that concurrent senders sharing this
            # transport (a DispatchCoupons call and the in-process worker) take turns on it: a call is
            # never stuck behind a worker's whole batch.  Waiting for a connection counts against the deadline.
            while not queue.empty():
                if deadline is None:
                    client = await self._acquire()
                else:
                    try:
                        client = await asyncio.wait_for(self._acquire(), max(0.0, deadline - loop.time()))
                    except TimeoutError:
                        return
                try:
                    if queue.empty() or (deadline is not None and loop.time() >= deadline):
                        return
                    results.append(await self._send_one(client, queue.get_nowait(), deadline))
                finally:
                    self._release(client)

        lanes = min(self.config.connections, len(batch))
        await asyncio.gather(*(lane() for _ in range(lanes)))
        return results

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        self._created -= len(idle)
        for client in idle:
            if client.is_connected:
                try:
                    await client.quit()
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    client.close()


async def _drop(client: aiosmtplib.SMTP) -> None:
    """After an error mid-transaction the connection state is unknown: start afresh next time."""
    if client.is_connected:
        client.close()


# --- Maildir ------------------------------------------------------------------------------------
class MaildirTransport:
    """Each message a file in a standard Maildir (tmp/ → new/), readable by any mail client."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _add_all(self, batch: Sequence[Outgoing]) -> list[DeliveryResult]:
        box = mailbox.Maildir(self.path, create=True)
        results = []
        for item in batch:
            try:
                box.add(item.wire_bytes())
                results.append(DeliveryResult(item.outbox_id, Outcome.SENT, None, "stored"))
            except OSError as exc:
                results.append(DeliveryResult(item.outbox_id, Outcome.TEMPORARY, None, f"maildir: {exc}"))
        return results

    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None) -> list[DeliveryResult]:
        return await asyncio.to_thread(self._add_all, batch)

    async def aclose(self) -> None:
        return None


# --- in memory ----------------------------------------------------------------------------------
@dataclass
class MemoryTransport:
    """Keeps what was 'sent'; ``outcomes`` maps a recipient to the result it should get (default SENT)."""

    sent: list[Outgoing] = field(default_factory=list)
    outcomes: dict[str, tuple[Outcome, int | None]] = field(default_factory=dict)

    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None) -> list[DeliveryResult]:
        results = []
        for item in batch:
            outcome, code = self.outcomes.get(item.recipient.lower(), (Outcome.SENT, 250))
            if outcome is Outcome.SENT:
                self.sent.append(item)
            results.append(DeliveryResult(item.outbox_id, outcome, code, "memory"))
        return results

    async def aclose(self) -> None:
        return None


# --- from the settings ------------------------------------------------------------------------------
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
