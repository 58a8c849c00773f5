"""RedeemCoupon's rules in the service layer, with a clock the test controls (SPEC 5): the order of the checks,
the redemption's effects (usable-until date, balance), and GetCouponInfo's Status over time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from couponsvc.adapters import admin
from couponsvc.adapters import schema as t
from couponsvc.bootstrap import Container
from couponsvc.domain.codes import NewCodes
from couponsvc.domain.errors import ServiceFault
from couponsvc.service_layer.auth import Principal
from couponsvc.service_layer.coupons import (
    GetCouponInfoRequest,
    RedeemCouponRequest,
    get_coupon_info,
    redeem_coupon,
)
from tests.support.service import make_container

NOW = datetime(2026, 6, 15, 12, 0, 0)
ALICE = Principal(0, frozenset({222}))

SEED: dict[str, Any] = {
    "customers": [
        {"id": 222, "name": "Contoso",
         "accounts": [{"id": 111, "currency_code": "USD"}, {"id": 112, "currency_code": "EUR"}],
         "coupon_classes": [
             {"name": "LONG", "amount": 40.0, "currency_code": "USD", "spend_threshold": 10.0, "active_duration": 30,
              "start_date": "2026-01-01T00:00:00Z", "expiration_date": "2026-12-31T00:00:00Z",
              "codes": ["L-1", "L-2", "L-3"]},
             {"name": "CAPPED", "amount": 40.0, "currency_code": "USD", "active_duration": 30,
              "start_date": "2026-01-01T00:00:00Z", "expiration_date": "2026-06-20T00:00:00Z", "codes": ["C-1"]},
             {"name": "FOREVER", "percent_off": 5.0, "codes": ["F-1"]},
             {"name": "UNTIL-END", "amount": 1.0, "currency_code": "EUR", "expiration_date": "2026-09-01T00:00:00Z",
              "codes": ["U-1"]},
             {"name": "ENDED", "amount": 1.0, "currency_code": "EUR", "start_date": "2025-01-01T00:00:00Z",
              "end_date": "2026-01-01T00:00:00Z", "codes": ["E-1"]},
         ]},
        {"id": 333, "name": "Fabrikam", "accounts": [{"id": 444, "currency_code": "USD"}]},
    ],
}


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Container]:
    c = make_container(tmp_path, SEED)
    with c.uow.write() as store:  # a code with an expiry of its own, before its class's
        class_id = store.conn.scalar(select(t.coupon_classes.c.id).where(t.coupon_classes.c.name == "LONG"))
        admin.insert_codes(store.conn, class_id, NewCodes(["L-OWN"], [datetime(2026, 6, 25)]), "import", NOW)
    yield c
    c.close()


def redeem(c: Container, account: int, code: str, at: datetime = NOW) -> datetime:
    return redeem_coupon(c.uow, lambda: at, ALICE, RedeemCouponRequest(account, code))


def refused(c: Container, account: int | str, code: str | None, at: datetime = NOW) -> int:
    with pytest.raises(ServiceFault) as caught:
        redeem_coupon(c.uow, lambda: at, ALICE, RedeemCouponRequest(account, code))
    return caught.value.error.code


def stored(c: Container, code: str) -> tuple[Any, ...]:
    k = t.coupons.c
    with c.uow.read() as store:
        return tuple(store.conn.execute(select(k.state, k.redeemed_account_id, k.redemption_date, k.usable_until,
                                               k.balance).where(k.code == code)).one())


def test_redemption_effects(svc: Container) -> None:
    assert redeem(svc, 111, "L-1") == NOW
    assert stored(svc, "L-1") == ("redeemed", 111, NOW, NOW + timedelta(days=30), 40.0)


@pytest.mark.parametrize(("code", "until"), [
    ("C-1", datetime(2026, 6, 20)),  # now + 30 days would pass the class ExpirationDate
    ("L-OWN", datetime(2026, 6, 25)),  # nor past the code's own expiry
    ("F-1", None),  # no ActiveDuration and no ExpirationDate: usable with no end
    ("U-1", datetime(2026, 9, 1)),  # no ActiveDuration: usable until the class ExpirationDate
])
def test_usable_until_never_passes_an_expiry(svc: Container, code: str, until: datetime | None) -> None:
    redeem(svc, 112 if code == "U-1" else 111, code)
    assert stored(svc, code)[3] == until


def test_percent_off_coupon_has_no_balance_and_fits_any_currency(svc: Container) -> None:
    redeem(svc, 112, "F-1")
    assert stored(svc, "F-1")[4] is None


@pytest.mark.parametrize(("account", "code", "at", "expected"), [
    (111, "L-1", NOW, None),
    (111, "L-1", datetime(2025, 12, 31), 3009),  # before the class StartDate
    (111, "L-1", datetime(2027, 1, 1), 3008),  # after the class ExpirationDate
    (111, "L-OWN", datetime(2026, 6, 26), 3008),  # after the code's own expiry
    (112, "E-1", NOW, 3008),  # past the class EndDate
    (112, "L-1", NOW, 3010),
    (112, "L-1", datetime(2027, 1, 1), 3008),  # expiry before currency
    (111, "NOPE", NOW, 3006),
    (444, "NOPE", NOW, 106),  # the account is checked before the code
    (999, "NOPE", NOW, 208),
    (999, "L-1", NOW, 208),
    (0, "L-1", NOW, 201),
    ("x", "L-1", NOW, 201),
    (111, None, NOW, 203),
    (111, " \t ", NOW, 203),
])
def test_checks_and_their_order(svc: Container, account: int | str, code: str | None, at: datetime,
                                expected: int | None) -> None:
    if expected is None:
        assert redeem(svc, int(account), str(code), at) == at
    else:
        assert refused(svc, account, code, at) == expected
        assert stored(svc, "L-1")[0] == "available"


def test_already_redeemed_comes_before_every_other_refusal(svc: Container) -> None:
    redeem(svc, 111, "L-2")
    assert refused(svc, 111, "L-2") == 3007
    assert refused(svc, 112, "L-2", datetime(2030, 1, 1)) == 3007  # expired and another currency too
    assert stored(svc, "L-2")[:3] == ("redeemed", 111, NOW)  # the first redemption stands


def test_code_is_trimmed_but_case_sensitive(svc: Container) -> None:
    assert refused(svc, 111, "l-3") == 3006
    assert redeem(svc, 111, "  L-3 ") == NOW


def test_coupon_info_status_follows_the_clock(svc: Container) -> None:
    redeem(svc, 111, "L-1")
    redeem(svc, 112, "F-1", NOW + timedelta(hours=1))
    later = NOW + timedelta(days=30, seconds=1)

    def statuses(at: datetime) -> list[tuple[int, int]]:
        infos = get_coupon_info(svc.uow, lambda: at, ALICE, GetCouponInfoRequest("222"))
        return [(i.account_id, i.status) for i in infos]

    assert statuses(NOW + timedelta(days=1)) == [(111, 1), (112, 1)]
    assert statuses(later) == [(111, 2), (112, 1)]  # L-1's 30 days are over; F-1 has no end


def test_coupon_info_refusals(svc: Container) -> None:
    for request, code in ((None, 100), (GetCouponInfoRequest(None), 201), (GetCouponInfoRequest("0"), 201),
                          (GetCouponInfoRequest("333"), 106), (GetCouponInfoRequest("99999"), 106)):
        with pytest.raises(ServiceFault) as caught:
            get_coupon_info(svc.uow, lambda: NOW, ALICE, request)
        assert caught.value.error.code == code, request
    with pytest.raises(ServiceFault) as caught:
        redeem_coupon(svc.uow, lambda: NOW, ALICE, None)
    assert caught.value.error.code == 100
