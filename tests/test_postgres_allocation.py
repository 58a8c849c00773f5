"""PostgreSQL allocation with SKIP LOCKED must not report 3004 while coupons held by a concurrent call may
still come back (that call can roll back)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from couponsvc.adapters import schema as t
from couponsvc.bootstrap import Container
from couponsvc.service_layer.auth import Credentials
from couponsvc.service_layer.dispatch import DispatchCouponsRequest, DispatchOutcome, dispatch_coupons
from tests.support.databases import database_url
from tests.support.seeds import ALICE, BASE_SEED, DEV, new_class_seed
from tests.support.service import load, make_container


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Container]:
    with database_url("postgresql", tmp_path) as url:
        c = make_container(tmp_path, BASE_SEED, DATABASE_URL=url)
        yield c
        c.close()


def test_coupons_locked_by_a_call_that_rolls_back_are_waited_for_not_reported_gone(pg: Container) -> None:
    name, seed = new_class_seed(2)
    load(pg, seed)
    principal = pg.authenticate(Credentials(DEV, ALICE))
    outcome: list[DispatchOutcome] = []

    with pg.engine.connect() as other:  # a concurrent call holding every coupon of the class
        tx = other.begin()
        held = other.execute(
            select(t.coupons.c.id).join(t.coupon_classes, t.coupon_classes.c.id == t.coupons.c.class_id)
            .where(t.coupon_classes.c.name == name).with_for_update()
        ).all()
        assert len(held) == 2

        def call() -> None:
            outcome.append(dispatch_coupons(pg.uow, pg.clock, pg.dispatch_config, principal,
                                            DispatchCouponsRequest(["late@example.com"], 222, name), "tid"))

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(1.0)
        assert not outcome, "the call answered while the coupons were only locked, not taken"
        tx.rollback()  # the other call failed: its coupons are available again
    worker.join(30)
    assert outcome and outcome[0].partial_errors == []
    assert len(outcome[0].allocations) == 1
