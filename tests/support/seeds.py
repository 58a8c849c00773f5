"""The state API tests start from, and helpers to add fresh coupon classes per test."""

from __future__ import annotations

import itertools
from typing import Any

DEV = "DEV-TEST-0001"
DEV_DISABLED = "DEV-TEST-DISABLED"
ALICE = "AT-alice-0001"  # linked to customer 222
ALICE_EXPIRED = "AT-alice-expired"
BOB = "AT-bob-0001"  # linked to customer 333 only
CUSTOMER = 222
OTHER_CUSTOMER = 333
ACCOUNT = 111
CLASS = "SPRING-100"
EXPIRED_CLASS = "WINTER-2020"

BASE_SEED: dict[str, Any] = {
    "developer_tokens": [
        {"token": DEV, "name": "tests"},
        {"token": DEV_DISABLED, "name": "disabled app", "enabled": False},
    ],
    "customers": [
        {
            "id": CUSTOMER, "name": "Contoso Agency",
            "accounts": [{"id": ACCOUNT, "number": "F111AAAA", "currency_code": "USD"}],
            "coupon_classes": [
                {"name": CLASS, "coupon_type": "Acquisition", "amount": 100.0, "currency_code": "USD",
                 "spend_threshold": 25.0, "active_duration": 30,
                 "start_date": "2026-01-01T00:00:00Z", "end_date": "2099-12-31T23:59:59Z",
                 "expiration_date": "2099-12-31T23:59:59Z", "codes": ["SPR-0001", "SPR-0002"],
                 "generate": 5000},
                {"name": EXPIRED_CLASS, "amount": 10.0, "currency_code": "USD",
                 "start_date": "2019-01-01T00:00:00Z", "end_date": "2020-12-31T23:59:59Z",
                 "expiration_date": "2021-12-31T23:59:59Z", "codes": ["WIN-0001"]},
            ],
        },
        {
            "id": OTHER_CUSTOMER, "name": "Fabrikam",
            "accounts": [{"id": 444, "number": "F444BBBB", "currency_code": "EUR"}],
            "coupon_classes": [{"name": "FAB-50", "amount": 50.0, "currency_code": "EUR", "generate": 10}],
        },
    ],
    "users": [
        {"name": "alice", "customers": [CUSTOMER],
         "access_tokens": [{"token": ALICE, "expires_at": "2099-01-01T00:00:00Z"},
                           {"token": ALICE_EXPIRED, "expires_at": "2020-01-01T00:00:00Z"}]},
        {"name": "bob", "customers": [OTHER_CUSTOMER],
         "access_tokens": [{"token": BOB, "expires_at": "2099-01-01T00:00:00Z"}]},
    ],
}

_counter = itertools.count(1)


def new_class_seed(
    codes: int, *, prefix: str = "T", customer: int = CUSTOMER, **attrs: Any
) -> tuple[str, dict[str, Any]]:
    """A seed adding a fresh class with ``codes`` listed codes (in load order); returns (name, seed)."""
    n = next(_counter)
    name = f"{prefix}-CLASS-{n}"
    cls: dict[str, Any] = {"name": name, "amount": 5.0, "currency_code": "USD",
                           "codes": [f"{name}-{i:05d}" for i in range(codes)], **attrs}
    seed = {"customers": [{"id": customer, "name": "Contoso Agency" if customer == CUSTOMER else "Fabrikam",
                           "coupon_classes": [cls]}]}
    return name, seed
