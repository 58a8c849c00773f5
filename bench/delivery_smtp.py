"""Benchmark: a 1000-address DispatchCoupons delivered over SMTP to a local aiosmtpd sink, end to end.

In one run, against one sink (its own process, counting messages and when they arrive):

* floor: a minimal sender (smtplib, ONE connection, no database, no templates) sends 1000 messages
  of the same size as couponsvc's to the sink; the time until the sink has them all;
* end to end: `couponsvc serve` (COUPONSVC_WORKER=false, COUPONSVC_DELIVERY_TIMEOUT=60) answers a
  1000-address REST DispatchCoupons, delivering within the call; the time from the request until the
  sink has all 1000 messages (and until the response);
* worker: 3000 messages queued by dispatches made with COUPONSVC_DELIVERY_TIMEOUT=0, then
  `couponsvc worker --until-idle`; its sustained rate (sink side: first to last message) and wall time.

Target: end to end <= 1.5 x floor.

    .venv/bin/python bench/delivery_smtp.py [--rounds 5] [--worker-messages 3000] [--pin] [--profile]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.restkit import DISPATCH, headers  # noqa: E402
from tests.support.seeds import BASE_SEED  # noqa: E402
from tests.support.server import ServerProcess, free_port  # noqa: E402

from couponsvc.adapters.mail.message import CouponFacts, build_message, render  # noqa: E402

BATCH = 1000
SENDER = "coupons@bench.example"


# --- the sink: aiosmtpd in its own process ---------------------------------------------------------------
class SinkStats:
    """Counters shared with the sink process: messages, distinct Message-IDs, first and last arrival."""

    def __init__(self) -> None:
        self.messages: Synchronized[int] = mp.Value("q", 0)  # type: ignore[assignment]
        self.distinct: Synchronized[int] = mp.Value("q", 0)  # type: ignore[assignment]
        self.bytes: Synchronized[int] = mp.Value("q", 0)  # type: ignore[assignment]
        self.first: Synchronized[float] = mp.Value("d", 0.0)  # type: ignore[assignment]
        self.last: Synchronized[float] = mp.Value("d", 0.0)  # type: ignore[assignment]

    def reset(self) -> None:
        for v in (self.messages, self.distinct, self.bytes):
            v.value = 0
        self.first.value = self.last.value = 0.0


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def _sink_main(port: int, stats: SinkStats, ready: Any, stop: Any, cpus: set[int] | None) -> None:
    from aiosmtpd.controller import Controller

    if cpus:
        os.sched_setaffinity(0, cpus)

    seen: set[bytes] = set()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.monotonic()
            content: bytes = envelope.content
            if stats.messages.value == 0:
                seen.clear()
                stats.first.value = now
            stats.last.value = now
            stats.messages.value += 1
            stats.bytes.value += len(content)
            m = _MESSAGE_ID.search(content, 0, 4096)
            if m is not None and m.group(1) not in seen:
                seen.add(m.group(1))
                stats.distinct.value += 1
            return "250 2.0.0 Ok: queued"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


class Sink:
    def __init__(self, cpus: set[int] | None = None) -> None:
        self.port = free_port()
        self.stats = SinkStats()
        self._ready = mp.Event()
        self._stop = mp.Event()
        self._proc = mp.Process(target=_sink_main, args=(self.port, self.stats, self._ready, self._stop, cpus),
                                daemon=True)

    def __enter__(self) -> Sink:
        self._proc.start()
        if not self._ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(10)

    def wait_for(self, n: int, timeout: float = 300.0) -> float:
        """Block until the sink has ``n`` messages since the last reset; returns time.perf_counter() then."""
        deadline = time.monotonic() + timeout
        while self.stats.messages.value < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sink has {self.stats.messages.value} of {n} messages after {timeout} s")
            time.sleep(0.002)
        return time.perf_counter()


# --- what is measured ------------------------------------------------------------------------------------------
def sample_message() -> bytes:
    """One couponsvc coupon email as bytes (built once, outside any timing)."""
    facts = CouponFacts("ABCD-EFGH-JKLM", "BENCH", 10.0, "USD", None, 25.0, 30, datetime(2099, 12, 31, 23, 59))
    msg = build_message(message_id="<coupon-1.dispatch-1@bench.example>", sender=SENDER,
                        recipient="floor-0000@example.com", parts=render(None, facts), date=datetime(2030, 1, 1))
    return msg.as_bytes()


def floor(sink: Sink, template: bytes, tag: str) -> float:
    """Seconds for the sink to receive BATCH such messages from smtplib over one connection."""
    bodies = [template.replace(b"floor-0000@", f"floor-{tag}-{i:04d}@".encode())
              .replace(b"<coupon-1.dispatch-1@", f"<floor-{tag}-{i}.x@".encode()) for i in range(BATCH)]
    sink.stats.reset()
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=60) as smtp:
        for i, body in enumerate(bodies):
            refused = smtp.sendmail(SENDER, [f"floor-{tag}-{i:04d}@example.com"], body)
            assert not refused
    t1 = sink.wait_for(BATCH)
    assert sink.stats.distinct.value == BATCH
    return t1 - t0


def end_to_end(sink: Sink, client: httpx.Client, tag: str) -> tuple[float, float]:
    """(seconds until the sink has all BATCH messages, seconds until the response) for one DispatchCoupons."""
    emails = [f"e2e-{tag}-{i:04d}@example.com" for i in range(BATCH)]
    sink.stats.reset()
    t0 = time.perf_counter()
    r = client.post(DISPATCH, json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": "BENCH"})
    t_resp = time.perf_counter()
    assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]
    t1 = sink.wait_for(BATCH)
    assert sink.stats.distinct.value == BATCH
    return t1 - t0, t_resp - t0


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def ms(x: float) -> str:
    return f"{x * 1000:9.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker-messages", type=int, default=3000)
    parser.add_argument("--profile", action="store_true",
                        help="Run the server under cProfile (slower) and print its top functions.")
    parser.add_argument("--pin", action="store_true",
                        help="Give the sink CPU 0 and everything else (the floor's sender, the server, the worker) "
                             "the other CPUs, instead of letting the OS place the processes.  Note: this slows the "
                             "floor too (every SMTP reply crosses CPUs), so the default is not to pin.")
    args = parser.parse_args()
    rounds, queued = args.rounds, args.worker_messages - args.worker_messages % BATCH

    cpus = sorted(os.sched_getaffinity(0))
    sink_cpus: set[int] | None = None
    if args.pin and len(cpus) >= 2:
        sink_cpus = {cpus[0]}
        os.sched_setaffinity(0, set(cpus[1:]))  # inherited by the server and worker processes
    placement = (f"sink on CPU {cpus[0]}, the rest on CPU {','.join(map(str, cpus[1:]))}" if sink_cpus
                 else "processes placed by the OS")

    template = sample_message()
    with Sink(sink_cpus) as sink, tempfile.TemporaryDirectory() as tmp:
        env = {"COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_MAIL_URL": f"smtp://127.0.0.1:{sink.port}",
               "COUPONSVC_MAIL_FROM": SENDER, "COUPONSVC_WORKER": "false", "COUPONSVC_DELIVERY_TIMEOUT": "60"}
        server = ServerProcess(Path(tmp), env)
        seed = {**BASE_SEED, "customers": [dict(c) for c in BASE_SEED["customers"]]}
        seed["customers"][0]["coupon_classes"] = [
            {"name": "BENCH", "amount": 10.0, "currency_code": "USD", "spend_threshold": 25.0, "active_duration": 30,
             "end_date": "2099-12-31T23:59:59Z", "generate": BATCH * (rounds + 1) + queued + 100}]
        server.load(seed)
        prof = Path(tmp) / "serve.prof"
        if args.profile:
            _profile_server(server, prof)
        server.start()
        floors: list[float] = []
        e2e: list[float] = []
        resp: list[float] = []
        try:
            with httpx.Client(base_url=server.url, headers=headers(), timeout=300) as client:
                warm = client.post(DISPATCH, json={"SendToEmails": [f"warm-{i}@example.com" for i in range(20)],
                                                   "CustomerId": "222", "CouponClassName": "BENCH"})
                assert warm.status_code == 200 and warm.json() == {"PartialErrors": []}, warm.text[:300]
                floor(sink, template, "warm")
                for n in range(rounds):  # interleaved, so that both see the same machine
                    floors.append(floor(sink, template, str(n)))
                    total, answered = end_to_end(sink, client, str(n))
                    e2e.append(total)
                    resp.append(answered)
        finally:
            server.stop()
        if args.profile:
            _print_profile(prof)

        # --- the delivery worker: queue `queued` messages, then drain them with `couponsvc worker` ---
        server.env["COUPONSVC_DELIVERY_TIMEOUT"] = "0"
        server.start()
        try:
            with httpx.Client(base_url=server.url, headers=headers(), timeout=300) as client:
                for b in range(queued // BATCH):
                    emails = [f"queued-{b}-{i:04d}@example.com" for i in range(BATCH)]
                    r = client.post(DISPATCH, json={"SendToEmails": emails, "CustomerId": "222",
                                                    "CouponClassName": "BENCH"})
                    assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]
        finally:
            server.stop()
        time.sleep(0.5)
        sink.stats.reset()
        t0 = time.perf_counter()
        worker = subprocess.run([sys.executable, "-m", "couponsvc", "worker", "--until-idle"], env=server.env,
                                capture_output=True, text=True, timeout=600)
        worker_wall = time.perf_counter() - t0
        assert worker.returncode == 0, worker.stderr
        sink.wait_for(queued, timeout=5)
        assert sink.stats.distinct.value == queued
        span = sink.stats.last.value - sink.stats.first.value
        rate = (queued - 1) / span if span > 0 else float("inf")
        status = server.cli("mail", "status", "--json").stdout.strip()

    size = len(template)
    print(f"SMTP delivery to a local aiosmtpd sink (own process); messages of ~{size:,} bytes; {rounds} rounds; "
          f"{placement}")
    print(f"{'':52} {'median':>12} {'min':>12} {'max':>12} {'msg/s':>8}")
    rows: list[tuple[str, list[float]]] = [
        (f"floor: smtplib, 1 connection, no DB ({BATCH})", floors),
        (f"couponsvc: DispatchCoupons x{BATCH} -> sink has all", e2e),
        (f"couponsvc: DispatchCoupons x{BATCH} -> response", resp),
    ]
    for name, xs in rows:
        print(f"{name:52} {ms(median(xs))} {ms(min(xs))} {ms(max(xs))} {BATCH / median(xs):8.0f}")
    print(f"{'  each round: floor':52} " + " ".join(f"{x * 1000:.0f}" for x in floors) + " ms")
    print(f"{'  each round: end to end':52} " + " ".join(f"{x * 1000:.0f}" for x in e2e) + " ms")
    print(f"{f'couponsvc worker --until-idle ({queued:,} queued)':52} {ms(span)} {'':12} {'':12} {rate:8.0f}"
          f"   (sink: first to last message; wall time incl. start-up {worker_wall:.2f} s)")
    ratio = median(e2e) / median(floors)
    print(f"end to end / floor = {ratio:.2f} (target <= 1.5) -> {'MET' if ratio <= 1.5 else 'NOT MET'}")
    print(f"mail status after: {status}")


def _profile_server(server: ServerProcess, out: Path) -> None:
    """Make server.start() run `couponsvc serve` under cProfile (written to ``out`` when it stops)."""
    wrapper = out.with_suffix(".py")
    wrapper.write_text(
        "import cProfile, signal, sys\n"
        "from couponsvc.entrypoints.cli.main import cli\n"
        "p = cProfile.Profile()\n"
        "def stop(*_):\n"
        f"    p.disable(); p.dump_stats({str(out)!r}); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "p.enable()\n"
        "try:\n"
        "    cli(['serve', *sys.argv[sys.argv.index('serve') + 1:]], standalone_mode=False)\n"
        "finally:\n"
        f"    p.disable(); p.dump_stats({str(out)!r})\n")
    original: Callable[..., Any] = subprocess.Popen

    def popen(cmd: list[str], *a: Any, **kw: Any) -> Any:
        if cmd[1:4] == ["-m", "couponsvc", "serve"]:
            cmd = [cmd[0], str(wrapper), "serve", *cmd[4:]]
        return original(cmd, *a, **kw)

    subprocess.Popen = popen  # type: ignore[misc]


def _print_profile(path: Path) -> None:
    import pstats

    subprocess.Popen = _ORIGINAL_POPEN  # type: ignore[misc]
    if path.exists():
        pstats.Stats(str(path)).sort_stats("cumulative").print_stats(40)
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(25)


_ORIGINAL_POPEN = subprocess.Popen

if __name__ == "__main__":
    main()
