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
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Container, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.core import arguments
from warehouse.core.config import RunConfig
from warehouse.manifest import model as manifest_model
from warehouse.core.buffer import rows_to_batch
from warehouse.core.errors import CommitConflict, ConfigHashCollision, StaleDataFile, SyncDiverged
from warehouse.manifest import Commit, DataFile, RemovedFile, Snapshot, Staged, staged_age, staging_clock, writer_info
from warehouse.core.schemas import catalog
from warehouse.core.storage import arrow_reader

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Largest batch (one DST commit): whole SRC commits are added until either limit is reached.
BATCH_FILES = 2000
BATCH_BYTES = 2 << 30
#: Times a batch is copied again after DST's commit refused its files as too old (StaleDataFile).
STALE_ATTEMPTS = 3
#: Times a sync plans again after DST removed, meanwhile, a file it was about to remove.
REPLANS = 3
CONFIGS_DIR = "configs"
#: Kinds of the ledger's rows in `imports`: a data file DST took in, one it removed because SRC had.
TAKEN = "sync"
MIRRORED = "sync-removed"
#: DST operations that rewrite data files: keeping every row (compact), or dropping some (delete:
#: an expire, a session's delete). A `repair` (doctor removing damaged files) is no decision of DST's.
LOSSLESS = frozenset({"compact"})
REWRITES = frozenset({"compact", "delete"})


@functools.cache
def _ledger_partition() -> tuple[tuple[str, str], ...]:
    return tuple(RunConfig.of({"type": "imports"}, {"type": TAKEN}).partition.items())


def ledger_partition() -> dict[str, str]:
    """The partition of the `imports` table that holds a warehouse's sync ledger (as importers
    keep theirs: dataset `imports`, agent the kind)."""
    return dict(_ledger_partition())


def is_ledger_file(f: DataFile) -> bool:
    """Whether `f` is a file of a warehouse's own sync ledger (never copied by a sync)."""
    return f.table == "imports" and dict(f.partition) == ledger_partition()


def location(wh: "Engine") -> str:
    """Where `wh` is, normalised (an absolute path on local disk), as its ledger rows name SRC."""
    store = wh.store
    return store.root if store.is_local else f"{store.protocol}://{store.root.lstrip('/')}"


def _dir(path: str) -> str:
    """A data file's table and partition, as its directory (rewrites never leave a partition)."""
    return path.rsplit("/", 1)[0]


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
    replaced: int = 0                     # of those, DST's own rewrites of SRC's files (see the module doc)
    configs: int = 0                      # config snapshots (configs/<hash>.yaml) copied
    commits: list[int] = field(default_factory=list)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> {"files", "bytes", "rows"}
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def up_to_date(self) -> bool:
        return not self.files and not self.removed


#: A ledger row to write: (kind, root, path, bytes, rows).
Entry = tuple[str, "str | None", str, int, int]


@dataclass
class _Batch:
    versions: list[int] = field(default_factory=list)
    add: list[DataFile] = field(default_factory=list)
    remove: list[RemovedFile] = field(default_factory=list)
    record: list[Entry] = field(default_factory=list)  # ledger rows besides those of `add` and `remove`
    replaced: int = 0  # files of `remove` that are DST's own rewrites
    again: set[str] = field(default_factory=set)  # files of `add` DST had before: copied anew, never reused

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.add)

    def merge(self, other: "_Batch") -> None:
        adding, removing = {a.path for a in self.add}, {r.path for r in self.remove}
        self.add += [f for f in other.add if f.path not in adding]
        self.remove += [r for r in other.remove if r.path not in removing]
        self.record += other.record
        self.replaced += other.replaced
        self.again |= other.again


def plan(src_commits: list[Commit], src_files: set[str], dst_files: set[str],
         batch_files: int = BATCH_FILES, batch_bytes: int = BATCH_BYTES, *, taken: Iterable[str] = (),
         together: tuple[int, int] | None = None) -> list[_Batch]:
    """Batches of whole SRC commits: the files each adds that are still active in SRC, absent from
    DST and not `taken` by DST before (it may have rewritten them since), and the DST files it
    removed; never a file of SRC's own sync ledger. The commits of versions `together` (first,
    last) go into one batch. A pure function of the two snapshots."""
    taken = taken if isinstance(taken, (set, frozenset, dict)) else set(taken)
    batches: list[_Batch] = []
    current = _Batch()
    for c in src_commits:
        add = [a for a in c.add if a.path in src_files and a.path not in dst_files and a.path not in taken
               and not is_ledger_file(a)]
        remove = [r for r in c.remove if r.path in dst_files]
        if not add and not remove:
            continue
        current.versions.append(c.version)
        current.add += add
        current.remove += remove
        held = together is not None and together[0] <= c.version < together[1]
        if not held and (len(current.add) >= batch_files or current.bytes >= batch_bytes):
            batches.append(current)
            current = _Batch()
    if current.versions:
        batches.append(current)
    return batches


def _place(batches: list[_Batch], extra: _Batch, versions: tuple[int, int] | None, src_version: int) -> None:
    """Put `extra` into the batch holding SRC versions `versions` (first, last), else the last one
    (or a batch of its own)."""
    if not extra.add and not extra.remove and not extra.record:
        return
    home = None
    if versions is not None:
        home = next((b for b in batches if any(versions[0] <= v <= versions[1] for v in b.versions)), None)
    if home is None:
        if not batches:
            batches.append(_Batch(versions=[src_version]))
        home = batches[-1]
    home.merge(extra)


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


# -- what DST knows of the files it took in ------------------------------------------------------
@dataclass
class _Known:
    """The data files DST took in by sync (path -> the location they came from, None if unknown)
    and those whose removal by their source it mirrored; `record`: what only DST's log said (a DST
    synced before the ledger existed), to be written into the ledger by the next commit."""

    taken: dict[str, "str | None"] = field(default_factory=dict)
    mirrored: set[str] = field(default_factory=set)
    record: list[Entry] = field(default_factory=list)


def ledger_rows(wh: "Engine", kinds: Iterable[str] = (TAKEN, MIRRORED),
                roots: Iterable[str] | None = None) -> list[tuple[str, "str | None", str]]:
    """(kind, root, path) of the rows of `wh`'s sync ledger of `kinds` (and of `roots`, if given).
    Reads the ledger's files only (at once on a remote store), not a view over every file: DuckDB's
    views over 3,000 files cost a repeated sync 0.3 s to define."""
    files = wh.snapshot.table_files("imports", ledger_partition())
    if not files:
        return []
    cols = ["kind", "root", "source"]
    if wh.store.is_local:
        tables = [pq.read_table(wh.store.full(f.path), columns=cols) for f in files]
    else:
        blobs = wh.store.read_many([f.path for f in files])
        missing = [p for p, data in blobs.items() if data is None]
        if missing:
            raise FileNotFoundError(f"{wh.url}: {missing[0]} of its sync ledger is missing; run `warehouse doctor`")
        tables = [pq.read_table(arrow_reader(blobs[f.path]), columns=cols) for f in files]  # type: ignore[arg-type]
    t = pa.concat_tables(tables)
    keep = pc.is_in(t.column("kind"), value_set=pa.array(list(kinds), pa.string()))
    if roots is not None:
        keep = pc.and_(keep, pc.is_in(t.column("root"), value_set=pa.array(list(roots), pa.string())))
    t = t.filter(pc.fill_null(keep, False))
    return list(zip(*(t.column(c).to_pylist() for c in cols)))


def _known(src: "Engine", dst: "Engine", snap: Snapshot, dst_log: "_DstLog",
           rows: list[tuple[str, "str | None", str]], src_rows: list[tuple[str, "str | None", str]]) -> _Known:
    """DST's ledger (`rows`); for a DST without one (synced before it existed, or never), what its
    log says; and the files SRC's ledger (`src_rows`) says it took in from DST."""
    known = _Known()
    for kind, root, path in rows:
        if kind == TAKEN:
            known.taken.setdefault(path, root)
        else:
            known.mirrored.add(path)
    if not rows and dst.version > 0:
        _from_log(src, dst, snap, dst_log, known)
    # Files SRC took in from DST (`src_rows`: two warehouses synced both ways): DST had them, and may
    # have rewritten them since.
    for _, _, path in src_rows:
        known.taken.setdefault(path, location(dst))
    return known


def _from_log(src: "Engine", dst: "Engine", snap: Snapshot, dst_log: "_DstLog", known: _Known) -> None:
    """What DST's log still says of the files its `sync` commits added and removed (any source), and
    the files of its snapshot that a folded `sync` commit added or that SRC also has; each becomes a
    ledger row of the next commit."""
    before = len(known.taken), len(known.mirrored)
    for c in dst_log.commits:
        if c.operation != "sync":
            continue
        root = c.info.get("source")
        for a in c.add:
            if not is_ledger_file(a):
                known.taken.setdefault(a.path, root if isinstance(root, str) else None)
        known.mirrored.update(r.path for r in c.remove)
    have = dst.snapshot
    first = dst_log.commits[0].version if dst_log.commits else have.version + 1
    folded: dict[int, list[str]] = defaultdict(list)
    for f in have.files.values():
        if f.path in known.taken or is_ledger_file(f):
            continue
        if f.path in snap.files:
            known.taken[f.path] = location(src)
            continue
        v = have.added_in(f.path)
        if v is not None and 0 <= v < first:
            folded[v].append(f.path)
    if folded:
        ops = dst.log.operations(folded)
        for v, paths in folded.items():
            op, info = ops.get(v, ("", {}))
            if op == "sync":
                for p in paths:
                    known.taken[p] = info.get("source") if isinstance(info.get("source"), str) else None
    if (len(known.taken), len(known.mirrored)) == before:
        return
    for p, root in sorted(known.taken.items()):
        f = have.files.get(p)
        known.record.append((TAKEN, root, p, f.bytes if f else 0, f.rows if f else 0))
    known.record += [(MIRRORED, None, p, 0, 0) for p in sorted(known.mirrored)]


class _DstLog:
    """DST's commits still in its log, read once, on first use."""

    def __init__(self, dst: "Engine") -> None:
        self.dst = dst
        self._commits: list[Commit] | None = None

    @property
    def commits(self) -> list[Commit]:
        if self._commits is None:
            self._commits = self.dst.log.commits(self.dst.version) if self.dst.version >= 0 else []
        return self._commits

    def since_sync(self, roots: Container[str], chunk: int = 64) -> list[Commit]:
        """DST's commits after its newest `sync` commit from SRC (`roots`), oldest first: read newest
        first, a chunk at a time (every commit the log still has, if there is none)."""
        if self._commits is not None:
            done = [i for i, c in enumerate(self._commits) if c.operation == "sync" and c.info.get("source") in roots]
            return self._commits[done[-1] + 1:] if done else list(self._commits)
        versions = [v for v in self.dst.log.listing().retained if v <= self.dst.version]
        out: list[Commit] = []
        for end in range(len(versions), 0, -chunk):
            for c in reversed(self.dst.log.read_many(versions[max(0, end - chunk):end])):
                if c.operation == "sync" and c.info.get("source") in roots:
                    return out[::-1]
                out.append(c)
        return out[::-1]

    @functools.cached_property
    def removed_by(self) -> dict[str, Commit]:
        return {r.path: c for c in self.commits for r in c.remove}

    @functools.cached_property
    def added_by(self) -> dict[str, Commit]:
        return {a.path: c for c in self.commits for a in c.add}


def _repaired(src: "Engine", dst: "Engine", snap: Snapshot, known: _Known, dst_log: _DstLog) -> list[DataFile]:
    """Files DST took in that its doctor removed since DST's last sync from SRC (a `repair` commit:
    damaged or missing, not DST's decision) and that SRC still has: they are copied again."""
    have = dst.snapshot.files
    candidates = {p for p in known.taken if p in snap.files and p not in have}
    if not candidates:
        return []
    lost = {r.path for c in dst_log.since_sync({location(src), src.url}) if c.operation == "repair" for r in c.remove}
    return [snap.files[p] for p in sorted(candidates & lost)]


def _removed_while_folded(src: "Engine", dst: "Engine", snap: "Snapshot", src_commits: list[Commit],
                          known: _Known) -> list[RemovedFile]:
    """The DST files that SRC removed in commits it has folded since: files DST took in from SRC
    (its ledger says so, or its log did: see `_from_log`) that SRC's snapshot no longer has. The
    commits SRC still has say for themselves which files they removed. (A file a `sync` commit
    added is not necessarily SRC's: its ledger rows and `superseded` rows are DST's own.)"""
    removed_later = {r.path for c in src_commits for r in c.remove}
    roots = {location(src), src.url}
    have = dst.snapshot
    return [RemovedFile(have.files[p].table, p) for p in sorted(have.files)
            if p not in snap.files and p not in removed_later and known.taken.get(p, "") in roots]


# -- files both sides rewrote ----------------------------------------------------------------------
def _resolve(src: "Engine", dst: "Engine", snap: Snapshot, commits: list[Commit], src_commits: list[Commit],
             known: _Known, dst_log: _DstLog) -> tuple[_Batch, tuple[int, int] | None]:
    """The files SRC removed that DST had taken in and already rewrote or deleted itself (not by a
    sync): what replaces DST's files holding their rows by SRC's, exactly, and the SRC versions
    whose commits must land with it in one DST commit. Raises SyncDiverged when that cannot be
    done exactly (see the module docstring)."""
    extra = _Batch()
    have = dst.snapshot.files
    removed_at = {r.path: c for c in src_commits for r in c.remove}
    src_roots, dst_roots = {location(src), src.url}, {location(dst), dst.url}

    def mirrored_by_src(p: str) -> bool:  # SRC's removal of `p` mirrored DST's own (synced both ways)
        c = removed_at.get(p)
        return c is not None and c.operation == "sync" and c.info.get("source") in dst_roots

    gone = sorted(p for p, root in known.taken.items()
                  if p not in have and p not in snap.files and p not in known.mirrored and not mirrored_by_src(p)
                  and (p in removed_at or root in src_roots or root == location(dst)))
    if not gone:
        return extra, None
    to_copy = {a.path: c.version for c in commits for a in c.add
               if a.path in snap.files and a.path not in have and a.path not in known.taken and not is_ledger_file(a)}
    groups: dict[str, list[str]] = defaultdict(list)
    for p in gone:
        groups[_dir(p)].append(p)
    touching: list[int] = []

    def diverged(p: str, detail: str) -> SyncDiverged:
        c = removed_at.get(p)
        at_src = f"version {c.version}, {c.operation}" if c else "in a commit its vacuum has folded"
        k = dst_log.removed_by.get(p)
        at_dst = f"version {k.version}, {k.operation}" if k else "in a commit its vacuum has folded"
        return SyncDiverged(
            f"cannot sync {src.url} into {dst.url}: {src.url} removed {p} ({at_src}), which {dst.url} had taken in "
            f"and already rewritten or deleted itself ({at_dst}), and {detail}. Compact, expire and delete in the "
            f"source only (sync carries that to its replicas), or sync into a new, empty warehouse instead of "
            f"{dst.url}.")

    for d, paths in sorted(groups.items()):
        gone_here = set(paths)
        holders: set[str] = set()
        lossy: Commit | None = None
        # Forward through DST's own rewrites: the files of DST's snapshot that hold their rows now.
        seen: set[str] = set()
        for p in paths:
            stack = [p]
            while stack:
                q = stack.pop()
                if q in seen:
                    continue
                seen.add(q)
                if q in have:
                    holders.add(q)
                    continue
                if q != p and q in known.mirrored:
                    continue
                k = dst_log.removed_by.get(q)
                if k is None:
                    raise diverged(p, f"{dst.url}'s log no longer says which of its files hold the rows of {q} "
                                      "(vacuum folded the commit that removed it)")
                if k.operation in ("sync", "repair"):  # (doctor removed a damaged copy: SRC's rows come back)
                    continue
                if k.operation not in LOSSLESS and lossy is None:
                    lossy = k
                stack += [a.path for a in k.add if _dir(a.path) == d]
        # A holder SRC has too is SRC's own replacement of them (two warehouses synced both ways: SRC
        # took DST's rewrite). Back from each other one: it must hold rows of those files only, or of
        # files SRC still has (copied again with SRC's rewrite, if DST's rewrites dropped no row).
        holders -= set(snap.files)
        recopy: set[str] = set()
        for h in sorted(holders):
            stack, back = [h], set()
            while stack:
                q = stack.pop()
                if q in back:
                    continue
                back.add(q)
                if q in gone_here:
                    continue
                if q != h and q in snap.files and q in known.taken:
                    recopy.add(q)
                    continue
                k = dst_log.added_by.get(q)
                if k is None or k.operation not in REWRITES:
                    why = ("which it wrote itself" if k is not None and k.operation != "sync" else
                           "which no sync can tell apart" if k is None else f"which {src.url} did not remove")
                    raise diverged(paths[0], f"{dst.url}'s {h} holds those rows together with rows of {q}, {why}")
                if k.operation not in LOSSLESS and lossy is None:
                    lossy = k
                stack += [r.path for r in k.remove if _dir(r.path) == d]
        # Forward through SRC's commits: the files of SRC's snapshot that replace them.
        replacements: set[str] = set()
        stack, seen_src, unknown = list(paths), set(), False
        while stack:
            q = stack.pop()
            if q in seen_src:
                continue
            seen_src.add(q)
            c = removed_at.get(q)
            if c is None:
                unknown = True
                continue
            touching.append(c.version)
            for a in c.add:
                if _dir(a.path) != d:
                    continue
                if a.path in to_copy:
                    replacements.add(a.path)
                    touching.append(to_copy[a.path])
                elif a.path not in snap.files:
                    stack.append(a.path)
        if unknown:  # removed in a folded commit: any file of that partition may descend from them
            for p, v in to_copy.items():
                if _dir(p) == d:
                    replacements.add(p)
                    touching.append(v)
        if lossy is not None and (replacements or recopy):
            shown = sorted(replacements or recopy)[0]
            raise diverged(paths[0], f"copying {src.url}'s {shown} would bring back rows that {dst.url} deleted "
                                     f"(version {lossy.version}, {lossy.operation})")
        extra.remove += [RemovedFile(have[h].table, h) for h in sorted(holders)]
        extra.replaced += len(holders)
        extra.add += [snap.files[p] for p in sorted(recopy)]
        extra.again |= recopy
        extra.record += [(MIRRORED, location(src), p, 0, 0) for p in sorted(gone_here)]
    return extra, (min(touching), max(touching)) if touching else None


class _Copier:
    """Copies data files from SRC to DST on a thread pool, counting files and bytes for progress."""

    def __init__(self, src: "Engine", dst: "Engine", workers: int, total_files: int, total_bytes: int,
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


def _copy_configs(src: "Engine", dst: "Engine", dry_run: bool) -> int:
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


class _Replan(Exception):
    """A file the batch removes left DST's snapshot meanwhile (DST rewrote it): plan again."""


def _plan_all(src: "Engine", dst: "Engine", batch_files: int, batch_bytes: int) -> tuple[Snapshot, list[_Batch]]:
    """SRC's snapshot and the batches that bring DST up to it (see the module docstring)."""
    with src.store.errors():
        src.refresh()
        snap = src.snapshot
        src_commits = src.log.commits(snap.version)
        folded = _folded_commits(snap, src_commits)
        src_rows = ledger_rows(src, (TAKEN,), roots=sorted({location(dst), dst.url}))
    dst_log = _DstLog(dst)
    with dst.store.errors():
        dst.refresh()
        known = _known(src, dst, snap, dst_log, ledger_rows(dst), src_rows)
        if folded:
            gone = _removed_while_folded(src, dst, snap, src_commits, known)
            folded[-1] = replace(folded[-1], remove=tuple(gone))
        commits = folded + src_commits
        extra, together = _resolve(src, dst, snap, commits, src_commits, known, dst_log)
        restore = _repaired(src, dst, snap, known, dst_log)
    batches = plan(commits, set(snap.files), set(dst.snapshot.files), batch_files, batch_bytes,
                   taken=known.taken, together=together)
    _place(batches, extra, together, snap.version)
    if restore:  # with the first commit too: the next sync looks for repairs after it only
        if not batches:
            batches.append(_Batch(versions=[snap.version]))
        batches[0].merge(_Batch(add=restore, again={f.path for f in restore}))
    if known.record:  # with the first commit: once the ledger has rows, DST's log is not read again
        if not batches:
            batches.append(_Batch(versions=[snap.version]))
        batches[0].record = known.record + batches[0].record
    return snap, batches


def _tally(result: SyncResult, batches: list[_Batch]) -> SyncResult:
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


def sync(src: "Engine", dst: "Engine", *, dry_run: bool = False, workers: int = 16,
         progress: Callable[[Progress], None] | None = None, batch_files: int = BATCH_FILES,
         batch_bytes: int = BATCH_BYTES) -> SyncResult:
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
    committed: list[_Batch] = []
    commits: list[int] = []
    reused = configs = 0
    last: _Replan | None = None
    for attempt in range(REPLANS):
        try:
            snap, batches = _plan_all(src, dst, batch_files, batch_bytes)
        except SyncDiverged as exc:
            done = (f"This sync committed versions {commits[0]}..{commits[-1]} before {dst.url} changed, nothing since"
                    if commits else "Nothing was committed")
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
        finally:
            copier.close()
        result.commits, result.reused, result.configs = commits, reused, configs
        result.dst_version = dst.version
        result.seconds = time.perf_counter() - started
        return result
    raise CommitConflict(f"{dst.url}: files this sync from {src.url} was removing kept leaving the snapshot "
                         f"(a compaction or an expire in {dst.url} meanwhile; last: {last}); run the sync again")


def _ledger_file(src: "Engine", dst: "Engine", b: _Batch) -> DataFile | None:
    """The ledger rows of a batch (its files taken in and removed, and `record`) as a data file of DST."""
    from warehouse.engine.datafiles import write_data_file

    root = location(src)
    entries = [*((TAKEN, root, f.path, f.bytes, f.rows) for f in b.add),
               *((MIRRORED, root, r.path, 0, 0) for r in b.remove), *b.record]
    if not entries:
        return None
    now = datetime.now(timezone.utc)
    schema = catalog().table("imports")
    rows = [(kind, r, path, path, size, n, now) for kind, r, path, size, n in entries]
    part = ledger_partition()
    table = pa.Table.from_batches([rows_to_batch(schema, part, rows)], schema=schema.arrow)
    with dst.store.errors():
        return write_data_file(dst, "imports", dict(part), table)


def _batch_keys(dst: "Engine", b: _Batch, src_files: Container[str]) -> tuple[list[tuple[Any, pa.Table]], set]:
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


def _commit_batch(src: "Engine", dst: "Engine", b: _Batch, writer: dict,
                  staged: dict[str, Staged], src_files: Container[str] = frozenset()) -> Commit | None:
    """Commit one batch in DST, with its ledger rows and, if DST holds other adds of its execution
    ids (its own, an import's), the `superseded` rows that replace those; drops what DST gained
    meanwhile (a concurrent sync) and retries when other commits land first. None if nothing was
    left to commit. Raises _Replan if a file to remove left DST's snapshot meanwhile (DST rewrote
    it: plan again)."""
    from warehouse.engine.datafiles import write_data_file
    from warehouse.engine.keyed import commit as keyed_commit

    digest = hashlib.sha256("\n".join([src.url, *sorted(f.path for f in b.add), *sorted(r.path for r in b.remove),
                                       *sorted(e[2] for e in b.record)]).encode()).hexdigest()[:32]
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
                ledger = _ledger_file(src, dst, b)
            keyed, already = _batch_keys(dst, b, src_files)
            args: dict[str, Any] = dict(operation="sync", writer=writer, token=token, remove=b.remove,
                                        token_since=since, info={"source": src.url, "source_versions":
                                                                 [b.versions[0], b.versions[-1]]})
            try:
                with dst.store.errors():
                    if keyed:
                        commit = keyed_commit(dst, keys=keyed, already=already, add=[*add, *([ledger] if ledger else [])],
                                             write=lambda t, part, rows: write_data_file(dst, t, dict(part), rows),
                                             **args)
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
