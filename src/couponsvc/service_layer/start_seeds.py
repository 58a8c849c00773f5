"""The seeds ``serve`` loads at start (``--demo``, ``--seed FILE``): read and checked before anything starts,
loaded in one transaction, and kept (parsed) so that the twin's reset can load them again."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from couponsvc.adapters.seed import Seed, apply_seed, parse_seed, read_seed_file
from couponsvc.service_layer.unit_of_work import UnitOfWork

StartSeeds = list[tuple[str, Seed]]  # (source, parsed seed), in loading order


def read_start_seeds(files: Sequence[Path], demo: Mapping[str, Any] | None = None) -> StartSeeds:
    """Parse the demo document (when given) and every file; a bad one raises SeedError naming file and key."""
    seeds: StartSeeds = [("demo data", parse_seed(dict(demo), "demo data"))] if demo is not None else []
    return seeds + [(str(file), read_seed_file(file)) for file in files]


def load_start_seeds(uow: UnitOfWork, clock: Callable[[], datetime], seeds: StartSeeds) -> None:
    if not seeds:
        return
    with uow.write() as store:
        for source, seed in seeds:
            apply_seed(store.conn, seed, clock(), source)
