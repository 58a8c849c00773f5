"""Delivery rules: what an SMTP outcome means for a message (and for the relay), and when to retry.

The relay's replies are read the way Postfix reads them: only a recipient's own refusal is permanent
for the address (RCPT TO, or a DATA reply whose enhanced status code is about that mailbox).  A refusal
of the session or of the sender (greeting, EHLO/HELO, STARTTLS, AUTH, MAIL FROM), or of the message or
transaction as a whole, is a fault of the relay or of our settings: the message is retried with backoff
like any temporary failure, and its coupon stays with its recipient.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta


class Outcome(enum.StrEnum):
    SENT = "sent"  # the relay accepted the message for its recipient
    TEMPORARY = "temporary"  # 4xx, timeout, dropped connection, relay down, unbuildable: try again later
    PERMANENT = "permanent"  # 5xx for the recipient itself: never retried, the coupon returns to the pool
    RELAY = "relay"  # the relay refused the session, the sender or the whole transaction: try again later


class Stage(enum.StrEnum):
    """Where in the SMTP conversation (or before it) a result was decided."""

    CONNECT = "connect"  # TCP, TLS, timeouts and dropped connections anywhere
    GREETING = "greeting"
    EHLO = "ehlo"
    TLS = "tls"  # STARTTLS refused
    AUTH = "auth"
    MAIL = "mail"  # MAIL FROM
    RCPT = "rcpt"
    DATA = "data"
    BUILD = "build"  # the message could not be built: the relay was never asked
    STORE = "store"  # Maildir
    NONE = ""


#: refusals at these stages concern every message of the session: the rest of the batch is not tried
SESSION_STAGES = frozenset({Stage.GREETING, Stage.EHLO, Stage.TLS, Stage.AUTH, Stage.MAIL})


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outbox_id: int
    outcome: Outcome
    smtp_code: int | None = None
    detail: str = ""
    stage: Stage = Stage.NONE


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: first retry after ``first``, times ``factor`` each attempt, at most ``cap``;
    a message still undelivered ``lifetime`` after it was queued is given up."""

    first: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=1)
    lifetime: timedelta = timedelta(hours=24)

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 for the first failure)."""
        first, cap = self.first.total_seconds(), self.cap.total_seconds()
        if first <= 0:
            return timedelta(0)
        try:
            seconds = first * self.factor ** max(0, attempts - 1)
        except OverflowError:  # thousands of attempts (first or cap 0, a big factor): long past the cap
            seconds = cap
        return timedelta(seconds=min(seconds, cap))

    def next_attempt(self, created_at: datetime, attempts: int, now: datetime) -> datetime | None:
        """When to try again, or None when the message's lifetime is over (give up)."""
        deadline = created_at + self.lifetime
        if now >= deadline:
            return None
        return min(now + self.delay(attempts), deadline)


def classify_smtp_code(code: int) -> Outcome:
    """A recipient's reply code (RCPT TO): 2xx accepted, 5xx refused for good, anything else later."""
    if 200 <= code < 300:
        return Outcome.SENT
    if 500 <= code < 600:
        return Outcome.PERMANENT
    return Outcome.TEMPORARY


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")


def enhanced_status(text: str) -> tuple[int, int, int] | None:
    """The RFC 3463 enhanced status code a reply text starts with (``5.1.1 User unknown``), if any."""
    m = _ENHANCED.match(text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def is_mailbox_status(status: tuple[int, int, int] | None) -> bool:
    """Does the enhanced status speak of the recipient's address or mailbox?  X.1.x (addressing) except
    X.1.7/X.1.8, which are about the *sender's* address, and X.2.x (mailbox status)."""
    if status is None:
        return False
    _, subject, detail = status
    return (subject == 1 and detail not in (7, 8)) or subject == 2


def classify_reply(stage: Stage, code: int, text: str = "") -> Outcome:
    """What a non-2xx (or 2xx) reply at ``stage`` means for the message.

    - greeting, EHLO, STARTTLS, AUTH, MAIL FROM: any refusal is the relay's or our settings' → RELAY;
    - RCPT TO: the recipient's own answer → PERMANENT for 5xx, TEMPORARY for 4xx;
    - end of DATA (one recipient per transaction): a 5xx whose enhanced status is about the mailbox
      (5.1.x but 5.1.7/5.1.8, or 5.2.x) is that recipient's refusal → PERMANENT; any other 5xx (5.7.1
      content refused, 5.3.4 too big, 554 without an enhanced code, ...) refuses the message or the
      transaction, not the address → RELAY; 4xx → TEMPORARY.
    """
    if 200 <= code < 300:
        return Outcome.SENT
    if stage in SESSION_STAGES:
        return Outcome.RELAY
    if stage is Stage.RCPT:
        return classify_smtp_code(code)
    if stage is Stage.DATA and 500 <= code < 600:
        return Outcome.PERMANENT if is_mailbox_status(enhanced_status(text)) else Outcome.RELAY
    if 500 <= code < 600:
        return Outcome.RELAY
    return Outcome.TEMPORARY


def stops_batch(result: DeliveryResult) -> bool:
    """The relay refused the session or our sender: every other message would meet the same refusal."""
    return result.outcome is Outcome.RELAY and result.stage in SESSION_STAGES


def relay_is_ok(result: DeliveryResult) -> bool | None:
    """What a result says of the relay: True (it works: it accepted, or judged the recipient), False (it
    refuses us, is unreachable, times out, drops us or has temporary trouble with the message), None
    (nothing: the message was never offered to it)."""
    if result.stage is Stage.BUILD:
        return None
    if result.outcome is Outcome.SENT or result.outcome is Outcome.PERMANENT:
        return True
    if result.outcome is Outcome.TEMPORARY and result.stage is Stage.RCPT:
        return True  # greylisting, a full mailbox: the relay itself is answering normally
    return False
