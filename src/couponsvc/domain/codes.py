"""Coupon codes: what a valid code is, and cryptographically random codes from a pattern.

Pattern language (``--pattern``): ``X`` a random character from an unambiguous alphabet of
uppercase letters and digits (no 0/O, 1/I/L), ``9`` a random digit, ``A`` a random uppercase
letter (no I, L, O), ``\\`` makes the next character literal; every other character is literal.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

MAX_CODE_LENGTH = 100

ALPHABETS = {
    "X": "23456789ABCDEFGHJKMNPQRSTUVWXYZ",
    "9": "0123456789",
    "A": "ABCDEFGHJKMNPQRSTUVWXYZ",
}
DEFAULT_PATTERN = "XXXX-XXXX-XXXX"
#: a pattern must offer this many times more codes than are asked for, so that random collisions stay rare
HEADROOM = 1000


def code_problem(code: str) -> str | None:
    """Why ``code`` cannot be a coupon code, or None when it can."""
    if not code:
        return "the code is empty"
    if len(code) > MAX_CODE_LENGTH:
        return f"the code is longer than {MAX_CODE_LENGTH} characters"
    # every whitespace character but the plain space is also unprintable, so this is "no whitespace,
    # no control or format characters" (and fast enough for a million codes)
    if not code.isprintable() or " " in code:
        return "the code has spaces or control characters"
    return None


@dataclass(frozen=True, slots=True)
class NewCodes:
    """Codes to add to a pool, in dispatch order, with each one's own expiry.

    Two parallel columns rather than a pair per code: a million codes are then one list of strings (and
    no expiries at all when no code has one), not a million tuples to build and to take apart again.
    """

    codes: Sequence[str]
    #: each code's own expiry (naive UTC), parallel to ``codes``; None when no code has one
    expiries: Sequence[datetime | None] | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def part(self, start: int, stop: int) -> NewCodes:
        expiries = None if self.expiries is None else self.expiries[start:stop]
        if expiries is not None and all(e is None for e in expiries):
            expiries = None
        return NewCodes(self.codes[start:stop], expiries)

    def rows(self) -> list[tuple[str, datetime | None]]:
        """``(code, expires_at)`` pairs (for small lists: tests, messages)."""
        expiries: Iterable[datetime | None] = self.expiries if self.expiries is not None \
            else itertools.repeat(None)
        return list(zip(self.codes, expiries, strict=False))


def parse_pattern(pattern: str) -> list[str]:
    """The pattern as a list of slots: an alphabet key ("X", "9", "A") or ("=" + a literal character)."""
    slots: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            literal = next(chars, None)
            if literal is None:
                raise ValueError("the pattern ends with a lone backslash")
            slots.append("=" + literal)
        elif ch in ALPHABETS:
            slots.append(ch)
        else:
            slots.append("=" + ch)
    if not any(s in ALPHABETS for s in slots):
        raise ValueError("the pattern has no random character (X, 9 or A)")
    problem = code_problem("".join("A" if s in ALPHABETS else s[1] for s in slots))
    if problem:
        raise ValueError(f"codes from this pattern would be invalid: {problem}")
    return slots


def pattern_space(slots: list[str]) -> int:
    return math.prod(len(ALPHABETS[s]) for s in slots if s in ALPHABETS)


def check_capacity(pattern: str, count: int) -> list[str]:
    slots = parse_pattern(pattern)
    space = pattern_space(slots)
    if space < count * HEADROOM:
        raise ValueError(
            f"the pattern {pattern!r} allows {space:,} codes, too few for {count:,} random ones;"
            " add random characters (X) to it"
        )
    return slots


class _RandomChars:
    """Uniform random characters from an alphabet, from os.urandom in bulk (rejection sampling)."""

    def __init__(self, alphabet: str) -> None:
        n = len(alphabet)
        limit = 256 - 256 % n  # bytes at or above this would bias the modulo
        self._table = bytes((alphabet[b % n].encode()[0] if b < limit else 0) for b in range(256))
        self._reject = bytes(range(limit, 256))

    def take(self, count: int) -> str:
        out = bytearray()
        while len(out) < count:
            want = count - len(out)
            raw = os.urandom(want + want // 4 + 16)
            out += raw.translate(self._table, self._reject)
        return out[:count].decode("ascii")


def generate_codes(pattern: str, count: int) -> list[str]:
    """``count`` random codes (not checked for uniqueness: the database does that)."""
    slots = parse_pattern(pattern)
    streams = {key: _RandomChars(alpha) for key, alpha in ALPHABETS.items()}
    columns: list[Iterator[str]] = []
    for slot in slots:
        if slot in ALPHABETS:
            columns.append(iter(streams[slot].take(count)))
        else:
            columns.append(itertools.repeat(slot[1], count))
    return ["".join(parts) for parts in zip(*columns, strict=True)]
