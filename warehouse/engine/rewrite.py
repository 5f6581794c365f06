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

from warehouse.engine.datafiles import read_data_file, write_data_file
from warehouse.manifest import Commit, DataFile, RemovedFile, writer_info

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: A function from a file's rows to a boolean mask of the rows to remove (null = keep).
DropMask = Callable[[pa.Table], "pa.Array | pa.ChunkedArray"]


@dataclass
class RewritePlan:
    """What removing rows will do: files that leave the snapshot, files that replace them."""

    remove: list[RemovedFile] = field(default_factory=list)
    add: list[DataFile] = field(default_factory=list)
    rows_removed: int = 0
    files_dropped: int = 0  # every row removed: the file just leaves the snapshot
    files_rewritten: int = 0  # some rows kept: rewritten into a new file
    by_table: dict[str, int] = field(default_factory=dict)  # rows removed per table

    def merge(self, other: RewritePlan) -> None:
        self.remove += other.remove
        self.add += other.add
        self.rows_removed += other.rows_removed
        self.files_dropped += other.files_dropped
        self.files_rewritten += other.files_rewritten
        for t, n in other.by_table.items():
            self.by_table[t] = self.by_table.get(t, 0) + n


def plan_rewrite(
    wh: Engine,
    files: Iterable[DataFile],
    drop: DropMask,
    *,
    dry_run: bool = False,
    whole_file: Callable[[DataFile], bool | None] | None = None,
) -> RewritePlan:
    """Apply `drop` to each file: plan to drop it whole, rewrite it, or leave it.

    `whole_file(f)` may decide from the manifest alone (True: every row goes, False: none does,
    None: read the file). Unless `dry_run`, rewritten files are written now (invisible until
    committed); a dry run only counts.
    """
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


def commit_rewrite(
    wh: Engine, plan: RewritePlan, *, operation: str = "delete", info: dict[str, Any] | None = None
) -> Commit | None:
    """Commit a plan (None if it changes nothing). Raises CommitConflict if another commit removed
    one of its files meanwhile (a concurrent delete or compaction); the plan's new files are then
    left as orphans for vacuum, and the caller may plan again from a refreshed snapshot."""
    if not plan.remove and not plan.add:
        return None
    return wh.engine.commit(
        operation=operation,
        writer=writer_info(uuid.uuid4().hex),
        token=None,
        add=plan.add,
        remove=plan.remove,
        info=info,
    )
