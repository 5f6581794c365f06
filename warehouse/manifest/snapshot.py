"""Snapshots: the set of active data files at one version, and `replay`, the pure function that
builds one from commits.

A snapshot's files are a `FileMap`: a frozen base (a checkpoint's Arrow columns, or files folded
earlier; see `filesets`) plus the changes of the commits replayed since, so that extending a
snapshot by a commit costs what the commit holds, and opening a warehouse of 100,000 files builds
no object per file.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from datetime import datetime

from warehouse.core.errors import CorruptCommit
from warehouse.manifest.filesets import DictFiles, FrozenFiles
from warehouse.manifest.model import Commit, DataFile, utcnow

#: Changes on top of a snapshot's frozen base past which extending it first folds them into a new
#: base (they are copied each time a snapshot is extended): this many, or a quarter of the base.
OVERLAY_LIMIT = 4096


class FileMap(Mapping[str, DataFile]):
    """The active files of a snapshot, path -> DataFile: a frozen base (a checkpoint's rows, or
    files folded earlier; see `filesets.FrozenFiles`) plus what the commits replayed
    since changed (`added`, `removed`). Extending a snapshot copies only those changes, never the
    base; past OVERLAY_LIMIT they are folded into a new base. Immutable once built.
    """

    __slots__ = ("base", "added", "segments", "removed", "_overlay_files", "_len", "_tables", "_by_table")

    def __init__(
        self,
        base: FrozenFiles | None = None,
        added: dict[str, DataFile] | None = None,
        segments: tuple[tuple[int, tuple[DataFile, ...]], ...] = (),
        removed: frozenset[str] = frozenset(),
    ) -> None:
        self.base = base if base is not None else FrozenFiles.empty()
        self.added = added or {}  # path -> file added (or replaced) since the base
        self.segments = segments  # (version, files it added) of each commit since the base, in order
        self.removed = removed  # paths removed since the base (some perhaps never in it)
        self._overlay_files: DictFiles | None = None  # the overlay as a DictFiles, made on first use
        self._len: int | None = None
        self._tables: dict[str, list[DataFile]] = {}
        self._by_table: dict[str, list[DataFile]] | None = None

    @classmethod
    def of(cls, files: Mapping[str, DataFile]) -> FileMap:
        """`files` as a FileMap (the version that added each file is unknown: -1)."""
        if isinstance(files, FileMap):
            return files
        return cls(DictFiles(dict(files), {p: -1 for p in files}))

    def _hidden(self, path: str) -> bool:
        return path in self.removed or path in self.added

    def __getitem__(self, path: str) -> DataFile:
        f = self.added.get(path)
        if f is None and (path in self.removed or (f := self.base.get(path)) is None):
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

    def values(self) -> ValuesView[DataFile]:
        return _Values(self)

    def items(self) -> ItemsView[str, DataFile]:
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

    def _overlay(self) -> DictFiles:
        """The changes since the base as a DictFiles (which works out each file's version lazily)."""
        o = self._overlay_files
        if o is None:
            o = self._overlay_files = DictFiles(self.added, segments=self.segments)
        return o

    def added_in(self, path: str) -> int | None:
        """The version of the commit that added the active file `path` (-1 if unknown), or None."""
        if path in self.added:
            return self._overlay().version_of(path)
        if path in self.removed or not self.base.n:
            return None
        return self.base.version_of(path)

    def flattened(self) -> FrozenFiles:
        """The files as one FrozenFiles (this map's base if nothing changed since)."""
        if not self.added and not self.removed:
            return self.base
        if not self.base.n:
            return self._overlay()
        return self.base.merged(self.added, self._overlay().versions, self.removed)

    def __repr__(self) -> str:
        return f"<FileMap {len(self)} files ({self.base.n} in the base, +{len(self.added)} -{len(self.removed)})>"


class _Values(ValuesView[DataFile]):
    """A FileMap's files, a table at a time (no lookup by path per file)."""

    def __init__(self, files: FileMap) -> None:
        super().__init__(files)
        self._files = files

    def __iter__(self) -> Iterator[DataFile]:
        return self._files._iter_files()


class _Items(ItemsView[str, DataFile]):
    """A FileMap's (path, file) pairs, a table at a time."""

    def __init__(self, files: FileMap) -> None:
        super().__init__(files)
        self._files = files

    def __iter__(self) -> Iterator[tuple[str, DataFile]]:
        return ((f.path, f) for f in self._files._iter_files())


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
