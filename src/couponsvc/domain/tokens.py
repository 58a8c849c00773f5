"""Secrets: generation and the one-way form they are stored in."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str) -> str:
    """A fresh random token: 256 bits from the OS CSPRNG, URL-safe, with a readable prefix."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    """SHA-256 of the token.  Only this is stored; tokens are high-entropy, so no salt or KDF is needed
    for generated ones, and a lookup by hash leaks nothing about the token through timing."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
