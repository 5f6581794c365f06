"""Sync's planning: which SRC commits' files DST lacks, grouped in batches of whole SRC commits,
what DST already knows of the files it took in (its ledger, else its log), and the files both sides
rewrote (followed through both logs). Pure reads of both warehouses; nothing is written here.
See `warehouse.ops.sync` for the rules.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from warehouse.core.errors import SyncDiverged
from warehouse.manifest import Commit, DataFile, RemovedFile, Snapshot
from warehouse.ops.sync_ledger import (
    MIRRORED,
    TAKEN,
    Entry,
    is_ledger_file,
    ledger_rows,
    location,
)

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Largest batch (one DST commit): whole SRC commits are added until either limit is reached.
BATCH_FILES = 2000
BATCH_BYTES = 2 << 30
#: DST operations that rewrite data files: keeping every row (compact), or dropping some (delete:
#: an expire, a session's delete). A `repair` (doctor removing damaged files) is no decision of DST's.
LOSSLESS = frozenset({"compact"})
REWRITES = frozenset({"compact", "delete"})


def _walk(starts: Iterable[str], step: Callable[[str], list[str]], seen: set[str] | None = None) -> None:
    """Depth first from `starts` through a graph of data files, each path once (`seen` may be shared
    between walks): `step(q)` does what reaching `q` calls for and returns the paths it leads to."""
    seen = set() if seen is None else seen
    stack = list(starts)
    while stack:
        q = stack.pop()
        if q not in seen:
            seen.add(q)
            stack += step(q)


def _dir(path: str) -> str:
    """A data file's table and partition, as its directory (rewrites never leave a partition)."""
    return path.rsplit("/", 1)[0]


@dataclass
class Batch:
    versions: list[int] = field(default_factory=list)
    add: list[DataFile] = field(default_factory=list)
    remove: list[RemovedFile] = field(default_factory=list)
    record: list[Entry] = field(default_factory=list)  # ledger rows besides those of `add` and `remove`
    replaced: int = 0  # files of `remove` that are DST's own rewrites
    again: set[str] = field(default_factory=set)  # files of `add` DST had before: copied anew, never reused

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.add)

    def merge(self, other: Batch) -> None:
        adding, removing = {a.path for a in self.add}, {r.path for r in self.remove}
        self.add += [f for f in other.add if f.path not in adding]
        self.remove += [r for r in other.remove if r.path not in removing]
        self.record += other.record
        self.replaced += other.replaced
        self.again |= other.again


def plan(
    src_commits: list[Commit],
    src_files: set[str],
    dst_files: set[str],
    batch_files: int = BATCH_FILES,
    batch_bytes: int = BATCH_BYTES,
    *,
    taken: Iterable[str] = (),
    together: tuple[int, int] | None = None,
) -> list[Batch]:
    """Batches of whole SRC commits: the files each adds that are still active in SRC, absent from
    DST and not `taken` by DST before (it may have rewritten them since), and the DST files it
    removed; never a file of SRC's own sync ledger. The commits of versions `together` (first,
    last) go into one batch. A pure function of the two snapshots."""
    taken = taken if isinstance(taken, (set, frozenset, dict)) else set(taken)
    batches: list[Batch] = []
    current = Batch()
    for c in src_commits:
        add = [
            a
            for a in c.add
            if a.path in src_files and a.path not in dst_files and a.path not in taken and not is_ledger_file(a)
        ]
        remove = [r for r in c.remove if r.path in dst_files]
        if not add and not remove:
            continue
        current.versions.append(c.version)
        current.add += add
        current.remove += remove
        held = together is not None and together[0] <= c.version < together[1]
        if not held and (len(current.add) >= batch_files or current.bytes >= batch_bytes):
            batches.append(current)
            current = Batch()
    if current.versions:
        batches.append(current)
    return batches


def _place(batches: list[Batch], extra: Batch, versions: tuple[int, int] | None, src_version: int) -> None:
    """Put `extra` into the batch holding SRC versions `versions` (first, last), else the last one
    (or a batch of its own)."""
    if not extra.add and not extra.remove and not extra.record:
        return
    home = None
    if versions is not None:
        home = next((b for b in batches if any(versions[0] <= v <= versions[1] for v in b.versions)), None)
    if home is None:
        if not batches:
            batches.append(Batch(versions=[src_version]))
        home = batches[-1]
    home.merge(extra)


def _folded_commits(snap: Snapshot, src_commits: list[Commit]) -> list[Commit]:
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

    taken: dict[str, str | None] = field(default_factory=dict)
    mirrored: set[str] = field(default_factory=set)
    record: list[Entry] = field(default_factory=list)


def _known(
    src: Engine,
    dst: Engine,
    snap: Snapshot,
    dst_log: _DstLog,
    rows: list[tuple[str, str | None, str]],
    src_rows: list[tuple[str, str | None, str]],
) -> _Known:
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


def _from_log(src: Engine, dst: Engine, snap: Snapshot, dst_log: _DstLog, known: _Known) -> None:
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
        held = have.files.get(p)
        known.record.append((TAKEN, root, p, held.bytes if held else 0, held.rows if held else 0))
    known.record += [(MIRRORED, None, p, 0, 0) for p in sorted(known.mirrored)]


class _DstLog:
    """DST's commits still in its log, read once, on first use."""

    def __init__(self, dst: Engine) -> None:
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
            return self._commits[done[-1] + 1 :] if done else list(self._commits)
        versions = [v for v in self.dst.log.listing().retained if v <= self.dst.version]
        out: list[Commit] = []
        for end in range(len(versions), 0, -chunk):
            for c in reversed(self.dst.log.read_many(versions[max(0, end - chunk) : end])):
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


def _repaired(src: Engine, dst: Engine, snap: Snapshot, known: _Known, dst_log: _DstLog) -> list[DataFile]:
    """Files DST took in that its doctor removed since DST's last sync from SRC (a `repair` commit:
    damaged or missing, not DST's decision) and that SRC still has: they are copied again."""
    have = dst.snapshot.files
    candidates = {p for p in known.taken if p in snap.files and p not in have}
    if not candidates:
        return []
    lost = {r.path for c in dst_log.since_sync({location(src), src.url}) if c.operation == "repair" for r in c.remove}
    return [snap.files[p] for p in sorted(candidates & lost)]


def _removed_while_folded(
    src: Engine, dst: Engine, snap: Snapshot, src_commits: list[Commit], known: _Known
) -> list[RemovedFile]:
    """The DST files that SRC removed in commits it has folded since: files DST took in from SRC
    (its ledger says so, or its log did: see `_from_log`) that SRC's snapshot no longer has. The
    commits SRC still has say for themselves which files they removed. (A file a `sync` commit
    added is not necessarily SRC's: its ledger rows and `superseded` rows are DST's own.)"""
    removed_later = {r.path for c in src_commits for r in c.remove}
    roots = {location(src), src.url}
    have = dst.snapshot
    return [
        RemovedFile(have.files[p].table, p)
        for p in sorted(have.files)
        if p not in snap.files and p not in removed_later and known.taken.get(p, "") in roots
    ]


# -- files both sides rewrote ----------------------------------------------------------------------
def _resolve(
    src: Engine,
    dst: Engine,
    snap: Snapshot,
    commits: list[Commit],
    src_commits: list[Commit],
    known: _Known,
    dst_log: _DstLog,
) -> tuple[Batch, tuple[int, int] | None]:
    """The files SRC removed that DST had taken in and already rewrote or deleted itself (not by a
    sync): what replaces DST's files holding their rows by SRC's, exactly, and the SRC versions
    whose commits must land with it in one DST commit. Raises SyncDiverged when that cannot be
    done exactly (see the module docstring)."""
    extra = Batch()
    have = dst.snapshot.files
    removed_at = {r.path: c for c in src_commits for r in c.remove}
    src_roots, dst_roots = {location(src), src.url}, {location(dst), dst.url}

    def mirrored_by_src(p: str) -> bool:  # SRC's removal of `p` mirrored DST's own (synced both ways)
        c = removed_at.get(p)
        return c is not None and c.operation == "sync" and c.info.get("source") in dst_roots

    gone = sorted(
        p
        for p, root in known.taken.items()
        if p not in have
        and p not in snap.files
        and p not in known.mirrored
        and not mirrored_by_src(p)
        and (p in removed_at or root in src_roots or root == location(dst))
    )
    if not gone:
        return extra, None
    to_copy = {
        a.path: c.version
        for c in commits
        for a in c.add
        if a.path in snap.files and a.path not in have and a.path not in known.taken and not is_ledger_file(a)
    }
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
            f"{dst.url}."
        )

    for d, paths in sorted(groups.items()):
        gone_here = set(paths)
        holders: set[str] = set()
        lossy: list[Commit] = []  # the first DST rewrite on the way that dropped rows

        def through(k: Commit, side: Iterable[DataFile | RemovedFile]) -> list[str]:
            """Go through DST's rewrite `k`, to its files of `side` in this partition."""
            if k.operation not in LOSSLESS and not lossy:
                lossy.append(k)
            return [f.path for f in side if _dir(f.path) == d]

        # Forward through DST's own rewrites: the files of DST's snapshot that hold their rows now.
        def forward(p: str, q: str) -> list[str]:
            if q in have:
                holders.add(q)
                return []
            if q != p and q in known.mirrored:
                return []
            k = dst_log.removed_by.get(q)
            if k is None:
                raise diverged(
                    p,
                    f"{dst.url}'s log no longer says which of its files hold the rows of {q} "
                    "(vacuum folded the commit that removed it)",
                )
            if k.operation in ("sync", "repair"):  # (doctor removed a damaged copy: SRC's rows come back)
                return []
            return through(k, k.add)

        seen: set[str] = set()
        for p in paths:
            _walk([p], functools.partial(forward, p), seen)
        # A holder SRC has too is SRC's own replacement of them (two warehouses synced both ways: SRC
        # took DST's rewrite). Back from each other one: it must hold rows of those files only, or of
        # files SRC still has (copied again with SRC's rewrite, if DST's rewrites dropped no row).
        holders -= set(snap.files)
        recopy: set[str] = set()

        def back(h: str, q: str) -> list[str]:
            if q in gone_here:
                return []
            if q != h and q in snap.files and q in known.taken:
                recopy.add(q)
                return []
            k = dst_log.added_by.get(q)
            if k is None or k.operation not in REWRITES:
                why = (
                    "which it wrote itself"
                    if k is not None and k.operation != "sync"
                    else "which no sync can tell apart"
                    if k is None
                    else f"which {src.url} did not remove"
                )
                raise diverged(paths[0], f"{dst.url}'s {h} holds those rows together with rows of {q}, {why}")
            return through(k, k.remove)

        for h in sorted(holders):
            _walk([h], functools.partial(back, h))
        # Forward through SRC's commits: the files of SRC's snapshot that replace them.
        replacements: set[str] = set()
        unknown = False

        def forward_in_src(q: str) -> list[str]:
            nonlocal unknown
            c = removed_at.get(q)
            if c is None:
                unknown = True
                return []
            touching.append(c.version)
            out = []
            for a in c.add:
                if _dir(a.path) != d:
                    continue
                if a.path in to_copy:
                    replacements.add(a.path)
                    touching.append(to_copy[a.path])
                elif a.path not in snap.files:
                    out.append(a.path)
            return out

        _walk(paths, forward_in_src)
        if unknown:  # removed in a folded commit: any file of that partition may descend from them
            for p, v in to_copy.items():
                if _dir(p) == d:
                    replacements.add(p)
                    touching.append(v)
        if lossy and (replacements or recopy):
            shown = sorted(replacements or recopy)[0]
            raise diverged(
                paths[0],
                f"copying {src.url}'s {shown} would bring back rows that {dst.url} deleted "
                f"(version {lossy[0].version}, {lossy[0].operation})",
            )
        extra.remove += [RemovedFile(have[h].table, h) for h in sorted(holders)]
        extra.replaced += len(holders)
        extra.add += [snap.files[p] for p in sorted(recopy)]
        extra.again |= recopy
        extra.record += [(MIRRORED, location(src), p, 0, 0) for p in sorted(gone_here)]
    return extra, (min(touching), max(touching)) if touching else None


def plan_all(src: Engine, dst: Engine, batch_files: int, batch_bytes: int) -> tuple[Snapshot, list[Batch]]:
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
    batches = plan(
        commits,
        set(snap.files),
        set(dst.snapshot.files),
        batch_files,
        batch_bytes,
        taken=known.taken,
        together=together,
    )
    _place(batches, extra, together, snap.version)
    if restore:  # with the first commit too: the next sync looks for repairs after it only
        if not batches:
            batches.append(Batch(versions=[snap.version]))
        batches[0].merge(Batch(add=restore, again={f.path for f in restore}))
    if known.record:  # with the first commit: once the ledger has rows, DST's log is not read again
        if not batches:
            batches.append(Batch(versions=[snap.version]))
        batches[0].record = known.record + batches[0].record
    return snap, batches
