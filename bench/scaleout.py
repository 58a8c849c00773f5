"""Benchmark: DispatchCoupons throughput on SQLite (1 server) and PostgreSQL (1 and 2 servers).

Each client thread sends REST DispatchCoupons calls of 10 fresh addresses each, back to back, for a fixed
time; clients are spread over the servers.  Delivery is switched off (COUPONSVC_DELIVERY_TIMEOUT=0,
COUPONSVC_WORKER=false) so the figures are allocation and commit only.  Prints addresses per second and
the call latency median and p95 for 1, 4 and 16 clients.

    .venv/bin/python bench/scaleout.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.databases import postgres_schema_url  # noqa: E402
from tests.support.seeds import ALICE, BASE_SEED, DEV  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

PER_CALL = 10
HEADERS = {"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "CustomerId": "222",
           "CustomerAccountId": "111", "Content-Type": "application/json"}


def seed(codes: int) -> dict[str, object]:
    customers = [dict(c) for c in BASE_SEED["customers"]]
    customers[0]["coupon_classes"] = [{"name": "BENCH", "amount": 10.0, "currency_code": "USD",
                                       "generate": codes}]
    return {**BASE_SEED, "customers": customers}


def run_clients(servers: list[ServerProcess], clients: int, seconds: float, tag: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    addresses = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        server = servers[n % len(servers)]
        i = 0
        with httpx.Client(base_url=server.url, timeout=60) as http:
            while time.monotonic() < stop_at:
                i += 1
                emails = [f"{tag}-{n}-{i}-{j}@example.com" for j in range(PER_CALL)]
                t0 = time.perf_counter()
                r = http.post("/CustomerBilling/v13/Coupons/Dispatch", headers=HEADERS,
                              json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": "BENCH"})
                elapsed = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:200]
                with lock:
                    latencies.append(elapsed)
                    addresses[0] += PER_CALL

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return addresses[0] / (time.monotonic() - started), latencies


def measure(name: str, servers: list[ServerProcess], seconds: float, rows: list[str]) -> dict[int, float]:
    result = {}
    for clients in (1, 4, 16):
        tag = "".join(ch for ch in name.lower() if ch.isalnum()) + str(clients)
        rate, lat = run_clients(servers, clients, seconds, tag)
        p95 = sorted(lat)[max(0, int(len(lat) * 0.95) - 1)]
        rows.append(f"| {name} | {clients} | {rate:,.0f} | {statistics.median(lat):.1f} | {p95:.1f} |")
        print(rows[-1], flush=True)
        result[clients] = rate
    return result


def start_servers(base: Path, env: dict[str, str], count: int, codes: int) -> list[ServerProcess]:
    env = {**env, "COUPONSVC_DELIVERY_TIMEOUT": "0", "COUPONSVC_WORKER": "false", "COUPONSVC_LOG_LEVEL": "WARNING"}
    servers = [ServerProcess(base / f"s{i}", env) for i in range(count)]
    servers[0].load(seed(codes))
    for s in servers:
        s.start()
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    codes = 400_000
    rows = ["| setup | clients | addresses/s | median ms | p95 ms |", "|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        servers = start_servers(base / "sqlite", {"COUPONSVC_DATA_DIR": str(base / "sqlite" / "data")}, 1, codes)
        try:
            sqlite = measure("SQLite, 1 server", servers, args.seconds, rows)
        finally:
            for s in servers:
                s.stop()
        results = {}
        for count in (1, 2):
            with postgres_schema_url() as url:
                servers = start_servers(base / f"pg{count}", {"COUPONSVC_DATABASE_URL": url}, count, codes)
                try:
                    results[count] = measure(f"PostgreSQL, {count} server{'s' * (count > 1)}", servers,
                                             args.seconds, rows)
                finally:
                    for s in servers:
                        s.stop()
    print()
    print(f"Measured {date.today()} on {platform.node()} ({platform.machine()}, "
          f"{__import__('os').cpu_count()} cores), {args.seconds:g} s per row, {PER_CALL} addresses per call.")
    target = results[2][16] >= sqlite[16]
    print(f"Target: PostgreSQL with 2 servers at 16 clients ({results[2][16]:,.0f}/s) >= SQLite with 1 server at "
          f"16 clients ({sqlite[16]:,.0f}/s): {'MET' if target else 'NOT MET'}")


if __name__ == "__main__":
    main()
