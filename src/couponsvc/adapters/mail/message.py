"""Coupon emails: multipart text + HTML from Jinja2 templates, headers built by the email library only.

A class may carry its own template: Jinja2 source that overrides any of the default template's
blocks (``subject``, ``text``, ``html``); a block it does not define comes from the default, and
``{{ super() }}`` inside a block renders the default one.  Templates run in Jinja2's sandbox (an
unsafe attribute is an error, not an empty string) with strict variables, and the ``html`` block is
rendered by an autoescaping environment, so neither a code nor a template expression can inject
markup, and nothing a template renders can add a header.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime
from functools import lru_cache
from importlib import resources
from types import TracebackType
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from couponsvc.domain.errors import ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "coupon.j2"
DISTRIBUTION_TEMPLATE = "distribution.j2"  # DistributeCoupons notifications: a coupon added to an account
_BUILT_IN = (DEFAULT_TEMPLATE, DISTRIBUTION_TEMPLATE)
_CHECK_CODE = "CHECK-7Q3Z-CODE"  # what check_template renders; it must show up in the text and HTML parts


@dataclass(frozen=True, slots=True)
class CouponFacts:
    """What a coupon email states."""

    code: str
    class_name: str
    amount: float | None
    currency_code: str | None
    percent_off: float | None
    spend_threshold: float | None
    active_duration: int | None
    redeem_by: datetime | None  # the earlier of the class EndDate/ExpirationDate and the code's own expiry
    account_number: str | None = None  # a distribution's account

    def context(self) -> dict[str, Any]:
        if self.percent_off is not None:
            value = f"{self.percent_off:g}% off"
        elif self.amount is not None:
            value = f"{self.amount:,.2f} {self.currency_code or ''}".strip()
        else:
            value = ""
        threshold = (f"{self.spend_threshold:,.2f} {self.currency_code or ''}".strip()
                     if self.spend_threshold else "")
        return {
            "code": self.code, "class_name": self.class_name, "value": value, "threshold": threshold,
            "active_days": self.active_duration or 0,
            "redeem_by": self.redeem_by.strftime("%d %B %Y, %H:%M UTC") if self.redeem_by else "",
            "account_number": self.account_number or "",
        }


class _Loader(BaseLoader):
    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        if template not in _BUILT_IN:
            raise TemplateNotFound(template)
        source = resources.files(__package__).joinpath("templates", template).read_text("utf-8")
        return source, None, lambda: True


class _Sandbox(SandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja's default gives an Undefined that prints as "" (so `{{ ''.__class__ }}` would pass unseen).
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


@lru_cache(maxsize=2)
def _environment(html: bool) -> _Sandbox:
    """Subject and text render without escaping; the html block with autoescape (one compile each)."""
    return _Sandbox(loader=_Loader(), autoescape=html, keep_trailing_newline=True, undefined=StrictUndefined,
                    auto_reload=False)


BlockFn = Callable[[Context], Iterator[str]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One template compiled for both environments, with the default's blocks under the class's own."""

    plain: Template
    html: Template
    plain_parents: dict[str, BlockFn]
    html_parents: dict[str, BlockFn]


@lru_cache(maxsize=256)
def _compiled(class_template: str | None, base: str = DEFAULT_TEMPLATE) -> _Compiled:
    parts: list[tuple[Template, dict[str, BlockFn]]] = []
    for html in (False, True):
        env = _environment(html)
        default = env.get_template(base)
        if class_template is None:
            parts.append((default, {}))
        else:
            parts.append((env.from_string(class_template), dict(default.blocks)))
    (plain, plain_parents), (html_tpl, html_parents) = parts
    return _Compiled(plain, html_tpl, plain_parents, html_parents)


def _context(template: Template, parents: dict[str, BlockFn], values: dict[str, Any]) -> Context:
    context = template.new_context(values)
    for name, block in parents.items():  # as `{% extends %}` would: the default's blocks under the class's
        context.blocks.setdefault(name, []).append(block)
    return context


def _block(context: Context, part: str) -> str:
    stack = context.blocks.get(part)
    return "".join(stack[0](context)) if stack else ""


def _render(compiled: _Compiled, facts: CouponFacts) -> dict[str, str]:
    values = facts.context()
    plain = _context(compiled.plain, compiled.plain_parents, values)
    html = _context(compiled.html, compiled.html_parents, values)
    subject = _block(plain, "subject")
    return {
        "subject": " ".join(subject.split()),  # one line, whatever the template did
        "text": _block(plain, "text"),
        "html": _block(html, "html"),
    }


def render(class_template: str | None, facts: CouponFacts, base: str = DEFAULT_TEMPLATE) -> dict[str, str]:
    """The three parts (subject, text, html) for one coupon (``base``: which built-in template).

    A class template that fails at send time (it passed ``check_template``, but these facts differ) does not
    hold the message back: the default template is used instead, and the failure is logged.
    """
    if class_template is None:
        return _render(_compiled(None, base), facts)
    try:
        return _render(_compiled(class_template), facts)
    except Exception:  # noqa: BLE001 - any template failure: fall back to the default layout
        first = class_template not in _failed_templates
        _failed_templates.add(class_template)
        log.log(logging.ERROR if first else logging.DEBUG,
                "class template of %r failed for coupon %s; using the default template%s", facts.class_name,
                facts.code, "" if first else " (logged in full once)", exc_info=first)
        return _render(_compiled(None), facts)


_failed_templates: set[str] = set()  # templates whose failure was logged in full (once each)


def _template_line(tb: TracebackType | None) -> int | None:
    """The line of the (class) template where a render error happened, from Jinja's compiled frames."""
    line = None
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, Template) and template.name is None:  # from_string: the class template
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


_CHECK_FACTS = (
    CouponFacts(_CHECK_CODE, "Check class", 10.0, "USD", None, 5.0, 30, datetime(2030, 12, 31, 23, 59)),
    CouponFacts(_CHECK_CODE, "Check class", None, None, 15.0, None, None, None),
    CouponFacts(_CHECK_CODE, "Check class", 25.0, None, None, None, 0, None),
)


def check_template(source: str) -> None:
    """Raise ConfigurationError (naming the line) when a class template does not compile, extends anything
    but the default, fails to render (e.g. an unsafe attribute, an unknown variable) or hides the code."""
    try:
        ast = _environment(False).parse(source)
    except TemplateSyntaxError as exc:
        raise ConfigurationError(f"template line {exc.lineno}: {exc.message}") from exc
    for ext in ast.find_all(nodes.Extends):
        if not (isinstance(ext.template, nodes.Const) and ext.template.value == DEFAULT_TEMPLATE):
            raise ConfigurationError(f"template line {ext.lineno}: a class template can only extend "
                                     f'"{DEFAULT_TEMPLATE}" (or nothing: it overrides the default\'s blocks)')
    try:
        compiled = _compiled(source)
    except TemplateSyntaxError as exc:
        raise ConfigurationError(f"template line {exc.lineno}: {exc.message}") from exc
    for facts in _CHECK_FACTS:
        try:
            parts = _render(compiled, facts)
        except Exception as exc:  # noqa: BLE001 - any render failure makes the template unusable
            line = _template_line(exc.__traceback__)
            where = f"template line {line}" if line is not None else "template"
            raise ConfigurationError(f"{where}: cannot be rendered: {exc}") from exc
        for part in ("text", "html"):
            if _CHECK_CODE not in parts[part]:
                raise ConfigurationError(f"template: the {part} part does not show the coupon code ({{{{ code }}}})")


# --- building the message ---------------------------------------------------------------------------------
# Every header is made by the email library's header classes (parsed, validated, folded by them).  Two things
# keep that cheap enough for thousands of messages a second: the headers most messages share (From, Date,
# MIME-Version, the Content-Types) are made once and reused -- header objects are immutable -- and each
# header object remembers how it folds under a policy, so sending or storing a message re-folds only the
# headers of its own (Message-ID, To, Subject).
class _FoldOnceHeader(BaseHeader):
    def fold(self, *, policy: Policy) -> str:
        # Folding depends on these three settings only; keyed by them, not by the policy object, because
        # generators often clone the policy for each message (mailbox does), which would grow the cache.
        key = (policy.linesep, policy.max_line_length, bool(getattr(policy, "utf8", False)))
        folds: dict[tuple[str, int | None, bool], str] = self.__dict__.setdefault("_folds", {})
        folded = folds.get(key)
        if folded is None:
            folded = folds[key] = super().fold(policy=policy)
        return folded


class _HeaderRegistry(HeaderRegistry):
    """The standard header classes on a folding-once base, each class made once (not once per header)."""

    def __init__(self) -> None:
        super().__init__(base_class=_FoldOnceHeader)
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_HEADERS = _HeaderRegistry()
POLICY = SMTP.clone(header_factory=_HEADERS)
_BOUNDARY = "=_couponsvc_" + secrets.token_hex(12)  # checked against each message's parts before use


@lru_cache(maxsize=1024)
def _shared(name: str, value: str) -> BaseHeader:
    return _HEADERS(name, value)


@lru_cache(maxsize=64)
def _shared_address(name: str, addr_spec: str) -> BaseHeader:
    return _HEADERS(name, Address(addr_spec=addr_spec))


_MAX_LINE = POLICY.max_line_length or 78


def _text_part(body: str, subtype: str) -> EmailMessage:
    part = EmailMessage(policy=POLICY)
    lines = body.encode("utf-8").splitlines()
    if body.isascii() and max((len(x) for x in lines), default=0) <= _MAX_LINE:
        # what set_content chooses for such a body (7bit, lines as they are), without re-parsing its headers
        part["Content-Type"] = _shared("Content-Type", f'text/{subtype}; charset="utf-8"')
        part["Content-Transfer-Encoding"] = _shared("Content-Transfer-Encoding", "7bit")
        part.set_payload(b"\n".join(lines).decode("ascii") + "\n")
    else:
        part.set_content(body, subtype=subtype)  # 8bit, quoted-printable or base64: the library decides
        del part["MIME-Version"]  # a part needs none
    return part


def build_message(*, message_id: str, sender: str, recipient: str, parts: dict[str, str],
                  date: datetime) -> EmailMessage:
    """The multipart/alternative (text, then HTML) email of one coupon; one recipient, in To."""
    msg = EmailMessage(policy=POLICY)
    msg["Message-ID"] = message_id
    msg["Date"] = _shared("Date", format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC)))
    msg["From"] = _shared_address("From", sender)
    msg["To"] = Address(addr_spec=recipient)  # exactly one address, or ValueError
    msg["Subject"] = parts["subject"]
    msg["MIME-Version"] = _shared("MIME-Version", "1.0")
    text, html = _text_part(parts["text"], "plain"), _text_part(parts["html"], "html")
    boundary = _BOUNDARY
    while boundary in parts["text"] or boundary in parts["html"]:
        boundary = "=_couponsvc_" + secrets.token_hex(16)
    msg["Content-Type"] = _shared("Content-Type", f'multipart/alternative; boundary="{boundary}"')
    msg.attach(text)
    msg.attach(html)
    return msg
