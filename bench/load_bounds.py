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
#: what a call may take beyond its delivery time: its own transaction (~0.1-0.3 s for 1000 addresses
#: here), recording the outcome and the HTTP round trip of a 1000-address body
ALLOWANCE = 1.5


def scenario(name: str, env: dict[str, str], calls: int, rounds: int, slow_clients: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp), {"COUPONSVC_LOG_LEVEL": "WARNING",
                                           "COUPONSVC_HEADER_TIMEOUT": str(HEADER_TIMEOUT), **env})
        server.load(BASE_SEED, "base")
        server.load(load_seed(1000 * calls * rounds + 100), "load")
        server.start()
        ok = True
        try:
            for r in range(rounds):
                figures = run_load(server, calls=calls, first=r * calls, slow_clients=slow_clients,
                                   header_timeout=HEADER_TIMEOUT)
                bound = float(env["COUPONSVC_DELIVERY_TIMEOUT"]) + ALLOWANCE
                met = (figures.slowest <= bound and max(figures.health) < 1.0 and figures.stalled_open == 0
                       and set(figures.statuses) == {200})
                ok = ok and met
                print(f"{name}, round {r + 1}: {figures.summary()}; bound {bound:.1f} s, /health < 1 s:"
                      f" {'MET' if met else 'NOT MET'} (statuses {sorted(set(figures.statuses))})")
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
