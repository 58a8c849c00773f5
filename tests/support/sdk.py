"""Running the official SDK client scripts (tests/sdk/*_client.py), each in its own SDK environment.

Both SDKs install a module named ``bingads``, so each lives in its own virtual environment
(``.venv-soap``: bingads, ``.venv-rest``: msads); ``make sdks`` creates them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SDK_DIR = REPO / "tests" / "sdk"
INTERPRETERS = {"soap": REPO / ".venv-soap" / "bin" / "python", "rest": REPO / ".venv-rest" / "bin" / "python"}
SCRIPTS = {"soap": SDK_DIR / "soap_client.py", "rest": SDK_DIR / "rest_client.py"}
PROTOCOLS = ("soap", "rest")

Results = dict[str, dict[str, dict[str, Any]]]  # {protocol: {call id: what the SDK script reported}}


def require_interpreter(protocol: str) -> Path:
    python = INTERPRETERS[protocol]
    if not python.exists():
        pytest.fail(f"The official {protocol.upper()} SDK environment {python.parent.parent} is missing: "
                    f"run `make sdks` to install both official SDKs.", pytrace=False)
    return python


def run_sdk_scripts(instructions: dict[str, dict[str, Any]], timeout: float = 180) -> Results:
    """Run both scripts side by side, each with its instruction ({"base_url", "calls"}) on stdin."""
    pythons = {p: require_interpreter(p) for p in instructions}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    procs = {
        p: subprocess.Popen([str(pythons[p]), str(SCRIPTS[p])], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=SDK_DIR)
        for p in instructions
    }
    results: Results = {}
    try:
        for protocol, proc in procs.items():
            out, err = proc.communicate(json.dumps(instructions[protocol]), timeout=timeout)
            if proc.returncode != 0:
                pytest.fail(f"{SCRIPTS[protocol].name} exited with {proc.returncode}:\n{err[-4000:]}")
            results[protocol] = {r["id"]: r for r in json.loads(out)}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results
