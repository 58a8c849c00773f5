"""A transport wrapper that makes chosen recipients fail as a relay would (twin mail faults).

``pick`` names, per recipient, the injected fault (``4xx``, ``5xx`` or ``drop``) or None; those messages
get the result a real relay's reply would give (a 451 at RCPT TO, a 550 at RCPT TO, a dropped
connection), the others go to the real transport.  Everything after (retries, backoff, 3005, give-up)
is the ordinary delivery code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from couponsvc.adapters.mail.transports import MailTransport, Outgoing
from couponsvc.domain.delivery import DeliveryResult, Outcome, Stage, classify_reply

#: injected fault → (where in the conversation, SMTP reply code or None for no reply, reply text)
REPLIES: dict[str, tuple[Stage, int | None, str]] = {
    "4xx": (Stage.RCPT, 451, "4.3.0 Try again later (couponsvc twin fault)"),
    "5xx": (Stage.RCPT, 550, "5.1.1 Mailbox unavailable (couponsvc twin fault)"),
    "drop": (Stage.CONNECT, None, "ConnectionResetError: the relay closed the connection (couponsvc twin fault)"),
}


def injected_result(outbox_id: int, kind: str) -> DeliveryResult:
    """What the real SMTP transport reports for that reply: a RCPT TO refusal, or a dropped connection."""
    stage, code, text = REPLIES[kind]
    outcome = Outcome.TEMPORARY if code is None else classify_reply(stage, code, text)
    return DeliveryResult(outbox_id, outcome, code, text, stage)


class FaultInjectingTransport:
    def __init__(self, inner: MailTransport, pick: Callable[[Sequence[str]], list[str | None]]) -> None:
        self.inner = inner
        self.pick = pick

    async def send(self, batch: Sequence[Outgoing], deadline: float | None = None,
                   stop: asyncio.Event | None = None) -> list[DeliveryResult]:
        kinds = await asyncio.to_thread(self.pick, [item.recipient for item in batch])
        results = [injected_result(item.outbox_id, kind) for item, kind in zip(batch, kinds, strict=True)
                   if kind is not None]
        rest = [item for item, kind in zip(batch, kinds, strict=True) if kind is None]
        if rest:
            results += await self.inner.send(rest, deadline, stop)
        return results

    async def aclose(self) -> None:
        await self.inner.aclose()
