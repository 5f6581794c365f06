"""Reading a snapshot: DuckDB views over its Parquet files, and Polars LazyFrames.

Every table becomes a view `raw_<table>` over the explicit list of its active files, read with an
explicit schema (by Parquet field id, so DuckDB opens no file to bind the query) and hive
partitioning, so that a filter on a partition column skips the other partitions' files without
opening them. The public views in `schemas/views/*.sql` are defined on top.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

import duckdb

from warehouse.core.partition_filter import check_partition
from warehouse.core.schemas import TableSchema, catalog
from warehouse.core.snapshot_fs import SnapshotFileSystem
from warehouse.core.storage import Store
from warehouse.engine import keys
from warehouse.manifest import DataFile, Snapshot

if TYPE_CHECKING:
    import polars as pl


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def duckdb_path(store: Store, rel: str) -> str:
    """The path DuckDB should read `rel` from: exactly that file, never a pattern.

    DuckDB expands `*`, `?` and `[...]` in every entry of a `read_parquet` list, so a warehouse
    root such as `results[2025]/` or `runs*/` would read other files or none. On local disk each of
    those characters is written as a one-character class (`[[]`, `[*]`, `[?]`), which matches only
    itself; remote files are answered literally by `SnapshotFileSystem.glob`.
    """
    path = store.reader_path(rel)
    if not store.is_local:
        return path
    return re.sub(r"([\[*?])", r"[\1]", path)


def file_list(store: Store, snapshot: Snapshot, table: str, where: Mapping[str, str] | None = None) -> list[str]:
    """Reader paths of the active files of `table` (optionally of matching partitions only), sorted.
    Raises InvalidArgument for a `where` key that is not a partition column (it would match nothing)."""
    return sorted(store.reader_path(f.path) for f in snapshot.table_files(table, check_partition(where)))


def _read_parquet(paths: list[str], schema: TableSchema, hive: bool) -> str:
    listing = ", ".join(_sql_str(p) for p in paths)
    opts = f"schema = {schema.duckdb_schema}"
    if hive:
        hive_types = ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in catalog().partition_columns)
        opts += f", hive_partitioning = true, hive_types = {{{hive_types}}}, hive_types_autocast = false"
    else:
        opts += ", hive_partitioning = false"
    return f"read_parquet([{listing}], {opts})"


def table_sql(store: Store, schema: TableSchema, files: list[DataFile]) -> str:
    """A SELECT over `files` of one table that prunes on the partition columns.

    Normally one `read_parquet` with hive partitioning. DuckDB's hive parser reads every `k=v`
    segment of the whole path, so when the warehouse root itself has such a segment, each partition
    becomes its own branch of a UNION ALL with its values as constants taken from the manifest
    (DuckDB drops branches whose constants fail the filter; slower to plan, equally pruned).
    """
    if not files:
        return schema.empty_select
    if not any("=" in seg for seg in store.root.split("/")):
        return f"select * from {_read_parquet(sorted(duckdb_path(store, f.path) for f in files), schema, hive=True)}"
    pcols = list(catalog().partition_columns)
    by_partition: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for f in files:
        by_partition[tuple(f.partition[c] for c in pcols)].append(duckdb_path(store, f.path))
    branches = []
    for values, paths in sorted(by_partition.items()):
        consts = ", ".join(f"{_sql_str(v)} as {c}" for c, v in zip(pcols, values))
        branches.append(
            f"select {consts}, * exclude ({', '.join(pcols)}) from {_read_parquet(sorted(paths), schema, hive=False)}"
        )
    return " union all ".join(branches)


def files_holding(files: list[DataFile], column: str, value: str) -> list[DataFile]:
    """The files that may hold rows with `column = value`, by the manifest's per-file min/max
    (files without stats for the column, written before it had them, are kept)."""
    out = []
    for f in files:
        st = f.stats.get(column)
        if st is None or st.get("min") is None or st["min"] <= value <= st["max"]:
            out.append(f)
    return out


def keyed_table_sql(store: Store, schema: TableSchema, snapshot: Snapshot, superseded: list[DataFile]) -> str:
    """`table_sql` of a table's files in `snapshot`; for executions, messages and attacks without the
    rows of superseded adds (see `warehouse.keys`), which only the files that may hold one pay for."""
    files = snapshot.table_files(schema.name)
    if schema.name not in keys.KEYED_TABLES:
        return table_sql(store, schema, files)
    clean, maybe = keys.split(files, superseded, snapshot.added_in)
    if not maybe:
        return table_sql(store, schema, clean)
    hidden = keys.hide_sql(table_sql(store, schema, maybe))
    return f"select * from ({table_sql(store, schema, clean)}) as c union all {hidden}" if clean else hidden


def define_views(con: duckdb.DuckDBPyConnection, store: Store, snapshot: Snapshot) -> None:
    """Create (or replace) `raw_<table>` for every table and then every view of `schemas/views/`."""
    if not store.is_local:
        # DuckDB reads remote files through the warehouse's own fsspec filesystem (same credentials,
        # endpoint and retries; no network extension), wrapped so that the snapshot's files are
        # known without a request: a query then reads only the files it scans, as on local disk.
        # A connection keeps one filesystem per protocol: replace the previous snapshot's.
        sizes = {store.full(f.path): f.bytes for f in snapshot.files.values()}
        if store.protocol in con.list_filesystems():
            con.unregister_filesystem(store.protocol)
        con.register_filesystem(SnapshotFileSystem(store.fs, sizes, call=store.call))
    superseded = snapshot.table_files(keys.SUPERSEDED)
    tables = catalog().tables
    for name in sorted(tables, key=lambda t: t != keys.SUPERSEDED):  # (the others' views read it)
        con.execute(
            f"create or replace view raw_{name} as {keyed_table_sql(store, tables[name], snapshot, superseded)}"
        )
    # The final rows of the partitions that have in-flight revisions: what the `executions` view
    # anti-joins those revisions with. Usually no partition has any, and then the anti-join reads
    # nothing (a filter on a partition column still prunes every other partition's files).
    live = {tuple(sorted(f.partition.items())) for f in snapshot.table_files("executions_live")}
    finals = [f for f in snapshot.table_files("executions") if tuple(sorted(f.partition.items())) in live]
    con.execute(
        "create or replace view raw_executions_final_of_live as "
        f"{table_sql(store, catalog().table('executions'), finals)}"
    )
    for _, sql in catalog().views:
        con.execute(sql)
    if not live:
        # Nothing in flight: the live branch of `executions` is empty. Say so in the plan, which
        # saves binding the union and its anti-join on every query (about 10 ms of a scores query).
        con.execute("create or replace view executions as select * from raw_executions")


def connect(store: Store, snapshot: Snapshot, *, files_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with every view defined over `snapshot`.

    `files_only`: the connection reads the warehouse's own files and nothing else: no other file
    (`read_text`, `read_csv`, ...), no `COPY ... TO`, `ATTACH`, `INSTALL` or extension loading, no
    Python variable by name, and its configuration is locked. For queries that embed a caller's
    `where` condition (already checked by `warehouse.condition`; this is the second wall).
    """
    con = duckdb.connect()
    if files_only:
        if store.is_local:
            dirs = [store.root.rstrip("/") + "/", duckdb_path(store, ".").rstrip("/") + "/"]
        else:
            dirs = [store.reader_path(".").rstrip("/") + "/"]
        # In this order: the directories cannot be changed once external access is off.
        con.execute(f"set allowed_directories = [{', '.join(_sql_str(d) for d in dict.fromkeys(dirs))}]")
        con.execute("set autoinstall_known_extensions = false")
        con.execute("set autoload_known_extensions = false")
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
    define_views(con, store, snapshot)
    return con


def scan(store: Store, snapshot: Snapshot, table: str, where: Mapping[str, str] | None = None) -> pl.LazyFrame:
    """A Polars LazyFrame over the active files of `table` (only matching partitions if `where`)."""
    import polars as pl  # imported on first use: it costs the CLI a quarter second at start-up

    schema = catalog().table(table)
    paths = file_list(store, snapshot, table, where)
    empty = cast("pl.DataFrame", pl.from_arrow(schema.arrow.empty_table()))  # a Table gives a DataFrame
    if not paths:
        return empty.lazy()
    opts = store.polars_storage_options()
    # glob=False: the paths are the snapshot's files, read as they are ('[', '*', '?' in the root
    # are characters of a name, not a pattern).
    return pl.scan_parquet(
        paths, schema=empty.schema, hive_partitioning=False, storage_options=opts, missing_columns="insert", glob=False
    )
