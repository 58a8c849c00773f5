"""Log output: text (default) or one JSON object per line (``COUPONSVC_LOG_FORMAT=json``).

JSON lines carry ``time`` (UTC, ISO-8601), ``level``, ``logger``, ``message`` and, where the line is about
a call, ``tracking_id``, ``operation``, ``status``, ``duration`` (ms), ``protocol`` and ``error_code``.
Both formats pass every line through ``redact``: passwords in URLs and bearer tokens never reach the output
(the code does not log them; this is the safety net for library messages and tracebacks).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

CALL_FIELDS = ("tracking_id", "operation", "status", "duration", "protocol", "error_code")
_TRACKING = re.compile(r"tracking_id=([0-9a-fA-F-]{36})")
_SECRETS = [
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),  # scheme://user:pass@
    (re.compile(r"(?i)(\bbearer\s+)[^\s,;\"']+"), r"\1***"),
    (re.compile(r"(?i)\b(\w*(?:password|passwd|pwd|token|secret)\s*[=:]\s*)[^\s,;&\"']+"), r"\1***"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(message),
        }
        for name in CALL_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if "tracking_id" not in entry:  # older lines name it in the text only
            m = _TRACKING.search(message)
            if m:
                entry["tracking_id"] = m.group(1)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)  # one line: newlines are escaped


def install(fmt: str) -> None:
    """Put the chosen formatter on every handler of the root logger (basicConfig's stderr handler)."""
    formatter: logging.Formatter = (
        JsonFormatter() if fmt == "json" else RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
