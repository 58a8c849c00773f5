"""Code pools from CSV: ``code[,expires_at]`` per line, an optional ``code`` header, blank lines ignored.

The whole file is checked before anything is written; a problem is reported as ``FILE:LINE: ...``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from couponsvc.adapters.admin import CodeRow
from couponsvc.domain.codes import code_problem
from couponsvc.domain.errors import ConfigurationError


class CsvError(ConfigurationError):
    pass


def _expiry(raw: str, where: str) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(f"{where}: expires_at {raw!r} is not an ISO-8601 date such as 2027-12-31T23:59:59Z") from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def read_codes_csv(path: Path, on_line: Callable[[int], None] | None = None) -> list[CodeRow]:
    rows: list[CodeRow] = []
    first_line: dict[str, int] = {}
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, strict=True)
            try:
                for record in reader:
                    line = reader.line_num
                    if on_line is not None and line % 10_000 == 0:
                        on_line(line)
                    if not record or (len(record) == 1 and not record[0].strip()):
                        continue
                    where = f"{path}:{line}"
                    if not rows and not first_line and record[0].strip().lower() == "code":
                        if len(record) > 2 or (len(record) == 2 and record[1].strip().lower() != "expires_at"):
                            raise CsvError(f"{where}: the header must be 'code' or 'code,expires_at'")
                        continue
                    if len(record) > 2:
                        raise CsvError(f"{where}: {len(record)} columns; expected code[,expires_at]")
                    code = record[0]
                    problem = code_problem(code)
                    if problem:
                        raise CsvError(f"{where}: {problem} ({code[:40]!r})")
                    if code in first_line:
                        raise CsvError(f"{where}: code {code!r} is repeated (first at line {first_line[code]})")
                    first_line[code] = line
                    rows.append(CodeRow(code, _expiry(record[1], where) if len(record) == 2 else None))
            except csv.Error as exc:
                raise CsvError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc
    except OSError as exc:
        raise CsvError(f"{path}: cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CsvError(f"{path}: is not UTF-8 text ({exc.reason})") from exc
    if not rows:
        raise CsvError(f"{path}: holds no codes")
    return rows


def line_of(path: Path, code: str) -> int | None:
    """The line a code is on (used to name the line of a code that conflicts with the database)."""
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        for record in reader:
            if record and record[0] == code:
                return reader.line_num
    return None
