"""Concurrent RedeemCoupon of one code (SPEC 5): exactly one call wins, every other gets 3007.

- Through real servers: two server processes on one database (SQLite file, or PostgreSQL), threads released
  together by a barrier, REST and SOAP mixed, two accounts so that the database shows whose call won.
- Through the service layer on PostgreSQL, with the race forced: every call has read the coupon as
  `available` before any of them writes, so only the guarded UPDATE can keep the second writer out.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from couponsvc.adapters import coupon_queries
from couponsvc.adapters import schema as t
from couponsvc.adapters.db import make_engine
from couponsvc.bootstrap import Container
from couponsvc.domain.errors import ServiceFault
from couponsvc.service_layer.auth import Credentials
from couponsvc.service_layer.coupons import (
    GetCouponInfoRequest,
    RedeemCouponRequest,
    get_coupon_info,
    redeem_coupon,
)
from tests.support import soapkit
from tests.support.databases import database_url
from tests.support.server import ServerProcess
from tests.support.service import make_container

DEV = "DEV-RACE"
ALICE = "AT-race-alice"
CODES = [f"RACE-{i:03d}" for i in range(6)]
THREADS = 10
ACCOUNTS = ("111", "112")  # both USD, both customer 222's

SEED: dict[str, Any] = {
    "developer_tokens": [{"token": DEV, "name": "race"}],
    "customers": [{
        "id": 222, "name": "Contoso",
        "accounts": [{"id": 111, "number": "F111", "currency_code": "USD"},
                     {"id": 112, "number": "F112", "currency_code": "USD"}],
        "coupon_classes": [{"name": "RACE", "amount": 40.0, "currency_code": "USD", "active_duration": 30,
                            "codes": CODES}],
    }],
    "users": [{"name": "alice", "customers": [222],
               "access_tokens": [{"token": ALICE, "expires_at": "2099-01-01T00:00:00Z"}]}],
}

Outcome = tuple[str, int | str]  # (account, 200 RedemptionDate text | fault code)


def redeem_rest(server: ServerProcess, account: str, code: str) -> int | str:
    r = httpx.post(server.url + "/CustomerBilling/v13/Coupon/Redeem", timeout=120,
                   content=json.dumps({"AccountId": account, "CouponCode": code}).encode(),
                   headers={"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV,
                            "Content-Type": "application/json"})
    if r.status_code == 200:
        return str(r.json()["RedemptionDate"])
    (error,) = r.json()["OperationErrors"]
    return int(error["Code"])


def redeem_soap(server: ServerProcess, account: str, code: str) -> int | str:
    body = (f'<RedeemCouponRequest xmlns="{soapkit.BIL}"><AccountId>{account}</AccountId>'
            f"<CouponCode>{code}</CouponCode></RedeemCouponRequest>")
    res = soapkit.post(server.soap_url, soapkit.envelope(body, auth=ALICE, dev=DEV))
    if res.status == 200:
        return str(res.root.findtext("s:Body/bil:RedeemCouponResponse/bil:RedemptionDate", namespaces=soapkit.NS))
    (code_,) = res.fault_codes
    return code_


def race(servers: tuple[ServerProcess, ServerProcess], code: str) -> list[Outcome]:
    barrier = threading.Barrier(THREADS)
    outcomes: list[Outcome] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        server, account = servers[n % 2], ACCOUNTS[(n // 2) % 2]
        redeem = redeem_soap if n % 3 == 0 else redeem_rest
        try:
            barrier.wait(30)
            result = redeem(server, account, code)
            with lock:
                outcomes.append((account, result))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not failures, failures
    assert len(outcomes) == THREADS
    return outcomes


@pytest.fixture(params=["sqlite", "postgresql"])
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    with database_url(request.param, tmp_path) as url:
        env = {"COUPONSVC_DATABASE_URL": url}
        a = ServerProcess(tmp_path / "a", env)
        b = ServerProcess(tmp_path / "b", env)
        a.data_dir.mkdir()
        a.load(SEED)
        a.start()
        b.start()
        try:
            yield a, b, url
        finally:
            a.stop()
            b.stop()


def test_concurrent_redemptions_of_one_code_through_two_servers(
    two_servers: tuple[ServerProcess, ServerProcess, str],
) -> None:
    a, b, url = two_servers
    winners: dict[str, tuple[str, str]] = {}
    for code in CODES:
        outcomes = race((a, b), code)
        results = Counter("won" if isinstance(r, str) else r for _, r in outcomes)
        assert results == Counter({"won": 1, 3007: THREADS - 1}), (code, outcomes)
        ((account, date),) = [(acc, r) for acc, r in outcomes if isinstance(r, str)]
        winners[code] = (account, date)

    # the database holds the winner's redemption, not a later writer's
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(t.coupons.c.code, t.coupons.c.state, t.coupons.c.redeemed_account_id,
                                       t.coupons.c.redemption_date).where(t.coupons.c.code.in_(CODES))).all()
    finally:
        engine.dispose()
    for code, state, account_id, redemption_date in rows:
        account, date = winners[code]
        assert state == "redeemed"
        assert str(account_id) == account
        assert redemption_date == datetime.fromisoformat(date.replace("Z", "+00:00")).replace(tzinfo=None)
    # GetCouponInfo: one redemption per code
    r = httpx.post(a.url + "/CustomerBilling/v13/CouponInfo/Query", content=b'{"CustomerId": "222"}', timeout=60,
                   headers={"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV,
                            "Content-Type": "application/json"})
    assert sorted(str(i["AccountId"]) for i in r.json()["CouponInfoData"]) == sorted(a for a, _ in winners.values())


def test_sqlite_server_database_is_consistent_after_the_races(tmp_path: Path) -> None:
    """One server, a thread per call, every code raced at once: still one winner per code."""
    server = ServerProcess(tmp_path)
    server.load(SEED)
    server.start()
    try:
        barrier = threading.Barrier(len(CODES) * 4)
        outcomes: list[tuple[str, int | str]] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            code = CODES[n % len(CODES)]
            barrier.wait(30)
            result = (redeem_soap if n % 2 else redeem_rest)(server, ACCOUNTS[n % 2], code)
            with lock:
                outcomes.append((code, result))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(CODES) * 4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
    finally:
        server.stop()
    assert len(outcomes) == len(CODES) * 4
    for code in CODES:
        mine = Counter("won" if isinstance(r, str) else r for c, r in outcomes if c == code)
        assert mine == Counter({"won": 1, 3007: 3}), (code, mine)
    db = sqlite3.connect(server.data_dir / "couponsvc.db")
    states = db.execute("SELECT state, COUNT(*) FROM coupons GROUP BY state").fetchall()
    db.close()
    assert states == [("redeemed", len(CODES))]


# --- service layer on PostgreSQL, race forced -------------------------------------------------------------
@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Container]:
    with database_url("postgresql", tmp_path) as url:
        c = make_container(tmp_path, SEED, DATABASE_URL=url)
        yield c
        c.close()


def test_postgresql_every_call_read_available_yet_one_wins(pg: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    callers = 6
    principal = pg.authenticate(Credentials(DEV, ALICE))
    read_it = threading.Barrier(callers, timeout=30)
    read_states: list[str] = []
    original = coupon_queries.coupon_by_code

    def read_then_wait(conn: Any, code: str) -> Any:
        coupon = original(conn, code)
        read_states.append(coupon.state)
        read_it.wait()  # nobody writes before everybody has read
        return coupon

    monkeypatch.setattr(coupon_queries, "coupon_by_code", read_then_wait)
    outcomes: list[tuple[int, datetime | int]] = []
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        account = 111 + n % 2
        try:
            date = redeem_coupon(pg.uow, pg.clock, principal, RedeemCouponRequest(account, "RACE-000"))
            outcomes.append((account, date))
        except ServiceFault as fault:
            outcomes.append((account, fault.error.code))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(callers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not failures, failures
    assert read_states == ["available"] * callers  # the race really happened
    results = Counter("won" if isinstance(r, datetime) else r for _, r in outcomes)
    assert results == Counter({"won": 1, 3007: callers - 1}), outcomes
    ((account, date),) = [(acc, r) for acc, r in outcomes if isinstance(r, datetime)]
    monkeypatch.undo()
    with pg.engine.connect() as conn:
        row = conn.execute(select(t.coupons.c.state, t.coupons.c.redeemed_account_id, t.coupons.c.redemption_date)
                           .where(t.coupons.c.code == "RACE-000")).one()
    assert tuple(row) == ("redeemed", account, date)
    infos = get_coupon_info(pg.uow, pg.clock, principal, GetCouponInfoRequest(222))
    assert [(i.account_id, i.redemption_date) for i in infos] == [(account, date)]


def test_postgresql_many_codes_many_callers(pg: Container) -> None:
    principal = pg.authenticate(Credentials(DEV, ALICE))
    barrier = threading.Barrier(len(CODES) * 3, timeout=30)
    outcomes: list[tuple[str, datetime | int]] = []

    def worker(n: int) -> None:
        code = CODES[n % len(CODES)]
        barrier.wait()
        try:
            outcomes.append((code, redeem_coupon(pg.uow, pg.clock, principal,
                                                 RedeemCouponRequest(str(111 + n % 2), code))))
        except ServiceFault as fault:
            outcomes.append((code, fault.error.code))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(CODES) * 3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for code in CODES:
        mine = Counter("won" if isinstance(r, datetime) else r for c, r in outcomes if c == code)
        assert mine == Counter({"won": 1, 3007: 2}), (code, outcomes)
