"""Delivering the outbox: right after a dispatch (bounded time) and by workers (leases, retries, backoff).

At-least-once: a message is marked sent only after the relay accepted it, so a crash between the two
sends it again later under the same Message-ID.  Never twice at once: a message is only sent by the
holder of its lease, and the lease is renewed while a batch is in flight.

Nothing spins: every attempt that fails (a relay fault, a message that cannot be built) is counted and
backed off; messages not attempted because the relay refused the session are deferred with backoff;
messages not attempted because time ran out or a stop was asked for go back to the queue as they were.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from couponsvc.adapters import outbox
from couponsvc.adapters.mail.message import DEFAULT_TEMPLATE, DISTRIBUTION_TEMPLATE, CouponFacts
from couponsvc.adapters.mail.prepared import coupon_message
from couponsvc.adapters.mail.transports import MailTransport, Outgoing
from couponsvc.adapters.outbox import ClaimedMessage, Settled
from couponsvc.domain.delivery import DeliveryResult, Outcome, RetryPolicy, Stage, stops_batch
from couponsvc.service_layer import metrics
from couponsvc.service_layer.relay import RelayMonitor
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
    #: batches in flight at once per worker: while one is sent, the next is claimed and the last one settled,
    #: so the relay connections never wait on the database
    pipeline: int = 2
    policy: RetryPolicy = field(default_factory=RetryPolicy)


def build_one(m: ClaimedMessage, sender: str) -> EmailMessage:
    facts = CouponFacts(m.code, m.class_name, m.amount, m.currency_code, m.percent_off, m.spend_threshold,
                        m.active_duration, m.redeem_by, m.account_number)
    if m.kind == "distribution":  # DistributeCoupons: "a coupon was added to your account"
        template, base = None, DISTRIBUTION_TEMPLATE
    else:
        template, base = m.template, DEFAULT_TEMPLATE
    # the class's message is built once and each coupon's bytes assembled from it (adapters/mail/prepared.py)
    return coupon_message(template=template, facts=facts, message_id=m.message_id, sender=sender,
                          recipient=m.recipient, date=m.created_at, base=base)


def build_outgoing(claimed: Sequence[ClaimedMessage], sender: str, now: datetime | None = None) -> list[Outgoing]:
    """The batch to send; each message is built when the transport gets to it (off the event loop), so a
    call whose time runs out builds only what it sends, and one bad message fails alone."""
    return [Outgoing(m.outbox_id, m.recipient, build=functools.partial(build_one, m, sender)) for m in claimed]


class Deliverer:
    def __init__(self, uow: UnitOfWork, transport: MailTransport, clock: Callable[[], datetime],
                 config: DeliveryConfig, name: str | None = None, relay: RelayMonitor | None = None) -> None:
        self.uow = uow
        self.transport = transport
        self.clock = clock
        self.config = config
        self.name = name or worker_name()
        self.relay = relay

    # --- database steps (run in threads) ----------------------------------------------------------
    def _claim_due(self) -> list[ClaimedMessage]:
        with self.uow.write() as store:
            return outbox.claim_due(store.conn, self.name, self.clock(), self.config.lease, self.config.batch_size)

    def _claim_dispatch(self, dispatch_id: int, owner: str) -> list[ClaimedMessage]:
        with self.uow.write() as store:
            return outbox.claim_dispatch(store.conn, owner, dispatch_id, self.clock(), self.config.lease)

    def _settle(self, owner: str, claimed: Sequence[ClaimedMessage], results: Sequence[DeliveryResult]) -> Settled:
        """Record the results; put back what was not attempted (deferred with backoff when the relay refused
        the session, else released as it was); and, when due, the relay's state -- all in one transaction."""
        attempted = {r.outbox_id for r in results}
        untried = [m for m in claimed if m.outbox_id not in attempted]
        refusal = next((r for r in results if stops_batch(r)), None)
        policy = self.config.policy
        with self.uow.write() as store:
            now = self.clock()
            settled = outbox.settle(store.conn, owner, claimed, results, now, policy)
            if refusal is not None and untried:
                # the rest waits as long as the message that found the relay refusing (its own backoff)
                prober = next(m for m in claimed if m.outbox_id == refusal.outbox_id)
                delay = policy.delay(prober.attempts + 1)
                reason = refusal.detail if refusal.smtp_code is None else f"{refusal.smtp_code} {refusal.detail}"
                given_up = outbox.defer(store.conn, owner, untried, now, delay, reason, policy)
                settled = Settled(settled.sent, settled.retried + len(untried) - len(given_up),
                                  settled.failed_coupons + given_up)
            else:
                outbox.release(store.conn, owner, [m.outbox_id for m in untried], now)
            if self.relay is not None:
                self.relay.write_due(store.conn, now)
            return settled

    def _renew(self, owner: str, ids: Sequence[int]) -> None:
        with self.uow.write() as store:
            outbox.renew(store.conn, owner, ids, self.clock(), self.config.lease)

    # --- sending ------------------------------------------------------------------------------------
    async def _deliver(self, owner: str, claimed: list[ClaimedMessage], deadline: float | None,
                       stop: asyncio.Event | None = None) -> Settled:
        ids = [m.outbox_id for m in claimed]
        results: list[DeliveryResult] = []
        renewer = asyncio.create_task(self._keep_leases(owner, ids))
        try:
            batch = build_outgoing(claimed, self.config.sender)
            if stop is None:
                results = await self.transport.send(batch, deadline)
            else:
                results = await self.transport.send(batch, deadline, stop)
            metrics.count_replies(results)
        except Exception as exc:  # a transport bug: count an attempt for each message rather than spin
            log.exception("delivery by %s failed", owner)
            results = [DeliveryResult(m.outbox_id, Outcome.TEMPORARY, None,
                                      f"delivery failed: {type(exc).__name__}: {exc}"[:500], Stage.NONE)
                       for m in claimed]
        finally:
            renewer.cancel()
            try:
                await renewer
            except asyncio.CancelledError:
                pass
            if self.relay is not None:
                self.relay.observe(results)
            settled = await asyncio.to_thread(self._settle, owner, claimed, results)
        return settled

    async def _keep_leases(self, owner: str, ids: list[int]) -> None:
        interval = max(0.5, self.config.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self._renew, owner, ids)

    async def deliver_dispatch(self, dispatch_id: int, tracking_id: str, timeout: float,
                               deadline: float | None = None) -> list[int]:
        """Send a dispatch's messages now, for at most ``timeout`` seconds and never past ``deadline`` (loop
        time, e.g. counted from the start of the request); returns the coupon ids refused permanently (they
        are available again).  The rest is sent, or left queued for the workers.  No send starts after the
        deadline; one in flight is cut off at it, and the results are then recorded in one transaction."""
        owner = call_lease_owner(tracking_id)
        claimed = await asyncio.to_thread(self._claim_dispatch, dispatch_id, owner)
        if not claimed:
            return []
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        if deadline is not None:
            until = min(until, deadline)
        if timeout <= 0 or until <= loop.time():
            await asyncio.to_thread(self._settle, owner, claimed, [])
            return []
        settled = await self._deliver(owner, claimed, until)
        log.debug("%s: %d messages, %d sent, %d refused; settled %.0f ms after the deadline", owner, len(claimed),
                  settled.sent, len(settled.failed_coupons), (loop.time() - until) * 1000)
        return settled.failed_coupons

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim one batch of due messages and deliver it; returns how many were claimed.  Once ``stop`` is
        set no further send starts, sends in flight get a short grace, and the rest is released."""
        if stop is not None and stop.is_set():
            return 0
        claimed = await asyncio.to_thread(self._claim_due)
        if claimed:
            await self._deliver(self.name, claimed, None, stop)
        return len(claimed)

    async def run_until_idle(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until nothing is due (messages waiting for a later retry are left for later)."""
        async def drain() -> None:
            while not (stop is not None and stop.is_set()) and await self.run_once(stop):
                pass

        await asyncio.gather(*(drain() for _ in range(max(1, self.config.pipeline))))

    async def run_forever(self, stop: asyncio.Event) -> None:
        log.info("delivery worker %s started", self.name)
        await asyncio.gather(*(self._loop(stop) for _ in range(max(1, self.config.pipeline))))
        log.info("delivery worker %s stopped", self.name)

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                claimed = await self.run_once(stop)
            except Exception:  # a database hiccup must not kill the worker
                log.exception("delivery worker %s: batch failed; retrying shortly", self.name)
                claimed = 0
            if claimed == 0:
                try:
                    await asyncio.wait_for(stop.wait(), self.config.poll_interval)
                except TimeoutError:
                    pass
