"""The outbox and the email templates, operator side (console and `couponsvc mail`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from couponsvc.adapters import console_queries as q
from couponsvc.adapters import outbox
from couponsvc.adapters.console_queries import AttemptRow, ClassRow, MessageRow
from couponsvc.adapters.mail.message import DEFAULT_TEMPLATE as DEFAULT_TEMPLATE
from couponsvc.adapters.mail.message import CouponFacts, check_template, render
from couponsvc.domain.errors import ConfigurationError, NotFound, OperatorInputError
from couponsvc.domain.model import class_name_key
from couponsvc.service_layer import audit
from couponsvc.service_layer.audit import Actor
from couponsvc.service_layer.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]
STATUSES = ("queued", "sending", "sent", "failed")
PAGE = 50
MAX_TEMPLATE = 100_000


def status_counts(uow: UnitOfWork, clock: Clock) -> dict[str, Any]:
    """queued (including being sent), sending, sent, failed, and the age of the oldest queued message."""
    with uow.read() as store:
        counts = q.outbox_counts(store.conn)
        oldest = q.oldest_queued(store.conn) if counts["queued"] or counts["sending"] else None
    age = None if oldest is None else max(0.0, (clock() - oldest).total_seconds())
    return {"queued": counts["queued"] + counts["sending"], "sending": counts["sending"], "sent": counts["sent"],
            "failed": counts["failed"], "oldest_queued_seconds": age}


def messages(uow: UnitOfWork, *, status: str | None = None, to: str | None = None, before_id: int | None = None,
             limit: int = PAGE) -> list[MessageRow]:
    if status and status not in STATUSES:
        raise OperatorInputError(f"status {status!r}: use one of {', '.join(STATUSES)}")
    with uow.read() as store:
        return q.messages_page(store.conn, status=status or None, to=to or None, before_id=before_id, limit=limit)


@dataclass(frozen=True, slots=True)
class MessageView:
    message: MessageRow
    subject: str
    text: str
    html: str
    attempts: list[AttemptRow]


def _facts(f: q.MessageFacts) -> CouponFacts:
    return CouponFacts(f.code, f.class_name, f.amount, f.currency_code, f.percent_off, f.spend_threshold,
                       f.active_duration, f.redeem_by)


def message(uow: UnitOfWork, outbox_id: int) -> MessageView:
    """One message as the workers build it (the class's template of now), with its delivery history."""
    with uow.read() as store:
        row = q.message(store.conn, outbox_id)
        facts = q.message_facts(store.conn, outbox_id)
        if row is None or facts is None:
            raise NotFound(f"no message {outbox_id}")
        history = q.attempts(store.conn, outbox_id)
    parts = render(facts.template, _facts(facts))
    return MessageView(row, parts["subject"], parts["text"], parts["html"], history)


def history(uow: UnitOfWork, *, recipient: str | None = None, code: str | None = None,
            message_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Every delivery attempt of the selected messages, oldest first (`couponsvc mail history`)."""
    if not (recipient or code or message_id):
        raise OperatorInputError("choose messages by recipient, code or Message-ID")
    with uow.read() as store:
        return outbox.history(store.conn, recipient=recipient, code=code, message_id=message_id, limit=limit)


def retry(uow: UnitOfWork, clock: Clock, actor: Actor, outbox_id: int | None = None) -> tuple[int, int]:
    """Queue failed messages again (all, or one) whose coupon is still unused; returns (requeued, skipped)."""
    with uow.write() as store:
        if outbox_id is not None and q.message(store.conn, outbox_id) is None:
            raise NotFound(f"no message {outbox_id}")
        requeued, skipped = outbox.requeue_failed(store.conn, clock(), only=outbox_id,
                                                  by="cli" if actor.label.startswith("cli:") else actor.label)
        what = "every failed message" if outbox_id is None else f"message {outbox_id}"
        audit.record(store, clock(), actor, "mail.retry", what, f"{requeued} requeued, {skipped} skipped")
    return requeued, skipped


# --- templates -------------------------------------------------------------------------------------
def default_template() -> str:
    return resources.files("couponsvc.adapters.mail").joinpath("templates", DEFAULT_TEMPLATE).read_text("utf-8")


def coupon_class(uow: UnitOfWork, customer_id: int, class_name: str) -> ClassRow:
    with uow.read() as store:
        row = q.coupon_class(store.conn, customer_id, class_name_key(class_name))
    if row is None:
        raise NotFound(f"customer {customer_id} has no coupon class {class_name!r}")
    return row


def check_source(source: str) -> None:
    """ConfigurationError naming the line when the template cannot be used (see ``check_template``)."""
    if not source.strip() or len(source) > MAX_TEMPLATE:
        raise ConfigurationError(f"a template must be non-empty text of at most {MAX_TEMPLATE:,} characters"
                                 " (to go back to the default template, reset it)")
    check_template(source)


def sample_facts(uow: UnitOfWork, clock: Clock, cls: ClassRow) -> CouponFacts:
    with uow.read() as store:
        code = q.sample_code(store.conn, cls.id) or "SAMPLE-CODE-0001"
    limits = [x for x in (cls.end_date, cls.expiration_date) if x is not None]
    return CouponFacts(code, cls.name, cls.amount, cls.currency_code, cls.percent_off, cls.spend_threshold,
                       cls.active_duration, min(limits) if limits else clock() + timedelta(days=30))


def preview(uow: UnitOfWork, clock: Clock, customer_id: int, class_name: str,
            source: str | None) -> dict[str, str]:
    """The sample message (subject, text, html) the template makes for this class; refuses a template that
    does not render (ConfigurationError naming the line), the sandbox's refusals included."""
    cls = coupon_class(uow, customer_id, class_name)
    if source is not None:
        check_source(source)
    return render(source, sample_facts(uow, clock, cls))


def save_template(uow: UnitOfWork, clock: Clock, actor: Actor, customer_id: int, class_name: str,
                  source: str | None) -> None:
    """Store the class's template after checking it renders (``None``: back to the default)."""
    if source is not None:
        check_source(source)
    with uow.write() as store:
        row = q.coupon_class(store.conn, customer_id, class_name_key(class_name))
        if row is None:
            raise NotFound(f"customer {customer_id} has no coupon class {class_name!r}")
        q.set_template(store.conn, row.id, source)
        audit.record(store, clock(), actor, "template.reset" if source is None else "template.save",
                     f"class {customer_id}/{row.name}", None if source is None else f"{len(source)} characters")
