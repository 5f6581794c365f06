"""Data files: how the warehouse writes a table's rows as one immutable Parquet file (zstd, a CRC-32 in
every page header, manifest stats) and reads one back with its pages checked, damage reported as
CorruptDataFile naming the file."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.core.errors import CorruptDataFile
from warehouse.core.partition_paths import new_data_file_name, partition_dir
from warehouse.core.schemas import catalog
from warehouse.core.storage import Store, arrow_reader
from warehouse.manifest import DataFile, staging_clock


class HasStore(Protocol):
    """What data-file I/O needs of a warehouse: its store (a `Warehouse` or an `Engine`)."""

    @property
    def store(self) -> Store: ...


#: Parquet settings: zstd, row groups large enough for scans, and a CRC-32 in every page header, so
#: that damage inside a page is found (by pyarrow's reads and `doctor --deep`) rather than decoded
#: into other values. Every data file the warehouse writes uses these.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 256 * 1024,
    "write_page_checksum": True,
}


def _stat_value(v: Any) -> Any:
    return v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v


def file_stats(table: pa.Table, columns: list[str]) -> dict[str, dict[str, Any]]:
    """min/max/null count of the given columns, for the manifest."""
    out = {}
    for c in columns:
        col = table.column(c)
        mm = pc.min_max(col)
        out[c] = {"min": _stat_value(mm["min"].as_py()), "max": _stat_value(mm["max"].as_py()), "nulls": col.null_count}
    return out


def write_data_file(wh: HasStore, table_name: str, partition: Mapping[str, str], table: pa.Table) -> DataFile:
    """Write one immutable Parquet file; it stays invisible until a commit adds it, which must come
    within `manifest.COMMIT_DEADLINE` (else StaleDataFile: write it again)."""
    schema = catalog().table(table_name)
    rel = f"{partition_dir(table_name, partition, list(catalog().partition_columns))}/{new_data_file_name()}"
    store = wh.store
    # The file exists under its name from here on (locally: as it is written; remotely: once
    # uploaded), so its age for the commit deadline counts from here.
    if store.is_local:
        # Straight to the file: no second copy of the encoded bytes in memory.
        path = store.full(rel)
        with store.writing(rel):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            staged = staging_clock()
            try:
                pq.write_table(table, path, **PARQUET_OPTIONS)
            except BaseException:
                # A full disk leaves a partial file: take it away (best effort) rather than leave an orphan.
                try:
                    os.unlink(path)
                except OSError:
                    pass
                raise
        size = os.path.getsize(path)
    else:
        buf = io.BytesIO()
        pq.write_table(table, buf, **PARQUET_OPTIONS)
        size = buf.tell()
        staged = staging_clock()
        store.write_bytes(rel, buf.getbuffer())
    return DataFile(
        table_name, rel, dict(partition), table.num_rows, size, file_stats(table, schema.stats_columns), staged=staged
    )


def damaged(path: str, exc: BaseException) -> CorruptDataFile | None:
    """A CorruptDataFile naming `path` if `exc` is pyarrow finding damaged bytes (a page that fails
    its checksum, does not decompress or decode, a footer that does not parse), else None (an
    I/O error, a missing file: those are not the bytes' fault)."""
    if isinstance(exc, (FileNotFoundError, PermissionError)) or (isinstance(exc, OSError) and exc.errno is not None):
        return None
    if not isinstance(exc, (OSError, pa.ArrowException)):
        return None
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CorruptDataFile(
        f"data file {path} is damaged ({why}); its rows cannot be trusted: run "
        "`warehouse doctor --deep --repair` to take it out of the snapshot, or restore it "
        "from a backup or a replica"
    )


def parquet_file(store: Store, f: DataFile) -> pq.ParquetFile:
    """`f` opened for reading with page checksum verification: every page read is checked against
    the CRC-32 in its header (files written before the warehouse wrote checksums have none, and are
    read unchecked). Reads raise CorruptDataFile naming the file, through `checked`."""
    try:
        if store.is_local:
            return pq.ParquetFile(store.full(f.path), page_checksum_verification=True)
        with store.errors():
            return pq.ParquetFile(arrow_reader(store.read_bytes(f.path)), page_checksum_verification=True)
    except Exception as exc:
        translated = damaged(f.path, exc)
        if translated is None:
            raise
        raise translated from exc


def checked(f: DataFile, read: Callable[[], Any]) -> Any:
    """`read()`, with damaged bytes reported as CorruptDataFile naming `f`."""
    try:
        return read()
    except Exception as exc:
        translated = damaged(f.path, exc)
        if translated is None:
            raise
        raise translated from exc


def check_pages(store: Store, f: DataFile) -> int:
    """Read (and so decompress, decode and checksum) every page of `f`, a row group at a time;
    returns its rows. Raises CorruptDataFile naming the file if any page is damaged."""
    pf = parquet_file(store, f)
    return sum(checked(f, partial(pf.read_row_group, i)).num_rows for i in range(pf.num_row_groups))


def read_data_file(wh: HasStore, f: DataFile, columns: list[str] | None = None) -> pa.Table:
    """A data file's rows with the table's current schema (columns added since it was written are
    NULL), optionally only `columns`. Pages are checked against their checksums: raises
    CorruptDataFile naming the file if one is damaged, so that no rewrite ever makes damage durable."""
    schema = catalog().table(f.table).arrow
    wanted = columns if columns is not None else schema.names
    pf = parquet_file(wh.store, f)
    present = set(pf.schema_arrow.names)
    t = checked(f, lambda: pf.read(columns=[c for c in wanted if c in present]))
    arrays = []
    for name in wanted:
        fld = schema.field(name)
        if name in t.column_names:
            arrays.append(t.column(name).cast(fld.type))
        else:
            arrays.append(pa.nulls(t.num_rows, fld.type))
    return pa.table(arrays, schema=pa.schema([schema.field(n) for n in wanted]))
