"""Throttling (117 CallRateExceeded): per user, per developer token, and of code guessing.

``admit`` runs right after authentication, before the request is parsed further or anything changes.
The call-rate buckets (``COUPONSVC_THROTTLE_USER``, ``COUPONSVC_THROTTLE_DEVELOPER_TOKEN``) count every
admitted call.  The code-guess bucket (``COUPONSVC_THROTTLE_CODE_GUESSES``) counts 3006 CouponCodeNotFound
answers to one user; once full, that user's calls of the operations that take a coupon code are refused
until the oldest guess leaves the window.  With no limit configured for a call, nothing is looked up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from couponsvc.domain.errors import Err, ServiceFault
from couponsvc.domain.throttle import Bucket, retry_after
from couponsvc.domain.tokens import token_hash
from couponsvc.service_layer import metrics
from couponsvc.service_layer.auth import Credentials, Principal
from couponsvc.settings import Settings

if TYPE_CHECKING:
    from couponsvc.adapters.throttle_store import ThrottleStore

#: operations that answer 3006 for a code that does not exist: an oracle for guessing codes
GUESSABLE = frozenset({"RedeemCoupon", "ClaimFeatureAdoptionCoupons"})

_KIND_TEXT = {
    "user": "this user",
    "developer_token": "this developer token",
    "code_guesses": "coupon codes that do not exist, for this user",
}


class Throttle:
    def __init__(self, settings: Settings, store_factory: Callable[[], ThrottleStore]) -> None:
        self.settings = settings
        self._factory = store_factory
        self._store: ThrottleStore | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> ThrottleStore:
        """Made on first use: a server with no limit for any call never connects to Redis."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._factory()
        return self._store

    def _guess_bucket(self, principal: Principal) -> Bucket | None:
        limit = self.settings.throttle_code_guesses
        return None if limit is None else Bucket(f"guess:{principal.user_id}", "code_guesses", limit, count=False)

    def buckets(self, creds: Credentials, principal: Principal, operation: str) -> list[Bucket]:
        s = self.settings
        out = []
        if s.throttle_user is not None:
            out.append(Bucket(f"user:{principal.user_id}", "user", s.throttle_user))
        if s.throttle_developer_token is not None and creds.developer_token:
            out.append(Bucket("dev:" + token_hash(creds.developer_token.strip())[:40], "developer_token",
                              s.throttle_developer_token))
        guess = self._guess_bucket(principal) if operation in GUESSABLE else None
        if guess is not None:
            out.append(guess)
        return out

    def admit(self, creds: Credentials, principal: Principal, operation: str) -> None:
        """Return when the call may run; 117 (with the seconds until a slot frees) when it may not."""
        buckets = self.buckets(creds, principal, operation)
        if not buckets:
            return
        refusal = self.store.admit(buckets)
        if refusal is None:
            return
        metrics.THROTTLED.labels(limit=refusal.kind).inc()
        seconds = retry_after(refusal.wait)
        raise ServiceFault(Err.CALL_RATE_EXCEEDED,
                           f"Too many calls from {_KIND_TEXT[refusal.kind]}; retry after {seconds} s",
                           retry_after=seconds)

    @contextmanager
    def counting_guesses(self, principal: Principal, operation: str) -> Iterator[Callable[[Any], None]]:
        """Run the operation; a 3006 answer of a code-taking operation is written to the user's guess log.

        Yields a function to call with the operation's result: per-item 3006 answers (the PartialErrors of
        ClaimFeatureAdoptionCoupons) count one guess each, as a whole-call 3006 does."""
        def count_items(result: Any) -> None:
            if operation not in GUESSABLE:
                return
            items = getattr(result, "partial_errors", None) or []
            misses = sum(1 for errors in items if isinstance(errors, list)
                         for e in errors if getattr(e, "code", None) == Err.COUPON_CODE_NOT_FOUND)
            bucket = self._guess_bucket(principal) if misses else None
            for _ in range(misses if bucket is not None else 0):
                assert bucket is not None
                self.store.record(bucket)

        try:
            yield count_items
        except ServiceFault as fault:
            if fault.error.code == Err.COUPON_CODE_NOT_FOUND and operation in GUESSABLE:
                bucket = self._guess_bucket(principal)
                if bucket is not None:
                    self.store.record(bucket)
            raise

    def clear(self) -> None:
        """Forget every call counted (the twin's reset): the store's rows, or Redis keys of this prefix.  A
        database store not made yet has counted nothing in this process; its tables go with the reset."""
        if self._store is not None or self.settings.redis_url:
            self.store.clear()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
