"""The manifest: an append-only log of JSON commits, and the snapshots replayed from it.

Commits are plain data (frozen dataclasses); `replay` is a pure function from commits to a
snapshot. `Log` is the only code that touches `_manifest/`: it lists, reads and creates commit
files, with create-if-absent so that exactly one writer wins each version, and the checkpoints
(`manifest_checkpoint`) that let a reader skip the commits before them.

A snapshot's files are a `FileMap`: a frozen base (a checkpoint's Arrow columns, or files folded
earlier) plus the changes of the commits replayed since, so that extending a snapshot by a commit
costs what the commit holds, and opening a warehouse of 100,000 files builds no object per file.
Vacuum may fold the commits older than the newest checkpoint away (`Log.fold_commits`); the log
then starts at that checkpoint, and older versions can no longer be opened.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import random
import socket
import time
import uuid
import warnings
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.manifest import checkpoint as mc
from warehouse.core.errors import CommitConflict, CorruptCommit, StaleDataFile, UnsupportedFormatVersion, VersionNotFound, WarehouseNotFound
from warehouse.core.storage import Store

#: The on-disk format this library writes and the newest it can read.
FORMAT_VERSION = 1
MANIFEST_DIR = "_manifest"
CHECKPOINT_SUFFIX = ".checkpoint.parquet"
#: Every this many versions a checkpoint is written (by the writer whose commit lands there).
CHECKPOINT_INTERVAL = 100
#: `Log.refresh` reads this many new commits one at a time before listing `_manifest/` for the rest.
PROBE_LIMIT = 8

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: The shortest orphan window `vacuum` accepts: a data file that no commit names is deleted only once
#: it is older than the window (its last-modified time, as the store reports it).
MIN_ORPHAN_WINDOW = timedelta(hours=1)
#: A commit refuses (StaleDataFile) to add a data file whose writing began longer ago than this, by
#: the committing process's clocks (the longer of its monotonic and wall-clock readings, so that
#: neither a clock step nor a suspended machine hides the time). A vacuum deletes an uncommitted file
#: only if it was older than MIN_ORPHAN_WINDOW when the vacuum began, and reads the log again after
#: that: so a commit that lands before the deadline is seen by the vacuum, or its files were younger
#: than the window. The difference (30 minutes) is the allowance for the commit request's own time
#: (retries included) and the skew between the vacuum's clock and the store's (S3 refuses requests
#: signed more than 15 minutes off).
COMMIT_DEADLINE = timedelta(minutes=30)

OPERATIONS = frozenset({"create", "append", "compact", "vacuum", "sync", "import", "delete", "repair"})


def commit_name(version: int) -> str:
    return f"{MANIFEST_DIR}/{version:020d}.json"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


Staged = tuple[float | None, float]


def staging_clock() -> Staged:
    """The time a data file starts being written, for `DataFile.staged`: (monotonic, wall clock)."""
    return time.monotonic(), time.time()


def staged_age(staged: Staged) -> float:
    """Seconds since `staged` (`staging_clock()`, or (None, a store's last-modified time as a POSIX
    timestamp) for a file found in storage): the longer of the monotonic and wall-clock readings."""
    mono, wall = staged
    age = time.time() - wall
    return age if mono is None else max(age, time.monotonic() - mono)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class DataFile:
    """One Parquet data file added by a commit."""

    table: str
    path: str  # relative to the warehouse root
    partition: Mapping[str, str]
    rows: int
    bytes: int
    stats: Mapping[str, Any] = field(default_factory=dict)  # column -> {min, max, nulls}
    #: When this process began writing the file (`staging_clock()`), for a file a commit is about to
    #: add; None for a file read from the log. Not stored: the commit's deadline check uses it.
    staged: Staged | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "path": self.path, "partition": dict(self.partition),
                "rows": self.rows, "bytes": self.bytes, "stats": dict(self.stats)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "DataFile":
        return cls(d["table"], d["path"], d.get("partition", {}), int(d["rows"]), int(d["bytes"]), d.get("stats", {}))


@dataclass(frozen=True)
class RemovedFile:
    table: str
    path: str

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "path": self.path}


@dataclass(frozen=True)
class Commit:
    """One version of the warehouse: what was added and removed, by whom, when."""

    version: int
    committed_at: datetime
    operation: str
    writer: Mapping[str, Any]
    token: str | None
    add: tuple[DataFile, ...] = ()
    remove: tuple[RemovedFile, ...] = ()
    format_version: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "version": self.version,
            "committed_at": _iso(self.committed_at),
            "operation": self.operation,
            "writer": dict(self.writer),
            "token": self.token,
            "add": [a.to_json() for a in self.add],
            "remove": [r.to_json() for r in self.remove],
        }
        if self.format_version is not None:
            doc["format_version"] = self.format_version
        if self.info:
            doc["info"] = dict(self.info)
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str) -> "Commit":
        """Parse a commit file; CorruptCommit naming the file if it is not a valid commit."""
        try:
            doc = json.loads(data)
            fmt = doc.get("format_version")
            if fmt is not None and int(fmt) > FORMAT_VERSION:
                raise UnsupportedFormatVersion(
                    f"{name} was written by format version {fmt}; this library reads up to "
                    f"{FORMAT_VERSION}: upgrade the warehouse package"
                )
            return cls(
                version=int(doc["version"]),
                committed_at=datetime.fromisoformat(doc["committed_at"].replace("Z", "+00:00")),
                operation=str(doc["operation"]),
                writer=doc.get("writer") or {},
                token=doc.get("token"),
                add=tuple(DataFile.from_json(a) for a in doc.get("add", ())),
                remove=tuple(RemovedFile(r["table"], r["path"]) for r in doc.get("remove", ())),
                format_version=fmt,
                info=doc.get("info") or {},
            )
        except UnsupportedFormatVersion:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptCommit(
                f"manifest file {name} is not a valid commit ({type(exc).__name__}: {exc}); "
                "run `warehouse doctor` or restore it from a backup"
            ) from None

    @property
    def rows_added(self) -> int:
        return sum(a.rows for a in self.add)


#: Changes on top of a snapshot's frozen base past which extending it first folds them into a new
#: base (they are copied each time a snapshot is extended): this many, or a quarter of the base.
OVERLAY_LIMIT = 4096


class FileMap(Mapping[str, DataFile]):
    """The active files of a snapshot, path -> DataFile: a frozen base (a checkpoint's rows, or
    files folded earlier; see `manifest_checkpoint.FrozenFiles`) plus what the commits replayed
    since changed (`added`, `removed`). Extending a snapshot copies only those changes, never the
    base; past OVERLAY_LIMIT they are folded into a new base. Immutable once built.
    """

    __slots__ = ("base", "added", "segments", "removed", "_overlay_files", "_len", "_tables", "_by_table")

    def __init__(self, base: Any = None, added: dict[str, DataFile] | None = None,
                 segments: tuple[tuple[int, tuple[DataFile, ...]], ...] = (), removed: frozenset[str] = frozenset()) -> None:
        self.base = base if base is not None else mc.FrozenFiles.empty()
        self.added = added or {}  # path -> file added (or replaced) since the base
        self.segments = segments  # (version, files it added) of each commit since the base, in order
        self.removed = removed  # paths removed since the base (some perhaps never in it)
        self._overlay_files: Any = None  # the overlay as a DictFiles, made on first use
        self._len: int | None = None
        self._tables: dict[str, list[DataFile]] = {}
        self._by_table: dict[str, list[DataFile]] | None = None

    @classmethod
    def of(cls, files: Mapping[str, DataFile]) -> "FileMap":
        """`files` as a FileMap (the version that added each file is unknown: -1)."""
        if isinstance(files, FileMap):
            return files
        return cls(mc.DictFiles(dict(files), {p: -1 for p in files}))

    def _hidden(self, path: str) -> bool:
        return path in self.removed or path in self.added

    def __getitem__(self, path: str) -> DataFile:
        f = self.added.get(path)
        if f is None:
            if path in self.removed or (f := self.base.get(path)) is None:
                raise KeyError(path)
        return f

    def __contains__(self, path: object) -> bool:
        if path in self.added:
            return True
        if path in self.removed or not self.base.n:
            return False
        return self.base.has(path)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        if self.removed or self.added:
            hidden = self._hidden
            yield from (p for p in self.base.paths() if not hidden(p))
        else:
            yield from self.base.paths()
        yield from self.added

    def __len__(self) -> int:
        n = self._len
        if n is None:
            gone = self.removed | self.added.keys()
            n = self._len = self.base.n - self.base.present(gone) + len(self.added)
        return n

    def values(self) -> "ValuesView[DataFile]":  # type: ignore[override]
        return _Values(self)

    def items(self) -> "ItemsView[str, DataFile]":  # type: ignore[override]
        return _Items(self)

    def _iter_files(self) -> Iterator[DataFile]:
        for table in dict.fromkeys([*self.base.tables(), *self._overlay_tables()]):
            yield from self.table_files(table)

    def _overlay_tables(self) -> dict[str, list[DataFile]]:
        bt = self._by_table
        if bt is None:
            bt = {}
            for f in self.added.values():
                bt.setdefault(f.table, []).append(f)
            self._by_table = bt
        return bt

    def table_files(self, table: str) -> list[DataFile]:
        """The files of `table` (a list shared by callers of this map: copy it before changing it)."""
        out = self._tables.get(table)
        if out is None:
            base = self.base.table_objs(table)
            if base and (self.removed or self.added):
                hidden = self._hidden
                base = [f for f in base if not hidden(f.path)]
            out = base + self._overlay_tables().get(table, [])
            self._tables[table] = out
        return out

    def _overlay(self) -> Any:
        """The changes since the base as a DictFiles (which works out each file's version lazily)."""
        o = self._overlay_files
        if o is None:
            o = self._overlay_files = mc.DictFiles(self.added, segments=self.segments)
        return o

    def added_in(self, path: str) -> int | None:
        """The version of the commit that added the active file `path` (-1 if unknown), or None."""
        if path in self.added:
            return self._overlay().version_of(path)
        if path in self.removed or not self.base.n:
            return None
        return self.base.version_of(path)

    def flattened(self) -> Any:
        """The files as one FrozenFiles (this map's base if nothing changed since)."""
        if not self.added and not self.removed:
            return self.base
        if not self.base.n:
            return self._overlay()
        return self.base.merged(self.added, self._overlay().versions, self.removed)

    def __repr__(self) -> str:
        return f"<FileMap {len(self)} files ({self.base.n} in the base, +{len(self.added)} -{len(self.removed)})>"


class _Values(ValuesView):
    def __iter__(self) -> Iterator[DataFile]:
        return self._mapping._iter_files()  # type: ignore[attr-defined]


class _Items(ItemsView):
    def __iter__(self) -> Iterator[tuple[str, DataFile]]:
        return ((f.path, f) for f in self._mapping._iter_files())  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Snapshot:
    """The set of active data files at one version."""

    version: int
    committed_at: datetime
    files: Mapping[str, DataFile]  # path -> file; read-only (a FileMap when built by this module)

    def table_files(self, table: str, where: Mapping[str, str] | None = None) -> list[DataFile]:
        """Active files of `table`, optionally only those whose partition matches `where`."""
        if isinstance(self.files, FileMap):
            out = list(self.files.table_files(table))
        else:
            out = [f for f in self.files.values() if f.table == table]
        if where:
            out = [f for f in out if all(f.partition.get(k) == v for k, v in where.items())]
        return out

    def added_in(self, path: str) -> int | None:
        """The version of the commit that added the active file `path` (-1 if unknown), or None if
        the file is not active."""
        if isinstance(self.files, FileMap):
            return self.files.added_in(path)
        return -1 if path in self.files else None


def replay(commits: Iterable[Commit], base: Snapshot | None = None) -> Snapshot:
    """Apply commits in order to `base` (or to the empty warehouse); a pure function.

    Costs what the commits hold plus a copy of the changes made since `base`'s frozen base, not a
    copy of every file: extending a snapshot of 100,000 files by one commit takes microseconds.
    """
    fm = FileMap.of(base.files) if base else FileMap()
    added, removed, segments = dict(fm.added), set(fm.removed), list(fm.segments)
    version, ts = (base.version, base.committed_at) if base else (-1, utcnow())
    for c in commits:
        if c.version != version + 1:
            raise CorruptCommit(f"manifest commit {version + 1} is missing (found {c.version} after {version})")
        for r in c.remove:
            added.pop(r.path, None)
            removed.add(r.path)
        for a in c.add:
            added[a.path] = a
        if c.add:
            segments.append((c.version, c.add))
        version, ts = c.version, c.committed_at
    files = FileMap(fm.base, added, tuple(segments), frozenset(removed) if fm.base.n else frozenset())
    if len(added) + len(removed) > max(OVERLAY_LIMIT, fm.base.n // 4):
        files = FileMap(files.flattened())
    return Snapshot(version, ts, files)


def writer_info(writer_id: str) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "writer_id": writer_id}


class Listing:
    """One listing of `_manifest/`: which commits and checkpoints it holds.

    The names are only sorted (zero-padded versions sort as numbers); the questions opening asks
    (the newest commit and checkpoint, is commit v there) are answered by bisection, without
    parsing 10,000 names.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        # Names of commits and checkpoints start with a digit; temp files with ".", hints with "_".
        self._lo = bisect.bisect_left(self.names, "0")
        self._hi = bisect.bisect_left(self.names, ":")

    @staticmethod
    def _commit_version(name: str) -> int | None:
        return int(name[:20]) if len(name) == 25 and name.endswith(".json") and name[:20].isdigit() else None

    @staticmethod
    def _checkpoint_version(name: str) -> int | None:
        ok = len(name) == 20 + len(CHECKPOINT_SUFFIX) and name.endswith(CHECKPOINT_SUFFIX) and name[:20].isdigit()
        return int(name[:20]) if ok else None

    @cached_property
    def commits(self) -> list[int]:
        """Every commit version listed, ascending."""
        parse = self._commit_version
        return [v for n in self.names[self._lo:self._hi] if (v := parse(n)) is not None]

    @cached_property
    def checkpoints(self) -> list[int]:
        """Every checkpoint version listed, ascending."""
        return [v for n in self.names[self._lo:self._hi] if n.endswith(CHECKPOINT_SUFFIX)
                and (v := self._checkpoint_version(n)) is not None]

    def _scan(self, parse: Any, descending: bool) -> int | None:
        rng = range(self._hi - 1, self._lo - 1, -1) if descending else range(self._lo, self._hi)
        for i in rng:
            v = parse(self.names[i])
            if v is not None:
                return v
        return None

    @cached_property
    def latest_commit(self) -> int | None:
        return self._scan(self._commit_version, True)

    @cached_property
    def oldest_commit(self) -> int | None:
        """The oldest commit file there (0 unless vacuum folded older ones into a checkpoint)."""
        return self._scan(self._commit_version, False)

    @cached_property
    def retained(self) -> list[int]:
        """The commits of the log: from `log_start` to the newest, ascending."""
        start = self.log_start
        return [] if start is None else [v for v in self.commits if v >= start]

    @cached_property
    def log_start(self) -> int | None:
        """Where the unbroken run of commits that ends at the newest one starts: the oldest version
        the log still has (below it, only what a writer behind a fold may have left)."""
        v = self.latest_commit
        while v is not None and v > 0 and self.has_commit(v - 1):
            v -= 1
        return v

    @cached_property
    def newest_checkpoint(self) -> int | None:
        return self._scan(self._checkpoint_version, True)

    @property
    def empty(self) -> bool:
        return self.latest_commit is None and self.newest_checkpoint is None

    @property
    def latest(self) -> int:
        """The newest version (a checkpoint is never newer than the commit it was made at)."""
        return max(-1 if self.latest_commit is None else self.latest_commit,
                   -1 if self.newest_checkpoint is None else self.newest_checkpoint)

    def checkpoints_desc(self, upto: int | None = None) -> Iterator[int]:
        """Checkpoint versions at or before `upto` (default: all), newest first (found lazily)."""
        hi = self._hi if upto is None else bisect.bisect_right(self.names, f"{upto:020d}.json", self._lo, self._hi)
        parse = self._checkpoint_version
        for i in range(hi - 1, self._lo - 1, -1):
            name = self.names[i]
            if name.endswith(CHECKPOINT_SUFFIX) and (v := parse(name)) is not None:
                yield v

    def has(self, name: str) -> bool:
        i = bisect.bisect_left(self.names, name, self._lo, self._hi)
        return i < self._hi and self.names[i] == name

    def has_commit(self, version: int) -> bool:
        return self.has(f"{version:020d}.json")

    def has_commits(self, first: int, last: int) -> bool:
        """True if every commit first..last (inclusive) is listed."""
        return all(self.has_commit(v) for v in range(first, last + 1))

    def oldest_openable(self) -> int:
        """The oldest version `Log.snapshot` can rebuild (its own checkpoint, or commit 0 onwards)."""
        candidates = list(self.checkpoints[:1])
        if self.has_commit(0):
            candidates.append(0)
        return min(candidates, default=self.latest)


class _Vanished(Exception):
    """A file the listing showed was gone when read (vacuum folded it meanwhile): list again."""


def _gap(name: str, url: str, listing: Listing | None = None) -> CorruptCommit:
    """The error for a commit missing from the middle of the log; with the `listing`, it says where
    the gap lies and which commit files lie beyond it (files copied in by mistake look like this)."""
    version = int(name.rsplit("/", 1)[-1][:20])
    beyond = [v for v in listing.commits if v > version] if listing is not None else []
    if not beyond:
        return CorruptCommit(f"manifest file {name} is missing from {url}; the log has a gap: restore it from a backup")
    below = [v for v in listing.commits if v < version]
    upto = f"runs from {below[0]} to {below[-1]}" if below else "has no commit before it"
    shown = ", ".join(f"{v:020d}.json" for v in beyond[:3]) + (f" and {len(beyond) - 3} more" if len(beyond) > 3 else "")
    return CorruptCommit(
        f"the log of {url} has a gap: commits {version}..{beyond[0] - 1} are missing; it {upto}, and "
        f"{len(beyond)} commit file(s) lie beyond the gap ({shown}). Run `warehouse doctor`: commit files "
        "that do not belong to this warehouse (copied into _manifest/ by mistake) are set aside by "
        "`warehouse doctor --repair`; if the missing commits were lost, restore them from a backup")


def _vanished(name: str, url: str) -> _Vanished:
    return _Vanished(f"manifest file {name} vanished from {url} while being read")


class Log:
    """Reads and appends the commit log under `<root>/_manifest/`, and its checkpoints.

    Every `checkpoint_interval` versions (0: never) the writer whose commit lands on a multiple of
    it also writes a checkpoint of the snapshot at that version (best effort: a failure is logged
    and never fails the commit). Readers load the newest checkpoint they can and replay only the
    commits after it; see `warehouse.manifest_checkpoint`.
    """

    def __init__(self, store: Store, *, checkpoint_interval: int | None = None) -> None:
        self.store = store
        self.checkpoint_interval = CHECKPOINT_INTERVAL if checkpoint_interval is None else int(checkpoint_interval)
        if self.checkpoint_interval < 0:
            raise ValueError(f"checkpoint_interval must be >= 0, got {checkpoint_interval}")

    # -- listing ---------------------------------------------------------------------------------
    def listing(self) -> Listing:
        """One listing of `_manifest/` (empty if it does not exist)."""
        if self.store.is_local:
            # A plain directory read: fsspec's local `ls` costs ~5x more for 10,000 names.
            try:
                return Listing(os.listdir(self.store.full(MANIFEST_DIR)))
            except (FileNotFoundError, NotADirectoryError):
                return Listing(())
        return Listing(self.store.list_names(MANIFEST_DIR))

    def versions(self) -> list[int]:
        """Every commit still in the log, ascending (one listing of `_manifest/`). Starts at 0
        unless vacuum folded older commits into a checkpoint (`fold_commits`); a commit file a
        writer behind a fold left below the log (if killed before taking it back) is not one."""
        return self.listing().retained

    def checkpoint_versions(self) -> list[int]:
        """The versions that have a checkpoint file, ascending (one listing; unreadable ones included)."""
        return self.listing().checkpoints

    # -- reading commits -------------------------------------------------------------------------
    def read(self, version: int) -> Commit | None:
        """The commit at `version`, or None if it does not exist."""
        name = commit_name(version)
        try:
            data = self.store.read_bytes(name)
        except FileNotFoundError:
            return None
        commit = Commit.from_bytes(data, name=name)
        if commit.version != version:
            raise CorruptCommit(f"manifest file {name} claims version {commit.version}")
        return commit

    def read_many(self, versions: list[int]) -> list[Commit]:
        """The commits at `versions` (read concurrently on remote stores); CorruptCommit if one is missing."""
        return self._read_many(versions, _gap)

    def _read_many(self, versions: list[int], missing: Any) -> list[Commit]:
        """`read_many`, raising `missing(name, url)` for a commit that is not there."""
        names = [commit_name(v) for v in versions]
        blobs = self.store.read_many(names)
        out = []
        for v, n in zip(versions, names):
            data = blobs.get(n)
            if data is None:
                raise missing(n, self.store.url)
            commit = Commit.from_bytes(data, name=n)
            if commit.version != v:
                raise CorruptCommit(f"manifest file {n} claims version {commit.version}")
            out.append(commit)
        return out

    def _read_range(self, listing: Listing, first: int, last: int) -> list[Commit]:
        """Commits first..last, which `listing` must show: CorruptCommit for a gap in the log,
        _Vanished for a listed commit deleted (folded) since."""
        if first > last:
            return []
        if not listing.has_commits(first, last):
            gap = next(v for v in range(first, last + 1) if not listing.has(f"{v:020d}.json"))
            raise _gap(commit_name(gap), self.store.url, listing)
        return self._read_many(list(range(first, last + 1)), _vanished)

    def commits(self, upto: int | None = None) -> list[Commit]:
        """Every commit still in the log up to `upto` (default: the latest), oldest first: from
        commit 0, unless vacuum folded the older ones into a checkpoint (see `versions`)."""
        listing = self.listing()
        if listing.empty:
            raise WarehouseNotFound(f"no warehouse at {self.store.url!r} (no {MANIFEST_DIR}/); open it with create=True")
        latest = listing.latest
        if upto is not None and (upto < 0 or upto > latest):
            raise VersionNotFound(f"version {upto} does not exist; the latest version is {latest}")
        upto = latest if upto is None else upto
        return self.read_many([v for v in listing.retained if v <= upto])

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self, version: int | None = None, as_of: datetime | None = None, *,
                 listing: Listing | None = None) -> Snapshot:
        """The snapshot at `version` (default: the latest), or at the last commit at or before
        `as_of` (a commit time earlier than one before it counts as that one's: a clock that went
        backwards never makes time travel skip commits).

        Loads the newest readable checkpoint at or before the version and replays the commits
        after it; an unreadable checkpoint is skipped with a CheckpointWarning (an older one, or the
        whole log, is used instead). `listing`: a listing of `_manifest/` made just before.
        Raises WarehouseNotFound, VersionNotFound (no such version, or folded by vacuum),
        CorruptCommit (a damaged commit, a gap in the log, or no readable checkpoint where the log
        was folded), UnsupportedFormatVersion.
        """
        for attempt in range(3):
            if listing is None or attempt:
                listing = self.listing()
            if listing.empty:
                raise WarehouseNotFound(f"no warehouse at {self.store.url!r} (no {MANIFEST_DIR}/); "
                                        "open it with create=True")
            stray = listing.newest_checkpoint
            if listing.latest_commit is not None and stray is not None and stray > listing.latest_commit:
                # A checkpoint is written after its commit, which vacuum never folds: this one is not
                # the log's. Loading it would show another snapshot under a version never committed.
                raise CorruptCommit(
                    f"{mc.checkpoint_name(stray)} of {self.store.url} is newer than the newest commit "
                    f"({listing.latest_commit}), so it is not this log's (copied in by mistake?); "
                    "`warehouse doctor --repair` sets it aside; if commits were lost, restore them from a backup")
            try:
                if as_of is not None:
                    return self._as_of(listing, as_of)
                latest = listing.latest
                target = latest if version is None else version
                if target < 0 or target > latest:
                    raise VersionNotFound(f"version {target} does not exist; the latest version is {latest}")
                return self._load(listing, target)
            except _Vanished as exc:  # vacuum folded commits between our listing and our reads
                vanished = exc
        raise CorruptCommit(f"{vanished}; files kept vanishing while reading {self.store.url}")

    def _checkpoint(self, version: int) -> "Any | None":
        """The parsed checkpoint at `version`, or None (with a warning) if it is unreadable."""
        try:
            return mc.load(self.store, version)
        except FileNotFoundError:
            raise _Vanished(f"checkpoint {mc.checkpoint_name(version)} vanished") from None
        except (mc.CorruptCheckpoint, UnsupportedFormatVersion) as exc:
            _warn(f"{exc}; using an older checkpoint or the log instead")
            return None

    def _load(self, listing: Listing, target: int) -> Snapshot:
        """The snapshot at `target`: newest usable checkpoint at or before it, plus later commits."""
        unreadable: list[int] = []
        for cp in listing.checkpoints_desc(target):
            if cp < target and not listing.has_commit(cp + 1):
                break  # the commits after it were folded; older checkpoints are no better
            ck = self._checkpoint(cp)
            if ck is None:
                unreadable.append(cp)
                continue
            try:
                base = ck.snapshot()
            except (mc.CorruptCheckpoint, UnsupportedFormatVersion) as exc:
                _warn(f"{exc}; using an older checkpoint or the log instead")
                unreadable.append(cp)
                continue
            return replay(self._read_range(listing, cp + 1, target), base)
        if listing.has_commit(0):
            return replay(self._read_range(listing, 0, target))
        if unreadable:
            raise CorruptCommit(
                f"cannot rebuild version {target} of {self.store.url}: checkpoint {mc.checkpoint_name(unreadable[0])} "
                "is unreadable and the commits before it were folded by vacuum; restore it from a backup")
        raise self._folded(listing, target)

    def _folded(self, listing: Listing, target: int) -> VersionNotFound:
        into = next((c for c in listing.checkpoints if c >= target), None)
        where = f"checkpoint {into}" if into is not None else "a checkpoint"
        return VersionNotFound(f"version {target} was folded into {where} by vacuum (its commit file is gone); "
                               f"the oldest version you can open is {listing.oldest_openable()}")

    def _as_of(self, listing: Listing, as_of: datetime) -> Snapshot:
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=timezone.utc)
        unreadable: list[int] = []
        for cp in listing.checkpoints_desc():
            ck = self._checkpoint(cp)
            if ck is None:
                unreadable.append(cp)
                continue
            if ck.max_committed_at <= as_of:
                # At or after this checkpoint: walk the commits after it up to the first one after as_of.
                if cp < listing.latest and not listing.has_commit(cp + 1):
                    break  # the commits after it were folded
                after = self._commits_until(listing, cp + 1, as_of)
                return replay(after, ck.snapshot())
            # Before it: its commits section holds the commit times up to it.
            try:
                rows = ck.commits()
            except mc.CorruptCheckpoint as exc:
                _warn(f"{exc}; using an older checkpoint or the log instead")
                unreadable.append(cp)
                continue
            # The commits whose time, and every earlier commit's, is at or before as_of: a prefix.
            micros = rows.column("committed_at").cast(pa.int64())
            cutoff = (as_of - _EPOCH) // timedelta(microseconds=1)
            n = pc.sum(pc.less_equal(pc.cumulative_max(micros), cutoff)).as_py() or 0
            target = rows.column("version")[n - 1].as_py() if n else None
            if target is None:
                if rows.column("version")[0].as_py() == 0:
                    raise VersionNotFound(f"the warehouse did not exist yet at {_iso(as_of)}")
                raise VersionNotFound(f"at {_iso(as_of)} the warehouse was at a version folded by vacuum; the "
                                      f"oldest version you can open is {listing.oldest_openable()}")
            return self._load(listing, target)
        if not listing.has_commit(0):
            if unreadable:
                raise CorruptCommit(f"cannot tell the version of {self.store.url} at {_iso(as_of)}: checkpoint "
                                    f"{mc.checkpoint_name(unreadable[0])} is unreadable and the commits before it "
                                    "were folded by vacuum; restore it from a backup")
            raise VersionNotFound(f"at {_iso(as_of)} the warehouse was at a version folded by vacuum; the oldest "
                                  f"version you can open is {listing.oldest_openable()}")
        commits = self._commits_until(listing, 0, as_of)
        if not commits:
            raise VersionNotFound(f"the warehouse did not exist yet at {_iso(as_of)}")
        return replay(commits)

    def _commits_until(self, listing: Listing, first: int, as_of: datetime, chunk: int = 64) -> list[Commit]:
        """The commits from `first` on, up to (not including) the first one committed after `as_of`."""
        out: list[Commit] = []
        v = first
        while v <= listing.latest:
            for c in self._read_range(listing, v, min(v + chunk - 1, listing.latest)):
                if c.committed_at > as_of:
                    return out
                out.append(c)
            v += chunk
        return out

    def refresh(self, snap: Snapshot, *, catch_up: bool = False) -> tuple[Snapshot, list[Commit]]:
        """Read only the commits after `snap` and apply them; returns the new snapshot and those commits.

        Probes version after version (one request each; one when nothing is new); past
        PROBE_LIMIT new commits it lists `_manifest/` once and reads the rest at once. With
        `catch_up`, a snapshot more than a checkpoint interval behind is rebuilt from the newest
        checkpoint instead (the commits skipped are then not returned). If the commits after
        `snap` were folded into a checkpoint meanwhile (a process idle across a vacuum), the
        snapshot is rebuilt from the newest checkpoint, with a warning, and no commits returned.
        """
        new: list[Commit] = []
        v = snap.version + 1
        while (c := self.read(v)) is not None:
            new.append(c)
            v += 1
            if len(new) == PROBE_LIMIT:
                listing = self.listing()
                if v > listing.latest:
                    continue
                behind = listing.latest - v
                if catch_up and self.checkpoint_interval and behind > self.checkpoint_interval and \
                        (listing.newest_checkpoint or -1) >= v:
                    return self.snapshot(listing=listing), []
                try:
                    new += self._read_range(listing, v, listing.latest)
                except _Vanished:  # folded while we read: rebuild from the newest checkpoint
                    return self.snapshot(), []
                v = listing.latest + 1
        if self._folded_away(v):
            # Commit v is not missing for being in the future: vacuum folded it (this process was
            # behind a checkpoint and a fold). Rebuild from the checkpoint.
            fresh = self.snapshot()
            log.warning("the commits after version %d of %s were folded into a checkpoint while this process "
                        "was behind; reloaded at version %d", v - 1, self.store.url, fresh.version)
            return fresh, []
        return (replay(new, snap) if new else snap), new

    def _folded_away(self, version: int) -> bool:
        """Whether commit `version`, just found missing, was folded by vacuum (rather than not made yet).

        Vacuum raises `_last_checkpoint` to its checkpoint before deleting commits below it, and a
        checkpoint at or after `version` exists only if commit `version` did: so a hint naming an
        existing checkpoint at or after it says folded; a hint before it says not. Without a usable
        hint, the commit before it decides (vacuum deletes the oldest first)."""
        present, hint = mc.hint_state(self.store)
        if hint is not None:
            if hint < version:
                return False
            if self.store.exists(mc.checkpoint_name(hint)):
                return True
        return version > 0 and not self.store.exists(commit_name(version - 1))

    def _landed_in_fold(self, version: int, token: str) -> bool:
        """Whether our commit at `version`, just created, re-created a version vacuum had folded
        (a writer whose snapshot was older than the fold: the name was free again). Such a commit
        is below the newest checkpoint, where no reader looks. Decided by the checkpoints' commits
        sections, which hold the token of the commit that really was `version`; the hint spares
        that look-up when no checkpoint can be at or after `version`."""
        present, hint = mc.hint_state(self.store)
        if hint is not None and hint < version:
            return False
        if not present and (version == 0 or self.store.exists(commit_name(version - 1))):
            return False  # no fold ever raised the hint (or it was deleted and the log is contiguous)
        for cp in self.listing().checkpoints_desc():
            if cp < version:
                break
            try:
                ck = mc.load(self.store, cp)
                rows = ck.commits()
            except (FileNotFoundError, mc.CorruptCheckpoint, UnsupportedFormatVersion):
                continue
            if ck.oldest_commit <= version:
                return rows.column("token")[version - ck.oldest_commit].as_py() != token
        return False

    # -- writing ---------------------------------------------------------------------------------
    def create(self, writer: Mapping[str, Any]) -> bool:
        """Write commit 0 (format version); False if the warehouse already exists."""
        c = Commit(0, utcnow(), "create", writer, None, format_version=FORMAT_VERSION)
        return self.store.put_if_absent(commit_name(0), c.to_bytes())

    def commit(
        self,
        base: Snapshot,
        *,
        operation: str,
        writer: Mapping[str, Any],
        token: str | None,
        add: Iterable[DataFile] = (),
        remove: Iterable[RemovedFile] = (),
        token_since: int | None = None,
        max_attempts: int = 10_000,
        info: Mapping[str, Any] | None = None,
        seen: list[Commit] | None = None,
        conflict: Callable[[Commit], str | None] | None = None,
    ) -> Commit:
        """Commit `add`/`remove` as the version after the latest, retrying on conflict.

        If a commit carrying `token` already exists after version `token_since` (a retry of a commit
        whose acknowledgement was lost), that commit is returned and nothing new is written; the same
        holds within one call, when the store's answer to our create was lost and its retry was refused
        because the object exists: the version is read back and its token compared. Without a `token`
        one is made up for the call. Commits of other writers read on the way are appended to `seen`
        (if given), so that the caller can bring its snapshot up to date without reading them again.
        A token found in a commit that vacuum folded into a checkpoint is found there (`find_token`).
        A commit that lands on a version vacuum had folded (our snapshot was older than the fold,
        so the name was free again) is taken back and made after the newest checkpoint instead;
        `seen` is then emptied (it no longer leads from the caller's snapshot to the commit).
        If the commit lands on a multiple of `checkpoint_interval`, a checkpoint of that version is
        written after it (best effort).
        `conflict(other)` is asked about every commit of another writer found on the way (those that
        landed after `base`); a message from it is raised as CommitConflict and nothing is committed.
        Raises CommitConflict if a file to remove was removed by someone else meanwhile, or if
        `max_attempts` versions were all taken by other writers; StaleDataFile (before any request)
        if a file of `add` began to be written longer than COMMIT_DEADLINE ago (`DataFile.staged`).
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        # Every commit carries a token, so that a create whose answer was lost and that is retried
        # (and refused as existing) is recognised as our own rather than committed again.
        token = token if token is not None else f"{operation}:{uuid.uuid4().hex}"
        add, remove = tuple(add), tuple(remove)
        removing = {r.path for r in remove}
        for r in remove:
            if r.path not in base.files:
                raise CommitConflict(f"cannot remove {r.path}: it is not in version {base.version}")
        version = base.version + 1
        if token_since is not None and token_since < base.version:
            found = self.find_token(token, token_since, base.version)
            if found is not None:
                return found
        read: list[Commit] = []
        staged = [(a.staged, a.path) for a in add if a.staged is not None]
        for attempt in range(max_attempts):
            commit = Commit(version, utcnow(), operation, writer, token, add, remove, info=info or {})
            data = commit.to_bytes()
            _check_deadline(staged)  # last thing before the request: nothing slow in between
            if self.store.put_if_absent(commit_name(version), data):
                if self._landed_in_fold(version, token):
                    # Our snapshot was older than a fold: take our commit back and go on from the
                    # newest checkpoint. The caller's snapshot is stale too: `seen` no longer leads to it.
                    log.warning("version %d of %s had been folded into a checkpoint; committing after the "
                                "newest one instead", version, self.store.url)
                    again = self.read(version)
                    if again is not None and again.token == token:
                        self.store.remove(commit_name(version))
                    base = self.snapshot()
                    for r in remove:
                        if r.path not in base.files:
                            raise CommitConflict(f"cannot remove {r.path}: it is not in version {base.version}")
                    read.clear()
                    if seen is not None:
                        seen.clear()
                    version = base.version + 1
                    continue
                if self.checkpoint_interval and version % self.checkpoint_interval == 0:
                    self._checkpoint_after(base, [*read, commit])
                return commit
            # Someone else took `version` (or our own create was retried after its answer was lost):
            # read what is there, then try the next version straight away; the conditional create
            # answers "is it free?" and takes it in one request.
            other = self.read(version)
            if other is None:  # a concurrent create still in flight (409): wait for it
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                continue
            if other.token == token:
                return other
            read.append(other)
            if seen is not None:
                seen.append(other)
            lost = removing.intersection(r.path for r in other.remove)
            if lost:
                raise CommitConflict(
                    f"version {other.version} ({other.operation}) already removed {sorted(lost)[0]}; "
                    "reload the warehouse and retry"
                )
            if conflict is not None and (why := conflict(other)):
                raise CommitConflict(why)
            version += 1
        raise CommitConflict(f"gave up after {max_attempts} attempts to commit; the log is too contended")

    def find_token(self, token: str, after: int, upto: int) -> Commit | None:
        """The commit among versions after..upto (exclusive, inclusive) that carries `token`, or None.

        Commits that vacuum folded are looked up in the newest checkpoint's commits section; the
        Commit returned for one of those has its version, time, operation and token, and no files.
        Raises CorruptCommit if the log has a gap, or if folded commits are covered by no readable
        checkpoint (then whether the token was committed cannot be told).
        """
        if after >= upto:
            return None
        versions = list(range(after + 1, upto + 1))
        names = [commit_name(v) for v in versions]
        blobs = self.store.read_many(names)
        missing = []
        for v, n in zip(versions, names):
            data = blobs.get(n)
            if data is None:
                missing.append(v)
                continue
            c = Commit.from_bytes(data, name=n)
            if c.version != v:
                raise CorruptCommit(f"manifest file {n} claims version {c.version}")
            if c.token == token and not self._landed_in_fold(v, token):
                return c  # (a commit of ours left in a folded range by a crash is not one)
        if not missing:
            return None
        listing = self.listing()
        newest = listing.newest_checkpoint
        if newest is None or missing[-1] >= newest:  # not folded (vacuum folds below the newest checkpoint only)
            raise _gap(commit_name(next(v for v in missing if newest is None or v >= newest)), self.store.url, listing)
        for cp in listing.checkpoints_desc():
            try:
                ck = mc.load(self.store, cp)
                rows = ck.commits()
            except (FileNotFoundError, mc.CorruptCheckpoint, UnsupportedFormatVersion) as exc:
                _warn(f"{exc}; looking for token {token!r} in an older checkpoint")
                continue
            if ck.oldest_commit > missing[0]:
                continue
            hit = rows.filter(_token_is(rows.column("token"), token)).to_pylist()
            for row in hit:
                if after < row["version"] <= upto:
                    return Commit(row["version"], row["committed_at"], row["operation"], {}, row["token"],
                                  info={"folded_into": cp})
            return None
        raise CorruptCommit(f"cannot tell whether token {token!r} was committed in {self.store.url}: versions "
                            f"{missing[0]}..{missing[-1]} were folded and no readable checkpoint holds their tokens")

    def operations(self, versions: Iterable[int]) -> dict[int, tuple[str, Mapping[str, Any]]]:
        """(operation, info) of each commit in `versions`: from its file, or, for a commit vacuum
        folded, from a checkpoint's commits section. A version found in neither is left out."""
        versions = sorted(set(versions))
        names = [commit_name(v) for v in versions]
        blobs = self.store.read_many(names)
        out: dict[int, tuple[str, Mapping[str, Any]]] = {}
        missing = []
        for v, n in zip(versions, names):
            data = blobs.get(n)
            if data is None:
                missing.append(v)
            else:
                c = Commit.from_bytes(data, name=n)
                out[v] = (c.operation, dict(c.info))
        if missing:
            for cp in self.listing().checkpoints_desc():
                try:
                    rows = mc.load(self.store, cp).commits()
                except (FileNotFoundError, mc.CorruptCheckpoint, UnsupportedFormatVersion):
                    continue
                first = rows.column("version")[0].as_py()
                for v in missing:
                    if first <= v <= cp:
                        row = rows.slice(v - first, 1).to_pylist()[0]
                        out[v] = (row["operation"], json.loads(row["info"]) if row["info"] else {})
                if first <= missing[0]:
                    break
        return out

    # -- checkpoints -----------------------------------------------------------------------------
    def _checkpoint_after(self, base: Snapshot, chain: list[Commit]) -> None:
        """Best effort: write the checkpoint of the version the last of `chain` committed."""
        version = chain[-1].version
        try:
            got = {c.version: c for c in chain if c.version > base.version}
            if sorted(got) == list(range(base.version + 1, version + 1)):
                snap = replay([got[v] for v in sorted(got)], base)
            else:
                snap = self.snapshot(version)
            self.write_checkpoint(snap)
        except Exception as exc:  # never fail the commit, which has landed
            log.warning("could not write the checkpoint of version %d of %s (%s: %s); readers replay the log "
                        "instead", version, self.store.url, type(exc).__name__, exc)

    def write_checkpoint(self, snapshot: Snapshot) -> bool:
        """Write the checkpoint of `snapshot` (which must be the log's snapshot at its version) and
        point `_manifest/_last_checkpoint` at it. Returns False if one already existed there.

        Created with create-if-absent in one piece (a temp file linked into place locally, a single
        conditional PUT on S3): never clobbered, never seen half-written. Raises CorruptCommit if
        the commits before the version were folded and no readable checkpoint holds their tokens.
        """
        listing = self.listing()
        if listing.has(f"{snapshot.version:020d}{CHECKPOINT_SUFFIX}"):
            return False
        rows = self._commit_rows(listing, snapshot.version)
        files = FileMap.of(snapshot.files)
        files.base.arrow_files()  # kept by the base, which later snapshots share: the next checkpoint reuses it
        data = mc.encode(snapshot, files.flattened(), rows,
                         writer=writer_info(f"checkpoint-{uuid.uuid4().hex[:8]}"))
        created = self.store.put_if_absent(mc.checkpoint_name(snapshot.version), data)
        if created:
            try:
                mc.write_hint(self.store, snapshot.version, len(data))
            except Exception as exc:  # a hint only
                log.warning("could not update %s: %s", mc.LAST_CHECKPOINT, exc)
        return created

    def _commit_rows(self, listing: Listing, version: int) -> "Any":
        """The commits section of a checkpoint at `version`: the previous checkpoint's, plus the commits since."""
        for cp in listing.checkpoints_desc(version - 1):
            if not listing.has_commit(cp + 1):
                break
            try:
                prev = mc.load(self.store, cp).commits()
            except (FileNotFoundError, mc.CorruptCheckpoint, UnsupportedFormatVersion):
                continue
            return pa.concat_tables([prev, mc.commit_rows(self._read_range(listing, cp + 1, version))])
        if listing.has_commit(0):
            return mc.commit_rows(self._read_range(listing, 0, version))
        raise CorruptCommit(f"cannot checkpoint version {version} of {self.store.url}: the commits before "
                            f"{listing.log_start} were folded and no readable checkpoint holds them")

    def verify_checkpoint(self, version: int) -> list[str]:
        """How the checkpoint at `version` disagrees with the log (empty if it agrees): its files
        and its commits section against those of the newest older readable checkpoint (or of
        nothing, from commit 0) plus the commits since, which must all be there.

        Raises FileNotFoundError, CorruptCheckpoint if it is unreadable, CorruptCommit if nothing
        independent of it is left to compare it with (the commits before it were folded).
        """
        listing = self.listing()
        ck = mc.load(self.store, version)
        base: Snapshot | None = None
        rows = mc.COMMIT_SCHEMA.empty_table()
        start = 0
        for cp in listing.checkpoints_desc(version - 1):
            if not listing.has_commit(cp + 1):
                break
            try:
                prev = mc.load(self.store, cp)
                base, rows, start = prev.snapshot(), prev.commits(), cp + 1
                break
            except (FileNotFoundError, mc.CorruptCheckpoint, UnsupportedFormatVersion):
                continue
        if base is None and not listing.has_commit(0):
            raise CorruptCommit(f"the checkpoint at {version} cannot be checked: the commits before it were folded "
                                "and no older readable checkpoint is left")
        tail = self.read_many(list(range(start, version + 1)))
        expected = replay(tail, base)
        problems = []
        if ck.committed_at != expected.committed_at:
            problems.append(f"committed_at {_iso(ck.committed_at)} != {_iso(expected.committed_at)} in commit {version}")
        problems += _compare_files(ck.files().to_arrow(), FileMap.of(expected.files).flattened().arrow_files().to_arrow())
        want = {r["version"]: r for r in pa.concat_tables([rows, mc.commit_rows(tail)]).to_pylist()}
        for r in ck.commits().to_pylist():
            w = want.get(r["version"])
            if w is not None and w != r:
                problems.append(f"its commits section disagrees with the log at version {r['version']}")
                break
        return problems

    def fold_commits(self, older_than: datetime) -> list[int]:
        """Delete the commit files older than the newest checkpoint and committed before
        `older_than`, oldest first; returns the versions deleted. Vacuum calls this.

        Only a checkpoint that agrees with the log (`verify_checkpoint`) is folded into; otherwise
        nothing is deleted and a CheckpointWarning says why. Only a prefix of the log goes (a
        commit with a later time stops it, whatever its successors' times), so the log stays
        contiguous from its oldest commit. Before deleting anything, `_last_checkpoint` is raised
        to the checkpoint: writers and refreshes read it to tell a folded version from a free one.
        Checkpoints older than the oldest commit kept are deleted too (the newest checkpoint holds
        all they held). Afterwards versions before the newest checkpoint cannot be opened
        (VersionNotFound says so); their tokens and commit times live on in the checkpoint's
        commits section. Raises CorruptCommit if the hint cannot be raised (nothing is deleted).
        """
        if older_than.tzinfo is None:
            older_than = older_than.replace(tzinfo=timezone.utc)
        listing = self.listing()
        if not listing.checkpoints or listing.oldest_commit is None or listing.oldest_commit >= listing.checkpoints[-1]:
            return []
        newest = listing.checkpoints[-1]
        try:
            problems = self.verify_checkpoint(newest)
            times = dict(zip(*(mc.load(self.store, newest).commits().column(c).to_pylist()
                               for c in ("version", "committed_at"))))
        except (FileNotFoundError, CorruptCommit, UnsupportedFormatVersion, VersionNotFound) as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        if problems:
            _warn(f"not folding commits into checkpoint {newest} of {self.store.url}: it does not agree with the "
                  f"log ({problems[0]}); run `warehouse doctor`")
            return []
        # First the floor: `_landed_in_fold` and `_folded_away` rely on the hint naming a checkpoint
        # at least this new before any commit below it is gone. If it cannot be written, nothing is.
        mc.write_hint(self.store, newest)
        if (mc.read_hint(self.store) or -1) < newest:
            raise CorruptCommit(f"cannot fold: {mc.LAST_CHECKPOINT} of {self.store.url} does not name checkpoint {newest}")
        folded: list[int] = []
        for v in listing.commits:
            t = times.get(v)
            if v >= newest or t is None or t >= older_than:
                break
            self.store.remove(commit_name(v))
            folded.append(v)
        first_kept = max(listing.log_start or 0, folded[-1] + 1 if folded else 0)
        for cp in listing.checkpoints[:-1]:
            if cp + 1 < first_kept:
                self.store.remove(mc.checkpoint_name(cp))
        if folded:
            log.info("folded commits %d..%d of %s into checkpoint %d", folded[0], folded[-1], self.store.url, newest)
        return folded


def _check_deadline(staged: list[tuple[Staged, str]]) -> None:
    """Raise StaleDataFile if one of the files a commit adds is older than COMMIT_DEADLINE."""
    if not staged:
        return
    deadline = COMMIT_DEADLINE.total_seconds()
    age, path = max((staged_age(s), p) for s, p in staged)
    if age > deadline:
        raise StaleDataFile(
            f"{path} began to be written {age:.0f} s ago, more than the commit deadline ({deadline:.0f} s): a "
            f"vacuum (orphan window at least {MIN_ORPHAN_WINDOW}) may have deleted it as an orphan, so it is not "
            "committed; nothing was: write the data again")


def _token_is(column: Any, value: str) -> Any:
    return pc.fill_null(pc.equal(column, value), False)


def _compare_files(got: pa.Table, want: pa.Table) -> list[str]:
    """How two files sections differ (by path), in words; at most a few lines."""
    by_path = [("path", "ascending")]
    if got.take(pc.sort_indices(got, sort_keys=by_path)).equals(want.take(pc.sort_indices(want, sort_keys=by_path))):
        return []
    g = {r["path"]: r for r in got.to_pylist()}
    w = {r["path"]: r for r in want.to_pylist()}
    out = []
    extra, lacking = sorted(g.keys() - w.keys()), sorted(w.keys() - g.keys())
    if extra:
        out.append(f"{len(extra)} file(s) the log does not have, e.g. {extra[0]}")
    if lacking:
        out.append(f"{len(lacking)} file(s) of the log missing, e.g. {lacking[0]}")
    for p in sorted(g.keys() & w.keys()):
        a, b = g[p], w[p]
        for k in ("table", "rows", "bytes", "version", "partition", "stats"):
            same = a[k] == b[k] or (k in ("partition", "stats") and json.loads(a[k] or "{}") == json.loads(b[k] or "{}"))
            if not same and not (k == "version" and -1 in (a[k], b[k])):
                out.append(f"{p}: {k} {a[k]!r} in the checkpoint, {b[k]!r} in the log")
                break
        if len(out) >= 5:
            break
    return out


def _warn(message: str) -> None:
    log.warning("%s", message)
    warnings.warn(message, mc.CheckpointWarning, stacklevel=3)
