"""Email address rules: a syntax check (no DNS) and the key used to compare addresses.

Addresses are ASCII (RFC 5321 dot-atom local part, LDH domain labels); internationalised
domains are accepted in their ``xn--`` form.  Any control character (CR and LF included)
makes an address invalid, which is what makes header injection impossible downstream.
"""

from __future__ import annotations

import re

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(
    rf"(?P<local>{_ATEXT}+(?:\.{_ATEXT}+)*)@(?P<domain>{_LABEL}(?:\.{_LABEL})+)",
    re.ASCII,
)
MAX_ADDRESS_LENGTH = 254
MAX_LOCAL_LENGTH = 64


def trim(address: str) -> str:
    """Strip surrounding spaces (only spaces: a CR, LF or tab anywhere stays and is refused)."""
    return address.strip(" ")


def is_valid_address(address: str) -> bool:
    """True for a syntactically valid, already trimmed address."""
    if len(address) > MAX_ADDRESS_LENGTH:
        return False
    m = _ADDRESS.fullmatch(address)
    if m is None or len(m.group("local")) > MAX_LOCAL_LENGTH:
        return False
    tld = m.group("domain").rsplit(".", 1)[1]
    return not tld.isdigit()


def address_key(address: str) -> str:
    """The form two addresses are compared in: trimmed and case-insensitive."""
    return trim(address).lower()


def printable(value: str, limit: int = 256) -> str:
    """A safe rendering of untrusted text for an error's Details (no control characters)."""
    out = []
    for ch in value[:limit]:
        cp = ord(ch)
        if cp < 0x20 or cp == 0x7F or 0xD800 <= cp <= 0xDFFF or cp in (0xFFFE, 0xFFFF):
            out.append(f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}")
        else:
            out.append(ch)
    return "".join(out) + ("…" if len(value) > limit else "")
