"""`warehouse export delta OUT`: every table of the snapshot as a Delta Lake table, incrementally.

    OUT/<table>/_delta_log/...                      one Delta table per warehouse table (the raw tables:
    OUT/<table>/dataset=<d>/agent=<a>/attack=<k>/config_hash=<h>/part-....parquet   `executions` holds
                                                    final rows, `executions_live` running revisions)

Written with delta-rs (`write_deltalake`), partitioned like the warehouse, readable by
`deltalake.DeltaTable`, `polars.read_delta`, DuckDB's delta extension, Spark/Databricks and Trino.
Each Delta table has the warehouse table's columns plus `_warehouse_file`: the warehouse data file
(relative path) each row came from. That column is the export's state: the files already exported
are its distinct values, so it survives Delta log clean-up, OPTIMIZE or Z-ORDER by other engines,
and a crash (each table's export is one Delta commit). An export then writes, per table, one commit:

- files of the snapshot not yet exported: appended;
- exported files that left the snapshot (replaced by compaction, rewritten or dropped by expire or
  a delete): their rows are deleted in the same commit that appends their replacements (a Delta
  overwrite with a predicate on `_warehouse_file`, limited to the affected partitions), so the Delta
  table never holds a row twice and always equals the snapshot's rows;
- an exported file whose row count differs from the manifest's (rows deleted in the Delta table by
  hand): exported again, replacing what is left of it.

Each commit records in its commit info (`DeltaTable.history()`) `warehouse.url`,
`warehouse.version`, `warehouse.table` and the data files it added and removed
(`warehouse.files_added`, `warehouse.files_removed`, JSON lists), and carries a Delta application
transaction (`warehouse-export`) so that two exports racing on one table cannot both append: the
loser re-reads the table and tries again. Tables are exported one after the other; after an
interrupted export, some tables may be at a newer warehouse version than others until the next one.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from warehouse.core.errors import ExportFailed
from warehouse.core.schemas import catalog
from warehouse.engine import keys
from warehouse.interop.exporters import ExportReport
from warehouse.interop.exporters.parquet import in_scope, require, scope, warehouse_id
from warehouse.manifest import DataFile

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from warehouse.core.partition_filter import PartitionFilter
    from warehouse.engine.engine import Engine

#: The lineage column: the warehouse data file (path relative to the warehouse root) of each row.
FILE_COLUMN = "_warehouse_file"
#: The Delta application-transaction id every export commit carries (conflict detection).
APP_ID = "warehouse-export"
BATCH_ROWS = 64 * 1024
RETRIES = 3


def delta_schema(table: str) -> pa.Schema:
    """The Arrow schema of `table`'s Delta table: the warehouse columns (without Parquet field ids)
    then `_warehouse_file`."""
    fields = [pa.field(f.name, f.type, nullable=f.nullable) for f in catalog().table(table).arrow]
    return pa.schema([*fields, pa.field(FILE_COLUMN, pa.string(), nullable=False)])


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _partition_sql(partition: Mapping[str, str]) -> str:
    return " and ".join(f"{c} = {_sql_str(v)}" for c, v in sorted(partition.items())) or "true"


# delta-rs turns a local path into a URL: these characters make it panic ('[', ']', '^', '|', '\\') or
# read or write another directory than the one named (a `%20` becomes a space).
_BAD_LOCAL_PATH = re.compile(r"[\[\]^|\\]|%[0-9A-Fa-f]{2}")


def _check_local_path(out: str) -> None:
    """Refuse a local target whose path delta-rs cannot use as it is (see _BAD_LOCAL_PATH)."""
    if "://" in out:
        return
    path = os.path.abspath(out)
    bad = _BAD_LOCAL_PATH.search(path)
    if bad:
        raise ExportFailed(
            f"the Delta writer (delta-rs) cannot use the local path {path!r}: it reads "
            f"{bad.group(0)!r} in it as URL syntax; export to a path without '[', ']', '^', '|', "
            "'\\' or %XX (or use the parquet export)"
        )


def _open(uri: str, storage_options: Mapping[str, str] | None) -> DeltaTable | None:
    """The Delta table at `uri`, or None if there is none."""
    from deltalake import DeltaTable

    opts = dict(storage_options or {}) or None
    if not DeltaTable.is_deltatable(uri, storage_options=opts):
        return None
    return DeltaTable(uri, storage_options=opts)


def exported_files(dt: DeltaTable, where: Mapping[str, str]) -> dict[str, int]:
    """Rows per `_warehouse_file` in the Delta table (only partitions matching `where`).

    Runs in delta-rs' own query engine: it reads one dictionary-encoded column, and (unlike a
    pyarrow dataset over the table) leaves no thread behind that could abort the interpreter at exit.
    """
    from deltalake import QueryBuilder

    sql = f"select {FILE_COLUMN} as f, count(*) as n from t where {_partition_sql(where)} group by 1"
    batches = QueryBuilder().register("t", dt).execute(sql)
    out: dict[str, int] = {}
    for rb in pa.RecordBatchReader.from_stream(batches):
        for f, n in zip(rb.column(0).to_pylist(), rb.column(1).to_pylist()):
            out[f] = n
    return out


def _exported_in_scope(dt: DeltaTable, where: Mapping[str, str] | PartitionFilter | None) -> dict[str, int]:
    """`exported_files` of the partitions `where` selects."""
    from warehouse.core.partition_paths import parse_partition_path

    if where is None or isinstance(where, Mapping):
        return exported_files(dt, where or {})
    done = exported_files(dt, {})
    parts = {p: parse_partition_path(p) for p in done}
    where.evaluate(parts.values())  # one query for every partition exported so far
    return {p: n for p, n in done.items() if where.matches(parts[p])}


def _batches(wh: Engine, files: list[DataFile], schema: pa.Schema, hidden: keys.Hidden) -> Iterator[pa.RecordBatch]:
    """The rows of `files` (without those of superseded adds), each batch with its file's path in
    `_warehouse_file`; one file in memory at a time."""
    from warehouse.engine.datafiles import read_data_file

    for f in files:
        t = hidden.drop(f, read_data_file(wh, f))
        for rb in t.to_batches(max_chunksize=BATCH_ROWS):
            yield pa.RecordBatch.from_arrays([*rb.columns, pa.repeat(f.path, rb.num_rows)], schema=schema)


def _check_target(uri: str, dt: DeltaTable | None, wh: Engine, table: str) -> None:
    """Refuse a location that holds something else than an export of a warehouse table."""
    if dt is None:
        if "://" not in uri and os.path.isdir(uri) and os.listdir(uri):
            raise ExportFailed(f"{uri!r} holds files but is not a Delta table; export to an empty or new location")
        return
    names = [f.name for f in dt.schema().fields]
    if FILE_COLUMN not in names:
        raise ExportFailed(
            f"{uri!r} is a Delta table without a {FILE_COLUMN} column, not an export of "
            f"warehouse table {table!r}; export to an empty or new location"
        )


def _history_url(dt: DeltaTable) -> str | None:
    """The warehouse URL recorded by the newest export commit (other engines may commit in between)."""
    for h in dt.history(limit=100):
        if "warehouse.url" in h:
            return str(h["warehouse.url"])
    return None


def export_table(
    wh: Engine,
    table: str,
    uri: str,
    where: Mapping[str, str] | PartitionFilter | None,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> tuple[int, int, list[str]]:
    """Bring the Delta table at `uri` up to the cached snapshot's `table` (partitions matching
    `where`: a dict of partition values or a PartitionFilter) in one Delta commit; returns (rows
    written, files written, notes)."""
    from deltalake import CommitProperties, WriterProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import Transaction

    snap = wh.snapshot
    current = {f.path: f for f in snap.table_files(table) if in_scope(f.partition, where)}
    schema = delta_schema(table)
    pcols = list(catalog().partition_columns)
    hidden = keys.Hidden(wh.engine.keys, wh.store, snap)  # execution ids are keys: rows of superseded adds are left out
    for attempt in range(RETRIES):
        dt = _open(uri, storage_options)
        _check_target(uri, dt, wh, table)
        done = _exported_in_scope(dt, where) if dt is not None else {}
        if (
            dt is not None
            and done
            and not (done.keys() & current.keys())
            and _history_url(dt) not in (None, warehouse_id(wh))
        ):
            raise ExportFailed(
                f"{uri!r} holds an export of warehouse {_history_url(dt)!r}, none of whose files is in "
                f"{wh.url!r}; export to another location"
            )
        # (an exported file also goes again when one of its adds has been superseded since)
        short = sorted(p for p, n in done.items() if p in current and n != current[p].rows - hidden.count(current[p]))
        removed = sorted(p for p in done if p not in current) + short
        added = sorted(p for p in current if p not in done) + short
        notes = []
        if short:
            notes.append(
                f"{table}: {len(short)} exported file(s) had another row count than the warehouse records "
                "(rows changed in the Delta table?): exported again"
            )
        if dt is not None and not removed and not added:
            return 0, 0, notes
        files = [current[p] for p in added]
        txn = (dt.transaction_version(APP_ID) or 0) + 1 if dt is not None else 1
        meta = {
            "warehouse.url": warehouse_id(wh),
            "warehouse.version": str(snap.version),
            "warehouse.table": table,
            "warehouse.files_added": json.dumps(added),
            "warehouse.files_removed": json.dumps(removed),
        }
        props = CommitProperties(custom_metadata=meta, app_transactions=[Transaction(APP_ID, txn)])
        data = pa.RecordBatchReader.from_batches(schema, _batches(wh, files, schema, hidden))
        kwargs: dict[str, Any] = dict(
            partition_by=pcols,
            schema_mode="merge",
            commit_properties=props,
            writer_properties=WriterProperties(compression="ZSTD", compression_level=3),
            storage_options=dict(storage_options) if storage_options else None,
        )
        if removed:
            # Every row of a removed or added file, in the partitions they belong to: the rows of the
            # removed files go, the added files' rows (which match too) come in, in one commit.
            from warehouse.core.partition_paths import parse_partition_path

            parts: dict[tuple[tuple[str, str], ...], list[str]] = {}
            for p in removed + added:
                parts.setdefault(tuple(sorted(parse_partition_path(p).items())), []).append(p)
            predicate = " or ".join(
                f"({_partition_sql(dict(k))} and {FILE_COLUMN} in ({', '.join(map(_sql_str, v))}))"
                for k, v in sorted(parts.items())
            )
            kwargs.update(mode="overwrite", predicate=predicate)
            notes.append(
                f"{table}: {len(set(removed))} exported file(s) left the snapshot (compaction, expire or delete): "
                "their rows were deleted, and the rows of the files that replaced them (if any) appended, in the same Delta commit"
            )
        else:
            kwargs.update(mode="append")
            if dt is None:
                kwargs.update(name=table, description=catalog().table(table).doc)
        try:
            write_deltalake(dt if dt is not None else uri, data, **kwargs)
        except CommitFailedError:
            if attempt == RETRIES - 1:
                raise ExportFailed(
                    f"{uri!r}: other exports kept committing to this Delta table; run the export again"
                ) from None
            continue
        return sum(f.rows - hidden.count(f) for f in files), len(files), notes
    raise AssertionError("unreachable")


def export(
    wh: Engine,
    out: str,
    *,
    tables: str | Iterable[str] | None = None,
    where: str | Mapping[str, str] | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> ExportReport:
    """Export the current snapshot (of `tables`, in partitions matching `where`) to `out/<table>`
    as Delta tables, appending only what earlier exports lack; see the module docstring.

    `out` is a local path or a URL delta-rs understands (`s3://...`, with `storage_options` such as
    `AWS_ENDPOINT_URL`, or the AWS environment variables). Every table gets a Delta table, empty
    ones too. `where` selects partitions: an SQL condition on dataset, agent, attack and
    config_hash, `column=value` pairs or a dict (`warehouse.partition_filter`). Raises ExportFailed
    if a `out/<table>` holds something else than an export of the warehouse, for an unknown table
    or partition column, a filter that selects no partition (InvalidCondition for SQL that is not
    one condition on the partition columns), or a local path delta-rs cannot use.
    """
    t0 = time.perf_counter()
    _check_local_path(str(out))
    chosen, part = scope(tables, where)
    if not wh.read_only:
        wh.refresh()
    require(part, [f.partition for f in wh.snapshot.files.values()])
    report = ExportReport("delta", str(out), wh.version)
    base = str(out).rstrip("/")
    for table in chosen:
        rows, files, notes = export_table(wh, table, f"{base}/{table}", part, storage_options=storage_options)
        if files:
            report.rows[table] = rows
            report.files += files
        report.notes += notes
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["APP_ID", "FILE_COLUMN", "delta_schema", "exported_files", "export", "export_table"]
