"""Doctor's checks of the data files: each file of the snapshot against the size and row count the
manifest records (footers only), every page with `deep`, and files no commit ever added."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow.parquet as pq

from warehouse.core.schemas import catalog
from warehouse.core.storage import Store, arrow_reader
from warehouse.manifest import DataFile
from warehouse.ops.doctor.report import FOOTER_WORKERS, DoctorReport

_TAIL = 64 << 10  # bytes read from a file's end for its footer (more if the footer is larger)


def footer_rows(store: Store, rel: str, size: int) -> int:
    """The row count in a Parquet file's footer (only the footer is read)."""
    if store.is_local:
        return pq.read_metadata(store.full(rel)).num_rows
    path = store.full(rel)
    tail = store.call(store.fs.cat_file, path, start=max(0, size - _TAIL), end=size)
    if len(tail) >= 8 and tail[-4:] == b"PAR1":
        n = struct.unpack("<I", tail[-8:-4])[0]
        if len(tail) < n + 8 <= size:
            tail = store.call(store.fs.cat_file, path, start=size - n - 8, end=size)
    return pq.read_metadata(arrow_reader(tail)).num_rows


def file_size(store: Store, rel: str) -> int | None:
    """The size of one file, None if it does not exist."""
    try:
        with store.errors():
            return int(store.call(store.fs.size, store.full(rel)))
    except FileNotFoundError:
        return None


def data_paths(paths: list[str]) -> list[str]:
    """Those of `paths` that vacuum counts as data files or writers' temp files (the same rule, so
    that what doctor calls an orphan is what vacuum deletes)."""
    from warehouse.ops.vacuum import is_data_path

    tables, pcols = catalog().tables, catalog().partition_columns
    return [p for p in paths if is_data_path(p, tables, pcols)]


def stray_parquet(paths: list[str]) -> list[str]:
    """Those of `paths` (under the tables' directories) that end in .parquet but are not where a
    writer puts data files (`vacuum.is_data_path`)."""
    data = set(data_paths(paths))
    return [p for p in paths if p.endswith(".parquet") and p not in data]


DEEP_DUCKDB_BATCH = 256


def check_deep(store: Store, files: list[DataFile], report: DoctorReport, bad: Any) -> None:
    """`--deep`: read every page of `files` twice, with pyarrow checking each page against its
    checksum, and with DuckDB as the views read it (a damaged page header, which no checksum
    covers, can fail DuckDB's decoding alone); a file either cannot read is a `damaged-file`.
    (Polars is not asked: on some damaged pages it aborts the whole process.)"""
    import duckdb

    from warehouse.core.errors import CorruptDataFile
    from warehouse.core.snapshot_fs import SnapshotFileSystem
    from warehouse.engine.datafiles import check_pages
    from warehouse.engine.reader import table_sql

    def pages(f: DataFile) -> tuple[DataFile, str | None]:
        try:
            rows = check_pages(store, f)
        except CorruptDataFile as exc:
            cause = str(exc.__cause__ or exc).splitlines()[0]
            return f, f"a page is damaged ({cause}): queries may fail or, worse, return other values"
        except FileNotFoundError:
            return f, None  # removed by a commit and deleted by a vacuum meanwhile: not ours to judge
        return f, None if rows == f.rows else f"its pages hold {rows} rows; the manifest records {f.rows}"

    if store.is_local or len(files) < 2:
        results = [pages(f) for f in files]
    else:
        with ThreadPoolExecutor(FOOTER_WORKERS) as pool:
            results = list(pool.map(pages, files))
    found = {f.path: why for f, why in results}  # path -> what is wrong (None: nothing found)

    con = duckdb.connect()
    if not store.is_local:
        con.register_filesystem(
            SnapshotFileSystem(store.fs, {store.full(f.path): f.bytes for f in files}, call=store.call)
        )

    def duckdb_check(batch: list[DataFile]) -> None:
        """Read `batch` (files of one table) in one query; on a failure or a wrong count, one by one."""
        why = None
        try:
            rel = con.sql(f"select * from ({table_sql(store, catalog().table(batch[0].table), batch)})")
            to_reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
            rows = sum(b.num_rows for b in to_reader(64 * 1024))
            if rows == sum(f.rows for f in batch):
                return
            why = f"DuckDB reads {rows} rows; the manifest records {sum(f.rows for f in batch)}"
        except duckdb.Error as exc:
            why = f"DuckDB cannot decode it ({str(exc).splitlines()[0]}): queries over it fail"
        if len(batch) > 1:
            for f in batch:
                duckdb_check([f])
        elif store.exists(batch[0].path):  # (else deleted by a vacuum meanwhile)
            found[batch[0].path] = why

    try:
        sound = sorted((f for f in files if found[f.path] is None), key=lambda f: (f.table, f.path))
        for table in sorted({f.table for f in sound}):
            of_table = [f for f in sound if f.table == table]
            for i in range(0, len(of_table), DEEP_DUCKDB_BATCH):
                duckdb_check(of_table[i : i + DEEP_DUCKDB_BATCH])
    finally:
        con.close()
    for f in sorted(files, key=lambda f: f.path):
        if found[f.path] is not None:
            bad(f, "damaged-file", found[f.path], f.bytes, "--deep --repair")
    report.notes.append(
        f"deep: read every page of {len(files)} data file(s) ({sum(f.bytes for f in files):,} bytes) "
        "with pyarrow, checking each against its checksum (files written before page checksums "
        "have none: decoding only), and with DuckDB"
    )
