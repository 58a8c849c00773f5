"""Parsing of wire values shared by SOAP and REST (the rules belong to the API, not to a protocol)."""

from __future__ import annotations

import re

from couponsvc.domain.emails import printable
from couponsvc.domain.errors import Err, ServiceFault

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LONG = re.compile(r"[+-]?[0-9]+", re.ASCII)

RawLong = str | int | None


def parse_long(raw: RawLong, field: str) -> int | None:
    """A long given as a string (SOAP, REST) or a JSON integer (REST); None when absent.

    Raises 201 ApiInputValidationError naming the field for anything that is not a 64-bit integer.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{field} must be a long, got {str(raw).lower()}")
    if isinstance(raw, int):
        value = raw
    else:
        text = raw.strip()
        if not _LONG.fullmatch(text):
            raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{field} must be a long, got {printable(raw, 40)!r}")
        value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ServiceFault(Err.API_INPUT_VALIDATION_ERROR, f"{field} is out of the range of a long")
    return value


def positive_long_or_none(raw: RawLong) -> int | None:
    """The value if it is a valid positive long, else None (never raises)."""
    try:
        value = parse_long(raw, "")
    except ServiceFault:
        return None
    return value if value is not None and value > 0 else None
