"""Importers: the legacy persistence layers and other tools' logs, brought into the warehouse.

`import_(wh, kind, path)` walks the sources an importer finds under `path` (files, directories or
database rows), skips those already imported (the `imports` table records each source with a
fingerprint of its content, in the same commit as the rows it produced), and commits the new ones in
batches. A source that cannot be read or mapped is reported with its path and reason, and the import
goes on (`strict=True` stops at the first). Each importer is one module of this package exposing
`IMPORTER`, an object with `kind`, `sources(path)`, `load(source)` and `read(source, data, out)`
(see `base.Importer`).
"""

from __future__ import annotations

import importlib

from warehouse.interop.importers.base import Importer, ImportReport, Source, SourceRecorder, run_import

#: kind -> module of this package holding its IMPORTER.
KINDS = {
    "legacy": "legacy",
    "sessions": "session_dirs",
    "checkpoints": "checkpoint_files",
    "trajectories": "trajectory_files",
    "simulation": "simulation_runs",
    "postgres": "postgres",
    "agentdojo": "agentdojo",
    "inspect": "inspect_logs",
}


def importer(kind: str) -> Importer:
    """The importer of `kind`; WarehouseError naming the known kinds for any other."""
    from warehouse.core.errors import InvalidArgument

    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidArgument(f"unknown import kind {kind!r}; choose from {', '.join(KINDS)}")
    return importlib.import_module(f".{KINDS[kind]}", __name__).IMPORTER


__all__ = ["KINDS", "Importer", "ImportReport", "Source", "SourceRecorder", "importer", "run_import"]
