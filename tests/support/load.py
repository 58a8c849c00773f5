"""Concurrent 1000-address DispatchCoupons calls against a real server, with /health probed meanwhile.

Shared by ``tests/test_bounds_load.py`` (small, asserting the bounds) and ``bench/load_bounds.py``
(the figures in docs/deployment.md).
"""

from __future__ import annotations

import re
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.seeds import ALICE, DEV
from tests.support.server import ServerProcess
from tests.support.soapkit import dispatch_body, envelope

LOAD_CLASS = "LOAD-1000"
_ACCESS = re.compile(r"tracking_id=(?P<tid>[0-9a-f-]{36}) .* ms=(?P<ms>[\d.]+) wait_ms=(?P<wait>[\d.]+)"
                     r" txn_ms=(?P<txn>[\d.]+)")


def load_seed(coupons: int) -> dict[str, Any]:
    return {"customers": [{"id": 222, "name": "Contoso Agency", "coupon_classes": [
        {"name": LOAD_CLASS, "amount": 10.0, "currency_code": "USD", "generate": coupons}]}]}


@dataclass
class LoadFigures:
    calls: list[float] = field(default_factory=list)  # seconds per call
    statuses: list[int] = field(default_factory=list)
    health: list[float] = field(default_factory=list)  # seconds per /health during the load
    health_failures: int = 0
    stalled_open: int = 0  # slow clients still connected after the header timeout (+ slack)
    stalled: int = 0
    tracking_ids: list[str] = field(default_factory=list)
    #: per call, from the server's access log: (its duration in the server, wait for the write lock from
    #: arrival, its own transaction) in seconds
    database: list[tuple[float, float, float]] = field(default_factory=list)

    def read_server_log(self, log: str) -> None:
        """Each call's duration, wait and transaction time, as the server logged them."""
        found = {m["tid"]: (float(m["ms"]) / 1000, float(m["wait"]) / 1000, float(m["txn"]) / 1000)
                 for m in _ACCESS.finditer(log)}
        nan = float("nan")
        self.database = [found.get(tid, (nan, nan, nan)) for tid in self.tracking_ids]

    def over_bound(self, delivery_timeout: float, margin: float, client_margin: float) -> list[str]:
        """Calls slower than SPEC section 9's bound: the delivery time (or, when the call queued longer than
        that for the database, the queueing) plus its own transaction, plus ``margin`` as the server timed
        the call, and plus ``client_margin`` as the client did (the body's transfer, the client's own
        scheduling on a busy machine)."""
        out = []
        for took, (served, wait, txn) in zip(self.calls, self.database, strict=True):
            bound = max(delivery_timeout, wait) + txn
            if not served <= bound + margin or not took <= bound + client_margin:
                out.append(f"server {served:.2f}s, client {took:.2f}s; bound {bound:.2f}s + {margin}/{client_margin}s"
                           f" (waited {wait:.2f}s, transaction {txn:.2f}s)")
        return out

    @property
    def slowest_served(self) -> float:
        return max(d[0] for d in self.database)

    @property
    def slowest(self) -> float:
        return max(self.calls)

    def summary(self) -> str:
        h = sorted(self.health)
        p99 = h[min(len(h) - 1, int(len(h) * 0.99))] if h else float("nan")
        return (f"calls {len(self.calls)}: median {statistics.median(self.calls):.2f} s, slowest {self.slowest:.2f} s"
                f" (in the server: slowest {self.slowest_served:.2f} s);"
                f" /health during the load: n={len(h)}, median {statistics.median(h) * 1000:.0f} ms,"
                f" p99 {p99 * 1000:.0f} ms, max {max(h) * 1000:.0f} ms, failures {self.health_failures};"
                f" slow clients: {self.stalled_open}/{self.stalled} still open after the header timeout")


def _dispatch(server: ServerProcess, n: int, addresses: int, soap: bool) -> tuple[float, int, str]:
    emails = [f"load{n}-{i}@example.com" for i in range(addresses)]
    t0 = time.monotonic()
    if soap:
        r = httpx.post(server.soap_url, content=envelope(dispatch_body(emails, 222, LOAD_CLASS)),
                       headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=120)
    else:
        r = httpx.post(f"{server.url}/CustomerBilling/v13/Coupons/Dispatch", timeout=120,
                       json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": LOAD_CLASS},
                       headers={"Authorization": f"Bearer {ALICE}", "DeveloperToken": DEV, "CustomerId": "222",
                                "CustomerAccountId": "111"})
    return time.monotonic() - t0, r.status_code, r.headers.get("TrackingId", "")


def run_load(server: ServerProcess, *, calls: int = 8, addresses: int = 1000, first: int = 0,
             slow_clients: int = 0, header_timeout: float = 10.0) -> LoadFigures:
    """``calls`` concurrent dispatches (half SOAP, half REST) while /health is probed every 50 ms and
    ``slow_clients`` sockets stall in their request headers."""
    figures = LoadFigures(stalled=slow_clients)
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    ok = client.get(f"{server.url}/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                figures.health.append(time.monotonic() - t0)
                figures.health_failures += 0 if ok else 1
                stop.wait(0.05)

    stalled: list[socket.socket] = []
    for _ in range(slow_clients):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            s.sendall(b"POST /CustomerBilling/v13/Coupons/Dispatch HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
        stalled.append(s)
    opened = time.monotonic()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    time.sleep(0.2)
    try:
        with ThreadPoolExecutor(calls) as pool:
            futures = [pool.submit(_dispatch, server, first + i, addresses, i % 2 == 0) for i in range(calls)]
            for f in futures:
                took, status, tracking_id = f.result()
                figures.calls.append(took)
                figures.statuses.append(status)
                figures.tracking_ids.append(tracking_id)
    finally:
        stop.set()
        prober.join(15)
    if stalled:
        time.sleep(max(0.0, header_timeout + 2 - (time.monotonic() - opened)))
        for s in stalled:
            s.setblocking(False)
            try:
                still_open = s.recv(65536) != b"" and s.recv(65536) != b""
            except BlockingIOError:
                still_open = True
            except OSError:
                still_open = False
            figures.stalled_open += 1 if still_open else 0
            s.close()
    time.sleep(0.2)  # the access log lines are written as the answers go out
    figures.read_server_log(server.log_text())
    return figures
