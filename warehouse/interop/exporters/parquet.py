"""`warehouse export parquet OUT`: the snapshot as a plain hive-partitioned Parquet dataset.

    OUT/<table>/dataset=<d>/agent=<a>/attack=<k>/config_hash=<h>/part-<uuid>.parquet
    OUT/_warehouse_export.json      what was exported: warehouse, version, files (a reader skips `_` files)

For engines without a Delta reader (DuckDB `read_parquet('OUT/executions/**/*.parquet',
hive_partitioning=true)`, `pyarrow.dataset`, `polars.scan_parquet`, Spark, Trino's hive connector).
Each data file of the snapshot is copied byte for byte under its own relative path (the layout is
already hive-style, and the files keep the partition columns inside too, so a reader that infers a
type from a directory name, e.g. a `config_hash` of digits only, still gets the stored text); a file
written before a column was added to its table is rewritten with the table's current schema, so
that every file of a table has the same columns. Incremental: a second export copies only files
it lacks and deletes the files that left the snapshot (compaction, expire), so OUT mirrors the
snapshot. Unlike Delta, this is not transactional: a reader during an export may see a compacted
partition's old and new files together; use the Delta export when readers must never see that.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from warehouse.core.errors import ExportFailed
from warehouse.core.partition_paths import parse_partition_path
from warehouse.core.schemas import catalog
from warehouse.core.storage import arrow_reader
from warehouse.engine import keys
from warehouse.interop.exporters import ExportReport
from warehouse.manifest import DataFile

if TYPE_CHECKING:
    from warehouse.core.partition_filter import PartitionFilter
    from warehouse.engine.engine import Engine

MARKER = "_warehouse_export.json"


# -- what to export (shared with the Delta exporter) ---------------------------------------------
def scope(
    tables: str | Iterable[str] | None, where: str | Mapping[str, str] | None
) -> tuple[list[str], PartitionFilter | None]:
    """The tables to export (default: every table) and the partition filter (an SQL condition on
    the partition columns, `"agent=x,attack=none"` or a dict; default: every partition; see
    `warehouse.partition_filter`). Raises ExportFailed naming an unknown table, a bad filter or
    an unknown column (InvalidCondition for SQL that is not one condition)."""
    from warehouse.core.errors import InvalidCondition, WarehouseError
    from warehouse.core.partition_filter import partition_filter

    names = list(catalog().tables)
    chosen = names if tables is None else [tables] if isinstance(tables, str) else list(tables)
    for t in chosen:
        if t not in names:
            raise ExportFailed(f"unknown table {t!r}; tables are {', '.join(names)}")
    try:
        flt = partition_filter(where)
    except InvalidCondition:
        raise
    except WarehouseError as exc:
        raise ExportFailed(str(exc)) from None
    return chosen, flt


def require(flt: PartitionFilter | None, partitions: Iterable[Mapping[str, str]]) -> None:
    """Evaluate the filter over `partitions` at once; ExportFailed if it selects none of them."""
    from warehouse.core.errors import WarehouseError

    if flt is None:
        return
    try:
        flt.require(partitions)
    except WarehouseError as exc:
        raise ExportFailed(str(exc)) from None


def in_scope(partition: Mapping[str, str], where: PartitionFilter | Mapping[str, str] | None) -> bool:
    """True if a file of `partition` matches the filter `where` (a PartitionFilter, or a dict of
    partition column -> value)."""
    if where is None:
        return True
    if isinstance(where, Mapping):
        return all(partition.get(k) == v for k, v in where.items())
    return where.matches(partition)


def target(out: str, storage_options: Mapping[str, Any] | None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of an export target (a local path or an fsspec URL)."""
    fs, root = fsspec.core.url_to_fs(str(out), **dict(storage_options or {}))
    if isinstance(fs, LocalFileSystem):
        root = os.path.abspath(root)
    return fs, root.rstrip("/") or "/"


def warehouse_id(wh: Engine) -> str:
    """The warehouse's location, normalised (absolute for a local path), as recorded in exports."""
    return wh.store.root if wh.store.is_local else f"{wh.store.protocol}://{wh.store.root.lstrip('/')}"


# -- the exporter --------------------------------------------------------------------------------
def _read_marker(fs: fsspec.AbstractFileSystem, root: str, out: str) -> dict[str, Any] | None:
    path = f"{root}/{MARKER}"
    if not fs.exists(path):
        if fs.exists(root) and fs.ls(root, detail=False):
            raise ExportFailed(
                f"{out!r} holds files but no {MARKER}: it is not a Parquet export of a warehouse; "
                "choose an empty or new location"
            )
        return None
    try:
        marker = json.loads(fs.cat_file(path))
        if marker.get("kind") != "parquet" or not isinstance(marker.get("files"), dict):
            raise ValueError("not a Parquet export marker")
    except ValueError as exc:
        raise ExportFailed(f"{out}/{MARKER} is damaged ({exc}); export to a new location") from None
    return marker


def _write_marker(fs: fsspec.AbstractFileSystem, root: str, marker: Mapping[str, Any]) -> None:
    _put(fs, f"{root}/{MARKER}", json.dumps(marker, indent=1, sort_keys=True).encode())


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write `data` at `path` so that no reader ever sees a partial file (object stores: one PUT;
    local: a hidden temp file renamed into place)."""
    if isinstance(fs, LocalFileSystem):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def _file_bytes(wh: Engine, f: DataFile, hidden: keys.Hidden, hide: int) -> bytes:
    """The file as it should appear in the export: its own bytes, or, if it lacks columns its table
    has gained since it was written or holds `hide` rows of superseded adds (execution ids are keys:
    see `warehouse.keys`), rewritten with the current schema and without those rows."""
    from warehouse.engine.datafiles import PARQUET_OPTIONS, checked, read_data_file

    with wh.store.errors():
        data = wh.store.read_bytes(f.path)
    pf = checked(f, lambda: pq.ParquetFile(arrow_reader(data), page_checksum_verification=True))
    for i in range(pf.num_row_groups):  # every page read, checksums checked: an export never publishes damage
        checked(f, partial(pf.read_row_group, i))
    names = pf.schema_arrow.names
    if names == catalog().table(f.table).column_names and not hide:
        return data
    buf = io.BytesIO()
    pq.write_table(hidden.drop(f, read_data_file(wh, f)), buf, **PARQUET_OPTIONS)
    return buf.getvalue()


def export(
    wh: Engine,
    out: str,
    *,
    tables: str | Iterable[str] | None = None,
    where: str | Mapping[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ExportReport:
    """Mirror the current snapshot (of `tables`, in partitions matching `where`) into `out` as
    hive-partitioned Parquet; see the module docstring.

    `out` is a local path or an fsspec URL (`storage_options` for it). Copies only the files `out`
    lacks and deletes those it holds that left the snapshot (only files an earlier export wrote).
    `where` selects partitions: an SQL condition on dataset, agent, attack and config_hash
    (`"dataset = 'agentdojo'"`), `column=value` pairs or a dict (`warehouse.partition_filter`).
    Raises ExportFailed if `out` holds anything but an export of this warehouse, for an unknown
    table or partition column, or a filter that selects no partition (InvalidCondition for SQL that
    is not one condition on the partition columns); StorageError if the warehouse cannot be read.
    """
    t0 = time.perf_counter()
    chosen, part = scope(tables, where)
    fs, root = target(out, storage_options)
    marker = _read_marker(fs, root, out)
    snap = wh.snapshot if wh.read_only else (wh.refresh(), wh.snapshot)[1]
    owned: dict[str, int] = dict(marker["files"]) if marker else {}
    # The partitions of the snapshot and those of earlier exports (which may have left it), at once.
    require(part, [f.partition for f in snap.files.values()] + [parse_partition_path(p) for p in owned])
    wanted = {f.path: f for t in chosen for f in snap.table_files(t) if in_scope(f.partition, part)}
    if marker and marker.get("warehouse") != warehouse_id(wh) and owned and not (owned.keys() & snap.files.keys()):
        raise ExportFailed(
            f"{out!r} holds an export of warehouse {marker.get('warehouse')!r}, none of whose files "
            f"is in {wh.url!r}; export to another location"
        )
    chosen_set = set(chosen)

    def ours(path: str) -> bool:  # an exported file within this export's tables and partitions
        return path.split("/", 1)[0] in chosen_set and in_scope(parse_partition_path(path), part)

    present = {p[len(root) + 1 :] for p in fs.find(root)} if fs.exists(root) else set()
    gone = sorted(p for p in owned if ours(p) and p not in wanted)
    # Rows of superseded adds are left out: a file exported before one of its adds was superseded
    # is exported again without it.
    hidden = keys.Hidden(wh.engine.keys, wh.store, snap)
    hide = {p: n for p, f in wanted.items() if (n := hidden.count(f))}
    was_hidden: dict[str, int] = dict(marker.get("hidden", {})) if marker else {}
    new = sorted(p for p in wanted if p not in owned or p not in present or hide.get(p, 0) != was_hidden.get(p, 0))
    report = ExportReport("parquet", str(out), snap.version)
    base = {"kind": "parquet", "warehouse": warehouse_id(wh), "format_version": catalog().format_version}
    # Claimed before copying: a crash leaves every file it wrote known, so a later export deletes
    # those that leave the snapshot meanwhile instead of leaving duplicates behind.
    if new:
        _write_marker(
            fs,
            root,
            {
                **base,
                "version": marker.get("version") if marker else None,
                "files": {**owned, **{p: -1 for p in new}},
                "hidden": was_hidden,
            },
        )
    for p in new:
        f = wanted[p]
        data = _file_bytes(wh, f, hidden, hide.get(p, 0))
        _put(fs, f"{root}/{p}", data)
        owned[p] = len(data)
        report.rows[f.table] = report.rows.get(f.table, 0) + f.rows - hide.get(p, 0)
        report.files += 1
    for p in gone:
        if p in present:
            fs.rm_file(f"{root}/{p}")
        del owned[p]
    if gone:
        report.notes.append(
            f"deleted {len(gone)} file(s) that left the snapshot (compaction, expire or delete); "
            "the files that replaced them, if any, were copied"
        )
    if new or gone or not marker or marker.get("version") != snap.version:
        _write_marker(
            fs,
            root,
            {
                **base,
                "version": snap.version,
                "files": owned,
                "hidden": {**{p: n for p, n in was_hidden.items() if p in owned and not ours(p)}, **hide},
                "exported_at": datetime.now(UTC).isoformat(),
            },
        )
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["MARKER", "export", "scope", "require", "in_scope", "target", "warehouse_id"]
