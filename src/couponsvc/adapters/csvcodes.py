"""Code pools from CSV: ``code[,expires_at]`` per line, an optional ``code[,expires_at]`` header, blank lines
ignored.

The whole file is checked before anything is written; a problem is reported as ``FILE:LINE: ...``.
A million lines is routine: the common line (a valid code alone) takes a fast path, and every other
line (the header, blank lines, an ``expires_at`` column, anything wrong) the careful one, which is the
only one that words errors.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from couponsvc.domain.codes import MAX_CODE_LENGTH, code_problem
from couponsvc.domain.errors import ConfigurationError


class CsvError(ConfigurationError):
    pass


@dataclass
class CodesCsv:
    """A checked CSV: its rows (``(code, expires_at)`` in file order, no duplicates) and each code's line."""

    path: Path
    rows: list[tuple[str, datetime | None]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)

    def where(self, code: str) -> str:
        """``FILE:LINE`` of a code of this file."""
        return f"{self.path}:{self.lines[code]}"


def _expiry(raw: str, where: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(f"{where}: expires_at {raw!r} is not an ISO-8601 date such as 2027-12-31T23:59:59Z") from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _line_at(data: bytes, offset: int) -> int:
    """The 1-based line of a byte offset (line breaks: LF, CR LF or CR, as the csv module reads them)."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CsvError(f"{path}: cannot be read: {exc.strerror}") from exc
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CsvError(f"{path}:{_line_at(data, exc.start)}: is not UTF-8 text ({exc.reason})") from None


def read_codes_csv(path: Path) -> CodesCsv:
    """Read and check the whole file; raises CsvError naming ``FILE:LINE`` (or ``FILE``) at fault."""
    text = _decode(path)
    result = CodesCsv(path)
    rows, lines = result.rows, result.lines
    append = rows.append
    started = False  # has the first non-blank line (the one that may be a header) been seen?
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for record in reader:
            if started and len(record) == 1:
                # fast path: the same rules as code_problem (a printable string has no whitespace but " ")
                code = record[0]
                if 0 < len(code) <= MAX_CODE_LENGTH and code.isprintable() and " " not in code \
                        and code not in lines:
                    lines[code] = reader.line_num
                    append((code, None))
                    continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            where = f"{path}:{reader.line_num}"
            if not started:
                started = True
                if record[0].strip().lower() == "code":
                    if len(record) > 2 or (len(record) == 2 and record[1].strip().lower() != "expires_at"):
                        raise CsvError(f"{where}: the header must be 'code' or 'code,expires_at'")
                    continue
            if len(record) > 2:
                raise CsvError(f"{where}: {len(record)} columns; expected code[,expires_at]")
            code = record[0]
            problem = code_problem(code)
            if problem:
                raise CsvError(f"{where}: {problem} ({code[:40]!r})")
            if code in lines:
                raise CsvError(f"{where}: code {code!r} is repeated (first at line {lines[code]})")
            lines[code] = reader.line_num
            append((code, _expiry(record[1], where) if len(record) == 2 else None))
    except csv.Error as exc:
        raise CsvError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc
    if not rows:
        raise CsvError(f"{path}: holds no codes (expected one code per line, optionally after a "
                       "'code[,expires_at]' header)")
    return result
