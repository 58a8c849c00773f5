"""Two twin servers on one PostgreSQL database share the journal, the fault rules, the clock and reset."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from couponsvc.testing import CouponsvcTwin, start_twin
from tests.support import restkit
from tests.support.databases import postgres_schema_url
from tests.support.seeds import ALICE
from tests.support.twin import ALICE_2031, TWIN_SEED


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CouponsvcTwin, CouponsvcTwin]]:
    with postgres_schema_url() as url:
        env = {"COUPONSVC_DATABASE_URL": url}
        a = start_twin(tmp_path_factory.mktemp("twin-pg-a"), TWIN_SEED, env)
        try:
            b = start_twin(tmp_path_factory.mktemp("twin-pg-b"), TWIN_SEED, env)
            try:
                yield a, b
            finally:
                b.stop()
        finally:
            a.stop()


def _eventually(what: str, check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {what}"
            return value
        time.sleep(0.05)


def test_two_servers_share_journal_faults_clock_and_reset(pair: tuple[CouponsvcTwin, CouponsvcTwin]) -> None:
    a, b = pair
    a.reset()
    # the journal: a call answered by A is listed by B
    r = restkit.dispatch(a.url, ["ada@example.com"])
    assert r.json() == {"PartialErrors": []}
    a.calls()  # A writes what it holds
    entries = b.calls(tracking_id=r.headers["TrackingId"])
    assert len(entries) == 1 and entries[0]["operation"] == "DispatchCoupons"
    assert b.mail(to="ada@example.com")[0]["tracking_id"] == r.headers["TrackingId"]

    # faults: a rule added through B refuses a call on A; its count is shared (one use in all)
    rule = b.fault(operation="DispatchCoupons", error_code=117, count=1)
    assert [f["id"] for f in a.faults()] == [rule["id"]]
    assert restkit.fault_codes(restkit.dispatch(a.url, ["bob@example.com"])) == [117]
    assert restkit.dispatch(b.url, ["bob@example.com"]).json() == {"PartialErrors": []}
    assert a.faults() == b.faults() == []

    # the clock: set through A, B follows (within its half-second cache)
    a.clock("2031-02-01T00:00:00Z")
    assert b.clock()["now"] == "2031-02-01T00:00:00.000Z"
    _eventually("B to use the frozen clock", lambda: restkit.fault_codes(
        restkit.dispatch(b.url, ["carol@example.com"], auth=ALICE_2031)) == [109])
    a.clock(None)
    _eventually("B back on real time", lambda: restkit.dispatch(
        b.url, ["carol@example.com"], auth=ALICE_2031).json() == {"PartialErrors": []})

    # reset through B clears what A wrote, and A's answers follow
    b.fault(operation="SearchCoupons", error_code=0)
    b.clock("2031-02-01T00:00:00Z")
    b.reset()
    assert a.calls() == [] and a.mail() == [] and a.faults() == []
    assert a.clock()["frozen"] is False
    _eventually("A back on real time after the reset", lambda: restkit.dispatch(
        a.url, ["ada@example.com"], auth=ALICE_2031).json() == {"PartialErrors": []})
    assert restkit.dispatch(b.url, ["ada@example.com"], auth=ALICE).json()["PartialErrors"][0]["Code"] == 3003
