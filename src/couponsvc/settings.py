"""Settings: read from COUPONSVC_* environment variables once, validated, with messages naming the key."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, TypeVar
from urllib.parse import SplitResult, parse_qs, urlsplit

from couponsvc.domain.emails import is_valid_address
from couponsvc.domain.errors import ConfigurationError
from couponsvc.domain.redaction import redact_url
from couponsvc.domain.throttle import RateLimit, parse_rate_limit

PREFIX = "COUPONSVC_"
N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_url: str
    mail_url: str
    mail_from: str
    message_id_domain: str
    max_body_bytes: int
    max_xml_depth: int
    max_addresses_per_call: int
    delivery_timeout: float
    log_level: str
    public_url: str | None = None
    smtp_timeout: float = 30.0
    smtp_connections: int = 4
    lease_seconds: float = 30.0
    retry_first: float = 60.0
    retry_factor: float = 2.0
    retry_cap: float = 3600.0
    retry_lifetime: float = 86400.0
    worker_batch: int = 200
    worker_poll: float = 0.5
    worker_in_process: bool = True
    # request bounds (SPEC section 9): one deadline per call, database waits inside it, slow clients cut off
    request_timeout: float = 30.0
    header_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000
    pg_lock_timeout: float = 10.0
    pg_statement_timeout: float = 24.0
    # operations (issue 13): throttling, metrics, logs
    throttle_user: RateLimit | None = None
    throttle_developer_token: RateLimit | None = None
    throttle_code_guesses: RateLimit | None = RateLimit(100, 3600.0)
    redis_url: str | None = None
    redis_prefix: str = "couponsvc:"
    metrics: bool = True
    metrics_port: int | None = None
    metrics_cache: float = 5.0
    log_format: str = "text"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _number(env: Mapping[str, str], key: str, default: N, minimum: N, maximum: N, parse: Callable[[str], N],
            what: str) -> N:
    raw = env.get(PREFIX + key)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{PREFIX}{key}={raw!r} is not {what}") from None
    if not minimum <= value <= maximum:  # also refuses nan
        raise ConfigurationError(f"{PREFIX}{key}={value} must be between {minimum} and {maximum}")
    return value


def _int(env: Mapping[str, str], key: str, default: int, minimum: int, maximum: int) -> int:
    return _number(env, key, default, minimum, maximum, int, "a whole number")


def _float(env: Mapping[str, str], key: str, default: float, minimum: float, maximum: float) -> float:
    return _number(env, key, default, minimum, maximum, float, "a number of seconds")


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = (env.get(PREFIX + key) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{PREFIX}{key}={raw!r}: use true or false")


def _split(url: str, key: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced IPv6 bracket
        raise ConfigurationError(f"{key}={redact_url(url)!r} is not a URL: {exc}") from None


def _rate(env: Mapping[str, str], key: str, default: RateLimit | None) -> RateLimit | None:
    raw = (env.get(PREFIX + key) or "").strip()
    if not raw:
        return default
    if raw.lower() in ("off", "none", "0"):
        return None
    try:
        return parse_rate_limit(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{PREFIX}{key}={raw!r}: {exc}; or off") from None


class _OpsSettings(TypedDict):
    throttle_user: RateLimit | None
    throttle_developer_token: RateLimit | None
    throttle_code_guesses: RateLimit | None
    redis_url: str | None
    redis_prefix: str
    metrics: bool
    metrics_port: int | None
    metrics_cache: float
    log_format: str


def _ops_settings(env: Mapping[str, str]) -> _OpsSettings:
    """Throttling, Redis, metrics and log settings (issue 13)."""
    redis_url = (env.get(PREFIX + "REDIS_URL") or "").strip() or None
    if redis_url is not None and _split(redis_url, PREFIX + "REDIS_URL").scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"{PREFIX}REDIS_URL={redact_url(redis_url)!r}: use redis://HOST:PORT/DB")
    log_format = (env.get(PREFIX + "LOG_FORMAT") or "text").strip().lower()
    if log_format not in ("text", "json"):
        raise ConfigurationError(f"{PREFIX}LOG_FORMAT={log_format!r}: use text or json")
    metrics_port = _int(env, "METRICS_PORT", 0, 0, 65535)
    return {
        "throttle_user": _rate(env, "THROTTLE_USER", None),
        "throttle_developer_token": _rate(env, "THROTTLE_DEVELOPER_TOKEN", None),
        "throttle_code_guesses": _rate(env, "THROTTLE_CODE_GUESSES", RateLimit(100, 3600.0)),
        "redis_url": redis_url,
        "redis_prefix": (env.get(PREFIX + "REDIS_PREFIX") or "couponsvc:").strip(),
        "metrics": _bool(env, "METRICS", True),
        "metrics_port": metrics_port or None,
        "metrics_cache": _float(env, "METRICS_CACHE", 5.0, 0.0, 300.0),
        "log_format": log_format,
    }


def check_database_url(url: str, key: str = PREFIX + "DATABASE_URL") -> str:
    scheme = _split(url, key).scheme.split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ConfigurationError(
            f"{key}={redact_url(url)!r}: use sqlite:///PATH (the default) or postgresql://USER@HOST:PORT/DB"
        )
    if scheme == "postgres":
        url = "postgresql" + url[len("postgres"):]
    return url


def check_mail_url(url: str, key: str = PREFIX + "MAIL_URL") -> str:
    parts = _split(url, key)
    if parts.scheme == "maildir":
        if not (parts.netloc + parts.path):
            raise ConfigurationError(
                f"{key}={redact_url(url)!r}: maildir:// needs a folder, e.g. maildir://./couponsvc-data/mail")
        return url
    if parts.scheme in ("smtp", "smtps"):
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"{key}={redact_url(url)!r}: the port is not a number") from None
        if not parts.hostname or port is None:
            raise ConfigurationError(
                f"{key}={redact_url(url)!r}: write it as {parts.scheme}://[user:pass@]host:port")
        options = {k.lower() for k in parse_qs(parts.query)}
        if options - {"starttls", "verify"}:
            raise ConfigurationError(
                f"{key}={redact_url(url)!r}: unknown option {sorted(options - {'starttls', 'verify'})[0]!r};"
                " the options are starttls=true and verify=false")
        return url
    raise ConfigurationError(
        f"{key}={redact_url(url)!r}: the scheme must be smtp://, smtps:// or maildir:// (e.g. smtp://127.0.0.1:25)"
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; raises ConfigurationError naming the key at fault."""
    env = os.environ if env is None else env
    data_dir = Path(env.get(PREFIX + "DATA_DIR") or "./couponsvc-data")
    database_url = check_database_url(env.get(PREFIX + "DATABASE_URL") or f"sqlite:///{data_dir}/couponsvc.db")
    mail_url = check_mail_url(env.get(PREFIX + "MAIL_URL") or f"maildir://{data_dir}/mail")
    mail_from = env.get(PREFIX + "MAIL_FROM") or "coupons@couponsvc.localhost"
    if not is_valid_address(mail_from):
        raise ConfigurationError(f"{PREFIX}MAIL_FROM={mail_from!r} is not a valid email address")
    domain = env.get(PREFIX + "MESSAGE_ID_DOMAIN") or mail_from.rsplit("@", 1)[1]
    if not is_valid_address("x@" + domain):
        raise ConfigurationError(f"{PREFIX}MESSAGE_ID_DOMAIN={domain!r} is not a valid domain name")
    log_level = (env.get(PREFIX + "LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigurationError(f"{PREFIX}LOG_LEVEL={log_level!r}: use DEBUG, INFO, WARNING or ERROR")
    public_url = (env.get(PREFIX + "PUBLIC_URL") or "").strip() or None
    if public_url is not None:
        parts = _split(public_url, PREFIX + "PUBLIC_URL")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigurationError(
                f"{PREFIX}PUBLIC_URL={redact_url(public_url)!r}: give the base URL clients use,"
                " e.g. https://coupons.example.com"
            )
        public_url = public_url.rstrip("/")
    return Settings(
        public_url=public_url,
        data_dir=data_dir,
        database_url=database_url,
        mail_url=mail_url,
        mail_from=mail_from,
        message_id_domain=domain,
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 4 * 1024 * 1024, 1024, 1024**3),
        max_xml_depth=_int(env, "MAX_XML_DEPTH", 32, 8, 256),
        max_addresses_per_call=_int(env, "MAX_ADDRESSES_PER_CALL", 1000, 1, 1000),
        delivery_timeout=_float(env, "DELIVERY_TIMEOUT", 10.0, 0.0, 300.0),
        log_level=log_level,
        smtp_timeout=_float(env, "SMTP_TIMEOUT", 30.0, 0.1, 600.0),
        smtp_connections=_int(env, "SMTP_CONNECTIONS", 4, 1, 64),
        lease_seconds=_float(env, "LEASE_SECONDS", 30.0, 1.0, 3600.0),
        retry_first=_float(env, "RETRY_FIRST", 60.0, 0.0, 86400.0),
        retry_factor=_float(env, "RETRY_FACTOR", 2.0, 1.0, 100.0),
        retry_cap=_float(env, "RETRY_CAP", 3600.0, 0.0, 7 * 86400.0),
        retry_lifetime=_float(env, "RETRY_LIFETIME", 86400.0, 0.0, 30 * 86400.0),
        worker_batch=_int(env, "WORKER_BATCH", 200, 1, 10000),
        worker_poll=_float(env, "WORKER_POLL", 0.5, 0.01, 60.0),
        worker_in_process=_bool(env, "WORKER", True),
        **_bounds(env),
        **_ops_settings(env),
    )


def _bounds(env: Mapping[str, str]) -> dict[str, Any]:
    """The request bounds; the PostgreSQL waits must fit inside the request deadline."""
    request_timeout = _float(env, "REQUEST_TIMEOUT", 30.0, 1.0, 3600.0)
    lock_timeout = _float(env, "PG_LOCK_TIMEOUT", min(10.0, request_timeout / 3), 0.1, 3600.0)
    statement_timeout = _float(env, "PG_STATEMENT_TIMEOUT", min(25.0, request_timeout * 0.8), 0.1, 3600.0)
    for key, value in (("PG_LOCK_TIMEOUT", lock_timeout), ("PG_STATEMENT_TIMEOUT", statement_timeout)):
        if value > request_timeout:
            raise ConfigurationError(f"{PREFIX}{key}={value} must not exceed {PREFIX}REQUEST_TIMEOUT={request_timeout}")
    return {
        "request_timeout": request_timeout,
        "header_timeout": _float(env, "HEADER_TIMEOUT", 10.0, 0.1, 3600.0),
        "keepalive_timeout": _float(env, "KEEPALIVE_TIMEOUT", 5.0, 0.1, 3600.0),
        "max_connections": _int(env, "MAX_CONNECTIONS", 1000, 1, 100_000),
        "pg_lock_timeout": lock_timeout,
        "pg_statement_timeout": statement_timeout,
    }
