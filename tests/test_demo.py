"""`couponsvc serve --demo` prints tokens and requests that work as printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port


def test_demo_banner_requests_work_as_printed(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the printed requests (apt-get install curl)")
    port = free_port()
    env = {**os.environ, "COUPONSVC_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "out.txt"
    with out.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "couponsvc", "serve", "--demo", "--port", str(port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        banner = out.read_text()
        assert "AuthenticationToken: DEMO-ACCESS-TOKEN" in banner
        rest_cmd = re.search(r"^curl -s \S+/CustomerBilling/.*?'\n", banner, re.S | re.M)
        soap_cmd = re.search(r"^curl -s \S+/Api/Billing/.*?^XML$", banner, re.S | re.M)
        assert rest_cmd and soap_cmd, banner
        rest = subprocess.run(["bash", "-c", rest_cmd.group(0)], capture_output=True, text=True, timeout=30)
        assert json.loads(rest.stdout) == {"PartialErrors": []}
        soap = subprocess.run(["bash", "-c", soap_cmd.group(0)], capture_output=True, text=True, timeout=30)
        assert "<bil:PartialErrors/>" in soap.stdout, soap.stdout
    finally:
        proc.terminate()
        proc.wait(10)
    # starting again with --demo reuses the demo data instead of doubling it
    again = subprocess.Popen([sys.executable, "-m", "couponsvc", "serve", "--demo", "--port", str(free_port())],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert again.stdout is not None
        for line in again.stdout:
            if b"listening on" in line:
                break
    finally:
        again.terminate()
        again.communicate(timeout=10)
    db = sqlite3.connect(tmp_path / "data" / "couponsvc.db")
    assert db.execute("SELECT count(*) FROM coupons").fetchone() == (1000,)
    db.close()
