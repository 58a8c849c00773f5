"""Throttling over real HTTP: 117 for both protocols and both official SDKs, exactly N admitted in a burst,
Retry-After honoured, nothing allocated for refused calls, code-guess protection, off by default, and one
limit shared by two servers (on PostgreSQL, and through Redis)."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support import restkit, soapkit
from tests.support.databases import postgres_schema_url
from tests.support.sdk import run_sdk_scripts
from tests.support.seeds import ACCOUNT, BASE_SEED, BOB, CUSTOMER, DEV, new_class_seed
from tests.support.server import ServerProcess

INFO = "/CustomerBilling/v13/CouponInfo/Query"
REDEEM = "/CustomerBilling/v13/Coupon/Redeem"
LIMIT, WINDOW = 6, 10  # COUPONSVC_THROTTLE_USER=6/10
GUESSES = 3  # COUPONSVC_THROTTLE_CODE_GUESSES=3/60
USERS = [f"u{i}" for i in range(1, 9)]


def token(user: str) -> str:
    return f"AT-{user}-throttle"


USERS_SEED: dict[str, Any] = {"users": [
    {"name": user, "customers": [CUSTOMER],
     "access_tokens": [{"token": token(user), "expires_at": "2099-01-01T00:00:00Z"}]}
    for user in USERS
]}


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("throttled"), {
        "COUPONSVC_THROTTLE_USER": f"{LIMIT}/{WINDOW}", "COUPONSVC_THROTTLE_CODE_GUESSES": f"{GUESSES}/60"})
    proc.load(BASE_SEED, "base")
    proc.load(USERS_SEED, "users")
    proc.start()
    yield proc
    proc.stop()


def info(base: str, user_token: str) -> httpx.Response:
    return restkit.post(base, INFO, {"CustomerId": str(CUSTOMER)}, auth=user_token)


def soap_info(server: ServerProcess, user_token: str) -> soapkit.SoapResult:
    body = f'<GetCouponInfoRequest xmlns="{soapkit.BIL}"><CustomerId>{CUSTOMER}</CustomerId></GetCouponInfoRequest>'
    return soapkit.post(server.soap_url, soapkit.envelope(body, auth=user_token, dev=DEV))


def burst(calls: list[Callable[[], Any]], threads: int = 12) -> list[Any]:
    start = threading.Barrier(min(threads, len(calls)))

    def run(fn: Callable[[], Any]) -> Any:
        try:
            start.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        return fn()

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, calls))


def assert_117_rest(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["Type"] == "AdApiFaultDetail" and restkit.fault_codes(r) == [117]
    assert body["Errors"][0]["ErrorCode"] == "CallRateExceeded"
    assert body["TrackingId"] == r.headers["TrackingId"]
    retry_after = r.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= WINDOW
    return int(retry_after)


# --- off by default --------------------------------------------------------------------------------------
def test_off_by_default(server: ServerProcess) -> None:
    results = burst([lambda: info(server.url, restkit.ALICE) for _ in range(40)], threads=8)
    assert [r.status_code for r in results] == [200] * 40


# --- the official SDKs -------------------------------------------------------------------------------------
def test_official_sdks_see_117(throttled: ServerProcess) -> None:
    """msads: an ApiException with status 429, Retry-After in ex.headers and the AdApiFaultDetail body;
    bingads (suds): a WebFault whose detail is AdApiFaultDetail 117 (HTTP 500).

    The code-guess limit (60 s window) fills the users' windows here rather than the 10 s call limit, so that
    a slow start of the SDK interpreters on a loaded machine cannot let the window expire first."""
    for user in ("u1", "u2"):
        for i in range(GUESSES):
            r = restkit.post(throttled.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": f"X-{user}-{i}"},
                             auth=token(user))
            assert restkit.fault_codes(r) == [3006]
    calls = {p: {"base_url": throttled.url,
                 "calls": [{"id": "over", "operation": "RedeemCoupon", "developer_token": DEV,
                            "access_token": token(user), "customer_id": CUSTOMER, "account_id": ACCOUNT,
                            "args": {"AccountId": str(ACCOUNT) if p == "rest" else ACCOUNT, "CouponCode": "SPR-0001"}}]}
             for p, user in (("rest", "u1"), ("soap", "u2"))}
    results = run_sdk_scripts(calls)
    rest, soap = results["rest"]["over"], results["soap"]["over"]
    assert rest["outcome"] == "fault", rest
    assert rest["http_status"] == 429 and rest["exception"] == "ApiException"
    assert rest["kind"] == "AdApiFaultDetail" and [e["Code"] for e in rest["errors"]] == [117]
    assert rest["errors"][0]["ErrorCode"] == "CallRateExceeded"
    assert rest["retry_after"] is not None and 30 <= int(rest["retry_after"]) <= 60
    assert rest["tracking_id"] == rest["http_tracking_id"]
    assert soap["outcome"] == "fault", soap
    assert soap["http_status"] == 500 and soap["kind"] == "AdApiFaultDetail"
    assert [int(e["Code"]) for e in soap["errors"]] == [117]
    assert soap["errors"][0]["ErrorCode"] == "CallRateExceeded"


# --- burst, Retry-After ------------------------------------------------------------------------------------
def test_exactly_n_admitted_in_a_burst_then_retry_after_is_honoured(throttled: ServerProcess) -> None:
    t = token("u3")
    calls: list[Callable[[], Any]] = [lambda: info(throttled.url, t) for _ in range(12)]
    calls += [lambda: soap_info(throttled, t) for _ in range(12)]
    results = burst(calls)
    rest, soap = results[:12], results[12:]
    admitted = [r for r in rest if r.status_code == 200] + [r for r in soap if r.status == 200]
    assert len(admitted) == LIMIT
    waits = [assert_117_rest(r) for r in rest if r.status_code != 200]
    for r in soap:
        if r.status != 200:
            assert r.status == 500 and r.fault_kind == "AdApiFaultDetail" and r.fault_codes == [117]
    assert len(waits) + sum(1 for r in soap if r.status != 200) == 24 - LIMIT
    # the last refusal says when a slot frees: a call after that long is admitted
    last = info(throttled.url, t)
    wait = assert_117_rest(last)
    time.sleep(wait)
    assert info(throttled.url, t).status_code == 200
    assert info(throttled.url, t).status_code in (200, 429)  # others may have freed with it; never an error


def test_refused_calls_allocate_nothing(throttled: ServerProcess) -> None:
    cls, seed = new_class_seed(200, prefix="THR")
    throttled.load(seed, "class")
    t = token("u4")
    run = uuid.uuid4().hex[:8]

    def rest_call(i: int) -> tuple[list[str], bool]:
        emails = [f"r{i}-{j}-{run}@example.com" for j in range(3)]
        r = restkit.dispatch(throttled.url, emails, class_name=cls, auth=t)
        assert r.status_code in (200, 429), r.text
        return emails, r.status_code == 200

    def soap_call(i: int) -> tuple[list[str], bool]:
        emails = [f"s{i}-{j}-{run}@example.com" for j in range(3)]
        r = soapkit.dispatch(throttled.soap_url, emails, class_name=cls, auth=t)
        assert r.status in (200, 500)
        if r.status == 500:
            assert r.fault_codes == [117]
        return emails, r.status == 200

    results = burst([lambda i=i: rest_call(i) for i in range(6)] + [lambda i=i: soap_call(i) for i in range(6)])
    admitted = [e for emails, ok in results if ok for e in emails]
    refused = [e for emails, ok in results if not ok for e in emails]
    assert len(admitted) == 3 * LIMIT and len(refused) == 3 * (12 - LIMIT)
    db = sqlite3.connect(throttled.data_dir / "couponsvc.db")
    try:
        sent = {row[0] for row in db.execute(
            "SELECT c.send_to_email FROM coupons c JOIN coupon_classes k ON k.id = c.class_id WHERE k.name = ?",
            (cls,))}
        outbox = {row[0] for row in db.execute(
            "SELECT o.recipient FROM outbox o JOIN coupons c ON c.id = o.coupon_id "
            "JOIN coupon_classes k ON k.id = c.class_id WHERE k.name = ?", (cls,))}
        dispatches = db.execute("SELECT count(*) FROM dispatches d JOIN coupon_classes k ON k.id = d.class_id "
                                "WHERE k.name = ?", (cls,)).fetchone()[0]
    finally:
        db.close()
    assert sent - {None} == set(admitted)
    assert outbox == set(admitted)
    assert dispatches == LIMIT


# --- code guessing -----------------------------------------------------------------------------------------
def test_repeated_unknown_codes_are_throttled_per_user(throttled: ServerProcess) -> None:
    cls, seed = new_class_seed(2, prefix="GUESS")
    throttled.load(seed, "guess")
    guesser, other = token("u5"), token("u6")
    for i in range(GUESSES):
        r = restkit.post(throttled.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": f"NOPE-{i}"}, auth=guesser)
        assert r.status_code == 400 and restkit.fault_codes(r) == [3006]
    # now even a real code is refused for this user, on both protocols, with the wait of the oldest guess
    real = restkit.post(throttled.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": f"{cls}-00000"},
                        auth=guesser)
    assert real.status_code == 429 and restkit.fault_codes(real) == [117]
    assert 50 <= int(real.headers["Retry-After"]) <= 60
    body = (f'<RedeemCouponRequest xmlns="{soapkit.BIL}"><AccountId>{ACCOUNT}</AccountId>'
            f"<CouponCode>{cls}-00000</CouponCode></RedeemCouponRequest>")
    soap = soapkit.post(throttled.soap_url, soapkit.envelope(body, auth=guesser, dev=DEV))
    assert soap.status == 500 and soap.fault_codes == [117]
    # other operations of the guesser, and other users, are not affected; the code was not redeemed
    assert info(throttled.url, guesser).status_code == 200
    ok = restkit.post(throttled.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": f"{cls}-00000"}, auth=other)
    assert ok.status_code == 200, ok.text


def test_unknown_codes_in_claims_count_as_guesses(throttled: ServerProcess) -> None:
    """ClaimFeatureAdoptionCoupons answers 3006 per pair (PartialErrors): each one is a guess, as a whole-call
    3006 of RedeemCoupon is, so a guesser cannot try 100 codes per call unthrottled."""
    claim = "/CustomerBilling/v13/FeatureAdoptionCoupons/Claim"
    guesser = token("u7")
    pairs = [{"Key": str(ACCOUNT), "Value": f"NOPE-CLAIM-{i}"} for i in range(GUESSES)]
    first = restkit.post(throttled.url, claim, {"AccountCouponPairs": pairs}, auth=guesser)
    assert first.status_code == 200, first.text
    assert [[e["Code"] for e in item] for item in first.json()["PartialErrors"]] == [[3006]] * GUESSES
    again = restkit.post(throttled.url, claim, {"AccountCouponPairs": pairs[:1]}, auth=guesser)
    assert again.status_code == 429 and restkit.fault_codes(again) == [117], again.text
    redeem = restkit.post(throttled.url, REDEEM, {"AccountId": str(ACCOUNT), "CouponCode": "NOPE-X"}, auth=guesser)
    assert redeem.status_code == 429
    assert info(throttled.url, guesser).status_code == 200  # other operations are not affected


# --- several servers -----------------------------------------------------------------------------------------
def spread(servers: list[ServerProcess], tokens: list[str], n: int) -> list[httpx.Response]:
    return burst([lambda i=i: info(servers[i % len(servers)].url, tokens[i % len(tokens)]) for i in range(n)])


def test_two_servers_on_postgresql_share_one_developer_token_limit(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """COUPONSVC_THROTTLE_DEVELOPER_TOKEN counts every user of the token, on every server of the database."""
    with postgres_schema_url() as url:
        env = {"COUPONSVC_DATABASE_URL": url, "COUPONSVC_THROTTLE_DEVELOPER_TOKEN": "10/60"}
        a = ServerProcess(tmp_path_factory.mktemp("pg-a"), env)
        b = ServerProcess(tmp_path_factory.mktemp("pg-b"), env)
        a.load(BASE_SEED, "base")
        try:
            a.start()
            b.start()
            results = spread([a, b], [restkit.ALICE, BOB], 30)
            assert sum(r.status_code == 200 for r in results) + sum(
                r.status_code == 403 for r in results) == 10  # bob is not linked to 222: 106, but admitted
            assert sum(r.status_code == 429 for r in results) == 20
            for r in results:
                if r.status_code == 429:
                    assert r.json()["Errors"][0]["Detail"] == (
                        f"Too many calls from this developer token; retry after {r.headers['Retry-After']} s")
        finally:
            a.stop()
            b.stop()


def test_two_servers_share_one_user_limit_through_redis(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two servers with separate SQLite databases but one Redis: only Redis can make them agree."""
    env = {"COUPONSVC_REDIS_URL": "redis://127.0.0.1:6379/0", "COUPONSVC_THROTTLE_USER": "8/60",
           "COUPONSVC_REDIS_PREFIX": f"couponsvc-test-{uuid.uuid4().hex}:"}
    a = ServerProcess(tmp_path_factory.mktemp("redis-a"), env)
    b = ServerProcess(tmp_path_factory.mktemp("redis-b"), env)
    for s in (a, b):
        s.load(BASE_SEED, "base")
    try:
        a.start()
        b.start()
        results = spread([a, b], [restkit.ALICE], 24)
        assert sum(r.status_code == 200 for r in results) == 8
        assert all(r.status_code == 429 and restkit.fault_codes(r) == [117] for r in results if r.status_code != 200)
        # another user has a window of its own (bob is not linked to customer 222: 106, but admitted)
        assert [r.status_code for r in spread([a, b], [BOB], 4)] == [403] * 4
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize("store", ["database", "redis"])
def test_a_twin_reset_forgets_the_calls_counted(tmp_path_factory: pytest.TempPathFactory, store: str) -> None:
    """A test suite resets the twin between tests: the next test must not inherit the last one's throttle."""
    from couponsvc.testing import start_twin

    prefix = f"couponsvc-test-{uuid.uuid4().hex}:"
    env = {"COUPONSVC_THROTTLE_USER": "3/600"}
    if store == "redis":
        env |= {"COUPONSVC_REDIS_URL": "redis://127.0.0.1:6379/0", "COUPONSVC_REDIS_PREFIX": prefix}
    twin = start_twin(tmp_path_factory.mktemp(f"twin-throttle-{store}"), env=env)
    other = None
    if store == "redis":  # a key of another prefix (another deployment on the same Redis) is left alone
        import redis

        other = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        other.set(f"couponsvc-other-{uuid.uuid4().hex}:throttle:user:1", "kept", ex=600)
    try:
        def call() -> int:
            return restkit.post(twin.url, INFO, {"CustomerId": "222"}, auth=twin.access_token,
                                dev=twin.developer_token).status_code

        assert [call() for _ in range(4)] == [200, 200, 200, 429]
        twin.reset()
        assert [call() for _ in range(4)] == [200, 200, 200, 429]
        if other is not None:
            assert other.keys(f"{prefix}*"), "the twin counts in Redis under its prefix"
            assert any(other.get(k) == b"kept" for k in other.keys("couponsvc-other-*"))
    finally:
        twin.stop()
        if other is not None:
            for key in other.keys(f"{prefix}*") + other.keys("couponsvc-other-*"):
                other.delete(key)
            other.close()
