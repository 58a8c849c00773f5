"""Operator passwords: hashed with scrypt (memory-hard, in the standard library), verified in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# 2**14 * 8 * 128 bytes = 16 MiB of memory per hash, ~50 ms: costly to guess in bulk, cheap for a sign-in
N, R, P = 2**14, 8, 1
DKLEN = 32
MIN_LENGTH = 8
MAX_LENGTH = 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def password_problem(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"a password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password must have at most {MAX_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=N, r=R, p=P, dklen=DKLEN,
                            maxmem=64 * 1024 * 1024)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``.  With no stored hash (unknown operator) the same work is
    done against a dummy, so the answer takes as long for a name that does not exist."""
    try:
        scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        got = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=_unb64(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected) and stored is not None


_DUMMY = hash_password(secrets.token_urlsafe(16))
