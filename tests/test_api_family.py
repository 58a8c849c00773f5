"""The coupon family over real HTTP (SPEC 5.1): isolation, notification mail, and concurrency.

- Isolation: an account of a customer the user cannot act for is answered byte for byte like one that does
  not exist (apart from the TrackingId), on SOAP and REST, for all three operations.
- Notifications: DistributeCoupons with SendNotification writes a "coupon added to your account" message
  through the outbox, delivered to the server's Maildir, stating the code; no email on the account: no mail.
- Concurrency: two server processes on one database (SQLite file, PostgreSQL) distribute one class to
  overlapping accounts at once -- no account gets two coupons, no coupon goes to two accounts, every success
  is in the database -- and many concurrent claims of one code: exactly one wins.
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from couponsvc.adapters import schema as t
from couponsvc.adapters.db import make_engine
from tests.support import soapkit
from tests.support.databases import database_url
from tests.support.family import ALICE, DEV, FEATURE, SEED, new_class
from tests.support.server import ServerProcess

BIL, ARR, ENT = soapkit.BIL, soapkit.ARR, "https://bingads.microsoft.com/Customer/v13/Entities"
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DISTRIBUTE = "/CustomerBilling/v13/Coupons/Distribute"
CHECK = "/CustomerBilling/v13/FeatureAdoptionCouponEligibility/Check"
CLAIM = "/CustomerBilling/v13/FeatureAdoptionCoupons/Claim"

ISO_CLASS = new_class(4, feature_id=FEATURE, prefix="ISO")
MAIL_CLASS = new_class(3, feature_id=FEATURE + 1, prefix="MAIL", percent_off=None, amount=25.0)


def rest(server: ServerProcess, path: str, doc: Any, token: str = ALICE) -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(doc).encode(), timeout=120,
                      headers={"Authorization": f"Bearer {token}", "DeveloperToken": DEV,
                               "Content-Type": "application/json", "CustomerId": "222",
                               "CustomerAccountId": "111"})


def soap(server: ServerProcess, op: str, inner: str, token: str = ALICE) -> httpx.Response:
    xml = f'<{op}Request xmlns="{BIL}" xmlns:a="{ARR}" xmlns:e="{ENT}">{inner}</{op}Request>'
    return httpx.post(server.soap_url, content=soapkit.envelope(xml, auth=token, dev=DEV), timeout=120,
                      headers={"Content-Type": "text/xml; charset=utf-8"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("api-family"), {"COUPONSVC_MAIL_FROM": "coupons@family.example"})
    for seed in (SEED, ISO_CLASS[2], MAIL_CLASS[2]):
        proc.load(seed, "seed")
    proc.start()
    yield proc
    proc.stop()


# --- isolation ------------------------------------------------------------------------------------------
def scrub(body: bytes) -> bytes:
    return UUID.sub(b"<uuid>", body)


def test_a_foreign_account_looks_exactly_like_a_missing_one(server: ServerProcess) -> None:
    name, listed, _ = ISO_CLASS
    for protocol in ("soap", "rest"):
        answers: dict[str, list[bytes]] = {}
        for account in (444, 4444):
            if protocol == "soap":
                got = [soap(server, "DistributeCoupons", f"<AccountIds><a:int>{account}</a:int></AccountIds>"
                                                         f"<ClassName>{name}</ClassName>"),
                       soap(server, "CheckFeatureAdoptionCouponEligibility",
                            f"<FeatureId>{FEATURE}</FeatureId><AccountIds><a:long>{account}</a:long></AccountIds>"),
                       soap(server, "ClaimFeatureAdoptionCoupons",
                            f"<AccountCouponPairs><e:KeyValueEntityOflongstring><e:Key>{account}</e:Key>"
                            f"<e:Value>FABF-1</e:Value></e:KeyValueEntityOflongstring></AccountCouponPairs>")]
            else:
                got = [rest(server, DISTRIBUTE, {"AccountIds": [account], "ClassName": name}),
                       rest(server, CHECK, {"FeatureId": FEATURE, "AccountIds": [str(account)]}),
                       rest(server, CLAIM, {"AccountCouponPairs": [{"Key": str(account), "Value": "FABF-1"}]})]
            assert [r.status_code for r in got] == [200, 200, 200]
            answers[str(account)] = [scrub(r.content) for r in got]
        assert answers["444"] == answers["4444"], protocol
        assert b"208" in answers["444"][0] and b"208" in answers["444"][2]
    # bob's coupon FABF-1 is untouched and bob's account got nothing
    r = rest(server, CHECK, {"FeatureId": FEATURE, "AccountIds": ["444"]}, token="AT-family-bob")
    assert r.json() == {"EligibleAccountIds": []}


# --- notification mail ------------------------------------------------------------------------------------
def maildir(server: ServerProcess) -> list[Any]:
    box = mailbox.Maildir(server.data_dir / "mail", factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]


def test_notification_mail_states_the_code(server: ServerProcess) -> None:
    name, listed, _ = MAIL_CLASS
    r = rest(server, DISTRIBUTE, {"AccountIds": [111, 113, 114], "ClassName": name, "SendNotification": True})
    assert r.json() == {"OperationErrors": [], "PartialErrors": [[], [], []]}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = [m for m in maildir(server) if ".distribution-" in m["Message-ID"]]
        if len(mine) >= 2:
            break
        time.sleep(0.2)
    by_to = {str(m["To"]): m for m in mine}
    assert sorted(by_to) == ["owner111@example.com", "owner114@example.com"]  # 113 has no email: no message
    msg = by_to["owner111@example.com"]
    assert str(msg["Subject"]) == "A coupon was added to your account F111AAAA"
    assert str(msg["From"]) == "coupons@family.example"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert listed[0] in text and listed[0] in html  # 111 got the oldest coupon
    assert "25.00 USD" in text and "F111AAAA" in html
    assert listed[2] in by_to["owner114@example.com"].get_body(("plain",)).get_content()
    # the same outbox as DispatchCoupons: `mail history` knows the messages
    out = server.cli("mail", "history", "--to", "owner111@example.com").stdout
    assert listed[0] in out and "sent" in out
    # coupons list shows the distributed coupons and their accounts
    shown = server.cli("coupons", "list", "--class", name).stdout
    assert f"{listed[0]}" in shown and "distributed" in shown and "account 111" in shown


def test_no_notification_without_send_notification(server: ServerProcess) -> None:
    name, listed, seed = new_class(1, prefix="QUIET")
    server.load(seed, "quiet")
    before = len(maildir(server))
    r = rest(server, DISTRIBUTE, {"AccountIds": [115], "ClassName": name, "SendNotification": False})
    assert r.json()["PartialErrors"] == [[]]
    time.sleep(1.5)
    assert len(maildir(server)) == before


# --- concurrency ------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    with database_url(request.param, tmp_path) as url:
        env = {"COUPONSVC_DATABASE_URL": url, "COUPONSVC_DELIVERY_TIMEOUT": "0", "COUPONSVC_WORKER": "false"}
        a, b = ServerProcess(tmp_path / "a", env), ServerProcess(tmp_path / "b", env)
        a.data_dir.mkdir()
        a.load(SEED)
        a.start()
        b.start()
        try:
            yield a, b, url
        finally:
            a.stop()
            b.stop()


def run_together(jobs: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(60)
            results[i] = jobs[i]()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(180)
    assert not failures, failures
    return results


def distribute_codes(server: ServerProcess, ids: list[int], name: str, protocol: str) -> list[list[int]]:
    """Per account of the call: its error codes (SOAP answers read by namespace, REST as JSON)."""
    if protocol == "rest":
        r = rest(server, DISTRIBUTE, {"AccountIds": ids, "ClassName": name})
        assert r.status_code == 200, r.text
        return [[e["Code"] for e in item] for item in r.json()["PartialErrors"]]
    xml = "".join(f"<a:int>{i}</a:int>" for i in ids)
    r = soap(server, "DistributeCoupons", f"<AccountIds>{xml}</AccountIds><ClassName>{name}</ClassName>")
    assert r.status_code == 200, r.text
    from lxml import etree

    root = etree.fromstring(r.content)
    items = root.findall(".//bil:PartialErrors/exc:ArrayOfOperationError", namespaces=soapkit.NS)
    return [[int(c.text) for c in item.findall("exc:OperationError/exc:Code", namespaces=soapkit.NS)]
            for item in items]


@pytest.mark.parametrize("feature", [None, FEATURE], ids=["plain", "fac"])
def test_two_servers_distributing_to_overlapping_accounts(two_servers: tuple[ServerProcess, ServerProcess, str],
                                                          feature: int | None) -> None:
    a, b, url = two_servers
    name, listed, seed = new_class(40, feature_id=feature, prefix="RACE")
    a.load(seed, "race")
    accounts = list(range(114, 140))
    calls = []
    for n in range(8):  # overlapping windows of the 26 accounts, shuffled order, through both servers
        ids = accounts[(n * 3) % 20:(n * 3) % 20 + 8]
        ids = ids[n % 3:] + ids[:n % 3]
        server, protocol = (a, b)[n % 2], ("rest", "soap")[(n // 2) % 2]
        calls.append((ids, lambda s=server, i=ids, p=protocol: distribute_codes(s, i, name, p)))
    answers = run_together([job for _, job in calls])
    won: Counter[int] = Counter()
    for (ids, _), codes in zip(calls, answers, strict=True):
        assert len(codes) == len(ids)
        for account, errs in zip(ids, codes, strict=True):
            assert errs in ([], [3012]), (account, errs)
            if not errs:
                won[account] += 1
    assert set(won.values()) == {1}  # nobody got two
    assert set(won) == {i for ids, _ in calls for i in ids}  # everybody asked for got one
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            c, k = t.coupons.c, t.coupon_classes.c
            rows = conn.execute(select(c.code, c.state, c.distributed_account_id, c.redeemed_account_id)
                                .join(t.coupon_classes, k.id == c.class_id).where(k.name == name)).all()
            held = [r for r in rows if r.distributed_account_id is not None]
            assert sorted(r.distributed_account_id for r in held) == sorted(won)  # one coupon each, one account each
            assert {r.state for r in held} == {"distributed" if feature else "redeemed"}
            if feature is None:
                assert all(r.redeemed_account_id == r.distributed_account_id for r in held)
            assert conn.scalar(select(func.count()).select_from(t.dispatches)
                               .where(t.dispatches.c.kind == "distribution")) == sum(
                1 for codes in answers if any(not e for e in codes))
    finally:
        engine.dispose()


def test_concurrent_claims_of_one_code_one_wins(two_servers: tuple[ServerProcess, ServerProcess, str]) -> None:
    a, b, _ = two_servers
    name, listed, seed = new_class(3, feature_id=FEATURE, prefix="CLAIM")
    a.load(seed, "claim")
    assert distribute_codes(a, [114, 115, 116], name, "rest") == [[], [], []]
    for account, code in ((114, listed[0]), (115, listed[1]), (116, listed[2])):
        def claim_rest(s: ServerProcess, acc: int = account, cd: str = code) -> Any:
            r = rest(s, CLAIM, {"AccountCouponPairs": [{"Key": str(acc), "Value": cd}]})
            doc = r.json()
            return "won" if doc["ClaimedDateByAccountId"] else doc["PartialErrors"][0][0]["Code"]

        def claim_soap(s: ServerProcess, acc: int = account, cd: str = code) -> Any:
            r = soap(s, "ClaimFeatureAdoptionCoupons",
                     f"<AccountCouponPairs><e:KeyValueEntityOflongstring><e:Key>{acc}</e:Key><e:Value>{cd}</e:Value>"
                     "</e:KeyValueEntityOflongstring></AccountCouponPairs>")
            if b"<ent:Key>" in r.content:
                return "won"
            m = re.search(rb"<exc:Code>(\d+)</exc:Code>", r.content)
            assert m, r.text
            return int(m.group(1))

        jobs = [(lambda s=(a, b)[n % 2], f=(claim_rest, claim_soap)[(n // 2) % 2]: f(s)) for n in range(10)]
        outcomes = Counter(run_together(jobs))
        assert outcomes == Counter({"won": 1, 3007: 9}), (account, outcomes)
    r = rest(a, CHECK, {"FeatureId": FEATURE, "AccountIds": ["114", "115", "116"]})
    assert r.json() == {"EligibleAccountIds": []}
    shown = b.cli("coupons", "list", "--class", name).stdout.splitlines()
    assert [line.split()[3] for line in shown] == ["claimed"] * 3 and "account 114 on" in shown[0]


# --- notifications over SMTP: a refusal is no error of the call, and takes no coupon back ------------------
def test_a_refused_notification_keeps_the_coupon_and_mail_retry_sends_it_again(tmp_path: Path) -> None:
    from tests.support.smtp_sink import Fault, SmtpSink

    name, listed, seed = new_class(2, feature_id=FEATURE, prefix="SMTP")
    with SmtpSink() as sink:
        proc = ServerProcess(tmp_path / "smtp", {"COUPONSVC_MAIL_URL": sink.url})
        proc.data_dir.mkdir()
        proc.load(SEED)
        proc.load(seed, "smtp")
        sink.standing("owner111@example.com", Fault.rcpt(550))
        proc.start()
        try:
            r = rest(proc, DISTRIBUTE, {"AccountIds": [111, 114], "ClassName": name, "SendNotification": True})
            assert r.json() == {"OperationErrors": [], "PartialErrors": [[], []]}  # no 3005 here
            sink.wait_for(lambda: len(sink.to("owner114@example.com")) == 1, 30, "the notification to 114")
            assert listed[1] in sink.to("owner114@example.com")[0].part("text/plain")
            assert sink.to("owner111@example.com") == []
            # the coupon stays the account's: still eligible, not back in the pool
            r = rest(proc, CHECK, {"FeatureId": FEATURE, "AccountIds": ["111", "114"]})
            assert r.json() == {"EligibleAccountIds": ["111", "114"]}
            assert "failed" in proc.cli("mail", "history", "--to", "owner111@example.com").stdout
            sink.clear("owner111@example.com")
            assert "requeued 1 failed" in proc.cli("mail", "retry").stdout
            sink.wait_for(lambda: len(sink.to("owner111@example.com")) == 1, 30, "the retried notification")
            assert listed[0] in sink.to("owner111@example.com")[0].part("text/plain")
        finally:
            proc.stop()
