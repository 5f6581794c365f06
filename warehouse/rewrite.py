"""Removing rows from immutable data files: a file whose rows all go is dropped from the snapshot,
a file with some rows to keep is rewritten as a new file without the others; one commit applies it.

Used by retention (`Warehouse.expire`) and by deletes (`sessions.delete`). Nothing is removed from
disk here: the old files leave the snapshot and vacuum deletes them after its retention window.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import CorruptDataFile
from .manifest import Commit, DataFile, RemovedFile, writer_info
from .schemas import catalog
from .storage import arrow_reader

if TYPE_CHECKING:
    from .storage import Store
    from .warehouse import Warehouse

#: A function from a file's rows to a boolean mask of the rows to remove (null = keep).
DropMask = Callable[[pa.Table], "pa.Array | pa.ChunkedArray"]


def damaged(path: str, exc: BaseException) -> CorruptDataFile | None:
    """A CorruptDataFile naming `path` if `exc` is pyarrow finding damaged bytes (a page that fails
    its checksum, does not decompress or decode, a footer that does not parse), else None (an
    I/O error, a missing file: those are not the bytes' fault)."""
    if isinstance(exc, (FileNotFoundError, PermissionError)) or (isinstance(exc, OSError) and exc.errno is not None):
        return None
    if not isinstance(exc, (OSError, pa.ArrowException)):
        return None
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CorruptDataFile(f"data file {path} is damaged ({why}); its rows cannot be trusted: run "
                           "`warehouse doctor --deep --repair` to take it out of the snapshot, or restore it "
                           "from a backup or a replica")


def parquet_file(store: "Store", f: DataFile) -> pq.ParquetFile:
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


def check_pages(store: "Store", f: DataFile) -> int:
    """Read (and so decompress, decode and checksum) every page of `f`, a row group at a time;
    returns its rows. Raises CorruptDataFile naming the file if any page is damaged."""
    pf = parquet_file(store, f)
    return sum(checked(f, lambda i=i: pf.read_row_group(i).num_rows) for i in range(pf.num_row_groups))


def read_data_file(wh: "Warehouse", f: DataFile, columns: list[str] | None = None) -> pa.Table:
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


@dataclass
class RewritePlan:
    """What removing rows will do: files that leave the snapshot, files that replace them."""

    remove: list[RemovedFile] = field(default_factory=list)
    add: list[DataFile] = field(default_factory=list)
    rows_removed: int = 0
    files_dropped: int = 0  # every row removed: the file just leaves the snapshot
    files_rewritten: int = 0  # some rows kept: rewritten into a new file
    by_table: dict[str, int] = field(default_factory=dict)  # rows removed per table

    def merge(self, other: "RewritePlan") -> None:
        self.remove += other.remove
        self.add += other.add
        self.rows_removed += other.rows_removed
        self.files_dropped += other.files_dropped
        self.files_rewritten += other.files_rewritten
        for t, n in other.by_table.items():
            self.by_table[t] = self.by_table.get(t, 0) + n


def plan_rewrite(wh: "Warehouse", files: Iterable[DataFile], drop: DropMask, *, dry_run: bool = False,
                 whole_file: Callable[[DataFile], bool | None] | None = None) -> RewritePlan:
    """Apply `drop` to each file: plan to drop it whole, rewrite it, or leave it.

    `whole_file(f)` may decide from the manifest alone (True: every row goes, False: none does,
    None: read the file). Unless `dry_run`, rewritten files are written now (invisible until
    committed); a dry run only counts.
    """
    from .writer import write_data_file  # the writer imports this module's users

    plan = RewritePlan()
    for f in files:
        decided = whole_file(f) if whole_file is not None else None
        if decided is False:
            continue
        if decided is True:
            n = f.rows
            t = None
        else:
            t = read_data_file(wh, f)
            mask = pc.fill_null(drop(t), False)
            n = pc.sum(mask).as_py() or 0
            if n == 0:
                continue
        plan.remove.append(RemovedFile(f.table, f.path))
        plan.rows_removed += n
        plan.by_table[f.table] = plan.by_table.get(f.table, 0) + n
        if n == f.rows:
            plan.files_dropped += 1
            continue
        plan.files_rewritten += 1
        if not dry_run:
            assert t is not None
            plan.add.append(write_data_file(wh, f.table, dict(f.partition), t.filter(pc.invert(mask))))
    return plan


def commit_rewrite(wh: "Warehouse", plan: RewritePlan, *, operation: str = "delete",
                   info: dict[str, Any] | None = None) -> Commit | None:
    """Commit a plan (None if it changes nothing). Raises CommitConflict if another commit removed
    one of its files meanwhile (a concurrent delete or compaction); the plan's new files are then
    left as orphans for vacuum, and the caller may plan again from a refreshed snapshot."""
    if not plan.remove and not plan.add:
        return None
    return wh._commit(operation=operation, writer=writer_info(uuid.uuid4().hex), token=None,
                      add=plan.add, remove=plan.remove, info=info)
