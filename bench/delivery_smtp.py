"""Benchmark: coupon emails over SMTP to a fast relay (Postfix's smtp-sink), against smtplib as the floor.

In one run, against one relay (``/usr/sbin/smtp-sink``, started here on a free loopback port; it accepts
and discards mail and counts it; no Postfix daemon runs):

* floor: smtplib sends the server's own 1000 messages (couponsvc's messages for this class, built by the
  email library before the clock starts) over ONE connection, no database: the time until the relay has
  counted them all;
* end to end: `couponsvc serve` (COUPONSVC_WORKER=false, COUPONSVC_DELIVERY_TIMEOUT=60) answers a
  1000-address REST DispatchCoupons and delivers within the call: the time from the request until the relay
  has all 1000 (and until the response).  Target: <= 2.0x the floor;
* worker only: ``--worker-messages`` messages queued by dispatches made with COUPONSVC_DELIVERY_TIMEOUT=0,
  then `couponsvc worker --until-idle`: its sustained rate (relay side, first to last message) and wall
  time.  Target: >= 3000 msg/s.

Floor and end to end are interleaved round by round so that both see the same machine.

    .venv/bin/python bench/delivery_smtp.py [--rounds 5] [--worker-messages 5000] [--profile]
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the repository on sys.path)
import httpx
from _common import median, verdict
from tests.support.restkit import DISPATCH, headers
from tests.support.seeds import BASE_SEED
from tests.support.server import ServerProcess, free_port

from couponsvc.adapters.mail.message import CouponFacts, build_message, render

BATCH = 1000
SENDER = "coupons@bench.example"
SMTP_SINK = os.environ.get("SMTP_SINK", "/usr/sbin/smtp-sink")
E2E_TARGET = 2.0
WORKER_TARGET = 3000.0


class SmtpSink:
    """Postfix's smtp-sink on a free loopback port, its running message counter read from its output."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.first = self.last = 0.0  # perf_counter() of the first and last message since reset()
        self._base = 0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SmtpSink:
        if not os.access(SMTP_SINK, os.X_OK):
            raise SystemExit(f"{SMTP_SINK} is missing: apt-get install postfix (only its smtp-sink tool is used)")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        # -c: print "sess=.. quit=.. mesg=N" after each message; 1000: the listen backlog
        self._proc = subprocess.Popen([SMTP_SINK, *user, "-c", f"127.0.0.1:{self.port}", "1000"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 10
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as s:
                    s.noop()
                return self
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise SystemExit("smtp-sink did not start") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        buf = b""
        while chunk := self._proc.stdout.read1(65536):
            buf += chunk
            *done, buf = buf.replace(b"\n", b"\r").split(b"\r")
            now = time.perf_counter()
            for line in reversed(done):
                at = line.rfind(b"mesg=")
                if at >= 0:
                    total = int(line[at + 5:].split()[0])
                    with self._lock:
                        if total > self.count + self._base:
                            if self.count == 0:
                                self.first = now
                            self.count = total - self._base
                            self.last = now
                    break

    def reset(self) -> None:
        with self._lock:
            self._base += self.count
            self.count = 0
            self.first = self.last = 0.0

    def wait_for(self, n: int, timeout: float = 60.0) -> float:
        """Block until the relay counted ``n`` messages since the last reset; returns perf_counter() of the last."""
        deadline = time.monotonic() + timeout
        while self.count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay has {self.count} of {n} messages after {timeout} s")
            time.sleep(0.001)
        if self.count != n:
            raise RuntimeError(f"the relay has {self.count} messages; {n} were sent")
        return self.last


FACTS = dict(class_name="BENCH", amount=10.0, currency_code="USD", percent_off=None, spend_threshold=25.0,
             active_duration=30, redeem_by=datetime(2099, 12, 31, 23, 59, 59))


def server_messages(tag: str) -> list[tuple[str, bytes]]:
    """(recipient, bytes) of 1000 couponsvc messages of the bench class, built by the email library."""
    out = []
    for i in range(BATCH):
        recipient = f"floor-{tag}-{i:04d}@example.com"
        msg = build_message(message_id=f"<coupon-{i + 1}.dispatch-{tag}@bench.example>", sender=SENDER,
                            recipient=recipient, parts=render(None, CouponFacts(f"FLR{i:05d}-XXXX-YYYY", **FACTS)),
                            date=datetime(2030, 1, 1))
        out.append((recipient, msg.as_bytes()))
    return out


def floor(sink: SmtpSink, messages: list[tuple[str, bytes]]) -> float:
    sink.reset()
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=60) as smtp:
        for recipient, body in messages:
            refused = smtp.sendmail(SENDER, [recipient], body)
            assert not refused
    return sink.wait_for(BATCH) - t0


def end_to_end(sink: SmtpSink, client: httpx.Client, tag: str) -> tuple[float, float]:
    emails = [f"e2e-{tag}-{i:04d}@example.com" for i in range(BATCH)]
    sink.reset()
    t0 = time.perf_counter()
    r = client.post(DISPATCH, json={"SendToEmails": emails, "CustomerId": "222", "CouponClassName": "BENCH"})
    t_resp = time.perf_counter()
    assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]
    return sink.wait_for(BATCH) - t0, t_resp - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker-messages", type=int, default=5000)
    parser.add_argument("--worker-runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true",
                        help="Run the end-to-end server under cProfile (slower) and print its top functions.")
    args = parser.parse_args()
    rounds, queued = args.rounds, max(BATCH, args.worker_messages - args.worker_messages % BATCH)

    tmp = Path(tempfile.mkdtemp(prefix="couponsvc-delivery-"))
    try:
        with SmtpSink() as sink:
            env = {"COUPONSVC_LOG_LEVEL": "WARNING", "COUPONSVC_MAIL_URL": f"smtp://127.0.0.1:{sink.port}",
                   "COUPONSVC_MAIL_FROM": SENDER, "COUPONSVC_WORKER": "false", "COUPONSVC_DELIVERY_TIMEOUT": "60"}
            server = ServerProcess(tmp, env)
            seed = {**BASE_SEED, "customers": [dict(c) for c in BASE_SEED["customers"]]}
            seed["customers"][0]["coupon_classes"] = [
                {"name": "BENCH", "amount": 10.0, "currency_code": "USD", "spend_threshold": 25.0,
                 "active_duration": 30, "end_date": "2099-12-31T23:59:59Z",
                 "generate": BATCH * (rounds + 1) + queued * args.worker_runs + 100}]
            server.load(seed)
            prof = tmp / "serve.prof"
            if args.profile:
                _profile_server(server, prof)
            floors: list[float] = []
            e2e: list[float] = []
            resp: list[float] = []
            server.start()
            try:
                with httpx.Client(base_url=server.url, headers=headers(), timeout=300) as client:
                    warm = client.post(DISPATCH, json={"SendToEmails": [f"warm-{i}@example.com" for i in range(20)],
                                                       "CustomerId": "222", "CouponClassName": "BENCH"})
                    assert warm.status_code == 200 and warm.json() == {"PartialErrors": []}, warm.text[:300]
                    sink.wait_for(20)
                    floor(sink, server_messages("warm"))
                    for n in range(rounds):
                        floors.append(floor(sink, server_messages(str(n))))
                        total, answered = end_to_end(sink, client, str(n))
                        e2e.append(total)
                        resp.append(answered)
            finally:
                server.stop()
            if args.profile:
                _print_profile(prof)
            status_after_e2e = server.cli("mail", "status", "--json").stdout.strip()

            # --- the delivery worker alone: queue, then drain with `couponsvc worker --until-idle` ---
            rates: list[float] = []
            walls: list[float] = []
            server.env["COUPONSVC_DELIVERY_TIMEOUT"] = "0"
            for run in range(args.worker_runs):
                server.start()
                try:
                    with httpx.Client(base_url=server.url, headers=headers(), timeout=300) as client:
                        for b in range(queued // BATCH):
                            emails = [f"q{run}-{b}-{i:04d}@example.com" for i in range(BATCH)]
                            r = client.post(DISPATCH, json={"SendToEmails": emails, "CustomerId": "222",
                                                            "CouponClassName": "BENCH"})
                            assert r.status_code == 200 and r.json() == {"PartialErrors": []}, r.text[:300]
                finally:
                    server.stop()
                sink.reset()
                t0 = time.perf_counter()
                worker = subprocess.run([sys.executable, "-m", "couponsvc", "worker", "--until-idle"],
                                        env=server.env, capture_output=True, text=True, timeout=600)
                walls.append(time.perf_counter() - t0)
                assert worker.returncode == 0, worker.stderr
                sink.wait_for(queued, timeout=5)
                span = sink.last - sink.first
                rates.append((queued - 1) / span if span > 0 else float("inf"))
            status = server.cli("mail", "status", "--json").stdout.strip()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    size = len(server_messages("size")[0][1])
    print(f"SMTP delivery to Postfix smtp-sink (loopback); messages of ~{size:,} bytes; {rounds} rounds")
    print(f"  {'':56} {'median':>10} {'min':>10} {'max':>10} {'msg/s':>8}")
    for name, xs in ((f"floor: smtplib, 1 connection, no DB ({BATCH})", floors),
                     (f"couponsvc: DispatchCoupons x{BATCH} -> relay has all", e2e),
                     (f"couponsvc: DispatchCoupons x{BATCH} -> response", resp)):
        print(f"  {name:56} {median(xs) * 1000:8.1f}ms {min(xs) * 1000:8.1f}ms {max(xs) * 1000:8.1f}ms "
              f"{BATCH / median(xs):8.0f}")
    print("  each round, floor / end to end (ms): "
          + ", ".join(f"{f * 1000:.0f}/{e * 1000:.0f}" for f, e in zip(floors, e2e, strict=True)))
    print(f"  couponsvc worker --until-idle, {queued:,} queued, {args.worker_runs} runs: rate (relay side, first to "
          f"last) {', '.join(f'{r:.0f}' for r in rates)} msg/s; wall incl. start-up "
          f"{', '.join(f'{w:.2f}' for w in walls)} s")
    print(f"  mail status after the end-to-end rounds: {status_after_e2e}")
    print(f"  mail status at the end: {status}")
    print(verdict("delivery end to end (SQLite)", median(e2e) * 1000, median(floors) * 1000, E2E_TARGET))
    worker_rate = median(rates)
    print(f"RESULT delivery worker only (SQLite): {worker_rate:.0f} msg/s (target >= {WORKER_TARGET:.0f}) -> "
          f"{'MET' if worker_rate >= WORKER_TARGET else 'NOT MET'}; the floor sends "
          f"{BATCH / median(floors):.0f} msg/s")


_ORIGINAL_POPEN = subprocess.Popen


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

    def popen(cmd: list[str], *a: Any, **kw: Any) -> Any:
        if cmd[1:4] == ["-m", "couponsvc", "serve"]:
            cmd = [cmd[0], str(wrapper), "serve", *cmd[4:]]
        return _ORIGINAL_POPEN(cmd, *a, **kw)

    subprocess.Popen = popen  # type: ignore[misc]


def _print_profile(path: Path) -> None:
    import pstats

    restore: Callable[..., Any] = _ORIGINAL_POPEN
    subprocess.Popen = restore  # type: ignore[misc]
    if path.exists():
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
