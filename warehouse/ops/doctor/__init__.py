"""Doctor: check a warehouse's manifest against its storage, say what is wrong and what to do, and
repair what a new commit can repair (`Warehouse.doctor`, `warehouse doctor [--repair]`).

What is checked, reading every commit file one by one (so that one bad file does not hide others):

- every commit file parses and holds the version its name says (else `corrupt-commit`), and the
  versions are contiguous from commit 0, or from a checkpoint that vacuum folded older commits
  into (else `missing-commit`). Neither can be repaired by a new commit, since every later version
  builds on it: restore the file from a backup or a replica.
- every data file of the latest snapshot exists (`missing-file`) with the size (`wrong-size`) and
  row count (`wrong-rows`: from the Parquet footer, the only part read) the manifest records, and
  has a readable footer (`unreadable-file`);
- with `deep=True` (`warehouse doctor --deep`), every page of every data file that passed the
  checks above is read, decompressed, decoded and checked against the CRC-32 in its header
  (`damaged-file`); damage inside a page passes every other check, and DuckDB and Polars read such
  a page without error, as other values. Files written before the warehouse wrote page checksums
  have none: in them only damage that breaks decoding is found. It reads every byte, so it costs
  about what reading the whole warehouse with pyarrow does (BENCHMARKS.md);
- every manifest checkpoint agrees with a replay of the commits up to its version: same files with
  the same table, partition, rows, bytes and stats, same commit time, and a commits section with the
  log's tokens and times (`checkpoint-mismatch`, `unreadable-checkpoint`);
- commit times: a commit earlier than the one before it (`clock-backwards`) is a warning, never an
  error: commits are ordered by version, not time. Time travel by timestamp treats such a clock as
  standing still: `open(url, as_of=t)` opens the newest version v such that no commit up to v has a
  time later than t, so it never skips commits;
- stray commit files (`stray-commit`): commit-named files beyond a gap in the log, that no
  checkpoint anchors and that do not belong here (unreadable or claiming another version, copies of
  a commit of the log, or adding only files that are not in storage: copied into `_manifest/` by
  mistake); readers refuse such a log. They are left out of the replay checked below; `repair=True`
  moves them, unchanged, to `_manifest/_set_aside/` (never deleting them). A run beyond a gap that
  does belong here means commits were lost: `missing-commit`, never set aside. A checkpoint newer
  than the newest commit (`stray-checkpoint`) is set aside the same way. Stray `.parquet` files under a table directory but
  not at a partition's depth (`stray-file`, a warning): no snapshot ever holds them, but plain globs
  such as `read_parquet('root/executions/**/*.parquet')` read them;
- orphans (`orphan`): data files under the tables' partition directories that no commit ever
  added (a crashed writer's, an abandoned compaction's), and `_manifest/.tmp-*` / `.probe-*` files.
  Not problems: `warehouse vacuum` deletes them once older than its orphan window. The files of
  publication (`<table>/_delta_log/**`, derived `delta-*.parquet` files) are neither orphans nor strays;
- publication's Delta logs (`publication`): a log delta-rs cannot open or whose latest version names
  missing files or other files than the warehouse version it records (`publication-damaged`, an
  error), a foreign `_delta_log` (`publication-foreign`), a log behind the warehouse while automatic
  publication is on (`publication-behind`). `repair` does not rewrite logs: `warehouse publish delta
  --rebuild` does.

`repair=True` only ever writes one new commit (operation `repair`; history is never rewritten or
deleted): a data file that is missing, unreadable, damaged inside a page, or of another size than
committed (these are not the committed bytes) is removed from the snapshot (its rows leave every view; the file, if any,
stays on disk until vacuum); a file of the committed size whose row count differs from the
manifest's (a hand-edited commit), and that reads as rows of its table and partition, is
re-recorded as it is: removed and added again in the same commit with its real rows and stats, so
no row is lost. The commit's `info` says what and why. Damaged commits and checkpoints are reported
with what to do, and left alone.

The checks are in `diagnose` (their steps) with `log` (commits, strays, checkpoints) and
`datafiles` (sizes, footers, pages, orphans); the repairs in `repair`; the report types in `report`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from warehouse.core.errors import WarehouseError
from warehouse.core.storage import Store
from warehouse.engine.engine import HasEngine, open_engine
from warehouse.ops.doctor.diagnose import diagnose
from warehouse.ops.doctor.repair import set_aside_strays, write_repair
from warehouse.ops.doctor.report import SEVERITIES, DoctorReport, Finding


def run(
    target: str | HasEngine,
    *,
    repair: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    footers: bool = True,
    deep: bool = False,
) -> DoctorReport:
    """Check the warehouse at `target` (a URL or an open Warehouse), and repair it if asked; `deep`
    also reads every page of every data file (see the module docstring).

    Works on a warehouse that cannot be opened (a damaged commit): only `repair` needs it open.
    Raises WarehouseNotFound if there is no warehouse at the URL, StorageError if the store is unusable.
    """
    wh = target.engine if not isinstance(target, str) else None
    store = wh.store if wh is not None else Store.from_url(str(target), storage_options)
    t0 = time.perf_counter()
    report, _, repairable = diagnose(store, footers=footers, deep=deep, storage_options=storage_options)
    if repair and any(f.kind in ("stray-commit", "stray-checkpoint") for f in report.problems):
        set_aside_strays(store, report)
        set_aside = [f for f in report.findings if f.kind in ("stray-commit", "stray-checkpoint")]
        notes = report.notes
        report, _, repairable = diagnose(
            store, footers=footers, deep=deep, storage_options=storage_options
        )  # the log as it is now
        report.findings[:0] = set_aside
        report.notes[:0] = [n for n in notes if n.startswith(("moved ", "_manifest/"))]
    if repair and any(f.kind in ("corrupt-commit", "missing-commit") for f in report.problems):
        report.notes.append(
            "no repair: the log itself is damaged (see the commit findings); restore it first, "
            "then run doctor --repair again"
        )
    elif repair and repairable:
        if wh is None:
            try:
                wh = open_engine(store.url, storage_options=storage_options)
            except WarehouseError as exc:
                report.notes.append(f"no repair: the warehouse cannot be opened ({str(exc).splitlines()[0]})")
        if wh is not None and wh.read_only:
            report.notes.append("no repair on a time-travel snapshot: open the warehouse without version=/as_of=")
        elif wh is not None:
            write_repair(wh, report, repairable)
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["run", "diagnose", "write_repair", "set_aside_strays", "DoctorReport", "Finding", "SEVERITIES"]
