"""Isolation between customers (SPEC 4, 5): a user linked to customer A can neither see nor redeem into
customer B, and cannot tell whether B's coupons exist.

alice acts for customer 222 only, bob for 333 only.  Every question alice asks about bob's coupons is asked
twice, once naming something of bob's that exists and once naming something that does not: the two answers
must be the same, byte for byte but for the TrackingId.  Each check also runs as bob, so that a search that
returns nothing for alice is known to find something for bob.  Raw REST and raw SOAP, on a server of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from lxml import etree

from tests.support import soapkit
from tests.support.server import ServerProcess

DEV = "DEV-ISOLATION"
ALICE = "AT-iso-alice"  # customer 222: account 111 (USD)
BOB = "AT-iso-bob"  # customer 333: accounts 444 (USD), 445 (EUR)
ENT = "https://bingads.microsoft.com/Customer/v13/Entities"
BOB_CODES = [f"BOB-{i:04d}" for i in range(6)]

SEED: dict[str, Any] = {
    "developer_tokens": [{"token": DEV, "name": "isolation"}],
    "customers": [
        {"id": 222, "name": "Alice Agency", "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD"}],
         "coupon_classes": [{"name": "ALICE-10", "amount": 10.0, "currency_code": "USD",
                             "codes": [f"ALI-{i:04d}" for i in range(4)]}]},
        {"id": 333, "name": "Bob Partners",
         "accounts": [{"id": 444, "number": "F444BBBB", "currency_code": "USD"},
                      {"id": 445, "number": "F445BBBB", "currency_code": "EUR"}],
         "coupon_classes": [{"name": "Bob-Secret", "amount": 25.0, "currency_code": "USD", "active_duration": 30,
                             "codes": BOB_CODES}]},
    ],
    "users": [
        {"name": "alice", "customers": [222],
         "access_tokens": [{"token": ALICE, "expires_at": "2099-01-01T00:00:00Z"}]},
        {"name": "bob", "customers": [333], "access_tokens": [{"token": BOB, "expires_at": "2099-01-01T00:00:00Z"}]},
    ],
}
PROTOCOLS = ("rest", "soap")
REST_PATHS = {"SearchCoupons": "/CustomerBilling/v13/Coupons/Search",
              "RedeemCoupon": "/CustomerBilling/v13/Coupon/Redeem",
              "GetCouponInfo": "/CustomerBilling/v13/CouponInfo/Query"}


@pytest.fixture(scope="module")
def iso_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("isolation"))
    proc.load(SEED, "isolation")
    proc.start()
    # bob's coupons: BOB-0000 sent to victim@example.com, BOB-0001 redeemed into his account 444
    r = call(proc, "rest", "DispatchCoupons",
             {"CustomerId": "333", "CouponClassName": "Bob-Secret", "SendToEmails": ["Victim@Example.com"]}, BOB)
    assert r.status == 200 and r.body == {"PartialErrors": []}, r.body
    r = call(proc, "rest", "RedeemCoupon", {"AccountId": "444", "CouponCode": "BOB-0001"}, BOB)
    assert r.status == 200, r.body
    yield proc
    proc.stop()


class Answer:
    """One call's answer with its TrackingId blanked out, comparable across calls."""

    def __init__(self, status: int, text: str, body: Any) -> None:
        self.status = status
        self.text = text
        self.body = body

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Answer) and (self.status, self.text) == (other.status, other.text)

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.text[:400]!r})"


TRACKING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def to_xml(value: Any, ns: str = "") -> str:
    """The children of a request element from a JSON-like value (lists of predicates, paging)."""
    out = []
    for key, v in value.items():
        if v is None:
            out.append(f'<{key} i:nil="true"/>')
        elif key == "Predicates":
            items = "".join(f"<e:Predicate>{to_xml(p, 'e:')}</e:Predicate>" for p in v)
            out.append(f'<Predicates xmlns:e="{ENT}">{items}</Predicates>')
        elif key == "PageInfo":
            out.append(f'<PageInfo xmlns:e="{ENT}">{to_xml(v, "e:")}</PageInfo>')
        elif key == "SendToEmails":
            items = "".join(f"<a:string>{escape(x)}</a:string>" for x in v)
            out.append(f'<SendToEmails xmlns:a="{soapkit.ARR}">{items}</SendToEmails>')
        else:
            out.append(f"<{ns}{key}>{escape(str(v))}</{ns}{key}>")
    return "".join(out)


def call(server: ServerProcess, protocol: str, operation: str, args: dict[str, Any], token: str) -> Answer:
    if protocol == "rest":
        path = REST_PATHS.get(operation, "/CustomerBilling/v13/Coupons/Dispatch")
        r = httpx.post(server.url + path, content=json.dumps(args).encode(), timeout=60,
                       headers={"Authorization": f"Bearer {token}", "DeveloperToken": DEV,
                                "Content-Type": "application/json"})
        body = r.json()
        return Answer(r.status_code, TRACKING.sub("-", r.text), body)
    envelope = soapkit.envelope(f'<{operation}Request xmlns="{soapkit.BIL}">{to_xml(args)}</{operation}Request>',
                                auth=token, dev=DEV)
    r = httpx.post(server.soap_url, content=envelope, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=60)
    res = soapkit.SoapResult(r.status_code, r.headers, etree.fromstring(r.content))
    body: Any = res.fault_codes if res.fault is not None else res.root
    return Answer(r.status_code, TRACKING.sub("-", r.text), body)


def found_codes(answer: Answer) -> list[str]:
    assert answer.status == 200, answer
    if isinstance(answer.body, dict):
        return [c["CouponCode"] for c in answer.body["Coupons"]]
    return [el.text for el in answer.body.iter(f"{{{ENT}}}CouponCode")]


def fault_codes(answer: Answer) -> list[int]:
    if isinstance(answer.body, dict):
        return [e["Code"] for e in answer.body.get("Errors") or answer.body.get("OperationErrors") or []]
    return list(answer.body)


def search(*predicates: tuple[str, str, str], size: int | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"Predicates": [{"Field": f, "Operator": o, "Value": v} for f, o, v in predicates]}
    if size is not None:
        args["PageInfo"] = {"Index": 0, "Size": size}
    return args


# (what bob has, the same question about something that does not exist): alice gets the same answer for both
PROBES = [
    pytest.param(search(("CustomerId", "Equals", "333")), search(("CustomerId", "Equals", "987654")), id="customer"),
    pytest.param(search(("CustomerId", "In", "333")), search(("CustomerId", "In", "987654")), id="customer-in"),
    pytest.param(search(("CouponCode", "Equals", "BOB-0002")), search(("CouponCode", "Equals", "BOB-9999")),
                 id="code"),
    pytest.param(search(("CouponCode", "In", "BOB-0002,BOB-0001")), search(("CouponCode", "In", "BOB-9998,BOB-9999")),
                 id="code-in"),
    pytest.param(search(("CouponCode", "StartsWith", "BOB-")), search(("CouponCode", "StartsWith", "ZZZ-")),
                 id="code-prefix"),
    pytest.param(search(("CouponCode", "Contains", "OB-00")), search(("CouponCode", "Contains", "QQ-00")),
                 id="code-contains"),
    pytest.param(search(("CouponClassName", "Equals", "bob-secret")), search(("CouponClassName", "Equals", "no-such")),
                 id="class"),
    pytest.param(search(("CouponClassName", "StartsWith", "Bob")), search(("CouponClassName", "StartsWith", "Zed")),
                 id="class-prefix"),
    pytest.param(search(("SendToEmail", "Equals", "victim@example.com")),
                 search(("SendToEmail", "Equals", "nobody@example.com")), id="address"),
    pytest.param(search(("SendToEmail", "Contains", "victim")), search(("SendToEmail", "Contains", "nobody")),
                 id="address-contains"),
    pytest.param(search(("CustomerId", "Equals", "333"), ("IsRedeemed", "Equals", "true")),
                 search(("CustomerId", "Equals", "987654"), ("IsRedeemed", "Equals", "true")), id="redeemed"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("existing", "missing"), PROBES)
def test_search_never_shows_another_customers_coupons_nor_whether_they_exist(
    iso_server: ServerProcess, protocol: str, existing: dict[str, Any], missing: dict[str, Any]
) -> None:
    assert found_codes(call(iso_server, protocol, "SearchCoupons", existing, BOB)), "bob must see his own coupons"
    seen = call(iso_server, protocol, "SearchCoupons", existing, ALICE)
    assert found_codes(seen) == []
    assert seen == call(iso_server, protocol, "SearchCoupons", missing, ALICE)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_search_without_predicates_and_with_negations_only_shows_own_coupons(iso_server: ServerProcess,
                                                                           protocol: str) -> None:
    own = [f"ALI-{i:04d}" for i in range(4)]
    for args in (search(size=1000), search(("CustomerId", "NotEquals", "222")), {},
                 search(("CouponCode", "NotEquals", "BOB-0001"), size=1000),
                 search(("CouponClassName", "NotEquals", "alice-10"), size=1000),
                 search(("IsRedeemed", "NotEquals", "true"), size=1000)):
        codes = found_codes(call(iso_server, protocol, "SearchCoupons", args, ALICE))
        assert set(codes) <= set(own), (args, codes)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("account", ["444", "445"])
def test_redeem_into_another_customers_account_is_106_whatever_the_code(iso_server: ServerProcess, protocol: str,
                                                                       account: str) -> None:
    answers = [call(iso_server, protocol, "RedeemCoupon", {"AccountId": account, "CouponCode": code}, ALICE)
               for code in ("BOB-0003", "BOB-0001", "BOB-9999", "ALI-0003")]  # available, redeemed, none, alice's
    assert fault_codes(answers[0]) == [106]
    assert all(a == answers[0] for a in answers), answers
    # nothing was redeemed: bob still finds BOB-0003 unredeemed, alice's ALI-0003 is unredeemed too
    for token, code in ((BOB, "BOB-0003"), (ALICE, "ALI-0003")):
        view = call(iso_server, "rest", "SearchCoupons", search(("CouponCode", "Equals", code)), token)
        assert [c["IsRedeemed"] for c in view.body["Coupons"]] == [False]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_coupon_info_of_another_customer_is_106_like_a_customer_that_does_not_exist(iso_server: ServerProcess,
                                                                                  protocol: str) -> None:
    assert call(iso_server, protocol, "GetCouponInfo", {"CustomerId": "333"}, BOB).status == 200
    foreign = call(iso_server, protocol, "GetCouponInfo", {"CustomerId": "333"}, ALICE)
    assert fault_codes(foreign) == [106]
    assert foreign == call(iso_server, protocol, "GetCouponInfo", {"CustomerId": "987654"}, ALICE)


def test_what_alice_may_know_of_a_code_she_holds(iso_server: ServerProcess) -> None:
    """The decided rule: a code is a bearer credential.  Whoever holds one may redeem it into an account of a
    customer they act for; holding it shows nothing else of the class owner's coupons."""
    r = call(iso_server, "rest", "RedeemCoupon", {"AccountId": "111", "CouponCode": "BOB-0004"}, ALICE)
    assert r.status == 200, r
    info = call(iso_server, "rest", "GetCouponInfo", {"CustomerId": "222"}, ALICE).body["CouponInfoData"]
    assert [(i["AccountId"], i["CouponValue"]) for i in info] == [(111, 25.0)]
    assert found_codes(call(iso_server, "rest", "SearchCoupons", search(("CouponCode", "Equals", "BOB-0004")),
                            ALICE)) == []
    # the class owner sees that it was redeemed, and into which account
    (mine,) = call(iso_server, "rest", "SearchCoupons", search(("CouponCode", "Equals", "BOB-0004")), BOB).body[
        "Coupons"]
    assert mine["IsRedeemed"] is True and mine["RedemptionInfo"]["AccountId"] == "111"
    # bob's own GetCouponInfo lists redemptions by his accounts only
    bob_info = call(iso_server, "rest", "GetCouponInfo", {"CustomerId": "333"}, BOB).body["CouponInfoData"]
    assert [i["AccountId"] for i in bob_info] == [444]
