"""A small SMTP client for what couponsvc sends: one recipient per transaction, over a reused session.

Why not aiosmtplib: it spends more than the relay does.  Per message it parses both addresses with the email
library's address parser and makes a round trip for each of MAIL, RCPT, DATA and the content.  Here a
transaction is two writes and two waits when the relay offers PIPELINING (RFC 2920: MAIL, RCPT and DATA go
in one write, their three replies are read together, then the content), four when it does not.

What the client reports is the reply that decided the transaction and the stage it answered
(``Stage.MAIL``, ``RCPT`` or ``DATA``), so that domain.delivery's rules read a pipelined conversation
exactly as a step-by-step one: when MAIL FROM is refused, the 503s that follow for RCPT and DATA are
consequences, not the recipient's answer; when RCPT TO is refused, DATA's 503 (or 554) is not a refusal of
the message.  Refusals of the session itself (greeting, EHLO, STARTTLS, AUTH) raise ``SmtpRefused``.

No timeouts here: the caller bounds every call (``asyncio.timeout``) and closes the connection when one
expires, since its state is then unknown.  Addresses must already be valid (domain.emails); anything that
could end a command line early is refused before a byte is written.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from dataclasses import dataclass

from couponsvc.domain.delivery import Stage

CRLF = b"\r\n"
MAX_REPLY_LINES = 100  # a reply longer than this is not a relay we can talk to
_LINE_LIMIT = 64 * 1024
_FORBIDDEN_IN_ADDRESS = re.compile(r"[\x00-\x20<>\x7f-\U0010ffff]")
_LDH_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str  # the reply's text without its code; the lines of a multi-line reply joined by "\n"

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class SmtpRefused(Exception):
    """The relay refused the session at ``stage`` (greeting, EHLO, STARTTLS, AUTH)."""

    def __init__(self, stage: Stage, reply: Reply) -> None:
        super().__init__(f"{stage.value.upper()} refused: {reply}")
        self.stage = stage
        self.reply = reply


class SmtpUnsupported(Exception):
    """The relay lacks what the settings ask for (STARTTLS, AUTH, a mechanism we speak)."""

    def __init__(self, stage: Stage, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class SmtpProtocolError(ConnectionError):
    """The relay closed the connection or said something that is not SMTP."""


def wire_data(message: bytes) -> bytes:
    """The DATA content of ``message`` as it goes on the wire: CRLF line ends, leading dots doubled
    (RFC 5321 4.5.2), ended by the lone dot."""
    bare = message.replace(CRLF, b"")
    if b"\n" in bare or b"\r" in bare:  # a bare LF or CR: normalise (rare: the email library writes CRLF)
        message = message.replace(CRLF, b"\n").replace(b"\r", b"\n").replace(b"\n", CRLF)
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\n.", b"\n..")
    if not message.endswith(CRLF):
        message += CRLF
    return message + b".\r\n"


def _address(address: str) -> bytes:
    if _FORBIDDEN_IN_ADDRESS.search(address):
        raise ValueError(f"not an address that can go in an SMTP command: {address[:80]!r}")
    return address.encode("ascii")


def _helo_name() -> str:
    name = socket.gethostname()
    return name if _LDH_HOSTNAME.fullmatch(name) else ""


class SmtpConnection:
    """One SMTP session: ``open`` (greeting, EHLO or HELO, STARTTLS, AUTH), then ``transaction`` after
    ``transaction``.  Not safe for concurrent use: one transaction at a time (the pool sees to it)."""

    def __init__(self, host: str, port: int, *, use_tls: bool = False, start_tls: bool = False,
                 tls_context: ssl.SSLContext | None = None, username: str | None = None,
                 password: str | None = None) -> None:
        self.host = host
        self.port = port
        self.use_tls = use_tls
        self.start_tls = start_tls
        self.tls_context = tls_context
        self.username = username
        self.password = password
        self.extensions: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._closing: list[socket.socket] = []  # closed by us, not yet released by the event loop

    @property
    def is_connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self.extensions

    # --- the session ----------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and get ready for transactions.  Raises SmtpRefused / SmtpUnsupported (the connection is
        then closed), or OSError / SmtpProtocolError for network trouble."""
        context = self._context() if self.use_tls else None
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, ssl=context, server_hostname=self.host if context else None, limit=_LINE_LIMIT)
        try:
            greeting = await self._read_reply()
            if greeting.code != 220:
                raise SmtpRefused(Stage.GREETING, greeting)
            await self._hello()
            if self.start_tls and not self.use_tls:
                if "starttls" not in self.extensions:
                    raise SmtpUnsupported(Stage.TLS, "STARTTLS is asked for but the relay does not offer it")
                reply = await self._command(b"STARTTLS")
                if reply.code != 220:
                    raise SmtpRefused(Stage.GREETING if reply.code == 421 else Stage.TLS, reply)
                await self._writer.start_tls(self._context(), server_hostname=self.host)
                await self._hello()
            if self.username is not None and self.password is not None:
                await self._login(self.username, self.password)
        except BaseException:
            self.close()
            raise

    def _context(self) -> ssl.SSLContext:
        return self.tls_context or ssl.create_default_context()

    async def _hello(self) -> None:
        name = _helo_name()
        if not name:
            assert self._writer is not None
            sockname = self._writer.get_extra_info("sockname")
            ip = sockname[0] if sockname else "127.0.0.1"
            name = f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"
        reply = await self._command(b"EHLO " + name.encode("ascii"))
        if reply.code == 250:
            lines = reply.text.split("\n")[1:]
            self.extensions = {}
            for line in lines:
                keyword, _, params = line.strip().partition(" ")
                self.extensions[keyword.lower()] = params
            return
        if reply.code == 421 or not self.is_connected:
            raise SmtpRefused(Stage.EHLO, reply)
        helo = await self._command(b"HELO " + name.encode("ascii"))  # an old relay that speaks no ESMTP
        if helo.code != 250:
            raise SmtpRefused(Stage.EHLO, helo)
        self.extensions = {}

    async def _login(self, username: str, password: str) -> None:
        offered = self.extensions.get("auth", "").upper().split()
        if not offered:
            raise SmtpUnsupported(Stage.AUTH, "credentials are set but the relay offers no AUTH")
        if "PLAIN" in offered:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
            reply = await self._command(b"AUTH PLAIN " + token.encode("ascii"))
        elif "LOGIN" in offered:
            reply = await self._command(b"AUTH LOGIN")
            if reply.code == 334:
                reply = await self._command(base64.b64encode(username.encode()))
            if reply.code == 334:
                reply = await self._command(base64.b64encode(password.encode()))
        else:
            raise SmtpUnsupported(Stage.AUTH, f"the relay offers AUTH {' '.join(offered)}; "
                                              "couponsvc speaks PLAIN and LOGIN")
        if reply.code != 235:
            raise SmtpRefused(Stage.AUTH, reply)

    # --- a transaction -------------------------------------------------------------------------------
    async def transaction(self, sender: str, recipient: str, message: bytes) -> tuple[Stage, Reply]:
        """Send one message to one recipient; returns the deciding reply and the stage that gave it: a
        2xx at DATA when the relay took the message.  The session is left ready for the next one (RSET
        after a refusal in the middle), or closed after a 421."""
        assert self._writer is not None
        mail = b"MAIL FROM:<" + _address(sender) + b">\r\n"
        rcpt = b"RCPT TO:<" + _address(recipient) + b">\r\n"
        if self.pipelining:
            mail_reply, rcpt_reply, data_reply = await self._pipelined(mail, rcpt)
        else:
            mail_reply, rcpt_reply, data_reply = await self._stepwise(mail, rcpt)
        replies = (mail_reply, rcpt_reply, data_reply)
        decided: tuple[Stage, Reply] | None = None
        if mail_reply.code // 100 != 2:
            decided = (Stage.MAIL, mail_reply)
        elif rcpt_reply is None or rcpt_reply.code // 100 != 2:
            decided = (Stage.RCPT, rcpt_reply or mail_reply)
        elif data_reply is None or data_reply.code != 354:
            decided = (Stage.DATA, data_reply or rcpt_reply)
        if decided is None:
            self._writer.write(wire_data(message))
            final = await self._read_reply()
            if final.code == 421:
                self.close()
            return Stage.DATA, final
        try:
            if data_reply is not None and data_reply.code == 354:
                # DATA was accepted although MAIL or RCPT was not (RFC 2920 3.1): end it with nothing in it
                self._writer.write(b".\r\n")
                await self._read_reply()
            if any(r is not None and r.code == 421 for r in replies):
                self.close()
            elif mail_reply.code // 100 == 2 and self.is_connected:  # a transaction is open: end it
                if (await self._command(b"RSET")).code // 100 != 2:
                    self.close()
        except OSError:  # SmtpProtocolError too: the refusal stands; the session starts afresh next time
            self.close()
        return decided

    async def _pipelined(self, mail: bytes, rcpt: bytes) -> tuple[Reply, Reply | None, Reply | None]:
        assert self._writer is not None
        self._writer.write(mail + rcpt + b"DATA\r\n")
        mail_reply = await self._read_reply()
        rcpt_reply = data_reply = None
        try:
            rcpt_reply = await self._read_reply()
            data_reply = await self._read_reply()
        except SmtpProtocolError:
            # a relay may hang up right after refusing MAIL or RCPT (421): that refusal decides
            if mail_reply.code // 100 == 2 and (rcpt_reply is None or rcpt_reply.code // 100 == 2):
                raise
        return mail_reply, rcpt_reply, data_reply

    async def _stepwise(self, mail: bytes, rcpt: bytes) -> tuple[Reply, Reply | None, Reply | None]:
        assert self._writer is not None
        self._writer.write(mail)
        mail_reply = await self._read_reply()
        if mail_reply.code // 100 != 2:
            return mail_reply, None, None
        self._writer.write(rcpt)
        rcpt_reply = await self._read_reply()
        if rcpt_reply.code // 100 != 2:
            return mail_reply, rcpt_reply, None
        self._writer.write(b"DATA\r\n")
        return mail_reply, rcpt_reply, await self._read_reply()

    # --- the end ---------------------------------------------------------------------------------------
    async def quit(self) -> None:
        if self.is_connected:
            try:
                await self._command(b"QUIT")
            finally:
                self.close()
        await self.wait_closed()

    def close(self) -> None:
        """Drop the session now.  The event loop releases the socket a moment later; ``wait_closed`` waits
        for that, so that no socket is left open (and to the garbage collector) when the loop ends."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            sock = writer.get_extra_info("socket")  # asked first: a TLS transport forgets it once closed
            writer.close()
            if sock is not None:
                self._closing.append(sock)

    async def wait_closed(self, timeout: float = 1.0) -> None:
        """Wait, at most ``timeout``, until every socket this session closed is released.  The socket itself
        is watched, not the stream: after a failed STARTTLS the stream never hears that its socket closed."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while self._closing:
            self._closing = [sock for sock in self._closing if sock.fileno() != -1]
            if not self._closing or loop.time() >= until:
                return
            await asyncio.sleep(0.005)

    # --- the wire ----------------------------------------------------------------------------------------
    async def _command(self, line: bytes) -> Reply:
        assert self._writer is not None
        self._writer.write(line + CRLF)
        return await self._read_reply()

    async def _read_reply(self) -> Reply:
        reader = self._reader
        if reader is None:
            raise SmtpProtocolError("the connection is closed")
        texts: list[str] = []
        code = 0
        for _ in range(MAX_REPLY_LINES):
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                self.close()
                raise SmtpProtocolError("the relay closed the connection") from None
            except asyncio.LimitOverrunError:
                self.close()
                raise SmtpProtocolError("the relay sent a reply line over 64 KiB") from None
            head = line[:3]
            if not head.isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                self.close()
                raise SmtpProtocolError(f"not an SMTP reply: {line[:80]!r}")
            code = int(head)
            texts.append(line[4:].rstrip(b"\r\n").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return Reply(code, "\n".join(texts))
        self.close()
        raise SmtpProtocolError(f"a reply of more than {MAX_REPLY_LINES} lines")
