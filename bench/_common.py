"""What the benchmarks share: timing, medians, and the figure / floor / ratio / target lines they print."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    """Milliseconds of each of ``rounds`` calls."""
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(name: str, samples: list[float], unit: str = "ms") -> str:
    """One line: median, min, max and count of a sample."""
    return (f"  {name:<58} median {median(samples):9.2f} {unit}   min {min(samples):9.2f}   "
            f"max {max(samples):9.2f}   (n={len(samples)})")


def verdict(name: str, figure: float, floor: float, target: float, unit: str = "ms") -> str:
    """The line a benchmark is judged by: figure, floor measured in the same run, their ratio, the target."""
    ratio = figure / floor if floor > 0 else float("inf")
    status = "MET" if ratio <= target else "NOT MET"
    return (f"RESULT {name}: {figure:.2f} {unit}, floor {floor:.2f} {unit}, ratio {ratio:.2f}x "
            f"(target <= {target:g}x) -> {status}")
