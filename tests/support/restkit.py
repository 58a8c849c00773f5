"""Raw REST for tests: post JSON with the four headers the official SDK sends."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.seeds import ACCOUNT, ALICE, CUSTOMER, DEV

DISPATCH = "/CustomerBilling/v13/Coupons/Dispatch"


def headers(auth: str | None = ALICE, dev: str | None = DEV) -> dict[str, str]:
    h = {"CustomerId": str(CUSTOMER), "CustomerAccountId": str(ACCOUNT)}
    if auth is not None:
        h["Authorization"] = f"Bearer {auth}".strip()
    if dev is not None:
        h["DeveloperToken"] = dev
    return h


def post(base: str, path: str, body: Any = None, *, raw: bytes | None = None,
         content_type: str = "application/json", auth: str | None = ALICE, dev: str | None = DEV,
         extra_headers: dict[str, str] | None = None) -> httpx.Response:
    h = {**headers(auth, dev), "Content-Type": content_type, **(extra_headers or {})}
    if raw is None:
        import json

        raw = b"" if body is None else json.dumps(body).encode()
    return httpx.post(base + path, content=raw, headers=h, timeout=60)


def dispatch(base: str, emails: Any, customer_id: Any = str(CUSTOMER), class_name: Any = "SPRING-100",
             **kw: Any) -> httpx.Response:
    body: dict[str, Any] = {"SendToEmails": emails, "CustomerId": customer_id, "CouponClassName": class_name}
    return post(base, DISPATCH, {k: v for k, v in body.items() if v is not None}, **kw)


def fault_codes(r: httpx.Response) -> list[int]:
    doc = r.json()
    items = doc.get("Errors") or doc.get("OperationErrors") or []
    return [e["Code"] for e in items]
