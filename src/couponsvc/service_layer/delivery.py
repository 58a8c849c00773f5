"""Delivering the outbox: right after a dispatch (bounded time) and by workers (leases, retries, backoff).

At-least-once: a message is marked sent only after the relay accepted it, so a crash between the two
sends it again later under the same Message-ID.  Never twice at once: a message is only sent by the
holder of its lease, and the lease is renewed while a batch is in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from couponsvc.adapters import outbox
from couponsvc.adapters.mail.message import CouponFacts, build_message, render
from couponsvc.adapters.mail.transports import MailTransport, Outgoing
from couponsvc.adapters.outbox import ClaimedMessage, Settled
from couponsvc.domain.delivery import DeliveryResult, RetryPolicy
from couponsvc.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def worker_name(kind: str = "worker") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def call_lease_owner(tracking_id: str) -> str:
    """The lease owner of the messages a DispatchCoupons call writes (it delivers them itself)."""
    return f"call:{tracking_id}"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    sender: str = "coupons@couponsvc.localhost"
    lease: timedelta = timedelta(seconds=30)
    batch_size: int = 200
    poll_interval: float = 0.5
    policy: RetryPolicy = field(default_factory=RetryPolicy)


def build_outgoing(claimed: Sequence[ClaimedMessage], sender: str, now: datetime) -> list[Outgoing]:
    out = []
    for m in claimed:
        facts = CouponFacts(m.code, m.class_name, m.amount, m.currency_code, m.percent_off, m.spend_threshold,
                            m.active_duration, m.redeem_by)
        parts = render(m.template, facts)
        msg = build_message(message_id=m.message_id, sender=sender, recipient=m.recipient, parts=parts,
                            date=m.created_at)
        out.append(Outgoing(m.outbox_id, m.recipient, msg, msg.as_bytes()))
    return out


class Deliverer:
    def __init__(self, uow: UnitOfWork, transport: MailTransport, clock: Callable[[], datetime],
                 config: DeliveryConfig, name: str | None = None) -> None:
        self.uow = uow
        self.transport = transport
        self.clock = clock
        self.config = config
        self.name = name or worker_name()

    # --- database steps (run in threads) ----------------------------------------------------------
    def _claim_due(self) -> list[ClaimedMessage]:
        with self.uow.write() as store:
            return outbox.claim_due(store.conn, self.name, self.clock(), self.config.lease, self.config.batch_size)

    def _claim_dispatch(self, dispatch_id: int, owner: str) -> list[ClaimedMessage]:
        with self.uow.write() as store:
            return outbox.claim_dispatch(store.conn, owner, dispatch_id, self.clock(), self.config.lease)

    def _settle(self, owner: str, claimed: Sequence[ClaimedMessage], results: Sequence[DeliveryResult]) -> Settled:
        with self.uow.write() as store:
            settled = outbox.settle(store.conn, owner, claimed, results, self.clock(), self.config.policy)
            attempted = {r.outbox_id for r in results}
            outbox.release(store.conn, owner, [m.outbox_id for m in claimed if m.outbox_id not in attempted],
                           self.clock())
            return settled

    def _renew(self, owner: str, ids: Sequence[int]) -> None:
        with self.uow.write() as store:
            outbox.renew(store.conn, owner, ids, self.clock(), self.config.lease)

    # --- sending ------------------------------------------------------------------------------------
    async def _deliver(self, owner: str, claimed: list[ClaimedMessage], deadline: float | None) -> Settled:
        ids = [m.outbox_id for m in claimed]
        results: list[DeliveryResult] = []
        renewer = asyncio.create_task(self._keep_leases(owner, ids))
        try:
            batch = await asyncio.to_thread(build_outgoing, claimed, self.config.sender, self.clock())
            results = await self.transport.send(batch, deadline)
        finally:
            renewer.cancel()
            try:
                await renewer
            except asyncio.CancelledError:
                pass
            settled = await asyncio.to_thread(self._settle, owner, claimed, results)
        return settled

    async def _keep_leases(self, owner: str, ids: list[int]) -> None:
        interval = max(0.5, self.config.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self._renew, owner, ids)

    async def deliver_dispatch(self, dispatch_id: int, tracking_id: str, timeout: float) -> list[int]:
        """Send a dispatch's messages now, for at most ``timeout`` seconds; returns the coupon ids refused
        permanently (they are available again).  The rest is sent, or left queued for the workers."""
        owner = call_lease_owner(tracking_id)
        claimed = await asyncio.to_thread(self._claim_dispatch, dispatch_id, owner)
        if not claimed:
            return []
        if timeout <= 0:
            await asyncio.to_thread(self._settle, owner, claimed, [])
            return []
        deadline = asyncio.get_running_loop().time() + timeout
        settled = await self._deliver(owner, claimed, deadline)
        return settled.failed_coupons

    async def run_once(self) -> int:
        """Claim one batch of due messages and deliver it; returns how many were claimed."""
        claimed = await asyncio.to_thread(self._claim_due)
        if claimed:
            await self._deliver(self.name, claimed, None)
        return len(claimed)

    async def run_forever(self, stop: asyncio.Event) -> None:
        log.info("delivery worker %s started", self.name)
        while not stop.is_set():
            try:
                claimed = await self.run_once()
            except Exception:  # a database or template hiccup must not kill the worker
                log.exception("delivery worker %s: batch failed; retrying shortly", self.name)
                claimed = 0
            if claimed == 0:
                try:
                    await asyncio.wait_for(stop.wait(), self.config.poll_interval)
                except TimeoutError:
                    pass
        log.info("delivery worker %s stopped", self.name)
