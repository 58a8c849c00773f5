"""The journal of API calls (twin only): recorded after the response left, written in batches off the loop.

``record`` only appends to a list on the event loop; a background task writes the batch every
``interval`` seconds in a worker thread, where secrets are masked (``***``), bodies are cut to 64 KiB and
the error codes and customer id are read from the bodies.  ``flush`` writes what is pending at once
(the calls endpoint and reset use it, so a call is visible as soon as its answer was received).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from couponsvc.adapters.journal import insert_calls
from couponsvc.service_layer.unit_of_work import SqlUnitOfWork

log = logging.getLogger(__name__)

BODY_LIMIT = 64 * 1024
MASK = "***"
_SECRET_NAMES = "AuthenticationToken|DeveloperToken|Password|ApplicationToken|access_token|refresh_token"
_SOAP_SECRET = re.compile(
    rf"(<(?:[\w.-]+:)?({_SECRET_NAMES})\b[^>]*(?<!/)>)(.*?)(</(?:[\w.-]+:)?\2\s*>)", re.S | re.I)
_JSON_SECRET = re.compile(rf'("(?:{_SECRET_NAMES})"\s*:\s*)"((?:[^"\\]|\\.)*)"', re.I)
_SECRET_HEADERS = {"authorization", "developertoken", "authenticationtoken", "password", "applicationtoken",
                   "x-couponsvc-admin", "cookie", "proxy-authorization"}
_SOAP_CODE = re.compile(r"<(?:[\w.-]+:)?Code>\s*(\d+)\s*</")
_JSON_CODE = re.compile(r'"Code"\s*:\s*(\d+)')
_SOAP_CUSTOMER = re.compile(r"<(?:[\w.-]+:)?CustomerId>\s*(\d{1,19})\s*</")
_JSON_CUSTOMER = re.compile(r'"CustomerId"\s*:\s*"?(\d{1,19})"?')


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One API call as the HTTP layer saw it (raw; masked when written)."""

    tracking_id: str
    protocol: str
    operation: str
    http_status: int
    time: datetime
    duration_ms: float
    request_headers: Sequence[tuple[bytes, bytes]]
    request: bytes
    response: bytes


def _cut(text: str) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= BODY_LIMIT:
        return text
    return raw[:BODY_LIMIT].decode("utf-8", errors="ignore")


def mask_secrets(record: CallRecord) -> tuple[dict[str, str], str, str]:
    """(headers, request, response) with every token and password value replaced by ``***``."""
    secrets: set[str] = set()
    headers: dict[str, str] = {}
    for name_b, value_b in record.request_headers:
        name, value = name_b.decode("latin-1"), value_b.decode("latin-1")
        if name.lower() in _SECRET_HEADERS:
            scheme, _, rest = value.strip().partition(" ")
            if name.lower() == "authorization" and rest:
                secrets.add(rest.strip())
                value = f"{scheme} {MASK}"
            else:
                secrets.add(value.strip())
                value = MASK
        headers[name] = value
    request = record.request.decode("utf-8", errors="replace")

    def soap(m: re.Match[str]) -> str:
        secrets.add(m.group(3).strip())
        return m.group(1) + MASK + m.group(4)

    def js(m: re.Match[str]) -> str:
        secrets.add(m.group(2))
        return m.group(1) + f'"{MASK}"'

    request = _JSON_SECRET.sub(js, _SOAP_SECRET.sub(soap, request))
    response = record.response.decode("utf-8", errors="replace")
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        request = request.replace(secret, MASK)  # a token echoed anywhere else in the bodies
        response = response.replace(secret, MASK)
    return headers, _cut(request), _cut(response)


def _codes(response: str, protocol: str) -> list[int]:
    pattern = _SOAP_CODE if protocol == "SOAP" else _JSON_CODE
    seen: dict[int, None] = {}
    for m in pattern.finditer(response):
        seen.setdefault(int(m.group(1)), None)
    return list(seen)


def _customer_id(request: str, headers: dict[str, str], protocol: str) -> int | None:
    m = (_SOAP_CUSTOMER if protocol == "SOAP" else _JSON_CUSTOMER).search(request)
    if m is None:
        value = next((v for k, v in headers.items() if k.lower() == "customerid"), "").strip()
        return int(value) if value.isdigit() and len(value) < 19 else None
    number = int(m.group(1))
    return number if number < 2**63 else None


def to_row(record: CallRecord) -> dict[str, Any]:
    headers, request, response = mask_secrets(record)
    return {
        "tracking_id": record.tracking_id, "time": record.time, "protocol": record.protocol,
        "operation": record.operation, "http_status": record.http_status,
        "error_codes": json.dumps(_codes(response, record.protocol)), "duration_ms": record.duration_ms,
        "customer_id": _customer_id(request, headers, record.protocol), "request": request,
        "request_headers": json.dumps(headers), "response": response,
    }


class JournalRecorder:
    def __init__(self, uow: SqlUnitOfWork, size: int, interval: float = 0.2) -> None:
        self.uow = uow
        self.size = size
        self.interval = interval
        self._pending: list[CallRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._write_lock: asyncio.Lock | None = None

    def record(self, record: CallRecord) -> None:
        """On the event loop, after the response was sent: costs one list append."""
        self._pending.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:  # batches are written in the order the calls finished
            batch, self._pending = self._pending, []
            if batch:
                await asyncio.to_thread(self._write, batch)

    def _write(self, batch: list[CallRecord]) -> None:
        try:
            rows = [to_row(r) for r in batch]
            with self.uow.write() as store:
                insert_calls(store.conn, rows, self.size)
        except Exception:  # the journal never fails a call; a lost batch is logged
            log.exception("twin journal: %d entries could not be written", len(batch))

    async def aclose(self) -> None:
        await self.flush()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
