"""Delta Lake (delta-rs): `write_deltalake(..., mode="append", partition_by=[...])`, one append per flush.

Each warehouse table is its own Delta table (`<root>/executions`, `<root>/messages`,
`<root>/attacks`): Delta has no transaction across tables, so a flush is one append per table
(three commits, each atomic on its own). The Arrow data comes from the same bulk conversion as the
raw-pyarrow competitor (`raw_pyarrow.to_arrow`), timed as part of the flush, and is written with
zstd level 3 like the warehouse. delta-rs' defaults are kept otherwise (its post-commit hook writes a
checkpoint every 100 commits).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from .raw_pyarrow import PARTITION_COLUMNS

TABLES = ("executions", "messages", "attacks")


def _properties():
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD", compression_level=3)


def write(root: str | Path, tables: Mapping[str, pa.Table]) -> int:
    """Append each non-empty table to its Delta table; returns the number of commits made."""
    from deltalake import write_deltalake

    props = _properties()
    commits = 0
    for name, t in tables.items():
        if t.num_rows:
            write_deltalake(f"{root}/{name}", t, mode="append", partition_by=PARTITION_COLUMNS, writer_properties=props)
            commits += 1
    return commits


def count_rows(root: str | Path, table: str) -> int:
    from deltalake import DeltaTable

    path = Path(root) / table
    if not path.exists():
        return 0
    return DeltaTable(str(path)).to_pyarrow_dataset().count_rows()


def distinct(root: str | Path, table: str, column: str) -> int:
    """Distinct values of `column` in the Delta table's current version."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    col = DeltaTable(str(Path(root) / table)).to_pyarrow_dataset().to_table(columns=[column]).column(column)
    return len(pc.unique(col))


def version(root: str | Path, table: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(Path(root) / table)).version()
