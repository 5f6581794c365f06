"""`warehouse bench`: the benchmark suite of a source checkout (see `warehouse.cli.bench`)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from warehouse.cli.app import user_errors
from warehouse.cli.output import console


class Scale(str, Enum):
    small = "small"
    medium = "medium"
    large = "large"


def bench(
    scale: Annotated[
        Scale, typer.Option(help="Data sizes: small (~2 min), medium (~8 min, `make bench`) or large.")
    ] = Scale.medium,
    out: Annotated[str, typer.Option(help="Write the results to this JSON file.")] = "bench-results.json",
    workdir: Annotated[
        str | None, typer.Option(help="Directory for the benchmark data (default: the system temp dir).")
    ] = None,
) -> None:
    """Benchmark the warehouse against the legacy layout, raw pyarrow, Delta Lake and raw DuckDB (source checkout only)."""
    from rich.console import Console

    from warehouse.cli import bench as bench_mod

    with user_errors():  # (the benchmark's own console: its report uses rich markup and prints no stored value)
        bench_mod.run(scale.value, out, workdir=workdir, console=Console(width=console.width))
