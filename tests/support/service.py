"""A service-layer container on a real SQLite file (no HTTP) for tests of rules and ordering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from couponsvc.adapters.seed import apply_seed, parse_seed
from couponsvc.bootstrap import Container, bootstrap
from couponsvc.settings import load_settings


def make_container(tmp_path: Path, seed: dict[str, Any] | None = None, **env: str) -> Container:
    settings = load_settings({"COUPONSVC_DATA_DIR": str(tmp_path), **{f"COUPONSVC_{k}": v for k, v in env.items()}})
    container = bootstrap(settings)
    if seed is not None:
        load(container, seed)
    return container


def load(container: Container, seed: dict[str, Any]) -> None:
    with container.uow.write() as store:
        apply_seed(store.conn, parse_seed(seed, "test seed"), container.clock(), "test seed")
