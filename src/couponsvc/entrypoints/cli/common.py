"""Helpers shared by the CLI modules: one-line errors, and the container built from the settings."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from couponsvc.domain.errors import CouponSvcError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def guard(fn: F) -> F:
    """Turn the service's own errors into a one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CouponSvcError as exc:
            fail(str(exc))
    return wrapper  # type: ignore[return-value]


def container(migrate: bool = True) -> Any:
    """Settings from the environment, logging, engine and transport (the schema brought up to date)."""
    from couponsvc.bootstrap import bootstrap, configure_logging
    from couponsvc.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return bootstrap(settings, migrate=migrate)
