"""Compaction (`Warehouse.compact`, `warehouse compact`).

Compaction rewrites the small files of each (table, partition) into few files of about
`target_file_size` bytes, rows sorted by the table's `sort_by` (schemas/tables.yaml), and commits
each partition in one commit (operation `compact`) that removes the inputs and adds the outputs.
Query answers do not change: the same rows, in other files. How:

- A partition is compacted when it has at least `min_files` files smaller than the target, and
  ceil(their bytes / target) is fewer than they are (three files of 100 MB are not rewritten into
  three files for a 128 MB target). Files at least as large as the target are left alone.
- The inputs are read by DuckDB, with the table's explicit schema (by Parquet field id, as the
  views read them: columns added since a file was written are NULL), as one stream sorted by the
  table's `sort_by` (NULLs last; rows equal on the keys come in no particular order), and cut into
  a new output file whenever one reaches the target on disk (row groups are cut at the writer's
  row count or a quarter of the target in decoded bytes), so the files of a partition hold
  disjoint key ranges. Small files are mostly Parquet footers: 10,000 files of 10 rows, 138 MiB,
  become one file of 4 MiB. The sort
  runs in DuckDB within DUCKDB_MEMORY_LIMIT, spilling to a temporary directory beyond it; the
  stream is written with `ParquetWriter` a row group at a time, with the writer's PARQUET_OPTIONS.
  So a partition of any size is compacted in bounded memory. On a remote store each output is
  written to a local temporary file, then uploaded. (`rewrite.read_data_file`, a file at a time
  through pyarrow, was measured at 3.6 ms per small file against about 1 ms for DuckDB.)
- Row counts are checked before committing: the inputs' manifest counts, the rows read and the rows
  in each written file's footer must agree, else nothing is committed and the outputs are deleted.
  Each output's manifest stats are the writer's (`file_stats`), read back from the written file.
- Concurrent writers are safe: their new files are not inputs, and a commit only removes what it
  read. If another commit removed an input meanwhile (another compaction, an expire, a delete), the
  log refuses the commit (CommitConflict), or reading it fails if a vacuum deleted it already; the
  outputs, never committed, are deleted, and the partition is planned once more from a refreshed
  snapshot. A second conflict gives up on that
  partition (status "conflict" in the result); the other partitions go on.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.core import arguments
from warehouse.core.errors import CommitConflict, CorruptDataFile, InvalidArgument, StorageError
from warehouse.core.partition_filter import PartitionFilter, partition_filter, values_of
from warehouse.core.partition_paths import new_data_file_name, partition_dir
from warehouse.core.schemas import catalog
from warehouse.core.snapshot_fs import SnapshotFileSystem
from warehouse.core.store_failures import disk_errors
from warehouse.engine import keys
from warehouse.engine.datafiles import check_pages
from warehouse.engine.reader import table_sql
from warehouse.engine.rewrite import RewritePlan, commit_rewrite
from warehouse.manifest import DataFile, RemovedFile, Snapshot, staging_clock

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Default size of compacted files, and the bound below which a file counts as small.
TARGET_FILE_SIZE = 128 << 20
#: Plans of one partition before compaction gives up on it (the first, and one after a conflict).
ATTEMPTS = 2
#: Rows per batch streamed out of DuckDB's sort; row groups of the outputs are cut at the writer's
#: row_group_size rows or ROW_GROUP_BYTES decoded bytes, whichever comes first.
BATCH_ROWS = 64 * 1024
ROW_GROUP_BYTES = 128 << 20
#: DuckDB's memory for the sort of one partition; beyond it, it spills to a temporary directory.
DUCKDB_MEMORY_LIMIT = "1GB"
#: Input files checked at a time on a remote store.
REMOTE_WORKERS = 16

PartitionKey = tuple[tuple[str, str], ...]


def _tables(table: str | Iterable[str] | None) -> list[str]:
    if table is None:
        return list(catalog().tables)
    names = arguments.names("table", table)
    for t in names:
        catalog().table(t)  # SchemaMismatch naming the tables for an unknown one
    return names


def _pkey(f: DataFile) -> PartitionKey:
    return tuple(sorted(f.partition.items()))


# -- compaction ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionCompaction:
    """What compaction did (or, for a dry run, would do) to one (table, partition)."""

    table: str
    partition: Mapping[str, str]
    status: str  # compacted | planned (dry run) | unchanged (nothing left to do on re-plan) | conflict (gave up)
    files_in: int = 0
    files_out: int = 0  # for a dry run: at most this many (ceil(bytes in / target); compressed together they shrink)
    rows: int = 0
    bytes_in: int = 0
    bytes_out: int = 0  # for a dry run: 0 (nothing written)
    version: int | None = None  # the compact commit
    error: str | None = None  # why it gave up (status conflict)


@dataclass(frozen=True)
class CompactResult:
    """What `compact` did, partition by partition, in the order it went."""

    partitions: tuple[PartitionCompaction, ...]
    target_file_size: int
    dry_run: bool
    seconds: float

    @property
    def compacted(self) -> list[PartitionCompaction]:
        """The partitions compacted (planned, for a dry run)."""
        return [p for p in self.partitions if p.status in ("compacted", "planned")]

    @property
    def conflicts(self) -> list[PartitionCompaction]:
        """The partitions given up on because other commits kept removing their files."""
        return [p for p in self.partitions if p.status == "conflict"]

    @property
    def files_in(self) -> int:
        return sum(p.files_in for p in self.compacted)

    @property
    def files_out(self) -> int:
        return sum(p.files_out for p in self.compacted)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.compacted)

    @property
    def versions(self) -> list[int]:
        return [p.version for p in self.partitions if p.version is not None]


@dataclass(frozen=True)
class _Plan:
    """One partition to compact: its small files, and at most how many files they become."""

    table: str
    partition: dict[str, str]
    inputs: list[DataFile]
    files_out: int

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.inputs)


def _plan_partition(
    table: str, partition: dict[str, str], files: list[DataFile], target: int, min_files: int
) -> _Plan | None:
    """The partition's files under `target` bytes, if there are at least `min_files` of them and
    they make fewer files of about `target` bytes than they are; else None."""
    small = [f for f in files if f.bytes < target]
    if len(small) < min_files:
        return None
    files_out = max(1, math.ceil(sum(f.bytes for f in small) / target))
    if files_out >= len(small):
        return None
    return _Plan(table, partition, small, files_out)


def plan_compaction(
    snapshot: Snapshot,
    *,
    table: str | Iterable[str] | None = None,
    partition: str | Mapping[str, str] | PartitionFilter | None = None,
    target_file_size: int = TARGET_FILE_SIZE,
    min_files: int = 2,
) -> list[_Plan]:
    """Every partition worth compacting in `snapshot`, in table then partition order, with its
    input files and the number of output files. Reads nothing but the snapshot. `partition`
    selects partitions (an SQL condition on the partition columns, or a dict; see
    `warehouse.partition_filter`); InvalidArgument if it selects none."""
    tables = _tables(table)
    flt = partition_filter(partition)
    selected = flt.require(f.partition for f in snapshot.files.values()) if flt is not None else None
    out = []
    for t in tables:
        groups: dict[PartitionKey, list[DataFile]] = {}
        for f in snapshot.table_files(t):
            if selected is not None and values_of(f.partition) not in selected:
                continue
            groups.setdefault(_pkey(f), []).append(f)
        for key in sorted(groups):
            plan = _plan_partition(t, dict(key), groups[key], target_file_size, min_files)
            if plan is not None:
                out.append(plan)
    return out


class _Output:
    """One output file being written: a ParquetWriter fed a row group at a time, full once its
    bytes on disk reach the target."""

    def __init__(self, wh: Engine, plan: _Plan, target: int, tmp: str, applied: int | None = None) -> None:
        from warehouse.engine.datafiles import PARQUET_OPTIONS

        self.wh, self.plan, self.target = wh, plan, target
        self.applied = applied  # the version up to which superseded adds were left out (keyed tables)
        self.schema = catalog().table(plan.table)
        self.rel = (
            f"{partition_dir(plan.table, plan.partition, list(catalog().partition_columns))}/{new_data_file_name()}"
        )
        if wh.store.is_local:
            self.path = wh.store.full(self.rel)
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        else:  # written locally, uploaded whole when complete
            self.path = os.path.join(tmp, self.rel.rsplit("/", 1)[-1])
        self.row_group: int = PARQUET_OPTIONS["row_group_size"]
        # A row group is cut at the writer's row count, or at a quarter of the target in decoded
        # bytes, so that a file overshoots the target by at most about one row group.
        self.group_bytes = max(1, min(ROW_GROUP_BYTES, target // 4))
        opts = {k: v for k, v in PARQUET_OPTIONS.items() if k != "row_group_size"}
        self.staged = staging_clock()  # locally the file exists under its name from here (remotely: once uploaded)
        try:
            with disk_errors(self.path):
                self.writer = pq.ParquetWriter(self.path, self.schema.arrow, **opts)
        except BaseException:
            if os.path.exists(self.path):  # a full disk can leave the first bytes of it
                os.unlink(self.path)
            raise
        self.pending: list[pa.Table] = []
        self.pending_rows = self.pending_bytes = self.rows = 0
        self.full = False

    def add(self, rows: pa.Table) -> None:
        """Buffer `rows` (at most one row group's worth); write a row group when one is complete."""
        self.pending.append(rows)
        self.pending_rows += rows.num_rows
        self.pending_bytes += rows.nbytes
        self.rows += rows.num_rows
        if self.pending_rows >= self.row_group or self.pending_bytes >= self.group_bytes:
            self._write()
            self.full = os.path.getsize(self.path) >= self.target  # the sink is unbuffered: row groups are on disk

    def _write(self) -> None:
        if self.pending:
            with disk_errors(self.path):
                self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.row_group)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def close(self) -> DataFile:
        """Finish the file (and upload it, on a remote store); its manifest entry, with the stats
        the writer records, read back from the written file."""
        from warehouse.engine.datafiles import file_stats

        self._write()
        with disk_errors(self.path):
            self.writer.close()
        written = pq.read_metadata(self.path).num_rows
        if written != self.rows:
            raise StorageError(
                f"compaction of {self.plan.table} {self.plan.partition}: {self.rel} holds {written} "
                f"rows, {self.rows} were written; nothing was committed"
            )
        stats = file_stats(
            pq.read_table(self.path, columns=self.schema.stats_columns, page_checksum_verification=True),
            self.schema.stats_columns,
        )
        if self.applied is not None:
            stats[keys.APPLIED] = {"applied": self.applied}
        size = os.path.getsize(self.path)
        store = self.wh.store
        if not store.is_local:
            self.staged = staging_clock()
            with store.errors():
                store.call(store.fs.put_file, self.path, store.full(self.rel))
            os.unlink(self.path)
        return DataFile(self.plan.table, self.rel, dict(self.plan.partition), written, size, stats, staged=self.staged)

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # the file goes anyway; the error that made us abort is the one to report
            pass
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)


def _arrow_reader(rel: duckdb.DuckDBPyRelation, batch_rows: int) -> pa.RecordBatchReader:
    to_reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader  # duckdb >= 1.4 / older
    return to_reader(batch_rows)


def _rewrite(wh: Engine, con: duckdb.DuckDBPyConnection, plan: _Plan, target: int, tmp: str) -> list[DataFile]:
    """The partition's input files as one stream sorted by the table's `sort_by`, cut into files
    of about `target` bytes. Raises CorruptDataFile if the rows read differ from the manifest's
    count; nothing written is left behind on failure."""
    schema = catalog().table(plan.table)
    store = wh.store
    # DuckDB does not check page checksums: pyarrow reads every page of every input first, so that a
    # damaged input stops the compaction (CorruptDataFile) instead of being rewritten, with fresh
    # checksums, into a file that looks sound.
    workers = max(1, min(len(plan.inputs), (os.cpu_count() or 1) if store.is_local else REMOTE_WORKERS))
    with ThreadPoolExecutor(workers) as pool:  # pyarrow decodes without the GIL; remote reads overlap
        list(pool.map(lambda f: check_pages(store, f), plan.inputs))
    if not store.is_local:
        # DuckDB reads the inputs through the store's filesystem, their sizes known from the manifest.
        if store.protocol in con.list_filesystems():
            con.unregister_filesystem(store.protocol)
        con.register_filesystem(
            SnapshotFileSystem(store.fs, {store.full(f.path): f.bytes for f in plan.inputs}, call=store.call)
        )
    cols = ", ".join(schema.column_names)
    order = ", ".join(f"{c} asc nulls last" for c in schema.sort_by)
    query = f"select {cols} from ({table_sql(store, schema, plan.inputs)})" + (f" order by {order}" if order else "")
    expected = plan.rows
    # Execution ids are keys: the rows of adds superseded so far are left out of the outputs, which
    # say so in their stats (readers then only check them against adds superseded later).
    hidden = keys.Hidden(wh.engine.keys, wh.store, wh.snapshot) if plan.table in keys.KEYED_TABLES else None
    applied = hidden.version if hidden is not None else None
    if hidden is not None and not any(hidden.may_hide(f) for f in plan.inputs):
        hidden = None  # (nothing to leave out; the outputs still say which adds were applied)
    dropped = 0
    done: list[DataFile] = []
    out: _Output | None = None
    read = 0
    try:
        with store.errors():
            for batch in _arrow_reader(con.sql(query), BATCH_ROWS):
                rows = pa.Table.from_batches([batch]).cast(schema.arrow)
                read += rows.num_rows
                if hidden is not None:
                    gone = hidden.mask(rows)
                    n_gone = pc.sum(gone).as_py() or 0
                    if n_gone:
                        rows = rows.filter(pc.invert(gone))
                        dropped += n_gone
                while rows.num_rows:
                    if out is None:
                        out = _Output(wh, plan, target, tmp, applied=applied)
                    # At most one row group's worth at a time, so that a full file is noticed in time.
                    per_row = max(1, rows.nbytes // rows.num_rows)
                    take = max(
                        1,
                        min(
                            rows.num_rows,
                            out.row_group - out.pending_rows,
                            (out.group_bytes - out.pending_bytes) // per_row,
                        ),
                    )
                    out.add(rows.slice(0, take))
                    rows = rows.slice(take)
                    if out.full:
                        done.append(out.close())
                        out = None
        if out is not None:
            done.append(out.close())
            out = None
    except BaseException:
        if out is not None:
            out.abort()
        _discard(wh, done)
        raise
    if read != expected or sum(f.rows for f in done) != expected - dropped:
        _discard(wh, done)
        raise CorruptDataFile(
            f"compaction of {plan.table} {plan.partition}: the manifest counts {expected} rows in "
            f"{len(plan.inputs)} files but {read} were read; nothing was committed: run `warehouse doctor`"
        )
    return done


def _discard(wh: Engine, files: list[DataFile]) -> None:
    """Delete outputs that were never committed (best effort: what stays is an orphan for vacuum)."""
    for f in files:
        try:
            wh.store.remove(f.path)
        except Exception:
            pass


def _connection(tmp: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    spill = os.path.join(tmp, "duckdb").replace("'", "''")  # a quote in TMPDIR stays text
    con.execute(f"set temp_directory = '{spill}'")  # the sort spills here, not in the cwd
    con.execute(f"set memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    return con


def _compact_partition(
    wh: Engine, con: duckdb.DuckDBPyConnection, plan: _Plan, target: int, min_files: int, tmp: str
) -> PartitionCompaction:
    last: CommitConflict | None = None
    table, partition = plan.table, plan.partition
    for attempt in range(ATTEMPTS):
        if attempt:
            wh.refresh()
            again = _plan_partition(table, partition, wh.snapshot.table_files(table, partition), target, min_files)
            if again is None:
                return PartitionCompaction(table, partition, "unchanged", error=str(last))
            plan = again
        try:
            outputs = _rewrite(wh, con, plan, target, tmp)
        except Exception as exc:
            # An input that another commit removed and a vacuum (retain=0) deleted meanwhile: a
            # conflict like any other, found while reading rather than while committing.
            wh.refresh()
            vanished = [f.path for f in plan.inputs if f.path not in wh.snapshot.files]
            if not vanished:
                raise
            last = CommitConflict(f"{vanished[0]} was removed by another commit while it was being read ({exc})")
            continue
        gone = [f.path for f in outputs if not wh.store.exists(f.path)]
        if gone:  # not vacuum (the commit deadline keeps files in flight out of its reach): never commit that
            raise StorageError(
                f"compaction of {table} {partition}: its output {gone[0]} was deleted before it "
                "could be committed (by something other than vacuum); nothing was committed: "
                "run compact again"
            )
        rewrite = RewritePlan(remove=[RemovedFile(f.table, f.path) for f in plan.inputs], add=outputs)
        info = {
            "compact": {
                "table": table,
                "partition": partition,
                "planned_at_version": wh.version,
                "files_in": len(plan.inputs),
                "files_out": len(outputs),
                "rows": plan.rows,
                "target_file_size": target,
            }
        }
        try:
            commit = commit_rewrite(wh, rewrite, operation="compact", info=info)
        except CommitConflict as exc:
            # Never committed (the log raises before or instead of creating the commit): delete the outputs now.
            _discard(wh, outputs)
            last = exc
            continue
        assert commit is not None
        return PartitionCompaction(
            table,
            partition,
            "compacted",
            len(plan.inputs),
            len(outputs),
            plan.rows,
            sum(f.bytes for f in plan.inputs),
            sum(f.bytes for f in outputs),
            commit.version,
        )
    return PartitionCompaction(table, partition, "conflict", error=f"gave up after {ATTEMPTS} plans: {last}")


def compact(
    wh: Engine,
    table: str | Iterable[str] | None = None,
    partition: str | Mapping[str, str] | None = None,
    target_file_size: int = TARGET_FILE_SIZE,
    min_files: int = 2,
    dry_run: bool = False,
) -> CompactResult:
    """Rewrite the small files of each (table, partition) into few sorted files of about
    `target_file_size` bytes, one commit per partition; see the module docstring.

    `table`: one table name or several (default every table); `partition`: only the partitions it
    selects, an SQL condition on the partition columns (`"agent = 'tool_agent' and attack = 'none'"`)
    or a dict ({"agent": "tool_agent", "attack": "none"}); see `warehouse.partition_filter`. A
    partition needs at least `min_files` files under the target size. `dry_run` plans from the
    manifest and writes nothing. Raises SchemaMismatch for an unknown table, InvalidCondition for
    SQL that is not one condition on the partition columns, InvalidArgument for a filter that
    selects no partition, a bad size or min_files, ReadOnlyWarehouse on a time-travel snapshot
    (unless `dry_run`).
    """
    t0 = time.perf_counter()
    if not isinstance(target_file_size, int) or isinstance(target_file_size, bool) or target_file_size <= 0:
        raise InvalidArgument(f"target_file_size must be a positive number of bytes, got {target_file_size!r}")
    if not isinstance(min_files, int) or isinstance(min_files, bool) or min_files < 2:
        raise InvalidArgument(f"min_files must be an int of 2 or more, got {min_files!r}")
    if not dry_run:
        wh.engine.require_writable()
    wh.refresh()
    plans = plan_compaction(
        wh.snapshot, table=table, partition=partition, target_file_size=target_file_size, min_files=min_files
    )
    if dry_run:
        done = [
            PartitionCompaction(
                p.table, p.partition, "planned", len(p.inputs), p.files_out, p.rows, sum(f.bytes for f in p.inputs)
            )
            for p in plans
        ]
        return CompactResult(tuple(done), target_file_size, True, time.perf_counter() - t0)
    done = []
    if plans:
        with tempfile.TemporaryDirectory(prefix="warehouse-compact-") as tmp:
            con = _connection(tmp)
            try:
                for p in plans:
                    done.append(_compact_partition(wh, con, p, target_file_size, min_files, tmp))
            finally:
                con.close()
    return CompactResult(tuple(done), target_file_size, False, time.perf_counter() - t0)
