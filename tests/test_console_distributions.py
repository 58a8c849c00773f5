"""DistributeCoupons calls in the console: listed beside the DispatchCoupons calls and told apart from them,
with their per-account errors and their notifications on the call's page (SPEC 11)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support import restkit
from tests.support.console import ConsoleClient, add_operator, query
from tests.support.family import ALICE, DEV, FEATURE, SEED, new_class
from tests.support.server import ServerProcess

DISTRIBUTE = "/CustomerBilling/v13/Coupons/Distribute"
NAME, CODES, CLASS_SEED = new_class(2, feature_id=FEATURE + 40, prefix="CONSOLE")
PLAIN, _, PLAIN_SEED = new_class(1, prefix="CONSOLE")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("console-distributions"), {})
    for seed in (SEED, CLASS_SEED, PLAIN_SEED):
        proc.load(seed, "seed")
    add_operator(proc)
    proc.start()
    yield proc
    proc.stop()


def distribute(server: ServerProcess, accounts: list[int]) -> httpx.Response:
    body = {"AccountIds": accounts, "ClassName": NAME, "SendNotification": True}
    return httpx.post(server.url + DISTRIBUTE, content=json.dumps(body).encode(), timeout=60,
                      headers={"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "CustomerId": "222",
                               "CustomerAccountId": "111", "Content-Type": "application/json"})


def test_a_distribution_is_listed_as_such_with_its_per_account_errors_and_notifications(
        server: ServerProcess) -> None:
    # 111 and 114 get the class's two codes; 999 is no account; 112 keeps its books in EUR
    r = distribute(server, [111, 999, 112, 114])
    assert r.status_code == 200, r.text
    assert [[e["Code"] for e in item] for item in r.json()["PartialErrors"]] == [[], [208], [3010], []]
    tracking_id = r.headers["TrackingId"]
    (distribution_id,), = query(server, "SELECT id FROM dispatches WHERE tracking_id = ?", tracking_id)
    dispatched = restkit.dispatch(server.url, ["someone@example.com"], customer_id="222", class_name=PLAIN,
                                  auth=ALICE, dev=DEV)
    assert dispatched.json() == {"PartialErrors": []}, dispatched.text

    with ConsoleClient(server) as console:
        assert console.sign_in().status_code == 303
        listing = console.get("/console/dispatches").text
        rows = re.findall(r"<tr><td>[^<]*</td><td>(Distribute|Dispatch)Coupons</td><td><a href=\"/console/dispatches/"
                          r"(\d+)\"><code>([^<]+)</code>", listing)
        kinds = {tid: kind for kind, _, tid in rows}
        assert kinds == {tracking_id: "Distribute", dispatched.headers["TrackingId"]: "Dispatch"}, rows
        assert (str(distribution_id), tracking_id) in [(i, tid) for _, i, tid in rows]

        page = console.get(f"/console/dispatches/{distribution_id}").text
        assert "<h1>Distribution <code>" in page
        errors = re.findall(r'<td class="n">(\d+)</td><td>([^<]*)</td><td><span class="badge low">(\d+)', page)
        assert errors == [("1", "", "208"), ("2", "AccountId 112 is in EUR, the coupon in USD", "3010")], errors
        sent = set(re.findall(r"<tr><td>(owner\d+@example\.com)</td><td><code>([^<]+)</code>", page))
        assert {address for address, _ in sent} == {"owner111@example.com", "owner114@example.com"}
        assert {code for _, code in sent} == set(CODES)
