"""Messages built a chunk per thread hop (``adapters/mail/transports.py``, ``_Builder``), sent over a real
SMTP server (aiosmtpd, ``tests/support/smtp_sink.py``): a message that cannot be built fails alone, a
recipient refused with a 5xx is a permanent refusal for exactly that address, and a send whose deadline
passes builds little more than what it sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from couponsvc.adapters.mail.transports import BUILD_CHUNK, Outgoing, SmtpConfig, SmtpTransport
from couponsvc.domain.delivery import DeliveryResult, Outcome, Stage
from tests.support.smtp_sink import Fault, SmtpSink


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


class Builds:
    """Counts the messages built (from the builder's threads)."""

    def __init__(self) -> None:
        self.built: list[int] = []
        self._lock = threading.Lock()

    def maker(self, n: int, recipient: str, broken: bool = False) -> Callable[[], EmailMessage]:
        def build() -> EmailMessage:
            with self._lock:
                self.built.append(n)
            if broken:
                raise ValueError(f"template error in message {n}")
            msg = EmailMessage()
            msg["From"] = "coupons@test.example"
            msg["To"] = recipient
            msg["Subject"] = f"coupon {n}"
            msg["Message-ID"] = f"<coupon-{n}@test.example>"
            msg.set_content(f"your code: CODE{n:05d}\n")
            return msg
        return build


def _send(sink: SmtpSink, batch: list[Outgoing], connections: int = 4,
          timeout: float | None = None) -> list[DeliveryResult]:
    async def go() -> list[DeliveryResult]:
        transport = SmtpTransport(SmtpConfig("127.0.0.1", sink.port, connections=connections, timeout=10))
        try:
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            return await transport.send(batch, deadline)
        finally:
            await transport.aclose()
    return asyncio.run(go())


def test_an_unbuildable_message_fails_alone_and_a_refused_address_is_refused_alone(sink: SmtpSink) -> None:
    builds = Builds()
    n = 150
    recipients = [f"user{i}@test.example" for i in range(n)]
    sink.plan(recipients[90], Fault.rcpt(550))
    batch = [Outgoing(i, r, build=builds.maker(i, r, broken=i == 37)) for i, r in enumerate(recipients)]

    results = {r.outbox_id: r for r in _send(sink, batch)}

    assert sorted(results) == list(range(n))  # every message attempted once
    assert sorted(builds.built) == list(range(n))  # and each built once, though chunks are shared by lanes
    assert results[37].outcome is Outcome.TEMPORARY and results[37].stage is Stage.BUILD
    assert "template error in message 37" in results[37].detail
    assert results[90].outcome is Outcome.PERMANENT and results[90].smtp_code == 550
    assert results[90].stage is Stage.RCPT
    others = set(range(n)) - {37, 90}
    assert {i for i, r in results.items() if r.outcome is Outcome.SENT} == others
    got = sorted(a for rec in sink.accepted() for a in rec.rcpt_tos)
    assert got == sorted(recipients[i] for i in others)


def test_a_send_whose_deadline_passes_builds_little_more_than_it_sends() -> None:
    builds = Builds()
    n = 400
    with SmtpSink(delay=0.05) as slow:  # every DATA answered 50 ms late: ~40 messages in 1 s on 2 connections
        batch = [Outgoing(i, f"user{i}@test.example", build=builds.maker(i, f"user{i}@test.example"))
                 for i in range(n)]
        results = _send(slow, batch, connections=2, timeout=1.0)
    assert 0 < len(results) < n
    assert len(builds.built) < n
    # built ahead of what was sent: at most a chunk, plus one started by the other lane just before the deadline
    assert len(builds.built) <= len(results) + 2 * BUILD_CHUNK, (len(builds.built), len(results))
