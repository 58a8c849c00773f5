"""DispatchCoupons in the service layer on a real SQLite database: ordering of checks, allocation, atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from couponsvc.adapters import schema as t
from couponsvc.bootstrap import Container
from couponsvc.domain.errors import ServiceFault
from couponsvc.service_layer.auth import Credentials
from couponsvc.service_layer.dispatch import DispatchCouponsRequest, DispatchOutcome, dispatch_coupons
from tests.support.databases import database_url
from tests.support.seeds import ALICE, ALICE_EXPIRED, BASE_SEED, BOB, DEV, DEV_DISABLED, new_class_seed
from tests.support.service import load, make_container


@pytest.fixture(params=["sqlite", "postgresql"])
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Container]:
    with database_url(request.param, tmp_path) as url:
        c = make_container(tmp_path, BASE_SEED, DATABASE_URL=url)
        yield c
        c.close()


def call(c: Container, emails: list[str | None] | None, customer: Any = 222, cls: str | None = "SPRING-100",
         *, token: str = ALICE, dev: str = DEV, request: bool = True) -> DispatchOutcome:
    principal = c.authenticate(Credentials(dev, token))
    req = DispatchCouponsRequest(emails, customer, cls) if request else None
    return dispatch_coupons(c.uow, c.clock, c.dispatch_config, principal, req, "tid")


def fault_code(fn: Any) -> int:
    with pytest.raises(ServiceFault) as exc:
        fn()
    return exc.value.error.code


def snapshot(c: Container) -> tuple[Any, ...]:
    with c.engine.connect() as conn:
        return (
            tuple(conn.execute(select(t.coupons).order_by(t.coupons.c.id))),
            conn.scalar(select(func.count()).select_from(t.outbox)),
            conn.scalar(select(func.count()).select_from(t.dispatches)),
        )


def test_credentials_are_checked_first(container: Container) -> None:
    assert fault_code(lambda: call(container, None, token="")) == 116
    assert fault_code(lambda: call(container, None, dev="")) == 116
    assert fault_code(lambda: call(container, None, dev="nope")) == 105
    assert fault_code(lambda: call(container, None, dev=DEV_DISABLED)) == 105
    assert fault_code(lambda: call(container, None, token="nope")) == 105
    assert fault_code(lambda: call(container, None, token=ALICE_EXPIRED)) == 109


def test_whole_call_refusals_in_spec_order(container: Container) -> None:
    big = [f"u{i}@example.com" for i in range(1001)]
    assert fault_code(lambda: call(container, None, request=False)) == 100
    # authorization precedes every request check when the customer id is readable
    assert fault_code(lambda: call(container, None, 333, None, token=ALICE)) == 106
    assert fault_code(lambda: call(container, ["a@example.com"], 222, "SPRING-100", token=BOB)) == 106
    assert fault_code(lambda: call(container, None, "x", "  ")) == 203
    assert fault_code(lambda: call(container, None, None, None)) == 203
    assert fault_code(lambda: call(container, None, None, "SPRING-100")) == 201
    assert fault_code(lambda: call(container, None, "0", "SPRING-100")) == 201
    assert fault_code(lambda: call(container, None, "-222", "SPRING-100")) == 201
    assert fault_code(lambda: call(container, None, "22x", "SPRING-100")) == 201
    assert fault_code(lambda: call(container, None, 222, "SPRING-100")) == 206
    assert fault_code(lambda: call(container, [], 222, "SPRING-100")) == 206
    assert fault_code(lambda: call(container, big, 222, "NO-SUCH-CLASS")) == 4603
    assert fault_code(lambda: call(container, ["bad"], 222, "NO-SUCH-CLASS")) == 3000
    assert fault_code(lambda: call(container, ["a@example.com"], 222, "FAB-50")) == 3000  # another customer's
    assert fault_code(lambda: call(container, ["a@example.com"], 222, "WINTER-2020")) == 3011


def test_refusals_change_nothing(container: Container) -> None:
    before = snapshot(container)
    for args in ([None, 222, "SPRING-100"], [["a@example.com"], 222, "WINTER-2020"],
                 [["a@example.com"] * 1001, 222, "SPRING-100"]):
        with pytest.raises(ServiceFault):
            call(container, *args)
    assert snapshot(container) == before


def test_1000_addresses_is_allowed(container: Container) -> None:
    emails = [f"user{i}@example.com" for i in range(1000)]
    assert call(container, emails).partial_errors == []


def test_class_name_is_case_insensitive_and_trimmed(container: Container) -> None:
    assert call(container, ["case@example.com"], "222", "  spring-100 ").partial_errors == []


def test_allocates_oldest_available_unexpired_coupons_in_request_order(container: Container) -> None:
    name, seed = new_class_seed(5)
    load(container, seed)
    with container.engine.begin() as conn:  # the oldest coupon expired yesterday
        conn.execute(update(t.coupons).where(t.coupons.c.code == f"{name}-00000")
                     .values(expires_at=container.clock() - timedelta(days=1)))
    out = call(container, ["b@example.com", "a@example.com", "c@example.com"], cls=name)
    assert out.partial_errors == []
    got = {a.candidate.address: a.coupon.code for a in out.allocations}
    assert got == {"b@example.com": f"{name}-00001", "a@example.com": f"{name}-00002",
                   "c@example.com": f"{name}-00003"}


def test_every_address_error_in_one_call_sorted_by_index(container: Container) -> None:
    name, seed = new_class_seed(2)
    load(container, seed)
    call(container, ["old@example.com"], cls=name)
    out = call(container, ["new1@example.com", "bad address", "OLD@example.com", "new1@EXAMPLE.com",
                           "new2@example.com", None], cls=name)
    assert [(e.index, e.code) for e in out.partial_errors] == [(1, 3001), (2, 3003), (3, 3002), (4, 3004), (5, 3001)]
    assert [a.candidate.address for a in out.allocations] == ["new1@example.com"]


def test_retried_call_never_sends_twice(container: Container) -> None:
    emails = ["r1@example.com", "r2@example.com"]
    first = call(container, emails)
    second = call(container, emails)
    assert first.partial_errors == []
    assert [(e.index, e.code) for e in second.partial_errors] == [(0, 3003), (1, 3003)]
    assert second.allocations == []


def test_dispatch_records_coupon_state_and_outbox_message_in_the_same_transaction(container: Container) -> None:
    out = call(container, ["Ada@Example.com "])
    (alloc,) = out.allocations
    with container.engine.connect() as conn:
        coupon = conn.execute(select(t.coupons).where(t.coupons.c.id == alloc.coupon.id)).one()
        msg = conn.execute(select(t.outbox).where(t.outbox.c.coupon_id == alloc.coupon.id)).one()
    assert (coupon.state, coupon.send_to_email, coupon.send_to_email_key) == ("dispatched", "Ada@Example.com",
                                                                           "ada@example.com")
    assert coupon.dispatch_id == out.dispatch_id and coupon.send_to_date is not None
    # the message starts leased to the call, which delivers it right after the commit (or a worker, later)
    assert (msg.recipient, msg.status, msg.dispatch_id) == ("Ada@Example.com", "sending", out.dispatch_id)
    assert msg.lease_owner == "call:tid" and msg.lease_until > msg.created_at
    assert msg.message_id == f"<coupon-{alloc.coupon.id}.dispatch-{out.dispatch_id}@couponsvc.localhost>"


def test_failure_inside_the_transaction_rolls_back_every_allocation(container: Container,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from couponsvc.adapters.store import SqlStore

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("disk full")

    before = snapshot(container)
    monkeypatch.setattr(SqlStore, "enqueue", boom)
    with pytest.raises(RuntimeError):
        call(container, ["x1@example.com", "x2@example.com"])
    assert snapshot(container) == before


def test_database_refuses_two_coupons_of_a_class_for_one_address(container: Container) -> None:
    call(container, ["dup@example.com"])
    with container.engine.begin() as conn:
        spare = conn.execute(select(t.coupons.c.id).where(t.coupons.c.state == "available").limit(1)).scalar_one()
        with pytest.raises(IntegrityError):
            conn.execute(update(t.coupons).where(t.coupons.c.id == spare)
                         .values(state="dispatched", send_to_email="dup@example.com",
                                 send_to_email_key="dup@example.com"))


def test_database_refuses_a_code_twice(container: Container) -> None:
    with container.engine.begin() as conn:
        class_id = conn.scalar(select(t.coupon_classes.c.id).where(t.coupon_classes.c.name == "SPRING-100"))
        with pytest.raises(IntegrityError):
            conn.execute(insert(t.coupons).values(class_id=class_id, code="SPR-0001", created_at=datetime.now()))
