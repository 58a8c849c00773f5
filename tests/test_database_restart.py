"""A PostgreSQL restart during a run: calls fail cleanly with 0 InternalError (a protocol fault, quickly, never
a hang or a framework page), /health says 503, and the server recovers by itself when the database is back."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support import restkit, soapkit
from tests.support.databases import postgres_schema_url
from tests.support.seeds import BASE_SEED
from tests.support.server import ServerProcess


def postgres(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    args = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
    subprocess.run(args + (["-m", "fast"] if action == "stop" else []), check=True, capture_output=True,
                   timeout=120)


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir(),
                    reason="needs the machine's own PostgreSQL cluster (pg_ctlcluster) to restart it")
def test_calls_fail_cleanly_while_the_database_restarts_and_recover(tmp_path: Path) -> None:
    with postgres_schema_url() as url:
        server = ServerProcess(tmp_path, {"COUPONSVC_DATABASE_URL": url})
        server.load(BASE_SEED)
        server.start()
        outcomes: Counter[str] = Counter()
        slowest = [0.0]
        stop = threading.Event()

        def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                email = [f"restart-{n}-{i}-{uuid.uuid4().hex[:6]}@example.com"]
                started = time.monotonic()
                try:
                    if i % 2:
                        r = restkit.dispatch(server.url, email)
                        kind = "ok" if r.status_code == 200 else f"rest-{r.status_code}-{restkit.fault_codes(r)}"
                        assert r.headers["content-type"].startswith("application/json")
                    else:
                        res = soapkit.dispatch(server.soap_url, email)
                        kind = "ok" if res.status == 200 else f"soap-{res.status}-{res.fault_codes}"
                except httpx.TransportError as exc:
                    kind = f"transport-{type(exc).__name__}"
                slowest[0] = max(slowest[0], time.monotonic() - started)
                outcomes[kind] += 1
                time.sleep(0.02)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        try:
            for th in threads:
                th.start()
            time.sleep(1.0)
            postgres("stop")
            try:
                time.sleep(1.5)  # calls keep coming while the database is down
                health_down = httpx.get(f"{server.url}/health", timeout=10).status_code
            finally:
                postgres("start")
            health_after = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the server recovers by itself
                health_after = httpx.get(f"{server.url}/health", timeout=10).status_code
                before = outcomes["ok"]
                time.sleep(0.5)
                if health_after == 200 and outcomes["ok"] > before:
                    break
            stop.set()
            for th in threads:
                th.join(30)
        finally:
            server.stop()
    assert health_down == 503
    assert health_after == 200
    assert outcomes["rest-500-[0]"] + outcomes["soap-500-[0]"] > 0, outcomes
    assert outcomes["ok"] > 0
    allowed = {"ok", "rest-500-[0]", "soap-500-[0]"}
    assert set(outcomes) <= allowed, outcomes  # only clean 0 InternalError faults, no transport errors or pages
    assert slowest[0] < 15, f"a call took {slowest[0]:.1f} s"
