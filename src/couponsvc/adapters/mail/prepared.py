"""Coupon emails at thousands a second: a class's message is built once, then each coupon's bytes are assembled.

Building every message with the email library (rendering, header parsing and folding, serialising) costs
about half a millisecond; a worker sends thousands a second.  Yet the messages of one class (same template,
facts, sender and dispatch date) differ only in three values: the coupon code, the recipient and the
Message-ID.  So the message is built once by the email library (``build_message``) with sentinel values in
their place, cut at the sentinels, and each coupon's message is the pieces joined around its own values.

The result must be byte for byte what ``build_message(...).as_bytes()`` gives; the fast path is only taken
where that is certain, and everything else goes through the email library as before:

* the template uses ``code`` only as a plain ``{{ code }}`` (a filter, a test, a comparison or an
  assignment could make the output depend on the code in other ways), checked on its syntax tree;
* both parts travel as 7bit text and each line stays within 78 characters with this code in it (else the
  library would choose quoted-printable);
* each substituted header (Message-ID, To, Subject) fits on one line as it is: the values are checked
  (a recipient is a valid address, the Message-ID is ``<atoms@domain>``, the code printable ASCII with no
  encoded-word marker) so nothing can be folded, encoded or injected differently; a header that does not
  qualify is folded by the library alone;
* a self-check when a class is prepared: a second, differently shaped code is assembled and compared with
  what the library builds for it; any difference sends the class to the library path for good.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from functools import lru_cache
from typing import Any

from jinja2 import nodes
from markupsafe import escape

from couponsvc.adapters.mail import message as m
from couponsvc.domain.emails import is_valid_address

_MAX_LINE = m.POLICY.max_line_length or 78
# Sentinels: random per process, so no template text can contain them; letters and digits only, so that
# neither HTML escaping nor header folding changes them.
_CODE = "Qz" + secrets.token_hex(6)
_RECIPIENT = f"r{secrets.token_hex(6)}@sentinel.invalid"
_MESSAGE_ID = f"<m{secrets.token_hex(6)}@sentinel.invalid>"
# the self-check's values: shapes unlike the sentinels (punctuation, another length), the code short so that
# it fits wherever a real one may
_CHECK = ("k-" + secrets.token_hex(1) + ".Z", "check.user+tag@sub.example.com",
          "<coupon-12345.dispatch-678@check.example>")
_SIMPLE_MESSAGE_ID = re.compile(r"<[A-Za-z0-9.-]+@[A-Za-z0-9.-]+>")


class WireMessage(EmailMessage):
    """An email known by its bytes (what is sent); parsed into the usual structure only when asked for it."""

    def __init__(self, raw: bytes) -> None:  # noqa: D107 - deliberately no EmailMessage.__init__: parsed lazily
        self.__dict__["_wire"] = raw

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes EmailMessage.__init__ would have set (_headers, policy, ...)
        if name.startswith("__") or self.__dict__.get("_parsed"):
            raise AttributeError(name)
        parsed = BytesParser(policy=m.POLICY).parsebytes(self.__dict__["_wire"])
        self.__dict__.update(parsed.__dict__)
        self.__dict__["_parsed"] = True
        return getattr(self, name)

    def as_bytes(self, unixfrom: bool = False, policy: Any = None) -> bytes:
        if not unixfrom and policy is None:
            return bytes(self.__dict__["_wire"])
        return super().as_bytes(unixfrom, policy)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A class's message cut at its variable parts."""

    message_id: tuple[bytes, bytes]  # the Message-ID line around the sentinel
    date_from: bytes  # the constant lines between Message-ID and To
    to: tuple[bytes, bytes]
    subject_line: str  # the folded Subject line, sentinel code in it
    subject: str  # the unfolded subject (for the library fallback), sentinel code in it
    rest_head: bytes  # the other headers and the blank line
    text: tuple[bytes, ...]  # the text region cut at the code
    html: tuple[bytes, ...]  # the HTML region cut at the (escaped) code
    #: lines that hold the code: (length without it, how many times, in the HTML part)
    code_lines: tuple[tuple[int, int, bool], ...]
    boundaries: int  # how many times the MIME boundary occurs (a code must not add one)
    boundary: bytes


def coupon_message(*, template: str | None, facts: m.CouponFacts, message_id: str, sender: str, recipient: str,
                   date: datetime, base: str = m.DEFAULT_TEMPLATE) -> EmailMessage:
    """The coupon email: a WireMessage holding its assembled bytes, or what ``build_message`` of ``render``
    builds; either way ``as_bytes()`` gives the same bytes."""
    prepared = _prepare(template, base, replace(facts, code=""), sender, date)
    if prepared is not None:
        raw = _assemble(prepared, facts.code, recipient, message_id)
        if raw is not None:
            return WireMessage(raw)
    return m.build_message(message_id=message_id, sender=sender, recipient=recipient,
                           parts=m.render(template, facts, base), date=date)


def coupon_email(*, template: str | None, facts: m.CouponFacts, message_id: str, sender: str, recipient: str,
                 date: datetime, base: str = m.DEFAULT_TEMPLATE) -> tuple[EmailMessage, bytes]:
    """The coupon email and its bytes: identical to ``build_message(...).as_bytes()`` of ``render``."""
    msg = coupon_message(template=template, facts=facts, message_id=message_id, sender=sender,
                         recipient=recipient, date=date, base=base)
    return msg, msg.as_bytes()


# --- preparing a class ------------------------------------------------------------------------------------------
def code_is_plain_output(source: str | None, base: str = m.DEFAULT_TEMPLATE) -> bool:
    """True when the template (and the built-in one under it) uses ``code`` only as a plain ``{{ code }}``."""
    if source is not None and not _plain_in(m._environment(False).parse(source)):
        return False
    # a class template is rendered over the default template (render ignores ``base`` then)
    return _built_in_is_plain(m.DEFAULT_TEMPLATE if source is not None else base)


@lru_cache(maxsize=4)
def _built_in_is_plain(name: str) -> bool:
    env = m._environment(False)
    source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    return _plain_in(env.parse(source))


def _plain_in(ast: nodes.Template) -> bool:
    every = sum(1 for n in ast.find_all(nodes.Name) if n.name == "code")
    plain = sum(1 for out in ast.find_all(nodes.Output) for n in out.nodes
                if isinstance(n, nodes.Name) and n.name == "code" and n.ctx == "load")
    return every == plain


@lru_cache(maxsize=512)
def _prepare(template: str | None, base: str, facts: m.CouponFacts, sender: str, date: datetime) -> _Prepared | None:
    """The class's message cut at its variable parts, or None when this class must use the library path."""
    try:
        if not code_is_plain_output(template, base):
            return None
        parts = m.render(template, replace(facts, code=_CODE), base)
        msg = m.build_message(message_id=_MESSAGE_ID, sender=sender, recipient=_RECIPIENT, parts=parts, date=date)
        prepared = _cut(msg, parts["subject"])
        if prepared is None:
            return None
        code, recipient, message_id = _CHECK
        expected = m.build_message(message_id=message_id, sender=sender, recipient=recipient,
                                   parts=m.render(template, replace(facts, code=code), base), date=date).as_bytes()
        if _assemble(prepared, code, recipient, message_id) != expected:
            return None
        return prepared
    except Exception:  # noqa: BLE001 - any surprise: the library path, which reports its own errors
        return None


def _cut(msg: EmailMessage, subject: str) -> _Prepared | None:
    if any(part.get("Content-Transfer-Encoding") != "7bit" for part in msg.iter_parts()):
        return None
    raw = msg.as_bytes()
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    names = [line.split(b":", 1)[0].lower() for line in lines]
    # one physical line per header (none folded), in the order build_message writes them
    if names[:5] != [b"message-id", b"date", b"from", b"to", b"subject"] or len(lines) < 6 \
            or lines[5][:1] in (b" ", b"\t"):
        return None
    mid_line, to_line, subject_line = lines[0] + b"\r\n", lines[3] + b"\r\n", lines[4].decode("ascii")
    code_b = _CODE.encode()
    if mid_line.count(_MESSAGE_ID.encode()) != 1 or to_line.count(_RECIPIENT.encode()) != 1:
        return None
    # the code must stand alone between spaces in the Subject line (not inside an encoded word)
    words = subject_line.split(" ")
    if subject_line.count(_CODE) != sum(1 for w in words if w == _CODE):
        return None
    boundary = msg.get_boundary()
    if boundary is None:
        return None
    boundary_b = boundary.encode()
    html_at = _nth(body, b"--" + boundary_b, 2)
    if html_at < 0:
        return None
    text_region, html_region = body[:html_at], body[html_at:]
    code_lines = []
    for region, is_html in ((text_region, False), (html_region, True)):
        for line in region.split(b"\r\n"):
            n = line.count(code_b)
            if n:
                code_lines.append((len(line) - n * len(code_b), n, is_html))
    return _Prepared(
        message_id=tuple(mid_line.split(_MESSAGE_ID.encode())),  # type: ignore[arg-type]
        date_from=b"\r\n".join(lines[1:3]) + b"\r\n",
        to=tuple(to_line.split(_RECIPIENT.encode())),  # type: ignore[arg-type]
        subject_line=subject_line, subject=subject, rest_head=b"\r\n".join(lines[5:]) + sep,
        text=tuple(text_region.split(code_b)), html=tuple(html_region.split(code_b)),
        code_lines=tuple(code_lines), boundaries=raw.count(boundary_b), boundary=boundary_b,
    )


def _nth(data: bytes, needle: bytes, n: int) -> int:
    at = -1
    for _ in range(n):
        at = data.find(needle, at + 1)
        if at < 0:
            return -1
    return at


# --- one coupon's message ------------------------------------------------------------------------------------
def _assemble(p: _Prepared, code: str, recipient: str, message_id: str) -> bytes | None:
    """The message bytes for these values, or None when only the library can build them exactly."""
    if not (code and code.isascii() and code.isprintable()) or " " in code or "=?" in code or "?=" in code:
        return None
    html_code = str(escape(code))
    for length, n, is_html in p.code_lines:
        if length + n * len(html_code if is_html else code) > _MAX_LINE:
            return None  # the library would encode this part as quoted-printable
    code_b, html_b = code.encode(), html_code.encode()
    raw = b"".join((
        _message_id_line(p, message_id), p.date_from, _to_line(p, recipient), _subject_line(p, code),
        p.rest_head, code_b.join(p.text), html_b.join(p.html),
    ))
    if raw.count(p.boundary) != p.boundaries:
        return None  # the code completed a boundary string: the library would have chosen another boundary
    return raw


def _message_id_line(p: _Prepared, message_id: str) -> bytes:
    if _SIMPLE_MESSAGE_ID.fullmatch(message_id) and len(message_id) + len("Message-ID: ") <= _MAX_LINE:
        return message_id.encode().join(p.message_id)
    return _fold("Message-ID", message_id)


def _to_line(p: _Prepared, recipient: str) -> bytes:
    if "=?" not in recipient and is_valid_address(recipient) and len(recipient) + len("To: ") <= _MAX_LINE:
        return recipient.encode().join(p.to)
    from email.headerregistry import Address

    return _fold("To", Address(addr_spec=recipient))  # ValueError for what is no address, as build_message


def _subject_line(p: _Prepared, code: str) -> bytes:
    line = p.subject_line.replace(_CODE, code)
    if len(line) <= _MAX_LINE:
        return line.encode("ascii") + b"\r\n"
    return _fold("Subject", p.subject.replace(_CODE, code))


def _fold(name: str, value: object) -> bytes:
    """One header exactly as the message would store and fold it (the library's header classes and policy):
    ``header_store_parse`` refuses a value with a line break (ValueError), as ``msg[name] = value`` does."""
    stored_name, header = m.POLICY.header_store_parse(name, value)
    return m.POLICY.fold_binary(stored_name, header)
