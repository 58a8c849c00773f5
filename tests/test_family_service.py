"""DistributeCoupons, CheckFeatureAdoptionCouponEligibility and ClaimFeatureAdoptionCoupons in the service layer
on real SQLite and PostgreSQL databases (SPEC 5.1): order of checks, index alignment, states, the database's
own guard of one coupon of a class per account, and the notifications written to the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from couponsvc.adapters import schema as t
from couponsvc.bootstrap import Container
from couponsvc.domain.errors import OperationError, ServiceFault
from couponsvc.domain.search import RawPredicate
from couponsvc.service_layer.auth import Credentials, Principal
from couponsvc.service_layer.coupons import GetCouponInfoRequest, SearchCouponsRequest, get_coupon_info, search_coupons
from couponsvc.service_layer.distribute import DistributeCouponsRequest, DistributeOutcome, distribute_coupons
from couponsvc.service_layer.feature_adoption import (
    AccountCouponPair,
    CheckEligibilityRequest,
    ClaimCouponsRequest,
    ClaimOutcome,
    check_eligibility,
    claim_coupons,
    set_account_email,
    set_class_feature,
)
from tests.support.databases import database_url
from tests.support.family import ALICE, CAROL, DEV, FEATURE, SEED, new_class
from tests.support.service import load, make_container


@pytest.fixture(params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Container]:
    with database_url(request.param, tmp_path) as url:
        c = make_container(tmp_path, SEED, DATABASE_URL=url, DELIVERY_TIMEOUT="0")
        yield c
        c.close()


def who(c: Container, token: str = ALICE) -> Principal:
    return c.authenticate(Credentials(DEV, token))


def distribute(c: Container, ids: list[Any] | None, cls: str | None, feature: Any = None, notify: bool = False,
               token: str = ALICE) -> DistributeOutcome:
    req = DistributeCouponsRequest(ids, cls, feature, notify)
    return distribute_coupons(c.uow, c.clock, c.dispatch_config, who(c, token), req, "tid-family")


def claim(c: Container, pairs: list[tuple[Any, str | None]], token: str = ALICE) -> ClaimOutcome:
    req = ClaimCouponsRequest([AccountCouponPair(k, v) for k, v in pairs])
    return claim_coupons(c.uow, c.clock, who(c, token), req)


def eligible(c: Container, ids: list[Any], feature: Any = FEATURE, token: str = ALICE) -> list[int]:
    return check_eligibility(c.uow, c.clock, who(c, token), CheckEligibilityRequest(feature, ids))


def codes(errors: list[list[OperationError]]) -> list[list[int]]:
    return [[e.code for e in item] for item in errors]


def fault(fn: Any) -> tuple[int, str | None]:
    with pytest.raises(ServiceFault) as exc:
        fn()
    return exc.value.error.code, exc.value.details


def coupon_rows(c: Container, class_name: str) -> list[Any]:
    with c.engine.connect() as conn:
        return list(conn.execute(
            select(t.coupons).join(t.coupon_classes, t.coupon_classes.c.id == t.coupons.c.class_id)
            .where(t.coupon_classes.c.name == class_name).order_by(t.coupons.c.id)))


def add(c: Container, *args: Any, **kw: Any) -> tuple[str, list[str]]:
    name, listed, seed = new_class(*args, **kw)
    load(c, seed)
    return name, listed


def test_whole_call_refusals_in_order(svc: Container) -> None:
    name, _ = add(svc, 3, feature_id=FEATURE)
    assert fault(lambda: distribute_coupons(svc.uow, svc.clock, svc.dispatch_config, who(svc), None, "t"))[0] == 100
    assert fault(lambda: distribute(svc, None, None)) == (203, "ClassName")
    assert fault(lambda: distribute(svc, None, "  ")) == (203, "ClassName")
    assert fault(lambda: distribute(svc, None, name)) == (206, "AccountIds")
    assert fault(lambda: distribute(svc, [], name)) == (206, "AccountIds")
    assert fault(lambda: distribute(svc, [111] * 1001, name))[0] == 4603
    assert fault(lambda: distribute(svc, ["x"], name))[0] == 201
    assert fault(lambda: distribute(svc, [2**31], name))[0] == 201
    assert fault(lambda: distribute(svc, [111], "NO-SUCH-CLASS")) == (3000, "NO-SUCH-CLASS")
    assert fault(lambda: distribute(svc, [111], "FAB-F")) == (3000, "FAB-F")  # bob's class: alice cannot see it
    assert fault(lambda: distribute(svc, [556], "TWIN", token=CAROL))[0] == 201  # one name, two of carol's customers
    assert fault(lambda: distribute(svc, [111], "EXPIRED-D")) == (3011, "EXPIRED-D")
    assert fault(lambda: distribute(svc, [111], name, feature=FEATURE + 1))[0] == 201
    assert [r.state for r in coupon_rows(svc, name)] == ["available"] * 3  # nothing changed


def test_per_account_errors_are_index_aligned(svc: Container) -> None:
    name, listed = add(svc, 3, feature_id=FEATURE)
    out = distribute(svc, [111, 999999, 444, 111, 112, None, 113, 114, 115], name, feature=FEATURE)
    assert codes(out.partial_errors) == [[], [208], [208], [3002], [3010], [208], [], [], [3004]]
    assert [e.details for e in out.partial_errors[1] + out.partial_errors[2]] == [None, None]
    rows = coupon_rows(svc, name)
    # oldest coupons first, in request order; a FAC class leaves them distributed, nobody redeemed anything
    assert [(r.code, r.state, r.distributed_account_id, r.redeemed_account_id) for r in rows] == [
        (listed[0], "distributed", 111, None), (listed[1], "distributed", 113, None),
        (listed[2], "distributed", 114, None)]
    # a second call: every account already holds one (3012), the unknown one is still 208
    again = distribute(svc, [113, 111, 888], name)
    assert codes(again.partial_errors) == [[3012], [3012], [208]]


def test_an_unauthorized_account_is_answered_exactly_like_a_missing_one(svc: Container) -> None:
    name, _ = add(svc, 2)
    foreign, missing = distribute(svc, [444], name), distribute(svc, [4444], name)
    assert foreign.partial_errors == missing.partial_errors
    assert [e.code for e in foreign.partial_errors[0]] == [208]


def test_plain_class_redeems_into_the_account(svc: Container) -> None:
    name, listed = add(svc, 2, active_duration=10)
    out = distribute(svc, [111], name)
    assert codes(out.partial_errors) == [[]]
    (first, second) = coupon_rows(svc, name)
    assert (first.state, first.redeemed_account_id, first.distributed_account_id, first.balance) == (
        "redeemed", 111, 111, 40.0)
    assert first.usable_until - first.redemption_date == timedelta(days=10)
    assert second.state == "available"
    assert codes(distribute(svc, [111], name).partial_errors) == [[3012]]
    infos = get_coupon_info(svc.uow, svc.clock, who(svc), GetCouponInfoRequest(222))
    mine = [i for i in infos if i.coupon_id == first.id]
    assert mine and mine[0].claim_date is None and mine[0].feature_id is None


def test_an_account_holding_a_redeemed_coupon_of_the_class_gets_3012(svc: Container) -> None:
    from couponsvc.service_layer.coupons import RedeemCouponRequest, redeem_coupon

    name, listed = add(svc, 3)
    redeem_coupon(svc.uow, svc.clock, who(svc), RedeemCouponRequest(111, listed[2]))
    assert codes(distribute(svc, [111, 113], name).partial_errors) == [[3012], []]


def test_redeem_coupon_cannot_take_a_distributed_coupon(svc: Container) -> None:
    from couponsvc.service_layer.coupons import RedeemCouponRequest, redeem_coupon

    name, listed = add(svc, 1, feature_id=FEATURE)
    distribute(svc, [111], name)
    for account in (111, 113):  # neither the holder nor anybody else: only the claim redeems it
        assert fault(lambda a=account: redeem_coupon(svc.uow, svc.clock, who(svc),
                                                     RedeemCouponRequest(a, listed[0])))[0] == 3006
    (row,) = coupon_rows(svc, name)
    assert (row.state, row.redeemed_account_id) == ("distributed", None)
    assert [a for a, _ in claim(svc, [(111, listed[0])]).claimed] == [111]


def test_the_database_holds_one_coupon_of_a_class_per_account(svc: Container) -> None:
    name, listed = add(svc, 2, feature_id=FEATURE)
    distribute(svc, [111], name)
    with pytest.raises(IntegrityError), svc.engine.begin() as conn:
        conn.execute(update(t.coupons).where(t.coupons.c.code == listed[1])
                     .values(state="distributed", distributed_account_id=111))
    with pytest.raises(IntegrityError), svc.engine.begin() as conn:  # distributed always names an account
        conn.execute(update(t.coupons).where(t.coupons.c.code == listed[1]).values(state="distributed"))


def test_eligibility_and_claim(svc: Container) -> None:
    name, listed = add(svc, 4, feature_id=FEATURE)
    other, other_codes = add(svc, 1, feature_id=FEATURE + 5)
    distribute(svc, [111, 113, 114], name)
    distribute(svc, [115], other)
    # unknown, foreign (bob's 444), repeated and not-holding accounts are simply left out; request order kept
    assert eligible(svc, ["114", 444, 999, 111, 114, 115, 116]) == [114, 111]
    assert eligible(svc, [115], feature=FEATURE + 5) == [115]
    assert eligible(svc, [111], feature=1) == []
    out = claim(svc, [(111, listed[0]), (111, listed[0]), (113, listed[0]), (444, "FABF-1"), (999, listed[1]),
                      (113, "NOPE"), (114, listed[2]), (113, listed[1]), (115, other_codes[0])])
    assert codes(out.partial_errors) == [[], [3007], [3006], [208], [208], [3006], [], [], []]
    assert [a for a, _ in out.claimed] == [111, 114, 113, 115]
    assert eligible(svc, [111, 113, 114, 115], feature=FEATURE) == []
    rows = {r.code: r for r in coupon_rows(svc, name)}
    assert rows[listed[0]].state == "redeemed" and rows[listed[0]].claim_date == out.claimed[0][1]
    assert rows[listed[0]].redeemed_account_id == 111 and rows[listed[0]].balance == 40.0
    infos = {i.coupon_id: i for i in get_coupon_info(svc.uow, svc.clock, who(svc), GetCouponInfoRequest(222))}
    info = infos[rows[listed[0]].id]
    assert (info.feature_id, info.claim_date, info.account_id) == (FEATURE, out.claimed[0][1], 111)
    assert rows[listed[3]].id not in infos  # never distributed: not in GetCouponInfo


def test_claim_refusals(svc: Container) -> None:
    name, listed = add(svc, 2, feature_id=FEATURE)
    plain, plain_codes = add(svc, 1)
    distribute(svc, [111], name)
    distribute(svc, [113], plain)
    assert fault(lambda: claim_coupons(svc.uow, svc.clock, who(svc), ClaimCouponsRequest(None)))[0] == 206
    assert fault(lambda: claim(svc, []))[0] == 206
    assert fault(lambda: claim(svc, [(111, "x")] * 101))[0] == 4603
    assert fault(lambda: claim(svc, [("abc", "x")]))[0] == 201
    out = claim(svc, [(111, listed[1]), (113, plain_codes[0]), (111, None), (111, " \t")])
    assert codes(out.partial_errors) == [[3006], [3006], [3006], [3006]]  # never distributed / plain / empty
    with svc.engine.begin() as conn:  # the class expires
        conn.execute(update(t.coupon_classes).where(t.coupon_classes.c.name == name)
                     .values(expiration_date=datetime(2021, 1, 1)))
    assert codes(claim(svc, [(111, listed[0])]).partial_errors) == [[3008]]
    assert eligible(svc, [111]) == []


def test_search_shows_claim_info_only_when_asked(svc: Container) -> None:
    name, listed = add(svc, 2, feature_id=FEATURE)
    distribute(svc, [111, 113], name)
    claimed = claim(svc, [(111, listed[0])]).claimed
    preds = [RawPredicate("CouponClassName", "Equals", name)]
    plain = search_coupons(svc.uow, who(svc), SearchCouponsRequest(preds, None, None))
    assert [v.claim for v in plain] == [None, None]
    asked = search_coupons(svc.uow, who(svc), SearchCouponsRequest(preds, None, None, "TaxCertificate CouponClaimInfo"))
    assert asked[0].claim is not None
    assert (asked[0].claim.account_id, asked[0].claim.account_number, asked[0].claim.claim_date) == (
        111, "F111AAAA", claimed[0][1])
    assert asked[1].claim is None and not asked[1].is_redeemed  # distributed, unclaimed
    assert fault(lambda: search_coupons(svc.uow, who(svc), SearchCouponsRequest(preds, None, None, "Bogus")))[0] == 201


def test_notifications_go_through_the_outbox(svc: Container) -> None:
    name, listed = add(svc, 3, feature_id=FEATURE)
    out = distribute(svc, [111, 113, 114], name, notify=True)  # 113 has no email: no message, no error
    assert codes(out.partial_errors) == [[], [], []] and out.notifications == 2
    with svc.engine.connect() as conn:
        rows = list(conn.execute(select(t.outbox.c.recipient, t.outbox.c.message_id, t.dispatches.c.kind)
                                 .join(t.dispatches, t.dispatches.c.id == t.outbox.c.dispatch_id)
                                 .where(t.dispatches.c.id == out.distribution_id).order_by(t.outbox.c.id)))
    assert [(r.recipient, r.kind) for r in rows] == [("owner111@example.com", "distribution"),
                                                      ("owner114@example.com", "distribution")]
    assert all(".distribution-" in r.message_id for r in rows)
    silent = distribute(svc, [115], add(svc, 1)[0], notify=False)
    assert silent.notifications == 0


def test_operator_settings(svc: Container) -> None:
    name, listed = add(svc, 2)
    set_class_feature(svc.uow, 222, name.lower(), 4242)
    set_account_email(svc.uow, 113, "  new113@example.com ")
    out = distribute(svc, [113], name, feature=4242, notify=True)
    assert codes(out.partial_errors) == [[]] and out.notifications == 1
    assert coupon_rows(svc, name)[0].state == "distributed"
    from couponsvc.domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        set_account_email(svc.uow, 113, "not an address")
    with pytest.raises(ConfigurationError):
        set_account_email(svc.uow, 98765, "a@example.com")
    with pytest.raises(ConfigurationError):
        set_class_feature(svc.uow, 222, "NO-SUCH", 1)
