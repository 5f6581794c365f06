"""Reading a snapshot: DuckDB views over its Parquet files, and Polars LazyFrames.

Every table becomes a view `raw_<table>` over the explicit list of its active files, read with
hive partitioning so that a filter on a partition column skips the other partitions' files without
opening them; the public views in `schemas/views/*.sql` are defined on top.
"""

from __future__ import annotations

from collections.abc import Mapping

from typing import TYPE_CHECKING

import duckdb

from .manifest import Snapshot
from .schemas import catalog
from .storage import Store

if TYPE_CHECKING:
    import polars as pl


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def file_list(store: Store, snapshot: Snapshot, table: str, where: Mapping[str, str] | None = None) -> list[str]:
    """Reader paths of the active files of `table` (optionally of matching partitions only), sorted."""
    return sorted(store.reader_path(f.path) for f in snapshot.table_files(table, where))


def read_parquet_sql(paths: list[str]) -> str:
    """A `read_parquet(...)` call over explicit files that prunes by hive partition values."""
    hive_types = ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in catalog().partition_columns)
    listing = ", ".join(_sql_str(p) for p in paths)
    return f"read_parquet([{listing}], hive_partitioning = true, hive_types = {{{hive_types}}}, hive_types_autocast = false)"


def define_views(con: duckdb.DuckDBPyConnection, store: Store, snapshot: Snapshot) -> None:
    """Create (or replace) `raw_<table>` for every table and then every view of `schemas/views/`."""
    if not store.is_local:
        con.register_filesystem(store.fs)
    for name, schema in catalog().tables.items():
        paths = file_list(store, snapshot, name)
        if paths:
            con.execute(f"create or replace view raw_{name} as select * from {read_parquet_sql(paths)}")
        else:
            con.register(f"raw_{name}", schema.arrow.empty_table())
    for _, sql in catalog().views:
        con.execute(sql)


def connect(store: Store, snapshot: Snapshot) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with every view defined over `snapshot`."""
    con = duckdb.connect()
    define_views(con, store, snapshot)
    return con


def scan(store: Store, snapshot: Snapshot, table: str, where: Mapping[str, str] | None = None) -> "pl.LazyFrame":
    """A Polars LazyFrame over the active files of `table` (only matching partitions if `where`)."""
    import polars as pl  # imported on first use: it costs the CLI a quarter second at start-up

    schema = catalog().table(table)
    paths = file_list(store, snapshot, table, where)
    if not paths:
        return pl.from_arrow(schema.arrow.empty_table()).lazy()
    opts = None if store.is_local else dict(getattr(store.fs, "storage_options", {}) or {})
    return pl.scan_parquet(paths, hive_partitioning=False, storage_options=opts)

