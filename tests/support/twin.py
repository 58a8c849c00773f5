"""Helpers for the twin tests: a seed with dated items for the clock, raw admin calls, database snapshots."""

from __future__ import annotations

import copy
from typing import Any

import httpx
from sqlalchemy import func, select, text

from couponsvc.adapters import schema as t
from couponsvc.adapters.db import make_engine
from couponsvc.testing import CouponsvcTwin
from tests.support.seeds import BASE_SEED, CUSTOMER

ADMIN = "X-Couponsvc-Admin"
SUMMER = "SUMMER-2030"  # ends 2030-06-30
ALICE_2031 = "AT-alice-2031"  # expires 2031-01-01

TWIN_SEED: dict[str, Any] = copy.deepcopy(BASE_SEED)
TWIN_SEED["customers"][0]["coupon_classes"].append(
    {"name": SUMMER, "amount": 20.0, "currency_code": "USD", "active_duration": 10,
     "start_date": "2026-01-01T00:00:00Z", "end_date": "2030-06-30T23:59:59Z",
     "expiration_date": "2030-12-31T23:59:59Z", "codes": [f"SUM-{i:04d}" for i in range(50)]})
TWIN_SEED["users"][0]["access_tokens"].append({"token": ALICE_2031, "expires_at": "2031-01-01T00:00:00Z"})
for cls in TWIN_SEED["customers"][0]["coupon_classes"]:
    if cls.get("generate"):
        cls["generate"] = 200  # resets stay quick


def admin(twin: CouponsvcTwin, method: str, path: str, *, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {ADMIN: twin.admin_token if token is None else token}
    return httpx.request(method, f"{twin.url}/_couponsvc/{path}", headers=headers, timeout=60, **kw)


TABLES = ("customers", "accounts", "coupon_classes", "developer_tokens", "users", "user_customers",
          "access_tokens", "dispatches", "outbox", "delivery_attempts", "twin_calls", "twin_faults", "twin_clock")


def snapshot(database_url: str) -> dict[str, Any]:
    """What the database holds, as counts and the values a user would notice (states, listed codes, tokens)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            out: dict[str, Any] = {name: conn.scalar(text(f"SELECT COUNT(*) FROM {name}")) for name in TABLES}
            c, k = t.coupons.c, t.coupon_classes.c
            out["coupons"] = sorted(
                (name, state, int(n)) for name, state, n in conn.execute(
                    select(k.name, c.state, func.count()).join(t.coupon_classes, k.id == c.class_id)
                    .group_by(k.name, c.state)))
            out["listed_codes"] = sorted(conn.scalars(select(c.code).where(c.origin == "seed")))
            out["token_hashes"] = sorted(conn.scalars(select(t.access_tokens.c.token_hash)))
            out["dispatched_to"] = sorted(x for x in conn.scalars(select(c.send_to_email_key)) if x)
            return out
    finally:
        engine.dispose()


def twin_db(twin: CouponsvcTwin) -> str:
    assert twin.database_url is not None
    return twin.database_url


__all__ = ["ADMIN", "ALICE_2031", "CUSTOMER", "SUMMER", "TWIN_SEED", "admin", "snapshot", "twin_db"]
