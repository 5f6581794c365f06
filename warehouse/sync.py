"""`warehouse sync SRC DST`: make DST answer every query like SRC, copying only what DST lacks.

The plan compares snapshots, not directories: every data file active in SRC's snapshot that DST's
snapshot lacks is copied (in parallel) and then committed in DST with operation `sync`; files that
SRC has since removed (a compaction or vacuum there) are removed in the same commit that adds their
replacement. Files are grouped by the SRC commit that added them and a batch always holds whole SRC
commits, so what one flush wrote atomically (results, messages, attacks) appears in DST atomically
too. Each batch is one DST commit, with an idempotency token.

Nothing is visible in DST before its commit, so a sync killed at any point leaves no partial state
behind: the next run finds the committed batches in DST's snapshot and skips them, reuses data files
it had already copied (same path and size; data files are immutable), and copies the rest. A second
run over an unchanged SRC copies nothing and commits nothing. Both sides may be written to while a
sync runs: SRC is read at one snapshot, and DST commits are ordinary appends.

When vacuum has folded SRC's older commits into a checkpoint, their files come from SRC's snapshot
instead, one stand-in commit per version that added them (a flush still lands whole), and the DST
files that SRC removed in those commits (files a `sync` from SRC's URL added to DST, as DST's log
says, and that SRC's snapshot no longer has) are removed with the last of them.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import arguments
from .config import RunConfig
from . import manifest as manifest_module
from .errors import CommitConflict, ConfigHashCollision, StaleDataFile
from .manifest import Commit, DataFile, RemovedFile, Snapshot, Staged, staged_age, staging_clock, writer_info

if TYPE_CHECKING:
    from .warehouse import Warehouse

#: Largest batch (one DST commit): whole SRC commits are added until either limit is reached.
BATCH_FILES = 2000
BATCH_BYTES = 2 << 30
#: Times a batch is copied again after DST's commit refused its files as too old (StaleDataFile).
STALE_ATTEMPTS = 3
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
    dst_version: int                      # DST's version after the sync (before it, for a dry run)
    files: int = 0                        # data files DST lacked (copied, or reused from a killed run)
    bytes: int = 0
    reused: int = 0                       # of those, found already copied by an interrupted run
    removed: int = 0                      # files removed in DST because SRC removed them
    configs: int = 0                      # config snapshots (configs/<hash>.yaml) copied
    commits: list[int] = field(default_factory=list)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> {"files", "bytes", "rows"}
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return not self.files and not self.removed


@dataclass
class _Batch:
    versions: list[int] = field(default_factory=list)
    add: list[DataFile] = field(default_factory=list)
    remove: list[RemovedFile] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.add)


def plan(src_commits: list[Commit], src_files: set[str], dst_files: set[str],
         batch_files: int = BATCH_FILES, batch_bytes: int = BATCH_BYTES) -> list[_Batch]:
    """Batches of whole SRC commits: the files each adds that are still active in SRC and absent
    from DST, and the DST files it removed. A pure function of the two snapshots."""
    batches: list[_Batch] = []
    current = _Batch()
    for c in src_commits:
        add = [a for a in c.add if a.path in src_files and a.path not in dst_files]
        remove = [r for r in c.remove if r.path in dst_files]
        if not add and not remove:
            continue
        current.versions.append(c.version)
        current.add += add
        current.remove += remove
        if len(current.add) >= batch_files or current.bytes >= batch_bytes:
            batches.append(current)
            current = _Batch()
    if current.versions:
        batches.append(current)
    return batches


def _folded_commits(snap: "Snapshot", src_commits: list[Commit]) -> list[Commit]:
    """Stand-ins for the SRC commits vacuum folded into a checkpoint: one per version, holding the
    files still active that it added (from the snapshot, which knows which version added each)."""
    first = src_commits[0].version if src_commits else snap.version + 1
    if first <= 0:
        return []
    by_version: dict[int, list[DataFile]] = {}
    for f in snap.files.values():
        v = snap.added_in(f.path)
        if v is None or v < first:
            by_version.setdefault(-1 if v is None else v, []).append(f)
    return [Commit(v, snap.committed_at, "append", {}, None, tuple(files)) for v, files in sorted(by_version.items())]


def _removed_while_folded(src: "Warehouse", dst: "Warehouse", snap: "Snapshot", src_commits: list[Commit]) -> list[RemovedFile]:
    """The DST files that SRC removed in commits it has folded since: files DST got from SRC (a
    `sync` commit from SRC's URL added them) that SRC's snapshot no longer has. The commits SRC
    still has say for themselves which files they removed."""
    removed_later = {r.path for c in src_commits for r in c.remove}
    have = dst.snapshot
    by_version: dict[int, list[str]] = {}
    for p in have.files:
        if p not in snap.files and p not in removed_later:
            v = have.added_in(p)
            if v is not None and v >= 0:
                by_version.setdefault(v, []).append(p)
    if not by_version:
        return []
    ops = dst.log.operations(by_version)
    out = []
    for v, paths in sorted(by_version.items()):
        op, info = ops.get(v, ("", {}))
        if op == "sync" and info.get("source") == src.url:
            out += [RemovedFile(have.files[p].table, p) for p in sorted(paths)]
    return out


class _Copier:
    """Copies data files from SRC to DST on a thread pool, counting files and bytes for progress."""

    def __init__(self, src: "Warehouse", dst: "Warehouse", workers: int, total_files: int, total_bytes: int,
                 progress: Callable[[Progress], None] | None) -> None:
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
        fresh = manifest_module.COMMIT_DEADLINE.total_seconds() / 2
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


def _copy_configs(src: "Warehouse", dst: "Warehouse", dry_run: bool) -> int:
    """Copy the config snapshots DST lacks; ConfigHashCollision if DST has another config under a hash."""
    with src.store.errors():
        ours = {n: src.store.read_bytes(f"{CONFIGS_DIR}/{n}")
                for n in sorted(src.store.list_names(CONFIGS_DIR)) if n.endswith(".yaml")}
    copied = 0
    with dst.store.errors():
        theirs = {n for n in dst.store.list_names(CONFIGS_DIR) if n.endswith(".yaml")}
        for name, data in ours.items():
            rel = f"{CONFIGS_DIR}/{name}"
            if name not in theirs and (dry_run or dst.store.put_if_absent(rel, data)):
                copied += 1
                continue
            other = dst.store.read_bytes(rel) if not dry_run or name in theirs else data
            if other != data and RunConfig.from_yaml(other.decode()).canonical() != \
                    RunConfig.from_yaml(data.decode()).canonical():
                raise ConfigHashCollision(
                    f"config hash {name[:-5]} names different configs in {src.url} and {dst.url} "
                    f"(see {rel} in each); sync cannot merge them: rename one configuration"
                )
    return copied


def sync(src: "Warehouse", dst: "Warehouse", *, dry_run: bool = False, workers: int = 16,
         progress: Callable[[Progress], None] | None = None, batch_files: int = BATCH_FILES,
         batch_bytes: int = BATCH_BYTES) -> SyncResult:
    """Copy to `dst` the data files its snapshot lacks from `src`'s current snapshot and commit them
    there (one `sync` commit per batch of whole SRC commits). See the module docstring.

    Raises ConfigHashCollision if the two warehouses hold different configs under one hash,
    CommitConflict if DST keeps removing the files SRC removed faster than sync can, and the
    storage errors of either side.
    """
    workers = arguments.integer("workers", workers, minimum=1)
    batch_files = arguments.integer("batch_files", batch_files, minimum=1)
    batch_bytes = arguments.integer("batch_bytes", batch_bytes, minimum=1)
    started = time.perf_counter()
    with src.store.errors():
        src.refresh()
        snap = src.snapshot
        src_commits = src.log.commits(snap.version)
        folded = _folded_commits(snap, src_commits)
    with dst.store.errors():
        dst.refresh()
        if folded:
            gone = _removed_while_folded(src, dst, snap, src_commits)
            folded[-1] = replace(folded[-1], remove=tuple(gone))
    batches = plan(folded + src_commits, set(snap.files), set(dst.snapshot.files), batch_files, batch_bytes)
    result = SyncResult(src.url, dst.url, snap.version, dst.version, dry_run=dry_run)
    for b in batches:
        result.files += len(b.add)
        result.bytes += b.bytes
        result.removed += len(b.remove)
        for f in b.add:
            t = result.tables.setdefault(f.table, {"files": 0, "bytes": 0, "rows": 0})
            t["files"] += 1
            t["bytes"] += f.bytes
            t["rows"] += f.rows
    if dry_run:
        result.configs = _copy_configs(src, dst, dry_run=True)
        result.seconds = time.perf_counter() - started
        return result

    dst._require_writable()
    result.configs = _copy_configs(src, dst, dry_run=False)
    tables = sorted({f.table for b in batches for f in b.add})
    present: dict[str, tuple[int, Any]] = {}
    with dst.store.errors():
        for t in tables:  # data files a killed run already copied (one listing per table)
            present.update(dst.store.list_file_info(t))
    writer = writer_info(f"sync-{os.getpid()}-{time.time_ns():x}")
    copier = _Copier(src, dst, workers, result.files, result.bytes, progress)
    try:
        for b in batches:
            result.reused += copier.copy(b.add, present)
            for attempt in range(STALE_ATTEMPTS):
                try:
                    commit = _commit_batch(src, dst, b, writer, copier.staged)
                    break
                except StaleDataFile:  # copied too long ago (a stalled process, a slow batch): again
                    if attempt == STALE_ATTEMPTS - 1:
                        raise
                    copier.copy(b.add, {})
            if commit is not None:
                result.commits.append(commit.version)
    finally:
        copier.close()
    result.dst_version = dst.version
    result.seconds = time.perf_counter() - started
    return result


def _commit_batch(src: "Warehouse", dst: "Warehouse", b: _Batch, writer: dict,
                  staged: dict[str, Staged]) -> Commit | None:
    """Commit one batch in DST; drops what DST gained meanwhile (a concurrent sync) and retries if a
    file to remove vanished (a concurrent compaction in DST). None if nothing was left to commit."""
    digest = hashlib.sha256("\n".join([src.url, *sorted(f.path for f in b.add),
                                       *sorted(r.path for r in b.remove)]).encode()).hexdigest()[:32]
    token = f"sync:{digest}"
    since = dst.version
    for _ in range(5):
        dst.refresh()
        have = dst.snapshot.files
        add = [replace(f, staged=staged.get(f.path, (None, 0.0))) for f in b.add if f.path not in have]
        remove = [r for r in b.remove if r.path in have]
        if not add and not remove:
            return None
        try:
            with dst.store.errors():
                return dst._commit(operation="sync", writer=writer, token=token, add=add, remove=remove,
                                   token_since=since, info={"source": src.url, "source_versions":
                                                            [b.versions[0], b.versions[-1]]})
        except StaleDataFile:
            raise
        except CommitConflict:
            continue
    raise CommitConflict(f"{dst.url}: the files to remove kept vanishing while syncing from {src.url}; "
                         "run the sync again")
