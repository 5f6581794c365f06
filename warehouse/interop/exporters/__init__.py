"""Exporters: the current snapshot, written for other engines and for existing scripts.

`export(wh, kind, out)`: `delta` (a Delta Lake table per warehouse table, same partitioning,
incremental), `parquet` (a plain hive-partitioned dataset), `trajectories` (JSONL in the reference
trajectory format), `legacy` (the per-task JSON layout with config.yaml and index.jsonl).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warehouse.core.errors import ExportFailed

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: kind -> module of this package holding `export(wh, out, **options) -> ExportReport`.
KINDS = {"delta": "delta", "parquet": "parquet", "trajectories": "trajectories", "legacy": "legacy"}


@dataclass
class ExportReport:
    """What one export wrote."""

    kind: str
    out: str
    version: int  #: the warehouse version exported
    rows: dict[str, int] = field(default_factory=dict)  #: rows written, per table (or file kind)
    files: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rows = ", ".join(f"{n:,} {t}" for t, n in sorted(self.rows.items())) or "nothing new"
        return f"{self.kind} export of version {self.version} to {self.out}: {rows}; {self.files:,} file(s) in {self.seconds:.1f} s"


def export(wh: Engine, kind: str, out: str, **options: Any) -> ExportReport:
    """Export the current snapshot of `wh` as `kind` to `out` (see the module docstring)."""
    from warehouse.core.store_failures import disk_errors

    if not isinstance(kind, str) or kind not in KINDS:
        raise ExportFailed(f"unknown export kind {kind!r}; choose from {', '.join(KINDS)}")
    with disk_errors(str(out)):  # a full or read-only disk: StorageError naming the file
        return importlib.import_module(f".{KINDS[kind]}", __name__).export(wh, out, **options)


__all__ = ["KINDS", "ExportReport", "export"]
