"""Benchmark: concurrent 1000-address DispatchCoupons calls against their time bound, /health meanwhile.

Two scenarios on one SQLite server process with the in-process worker on:
- a slow SMTP relay (every DATA answered 50 ms late, so no call can send its 1000 messages in time) and
  ``COUPONSVC_DELIVERY_TIMEOUT=3``: the slowest call against its bound (delivery time + its transaction);
- delivery off (``COUPONSVC_DELIVERY_TIMEOUT=0``): the calls are pure allocation + commit.
In both, /health is probed every 50 ms during the load (target: well under a second), and slow clients
stall in their request headers (they must all be gone after ``COUPONSVC_HEADER_TIMEOUT``).

    .venv/bin/python bench/load_bounds.py [--calls 8] [--rounds 2] [--slow-clients 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.load import load_seed, run_load  # noqa: E402
from tests.support.seeds import BASE_SEED  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.smtp_sink import SmtpSink  # noqa: E402

DELIVERY_TIMEOUT = 3.0
HEADER_TIMEOUT = 3.0
#: beyond SPEC section 9's bound (delivery time, or the queueing for the database when longer, plus the
#: call's own transaction, as the server logs them): as the server times the call, and as the client does
MARGIN, CLIENT_MARGIN = 1.0, 2.5


def scenario(name: str, env: dict[str, str], calls: int, rounds: int, slow_clients: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp), {"COUPONSVC_LOG_LEVEL": "INFO",
                                           "COUPONSVC_HEADER_TIMEOUT": str(HEADER_TIMEOUT), **env})
        server.load(BASE_SEED, "base")
        server.load(load_seed(1000 * calls * rounds + 100), "load")
        server.start()
        ok = True
        try:
            for r in range(rounds):
                figures = run_load(server, calls=calls, first=r * calls, slow_clients=slow_clients,
                                   header_timeout=HEADER_TIMEOUT)
                over = figures.over_bound(float(env["COUPONSVC_DELIVERY_TIMEOUT"]), MARGIN, CLIENT_MARGIN)
                met = (not over and max(figures.health) < 1.0 and figures.stalled_open == 0
                       and set(figures.statuses) == {200})
                ok = ok and met
                worst = max(zip(figures.calls, figures.database, strict=True), key=lambda c: c[1][0] - c[1][2])
                print(f"{name}, round {r + 1}: {figures.summary()}; slowest against its bound: server"
                      f" {worst[1][0]:.2f} s for max(delivery, wait {worst[1][1]:.2f} s) + transaction"
                      f" {worst[1][2]:.2f} s; bound + {MARGIN:g} s, /health < 1 s: {'MET' if met else 'NOT MET'}"
                      f" (statuses {sorted(set(figures.statuses))}){''.join(chr(10) + '  over: ' + o for o in over)}")
        finally:
            server.stop()
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slow-clients", type=int, default=200)
    args = parser.parse_args()
    print(f"{args.calls} concurrent DispatchCoupons x1000 (half SOAP, half REST), SQLite, 1 server process")
    with SmtpSink(delay=0.05) as relay:
        slow = scenario(f"slow relay, delivery {DELIVERY_TIMEOUT:g} s",
                        {"COUPONSVC_DELIVERY_TIMEOUT": str(DELIVERY_TIMEOUT), "COUPONSVC_MAIL_URL": relay.url},
                        args.calls, args.rounds, args.slow_clients)
    off = scenario("delivery off", {"COUPONSVC_DELIVERY_TIMEOUT": "0"}, args.calls, args.rounds, args.slow_clients)
    sys.exit(0 if slow and off else 1)


if __name__ == "__main__":
    main()
