"""Code pools from CSV: ``code[,expires_at]`` per line, an optional ``code[,expires_at]`` header, blank lines
ignored.

The whole file is checked before anything is written; a problem is reported as ``FILE:LINE: ...``.
A million lines is routine.  The common file (bare valid codes, one per LF-ended line, perhaps a ``code``
header and blank lines) is checked as a whole with a few string operations that run in C; any other file,
or a plain one that breaks a rule, goes to the careful reader, which takes the csv module line by line
(itself with a fast path for the common line) and is the only one that words errors.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from couponsvc.domain.codes import MAX_CODE_LENGTH, NewCodes, code_problem
from couponsvc.domain.errors import ConfigurationError


class CsvError(ConfigurationError):
    pass


@dataclass
class CodesCsv:
    """A checked CSV: its codes (in file order, each with its own expiry) and each code's line.  No code is
    repeated, unless it was read with ``check_repeats=False`` and ``refuse_repeats`` has not run yet."""

    path: Path
    new: NewCodes
    _lines: dict[str, int] | None = field(default=None, repr=False)
    # a plain file read as a whole: its physical lines and the header's index (-1: none), from which
    # ``lines`` is worked out only when it is asked for (an error message, a test)
    _physical: list[str] = field(default_factory=list, repr=False)
    _header_at: int = field(default=-1, repr=False)
    _repeats_checked: bool = field(default=True, repr=False)

    @property
    def lines(self) -> dict[str, int]:
        """Each code's 1-based line in the file."""
        if self._lines is None:
            self._lines = {code: n for n, code in self._plain_codes()}
        return self._lines

    def refuse_repeats(self) -> None:
        """Raise CsvError naming the first code that is repeated in the file, and where it first was."""
        if self._repeats_checked:
            return
        codes = self.new.codes
        if len(set(codes)) != len(codes):
            first: dict[str, int] = {}
            for n, code in self._plain_codes():
                if code in first:
                    raise CsvError(f"{self.path}:{n}: code {code!r} is repeated (first at line {first[code]})")
                first[code] = n
        self._repeats_checked = True

    def _plain_codes(self) -> Iterator[tuple[int, str]]:
        """A plain file's codes with their 1-based lines (blank lines and the header left out)."""
        for n, line in enumerate(self._physical, 1):
            if line and n - 1 != self._header_at:
                yield n, line


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


def read_codes_csv(path: Path, *, check_repeats: bool = True) -> CodesCsv:
    """Read and check the whole file; raises CsvError naming ``FILE:LINE`` (or ``FILE``) at fault.

    ``check_repeats=False`` may leave a code that is repeated in the file to ``refuse_repeats``.  An importer
    can afford that (and save a set of a million codes) because a repeat cannot go unnoticed there: the
    database refuses the second copy, so the import has fewer new codes than the file has codes.
    """
    text = _decode(path)
    parsed = _read_plain(path, text) or _read_careful(path, text)
    if check_repeats:
        parsed.refuse_repeats()
    return parsed


def _read_plain(path: Path, text: str) -> CodesCsv | None:
    """A file of bare codes, checked as a whole; None when it is not such a file or breaks a rule (then the
    careful reader reads it, and words the error).

    The rules are code_problem's and the careful reader's: no quote, comma, CR or space anywhere means
    that each LF-ended line is one field; printable text has no other whitespace or control character.
    """
    if '"' in text or "," in text or "\r" in text or " " in text:
        return None
    physical = text.split("\n")
    if not "".join(physical).isprintable():
        return None
    codes = [line for line in physical if line]  # blank lines are ignored
    if not codes:
        return None
    header_at = -1
    if codes[0].lower() == "code":
        header_at = physical.index(codes[0])
        del codes[0]
    if not codes or max(map(len, codes)) > MAX_CODE_LENGTH:
        return None
    return CodesCsv(path, NewCodes(codes), _physical=physical, _header_at=header_at, _repeats_checked=False)


def _read_careful(path: Path, text: str) -> CodesCsv:
    codes: list[str] = []
    expiries: list[datetime | None] = []
    lines: dict[str, int] = {}
    add_code, add_expiry = codes.append, expiries.append
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
                    add_code(code)
                    add_expiry(None)
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
            add_code(code)
            add_expiry(_expiry(record[1], where) if len(record) == 2 else None)
    except csv.Error as exc:
        raise CsvError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from exc
    if not codes:
        raise CsvError(f"{path}: holds no codes (expected one code per line, optionally after a "
                       "'code[,expires_at]' header)")
    has_expiries = any(e is not None for e in expiries)
    return CodesCsv(path, NewCodes(codes, expiries if has_expiries else None), _lines=lines)
