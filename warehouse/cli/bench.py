"""`warehouse bench`: run the benchmark suite of a source checkout.

The suite lives in the repository's `benchmarks/` package, not in the wheel (it needs deltalake,
pandas and filelock, which the library does not). This module finds that directory, imports it and
runs it; from an installed wheel without a checkout it raises WarehouseError saying so.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from warehouse.core.errors import InvalidArgument, WarehouseError

SCALES = ("small", "medium", "large")


def find_checkout(start: Path | None = None) -> Path | None:
    """The source checkout holding `benchmarks/`: searched from `start` (default: the working
    directory) upwards, then beside this package."""
    here = Path(__file__).resolve().parents[2]
    candidates = []
    cur = (start or Path.cwd()).resolve()
    candidates.extend([cur, *cur.parents])
    candidates.append(here)
    for c in candidates:
        if (c / "benchmarks" / "__init__.py").is_file() and (c / "benchmarks" / "runner.py").is_file():
            return c
    return None


def load_runner(start: Path | None = None) -> ModuleType:
    """Import `benchmarks.runner` from the source checkout; WarehouseError if there is none."""
    root = find_checkout(start)
    if root is None:
        raise WarehouseError(
            "the benchmark suite (benchmarks/) is not part of the installed package: run `warehouse bench` "
            "from a source checkout of the repository (e.g. `make bench`)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("benchmarks.runner")
    except ModuleNotFoundError as exc:
        raise WarehouseError(
            f"the benchmark suite needs {exc.name!r}: pip install deltalake pandas filelock psutil"
        ) from None


def run(
    scale: str = "medium",
    out: str | Path | None = "bench-results.json",
    *,
    workdir: str | Path | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Run every benchmark case at `scale` (small, medium or large), print the tables, write `out` (JSON).

    Raises WarehouseError if there is no source checkout, a dependency of the suite is missing, or
    a correctness check of the benchmarks (counts, equal answers, nothing lost) failed.
    """
    if scale not in SCALES:
        raise InvalidArgument(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    runner = load_runner()
    from benchmarks import CheckFailed

    try:
        return runner.run(scale, out, workdir=workdir, console=console)
    except CheckFailed as exc:
        raise WarehouseError(str(exc)) from None
