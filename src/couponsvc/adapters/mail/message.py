"""Coupon emails: multipart text + HTML from Jinja2 templates, headers built by the email library only.

A class may carry its own template: Jinja2 source that overrides any of the default template's
blocks (``subject``, ``text``, ``html``).  Class templates run in Jinja2's sandbox, and the HTML
part is autoescaped, so neither a code nor a template can inject markup or headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import BaseLoader, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from couponsvc.domain.errors import ConfigurationError

DEFAULT_TEMPLATE = "coupon.j2"
_PARTS = ("subject", "text", "html")


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
        }


class _Loader(BaseLoader):
    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        if template != DEFAULT_TEMPLATE:
            raise TemplateNotFound(template)
        source = resources.files(__package__).joinpath("templates", DEFAULT_TEMPLATE).read_text("utf-8")
        return source, None, lambda: True


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=_Loader(), autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=256)
def _compiled(class_template: str | None) -> Any:
    env = _environment()
    if class_template is None:
        return env.get_template(DEFAULT_TEMPLATE)
    source = class_template
    if "{% extends" not in source:
        source = '{% extends "' + DEFAULT_TEMPLATE + '" %}' + source
    return env.from_string(source)


def check_template(source: str) -> None:
    """Raise ConfigurationError (with the line) when a class template does not compile or render."""
    try:
        render(source, CouponFacts("CODE-1234", "Class", 10.0, "USD", None, 5.0, 30, None))
    except TemplateSyntaxError as exc:
        raise ConfigurationError(f"template line {exc.lineno}: {exc.message}") from exc
    except Exception as exc:  # noqa: BLE001 - any render failure makes the template unusable
        raise ConfigurationError(f"template cannot be rendered: {exc}") from exc


def render(class_template: str | None, facts: CouponFacts) -> dict[str, str]:
    """The three parts (subject, text, html) for one coupon."""
    template = _compiled(class_template)
    ctx = facts.context()
    out = {}
    for part in _PARTS:
        block = template.blocks.get(part)
        if part == "html":
            ctx_part = {k: _escape(v) for k, v in ctx.items()}
        else:
            ctx_part = ctx
        out[part] = "".join(block(template.new_context(ctx_part))) if block else ""
    out["subject"] = " ".join(out["subject"].split())  # one line, whatever the template did
    return out


def _escape(value: Any) -> Any:
    from markupsafe import escape

    return escape(value) if isinstance(value, str) else value


def build_message(*, message_id: str, sender: str, recipient: str, parts: dict[str, str],
                  date: datetime) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    msg["From"] = Address(addr_spec=sender)
    msg["To"] = Address(addr_spec=recipient)
    msg["Subject"] = parts["subject"]
    msg.set_content(parts["text"])
    msg.add_alternative(parts["html"], subtype="html")
    return msg
