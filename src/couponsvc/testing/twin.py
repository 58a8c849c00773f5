"""A ``couponsvc serve --twin`` subprocess on a free loopback port, and its control-plane client."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

ADMIN_HEADER = "X-Couponsvc-Admin"
SOAP_PATH = "/Api/Billing/v13/CustomerBillingService.svc"

#: what the twin holds when no seed is given: one customer, account, class with 100 codes, and tokens
DEFAULT_SEED: dict[str, Any] = {
    "developer_tokens": [{"token": "TWIN-DEVELOPER-TOKEN", "name": "twin"}],
    "customers": [{
        "id": 222, "name": "Contoso Agency (twin)",
        "accounts": [{"id": 111, "number": "F111AAAA", "currency_code": "USD"}],
        "coupon_classes": [{
            "name": "SPRING-100", "coupon_type": "Acquisition", "amount": 100.0, "currency_code": "USD",
            "spend_threshold": 25.0, "active_duration": 30, "start_date": "2026-01-01T00:00:00Z",
            "end_date": "2099-12-31T23:59:59Z", "expiration_date": "2099-12-31T23:59:59Z", "generate": 100,
        }],
    }],
    "users": [{"name": "twin", "customers": [222],
               "access_tokens": [{"token": "TWIN-ACCESS-TOKEN", "expires_at": "2099-12-31T23:59:59Z"}]}],
}

_UNSET: Any = object()


class TwinError(RuntimeError):
    """The twin refused a control-plane request (``status`` and the server's ``message``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"couponsvc twin answered {status}: {message}")
        self.status = status
        self.message = message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_tokens(seed: Mapping[str, Any]) -> tuple[str | None, str | None]:
    developer = next((d.get("token") for d in seed.get("developer_tokens") or []), None)
    access = next((t.get("token") for u in seed.get("users") or [] for t in u.get("access_tokens") or []), None)
    return developer, access


class CouponsvcTwin:
    """A running twin: its URLs and tokens, and one method per control-plane endpoint."""

    def __init__(self, url: str, admin_token: str, seed: Mapping[str, Any] | None = None,
                 process: subprocess.Popen[bytes] | None = None, log_path: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.process = process
        self.log_path = log_path
        self.start_seed: Mapping[str, Any] = seed or {}
        #: the first developer and access token of the seed in force (the start seed, or the last reset's)
        self.developer_token, self.access_token = _first_tokens(self.start_seed)
        self.database_url: str | None = None  # set by start_twin

    # --- where to point the SDKs ------------------------------------------------------------------------
    @property
    def soap_url(self) -> str:
        """The SOAP endpoint (bingads SOAP SDK: ``ServiceClient(..., location=soap_url)``)."""
        return self.url + SOAP_PATH

    @property
    def rest_url(self) -> str:
        """The REST base URL (msads REST SDK: ``ServiceClient(..., location=rest_url)``)."""
        return self.url

    # --- the control plane ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = _UNSET, query: Mapping[str, Any] | None = None) -> Any:
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        url = f"{self.url}/_couponsvc/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = None if body is _UNSET else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={ADMIN_HEADER: self.admin_token})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw).get("error", raw.decode(errors="replace"))
            except ValueError:
                message = raw.decode(errors="replace")
            raise TwinError(exc.code, str(message)) from None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "health")
        return result

    def reset(self, seed: Mapping[str, Any] | None = None) -> None:
        """Remove everything (data, mail, journal, faults, clock setting) and load the start seed, or ``seed``
        (``developer_token`` and ``access_token`` then follow that seed)."""
        if seed is None:
            self.request("POST", "reset")
        else:
            self.request("POST", "reset", dict(seed))
        self.developer_token, self.access_token = _first_tokens(self.start_seed if seed is None else seed)

    def seed(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Load a seed document on top of what is there (idempotent, all or nothing)."""
        result: dict[str, Any] = self.request("POST", "seed", dict(document))
        return result

    def mail(self, to: str | None = None, coupon_class: str | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:
        """The messages of the outbox, newest first (``to``: one address, case-insensitive)."""
        messages: list[dict[str, Any]] = self.request(
            "GET", "mail", query={"to": to, "class": coupon_class, "limit": limit})["messages"]
        return messages

    def wait_for_mail(self, to: str, status: str = "sent", timeout: float = 15.0) -> list[dict[str, Any]]:
        """The messages to ``to`` once one of them has ``status`` (mail is sent right after a dispatch)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.mail(to=to)
            if any(m["status"] == status for m in messages) or time.monotonic() > deadline:
                return messages
            time.sleep(0.1)

    def calls(self, operation: str | None = None, tracking_id: str | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
        """The journal of API calls, newest first (tokens shown as ***)."""
        calls: list[dict[str, Any]] = self.request(
            "GET", "calls", query={"operation": operation, "tracking_id": tracking_id, "limit": limit})["calls"]
        return calls

    def fault(self, **rule: Any) -> dict[str, Any]:
        """Add a fault rule, e.g. ``fault(operation="DispatchCoupons", error_code=117, count=1)`` or
        ``fault(smtp="5xx", recipient="bounce@")``; returns it with its ``id``."""
        result: dict[str, Any] = self.request("POST", "faults", rule)
        return result

    def faults(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = self.request("GET", "faults")["faults"]
        return rules

    def clear_faults(self, fault_id: int | None = None) -> None:
        self.request("DELETE", "faults" if fault_id is None else f"faults/{fault_id}")

    def clock(self, now: datetime | str | None = _UNSET, *, advance_seconds: float | None = None,
              frozen: bool = True) -> dict[str, Any]:
        """No argument: read the service clock.  ``now=``: set it (frozen unless ``frozen=False``; ``None``:
        back to real time).  ``advance_seconds=``: move it."""
        if now is _UNSET and advance_seconds is None:
            result: dict[str, Any] = self.request("GET", "clock")
            return result
        if advance_seconds is not None:
            result = self.request("POST", "clock", {"advance_seconds": advance_seconds})
            return result
        value = now.isoformat() if isinstance(now, datetime) else now
        result = self.request("POST", "clock", {"now": value, "frozen": frozen})
        return result

    # --- the process ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> CouponsvcTwin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_twin(data_dir: Path, seed: Mapping[str, Any] | str | Path | None = None,
               env: Mapping[str, str] | None = None, timeout: float = 60.0) -> CouponsvcTwin:
    """Start ``couponsvc serve --twin`` (SQLite and a Maildir in ``data_dir``) and wait until it answers.

    ``seed``: a seed document, the path of a seed file, or None for ``DEFAULT_SEED``.  ``env``: extra
    COUPONSVC_* settings (e.g. ``COUPONSVC_MAIL_URL``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if seed is None or isinstance(seed, Mapping):
        document: Mapping[str, Any] = DEFAULT_SEED if seed is None else seed
        seed_path = data_dir / "twin-seed.json"
        seed_path.write_text(json.dumps(document))
    else:
        seed_path = Path(seed)
        document = json.loads(seed_path.read_text("utf-8"))
    admin_token = secrets.token_urlsafe(24)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("COUPONSVC_")}
    full_env = {**base_env, "COUPONSVC_DATA_DIR": str(data_dir), "COUPONSVC_ADMIN_TOKEN": admin_token,
                "COUPONSVC_DATABASE_URL": f"sqlite:///{data_dir}/couponsvc.db", "COUPONSVC_LOG_LEVEL": "WARNING",
                "COUPONSVC_WORKER_POLL": "0.1", **(env or {})}
    log_path = data_dir / "couponsvc.log"
    last_error = ""
    for _attempt in range(3):  # a free port may be taken by someone else before we bind it: try another
        port = _free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "couponsvc", "serve", "--twin", "--port", str(port), "--seed", str(seed_path)],
                env=full_env, stdout=log, stderr=subprocess.STDOUT)
        twin = CouponsvcTwin(f"http://127.0.0.1:{port}", admin_token, document, process, log_path)
        twin.database_url = full_env["COUPONSVC_DATABASE_URL"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                twin.health()
                return twin
            except (OSError, TwinError):
                time.sleep(0.1)
        twin.stop()
        last_error = twin.log()[-4000:]
        if "address already in use" not in last_error.lower():
            break
    raise RuntimeError(f"couponsvc serve --twin did not start:\n{last_error}")
