"""State for the coupon-family tests (DistributeCoupons, feature adoption): accounts with emails, FAC classes."""

from __future__ import annotations

import itertools
from typing import Any

DEV = "DEV-FAMILY-0001"
ALICE_EXPIRED = "AT-family-alice-expired"
ALICE = "AT-family-alice"  # customer 222: accounts 111 (USD, email), 112 (EUR), 113 (USD, no email), 114..119 USD
BOB = "AT-family-bob"  # customer 333: account 444 (EUR)
CAROL = "AT-family-carol"  # customers 555 and 666, both with a class named TWIN
FEATURE = 7001
FAR = "2099-12-31T23:59:59Z"

SEED: dict[str, Any] = {
    "developer_tokens": [{"token": DEV, "name": "family tests"}],
    "customers": [
        {"id": 222, "name": "Contoso",
         "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD", "email": "owner111@example.com"},
                      {"id": 112, "number": "F112EEEE", "currency_code": "EUR", "email": "owner112@example.com"},
                      {"id": 113, "number": "F113AAAA", "currency_code": "USD"},
                      *[{"id": i, "number": f"F{i}AAAA", "currency_code": "USD", "email": f"owner{i}@example.com"}
                        for i in range(114, 140)]],
         "coupon_classes": [
             {"name": "EXPIRED-D", "amount": 5.0, "currency_code": "USD", "start_date": "2019-01-01T00:00:00Z",
              "end_date": "2020-12-31T23:59:59Z", "expiration_date": "2021-12-31T23:59:59Z", "codes": ["EXD-1"]},
         ]},
        {"id": 333, "name": "Fabrikam", "accounts": [{"id": 444, "number": "F444BBBB", "currency_code": "EUR",
                                                       "email": "owner444@example.com"}],
         "coupon_classes": [{"name": "FAB-F", "amount": 9.0, "currency_code": "EUR", "feature_id": FEATURE,
                             "codes": ["FABF-1", "FABF-2"]}]},
        {"id": 555, "name": "Northwind", "accounts": [{"id": 556, "number": "F556CCCC", "currency_code": "USD"}],
         "coupon_classes": [{"name": "TWIN", "amount": 1.0, "currency_code": "USD", "codes": ["TW-555"]}]},
        {"id": 666, "name": "Southwind", "accounts": [{"id": 667, "number": "F667DDDD", "currency_code": "USD"}],
         "coupon_classes": [{"name": "twin", "amount": 1.0, "currency_code": "USD", "codes": ["TW-666"]}]},
    ],
    "users": [
        {"name": "f-alice", "customers": [222], "access_tokens": [
            {"token": ALICE, "expires_at": FAR}, {"token": ALICE_EXPIRED, "expires_at": "2020-01-01T00:00:00Z"}]},
        {"name": "f-bob", "customers": [333], "access_tokens": [{"token": BOB, "expires_at": FAR}]},
        {"name": "f-carol", "customers": [555, 666], "access_tokens": [{"token": CAROL, "expires_at": FAR}]},
    ],
}

_counter = itertools.count(1)


def new_class(codes: int, *, feature_id: int | None = None, customer: int = 222, prefix: str = "FAM",
              **attrs: Any) -> tuple[str, list[str], dict[str, Any]]:
    """A seed adding a fresh class (plain, or FAC with ``feature_id``): returns (name, its codes, seed)."""
    n = next(_counter)
    name = f"{prefix}-{n}-{'FAC' if feature_id else 'PLAIN'}"
    listed = [f"{name}-{i:04d}" for i in range(codes)]
    cls: dict[str, Any] = {"name": name, "coupon_type": "FeatureAdoption" if feature_id else "Acquisition",
                           "amount": 40.0, "currency_code": "USD", "spend_threshold": 10.0, "active_duration": 30,
                           "start_date": "2020-01-01T00:00:00Z", "end_date": FAR, "expiration_date": FAR,
                           "codes": listed, **attrs}
    if feature_id is not None:
        cls["feature_id"] = feature_id
    names = {222: "Contoso", 333: "Fabrikam", 555: "Northwind", 666: "Southwind"}
    return name, listed, {"customers": [{"id": customer, "name": names[customer], "coupon_classes": [cls]}]}
