"""`warehouse sync SRC DST`: make DST answer every query like SRC, copying only what DST lacks.

The plan compares snapshots, not directories: every data file active in SRC's snapshot that DST has
never taken in is copied (in parallel) and then committed in DST with operation `sync`; files that
SRC has since removed (a compaction or an expire there) are removed in the same commit that adds
their replacement. Files are grouped by the SRC commit that added them and a batch always holds
whole SRC commits, so what one flush wrote atomically (results, messages, attacks) appears in DST
atomically too. Each batch is one DST commit, with an idempotency token.

The ledger. Each sync commit also adds rows to DST's `imports` table (in a partition of its own,
`dataset = 'imports'`, `agent = 'sync'`): kind `sync` for every data file it took in, kind
`sync-removed` for every file it removed because SRC had removed it (`root` is SRC's location,
`source` and `fingerprint` the file's path: data files are immutable and uniquely named). The
ledger is data, so it outlives vacuum folding old commits into checkpoints, and it is a warehouse's
own record: sync never copies another warehouse's ledger. With it, a sync never re-adds content DST
took in and then rewrote or deleted itself:

- a file DST took in is never copied again, whether DST still has it or compacted, expired or
  deleted it since (its own rewrite stands); nor is a file that SRC's ledger says it took in from
  DST (two warehouses synced both ways). Except a file that DST's doctor removed as damaged or
  missing (a `repair` commit since DST's last sync from SRC): that is no decision of DST's, and
  SRC's copy comes back;
- when SRC removed files that DST had already rewritten or deleted itself (both sides compacted),
  the DST files holding their rows are found through DST's log (its `compact` and `delete`
  commits still in the log): if every one of them holds rows of those files only (or of files SRC
  still has, which are then copied again), and either DST only compacted them or SRC deleted
  those rows too, DST's files are replaced by SRC's in the same commit, exactly. Otherwise the
  sync raises SyncDiverged naming the file, and commits nothing: DST deleted rows that SRC's
  rewrite would bring back, mixed them with rows of its own, or its log no longer says where they
  went. Rewrite only the source (let sync carry its rewrites to replicas), or sync into a new DST.

Execution ids are keys across warehouses too (see `warehouse.keys`): an add a sync brings into DST
replaces DST's other adds of its id (its own writes, an import's), as any later add does, unless it
was itself replaced already (SRC's `superseded` rows travel with the files). This costs a read of
the key columns of the copied executions files only when DST holds executions files SRC does not.

A DST synced before the ledger existed: what its log still says (files added and removed by its
`sync` commits, and files of its snapshot that a `sync` commit added or that SRC also has) is
recorded in the ledger by the next sync. A file an old sync added that DST then rewrote away, both
in commits vacuum has folded since, is known to no one: that one would be copied again.

Nothing is visible in DST before its commit, so a sync killed at any point leaves no partial state
behind: the next run finds the committed batches in DST's snapshot and skips them, reuses data files
it had already copied (same path and size; data files are immutable), and copies the rest. A second
run over an unchanged SRC copies nothing and commits nothing. Both sides may be written to while a
sync runs: SRC is read at one snapshot, and DST commits are ordinary appends; if DST removes a file
the sync was about to remove (a compaction in DST meanwhile), the sync plans again.

When vacuum has folded SRC's older commits into a checkpoint, their files come from SRC's snapshot
instead, one stand-in commit per version that added them (a flush still lands whole), and the DST
files that SRC removed in those commits (files DST took in from SRC, as its ledger or its log
says, and that SRC's snapshot no longer has) are removed with the last of them.

Planning is in `sync_plan`, the ledger in `sync_ledger`; this module copies and commits.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Container
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from warehouse.core import arguments
from warehouse.core.config import RunConfig
from warehouse.core.errors import CommitConflict, ConfigHashCollision, StaleDataFile, SyncDiverged
from warehouse.manifest import Commit, DataFile, Staged, staged_age, staging_clock, writer_info
from warehouse.manifest import model as manifest_model

# Planning and the ledger have modules of their own; the names callers import from here stay here.
from warehouse.ops.sync_ledger import (  # noqa: F401
    MIRRORED,
    TAKEN,
    is_ledger_file,
    ledger_file,
    ledger_partition,
    ledger_rows,
    location,
)
from warehouse.ops.sync_plan import BATCH_BYTES, BATCH_FILES, LOSSLESS, REWRITES, Batch, plan, plan_all  # noqa: F401

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Times a batch is copied again after DST's commit refused its files as too old (StaleDataFile).
STALE_ATTEMPTS = 3
#: Times a sync plans again after DST removed, meanwhile, a file it was about to remove.
REPLANS = 3
CONFIGS_DIR = "configs"


@dataclass(frozen=True)
class Progress:
    """Where a sync is: files and bytes copied (or found already copied) out of the total."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


@dataclass
class SyncResult:
    """What a sync did (or, with dry_run, would do)."""

    src_url: str
    dst_url: str
    src_version: int
    dst_version: int  # DST's version after the sync (before it, for a dry run)
    files: int = 0  # data files DST lacked (copied, or reused from a killed run)
    bytes: int = 0
    reused: int = 0  # of those, found already copied by an interrupted run
    removed: int = 0  # files removed in DST because SRC removed them
    replaced: int = 0  # of those, DST's own rewrites of SRC's files (see the module doc)
    configs: int = 0  # config snapshots (configs/<hash>.yaml) copied
    commits: list[int] = field(default_factory=list)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> {"files", "bytes", "rows"}
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return not self.files and not self.removed


class _Copier:
    """Copies data files from SRC to DST on a thread pool, counting files and bytes for progress."""

    def __init__(
        self,
        src: Engine,
        dst: Engine,
        workers: int,
        total_files: int,
        total_bytes: int,
        progress: Callable[[Progress], None] | None,
    ) -> None:
        self.src, self.dst = src.store, dst.store
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="warehouse-sync")
        self.lock = threading.Lock()
        self.files_done = self.bytes_done = 0
        self.total_files, self.total_bytes = total_files, total_bytes
        self.progress = progress
        # Same S3 filesystem on both sides (same endpoint and credentials): copy inside the server.
        self.server_side = self.src.fs is self.dst.fs and self.src.is_s3
        # When each DST file began to be copied (or, for one a killed run left, its last-modified
        # time): DST's commit refuses files older than its deadline, which a DST vacuum may take.
        self.staged: dict[str, Staged] = {}

    def _tick(self, f: DataFile) -> None:
        with self.lock:
            self.files_done += 1
            self.bytes_done += f.bytes
            p = Progress(self.files_done, self.total_files, self.bytes_done, self.total_bytes)
        if self.progress is not None:
            self.progress(p)

    def _copy(self, f: DataFile) -> None:
        self.staged[f.path] = staging_clock()
        if self.server_side:
            with self.dst.errors():
                # cp_file copies that one object; `copy` would expand '*', '?' and '[' in the
                # prefix as a pattern (and copy the files of every prefix it matches).
                self.src.call(self.src.fs.cp_file, self.src.full(f.path), self.dst.full(f.path))
        else:
            with self.src.errors():
                data = self.src.read_bytes(f.path)
            with self.dst.errors():
                self.dst.write_bytes(f.path, data)
        self._tick(f)

    def copy(self, files: list[DataFile], present: dict[str, tuple[int, Any]]) -> int:
        """Copy `files`, skipping those already in DST (path -> (size, last modified) in `present`)
        with the right size and young enough to be committed (half the commit deadline); returns
        how many were reused."""
        todo, reused = [], 0
        fresh = manifest_model.COMMIT_DEADLINE.total_seconds() / 2
        for f in files:
            size, mtime = present.get(f.path, (None, None))
            staged: Staged | None = (None, mtime.timestamp()) if mtime is not None else None
            if size == f.bytes and staged is not None and staged_age(staged) < fresh:
                self.staged[f.path] = staged
                reused += 1
                self._tick(f)
            else:
                todo.append(f)
        futures = [self.pool.submit(self._copy, f) for f in todo]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in pending:
            fut.cancel()
        for fut in done:
            fut.result()  # raises the first failure; nothing of this batch is committed
        return reused

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _copy_configs(src: Engine, dst: Engine, dry_run: bool) -> int:
    """Copy the config snapshots DST lacks; ConfigHashCollision if DST has another config under a hash."""
    with src.store.errors():
        ours = {
            n: src.store.read_bytes(f"{CONFIGS_DIR}/{n}")
            for n in sorted(src.store.list_names(CONFIGS_DIR))
            if n.endswith(".yaml")
        }
    copied = 0
    with dst.store.errors():
        theirs = {n for n in dst.store.list_names(CONFIGS_DIR) if n.endswith(".yaml")}
        for name, data in ours.items():
            rel = f"{CONFIGS_DIR}/{name}"
            if name not in theirs and (dry_run or dst.store.put_if_absent(rel, data)):
                copied += 1
                continue
            other = dst.store.read_bytes(rel) if not dry_run or name in theirs else data
            if (
                other != data
                and RunConfig.from_yaml(other.decode()).canonical() != RunConfig.from_yaml(data.decode()).canonical()
            ):
                raise ConfigHashCollision(
                    f"config hash {name[:-5]} names different configs in {src.url} and {dst.url} "
                    f"(see {rel} in each); sync cannot merge them: rename one configuration"
                )
    return copied


class _Replan(Exception):
    """A file the batch removes left DST's snapshot meanwhile (DST rewrote it), or a file it copies
    left SRC's (SRC rewrote and vacuumed it): plan again."""


def _left_src(src: Engine, batches: list[Batch]) -> _Replan:
    """After a source file vanished while being copied: a _Replan if planned files left SRC's
    snapshot meanwhile (a compaction and a vacuum in SRC took them); a file still in it is missing
    for another reason (damage), and the FileNotFoundError being handled is raised again."""
    src.refresh()
    gone = [f.path for b in batches for f in b.add if f.path not in src.snapshot.files]
    if not gone:
        raise  # (called only from an except block: re-raises the FileNotFoundError being handled)
    return _Replan(f"{gone[0]} left {src.url}'s snapshot while being copied")


def _tally(result: SyncResult, batches: list[Batch]) -> SyncResult:
    for b in batches:
        result.files += len(b.add)
        result.bytes += b.bytes
        result.removed += len(b.remove)
        result.replaced += b.replaced
        for f in b.add:
            t = result.tables.setdefault(f.table, {"files": 0, "bytes": 0, "rows": 0})
            t["files"] += 1
            t["bytes"] += f.bytes
            t["rows"] += f.rows
    return result


def sync(
    src: Engine,
    dst: Engine,
    *,
    dry_run: bool = False,
    workers: int = 16,
    progress: Callable[[Progress], None] | None = None,
    batch_files: int = BATCH_FILES,
    batch_bytes: int = BATCH_BYTES,
) -> SyncResult:
    """Copy to `dst` the data files of `src`'s current snapshot that `dst` never took in and commit
    them there (one `sync` commit per batch of whole SRC commits, with the ledger rows that record
    them). See the module docstring.

    Raises SyncDiverged (nothing committed) if SRC rewrote data files that DST had already
    rewritten or deleted itself and the result cannot be mirrored exactly, ConfigHashCollision if
    the two warehouses hold different configs under one hash, CommitConflict if DST keeps removing
    the files SRC removed faster than sync can, and the storage errors of either side.
    """
    workers = arguments.integer("workers", workers, minimum=1)
    batch_files = arguments.integer("batch_files", batch_files, minimum=1)
    batch_bytes = arguments.integer("batch_bytes", batch_bytes, minimum=1)
    started = time.perf_counter()
    committed: list[Batch] = []
    commits: list[int] = []
    reused = configs = 0
    last: _Replan | None = None
    for attempt in range(REPLANS):
        try:
            snap, batches = plan_all(src, dst, batch_files, batch_bytes)
        except SyncDiverged as exc:
            done = (
                f"This sync committed versions {commits[0]}..{commits[-1]} before {dst.url} changed, nothing since"
                if commits
                else "Nothing was committed"
            )
            raise SyncDiverged(f"{exc} {done}.") from None
        result = _tally(SyncResult(src.url, dst.url, snap.version, dst.version, dry_run=dry_run), committed + batches)
        if dry_run:
            result.configs = _copy_configs(src, dst, dry_run=True)
            result.seconds = time.perf_counter() - started
            return result
        if not attempt:
            dst.engine.require_writable()
            configs = _copy_configs(src, dst, dry_run=False)
        tables = sorted({f.table for b in batches for f in b.add})
        present: dict[str, tuple[int, Any]] = {}
        with dst.store.errors():
            for t in tables:  # data files a killed run already copied (one listing per table)
                present.update(dst.store.list_file_info(t))
        for b in batches:  # (DST's own old copy may be the damaged one doctor removed)
            for p in b.again:
                present.pop(p, None)
        writer = writer_info(f"sync-{os.getpid()}-{time.time_ns():x}")
        copier = _Copier(src, dst, workers, result.files, result.bytes, progress)
        try:
            for b in batches:
                reused += copier.copy(b.add, present)
                for stale in range(STALE_ATTEMPTS):
                    try:
                        commit = _commit_batch(src, dst, b, writer, copier.staged, snap.files)
                        break
                    except StaleDataFile:  # copied too long ago (a stalled process, a slow batch): again
                        if stale == STALE_ATTEMPTS - 1:
                            raise
                        copier.copy(b.add, {})
                committed.append(b)
                if commit is not None:
                    commits.append(commit.version)
        except _Replan as exc:
            last = exc
            continue
        except FileNotFoundError:
            last = _left_src(src, batches)  # raises if no planned file left SRC's snapshot
            continue
        finally:
            copier.close()
        result.commits, result.reused, result.configs = commits, reused, configs
        result.dst_version = dst.version
        result.seconds = time.perf_counter() - started
        return result
    raise CommitConflict(
        f"{dst.url}: files this sync from {src.url} was copying or removing kept leaving the snapshots "
        f"(compactions, vacuums or expires meanwhile; last: {last}); run the sync again"
    )


def _batch_keys(dst: Engine, b: Batch, src_files: Container[str]) -> tuple[list[tuple[Any, pa.Table]], set]:
    """Execution ids are keys: (partition, execution_id and write_id) of the live adds the batch's
    executions files hold (DST's copies, read once copied), and the adds not to replace (the batch's
    own, and those already replaced by `superseded` rows, the batch's or DST's: a file copied again
    may hold an add SRC replaced long ago); none when every executions file of DST is SRC's (then
    SRC's own `superseded` rows, which syncs carry, say it all)."""
    from warehouse.engine.keys import SUPERSEDED, _may_hold

    execs = [f for f in b.add if f.table == "executions"]
    adding = {f.path for f in b.add}
    if not execs or all(f.path in src_files or f.path in adding for f in dst.snapshot.table_files("executions")):
        return [], set()

    def pairs(f: DataFile) -> list[tuple[str, int | None]]:
        t = dst.engine.keys.keys(dst.store, f)
        return list(zip(t.column("execution_id").to_pylist(), t.column("write_id").to_pylist()))

    with dst.store.errors():
        found = [(f, pairs(f)) for f in execs]
        ids = sorted({e for _, ps in found for e, _ in ps})
        hidden: set[tuple[str, int | None]] = set()
        for f in [*(a for a in b.add if a.table == SUPERSEDED), *dst.snapshot.table_files(SUPERSEDED)]:
            if _may_hold(f, ids):
                hidden.update(pairs(f))
    out, ours = [], set()
    for f, ps in found:
        ours.update(ps)
        live = pa.array([p not in hidden for p in ps], pa.bool_())
        out.append((f.partition, dst.engine.keys.keys(dst.store, f).filter(live)))  # (a replaced add replaces nothing)
    return out, hidden | ours


def _commit_batch(
    src: Engine, dst: Engine, b: Batch, writer: dict, staged: dict[str, Staged], src_files: Container[str] = frozenset()
) -> Commit | None:
    """Commit one batch in DST, with its ledger rows and, if DST holds other adds of its execution
    ids (its own, an import's), the `superseded` rows that replace those; drops what DST gained
    meanwhile (a concurrent sync) and retries when other commits land first. None if nothing was
    left to commit. Raises _Replan if a file to remove left DST's snapshot meanwhile (DST rewrote
    it: plan again)."""
    from warehouse.engine.datafiles import write_data_file
    from warehouse.engine.keyed import commit as keyed_commit

    digest = hashlib.sha256(
        "\n".join(
            [
                src.url,
                *sorted(f.path for f in b.add),
                *sorted(r.path for r in b.remove),
                *sorted(e[2] for e in b.record),
            ]
        ).encode()
    ).hexdigest()[:32]
    token = f"sync:{digest}"
    since = dst.version
    ledger: DataFile | None = None
    try:
        for _ in range(5):
            dst.refresh()
            have = dst.snapshot.files
            vanished = [r.path for r in b.remove if r.path not in have]
            if vanished:
                raise _Replan(f"{vanished[0]} left {dst.url}'s snapshot")
            add = [replace(f, staged=staged.get(f.path, (None, 0.0))) for f in b.add if f.path not in have]
            if not add and not b.remove and not b.record:
                return None
            if ledger is None:
                ledger = ledger_file(src, dst, b.add, b.remove, b.record)
            keyed, already = _batch_keys(dst, b, src_files)
            args: dict[str, Any] = dict(
                operation="sync",
                writer=writer,
                token=token,
                remove=b.remove,
                token_since=since,
                info={"source": src.url, "source_versions": [b.versions[0], b.versions[-1]]},
            )
            try:
                with dst.store.errors():
                    if keyed:
                        commit = keyed_commit(
                            dst,
                            keys=keyed,
                            already=already,
                            add=[*add, *([ledger] if ledger else [])],
                            write=lambda t, part, rows: write_data_file(dst, t, dict(part), rows),
                            **args,
                        )
                    else:
                        commit = dst.engine.commit(add=[*add, *([ledger] if ledger else [])], **args)
            except StaleDataFile:
                raise
            except CommitConflict:
                continue
            if ledger is not None and ledger.path in {f.path for f in commit.add}:
                ledger = None  # committed (else: a retry found the batch's commit already there)
            return commit
    finally:
        if ledger is not None:  # never committed: an orphan to delete now (vacuum would, later)
            try:
                dst.store.remove(ledger.path)
            except Exception:  # noqa: BLE001 - best effort
                pass
    raise CommitConflict(f"{dst.url}: the commit of a sync from {src.url} kept conflicting; run the sync again")
