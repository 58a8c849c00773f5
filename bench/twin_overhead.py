"""Benchmark: what the twin (journal, fault check, shared clock) adds to a 1000-address DispatchCoupons.

Two servers from the same seed on SQLite, one plain and one with ``--twin``; calls alternate between them
so both see the same machine load.  Delivery is left out (COUPONSVC_DELIVERY_TIMEOUT=0, no worker), so the
figure is the call itself.  Prints both medians and their ratio; target: the twin within 10 % (or 5 ms).

    .venv/bin/python bench/twin_overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.seeds import ALICE, BASE_SEED, DEV  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

from couponsvc.testing import start_twin  # noqa: E402

ENV = {"COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_DELIVERY_TIMEOUT": "0", "COUPONSVC_WORKER": "false"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    seed = copy.deepcopy(BASE_SEED)
    seed["customers"][0]["coupon_classes"] = [
        {"name": "BENCH", "amount": 10.0, "currency_code": "USD", "generate": 1000 * (rounds + 2)}]
    headers = {"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "CustomerId": "222",
               "CustomerAccountId": "111", "Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        plain = ServerProcess(Path(tmp, "plain"), ENV)
        plain.load(seed)
        plain.start()
        twin = start_twin(Path(tmp, "twin"), seed, ENV)
        samples: dict[str, list[float]] = {"plain": [], "twin": []}
        try:
            with httpx.Client(timeout=60) as client:
                for n in range(rounds + 1):
                    for name, url in (("plain", plain.url), ("twin", twin.url)):
                        emails = [f"r{n}-{i}@example.com" for i in range(1000)]
                        t0 = time.perf_counter()
                        r = client.post(f"{url}/CustomerBilling/v13/Coupons/Dispatch", headers=headers,
                                        json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": "BENCH"})
                        took = (time.perf_counter() - t0) * 1000
                        assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]
                        if n:  # the first round warms up
                            samples[name].append(took)
            journaled = len(twin.calls(limit=1000))
        finally:
            twin.stop()
            plain.stop()
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"DispatchCoupons, 1000 addresses, SQLite, delivery excluded ({rounds} rounds each, alternating)")
    print(f"  plain server      median {med['plain']:8.2f} ms")
    print(f"  twin server       median {med['twin']:8.2f} ms   ({journaled} calls journaled)")
    ratio = med["twin"] / med["plain"]
    met = med["twin"] <= max(med["plain"] * 1.10, med["plain"] + 5)
    print(f"  twin / plain      {ratio:.3f}   target: within 10 % or 5 ms -> {'MET' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
