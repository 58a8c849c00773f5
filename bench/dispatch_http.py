"""Benchmark: a 1000-address DispatchCoupons over HTTP on SQLite (allocation and commit; delivery not included).

Prints the median and p95 of the call beside a baseline measured in the same run against the same
server: the `/health` round trip (HTTP + one database query).  Target: median under 100 ms.

    .venv/bin/python bench/dispatch_http.py [--rounds 25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.seeds import ALICE, BASE_SEED, DEV  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.soapkit import dispatch_body, envelope  # noqa: E402


def timed(fn: object, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(name: str, samples: list[float]) -> str:
    p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]
    return f"{name:<38} median {statistics.median(samples):8.2f} ms   p95 {p95:8.2f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    rounds = args.rounds

    with tempfile.TemporaryDirectory() as tmp:
        # delivery is not part of this figure: the call only allocates and commits (messages stay queued)
        server = ServerProcess(Path(tmp), {"COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_DELIVERY_TIMEOUT": "0",
                                           "COUPONSVC_WORKER": "false"})
        seed = {**BASE_SEED}
        seed["customers"] = [dict(c) for c in BASE_SEED["customers"]]
        seed["customers"][0]["coupon_classes"] = [
            {"name": "BENCH", "amount": 10.0, "currency_code": "USD", "generate": 1000 * (2 * rounds + 4)}]
        server.load(seed)
        server.start()
        counter = iter(range(10**9))
        headers = {"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "CustomerId": "222",
                   "CustomerAccountId": "111", "Content-Type": "application/json"}
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                def health() -> None:
                    assert client.get("/health").status_code == 200

                def rest() -> None:
                    n = next(counter)
                    emails = [f"r{n}-{i}@example.com" for i in range(1000)]
                    r = client.post("/CustomerBilling/v13/Coupons/Dispatch", headers=headers,
                                    json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": "BENCH"})
                    assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]

                def soap() -> None:
                    n = next(counter)
                    body = envelope(dispatch_body([f"s{n}-{i}@example.com" for i in range(1000)], 222, "BENCH"))
                    r = client.post("/Api/Billing/v13/CustomerBillingService.svc", content=body,
                                    headers={"Content-Type": "text/xml; charset=utf-8"})
                    assert r.status_code == 200 and b"BatchError" not in r.content, r.text[:300]

                for fn in (health, rest, soap):  # warm up
                    fn()
                base = timed(health, rounds * 4)
                rest_t = timed(rest, rounds)
                soap_t = timed(soap, rounds)
        finally:
            server.stop()

    print(f"DispatchCoupons, 1000 addresses, SQLite, 1 server process ({rounds} rounds each)")
    print(summary("baseline: GET /health round trip", base))
    print(summary("REST DispatchCoupons x1000", rest_t))
    print(summary("SOAP DispatchCoupons x1000", soap_t))
    ratio = statistics.median(rest_t) / statistics.median(base)
    print(f"REST median is {ratio:.1f}x the /health baseline; target: median < 100 ms -> "
          f"{'MET' if max(statistics.median(rest_t), statistics.median(soap_t)) < 100 else 'NOT MET'}")


if __name__ == "__main__":
    main()
