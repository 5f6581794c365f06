"""The in-memory sets of a snapshot's files: the frozen base of a `snapshot.FileMap`.

`ArrowFiles` holds a checkpoint's files section: an immutable, table-sorted set of files whose
Parquet columns are decoded when first needed; a `DataFile` is built only when asked for (a table
at a time), its stats parsed from JSON only when read. Opening a warehouse of 100,000 files builds
no Python object per file. Snapshots replayed from commits alone hold a `DictFiles` instead.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from warehouse.core.errors import CorruptCheckpoint
from warehouse.manifest.model import DataFile, dump_json

#: The columns of a files section (of a checkpoint, and of an `ArrowFiles` in memory).
FILE_COLUMNS = ("table", "path", "partition", "rows", "bytes", "stats", "version")
FILE_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("path", pa.string()),
        ("partition", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("stats", pa.string()),
        ("version", pa.int64()),
    ]
)


class LazyStats(Mapping[str, Any]):
    """A DataFile's stats kept as the JSON text of the checkpoint, parsed on first use (most files
    of a snapshot are never asked for their stats, and parsing costs more than the rest of a file)."""

    __slots__ = ("text", "_value")

    def __init__(self, text: str) -> None:
        self.text = text
        self._value: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        v = self._value
        if v is None:
            v = self._value = json.loads(self.text)
        return v

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


def _stats(text: str | None) -> Mapping[str, Any]:
    return {} if text is None or text == "{}" else LazyStats(text)


def _stats_text(stats: Mapping[str, Any]) -> str:
    if isinstance(stats, LazyStats):
        return stats.text
    return dump_json(dict(stats)) if stats else "{}"


def _new_datafile(
    table: str, path: str, partition: Mapping[str, str], rows: int, nbytes: int, stats: Mapping[str, Any]
) -> DataFile:
    # DataFile is a frozen dataclass: filling its __dict__ skips six object.__setattr__ calls.
    obj: DataFile = object.__new__(DataFile)
    obj.__dict__.update(table=table, path=path, partition=partition, rows=rows, bytes=nbytes, stats=stats)
    return obj


@contextmanager
def _no_gc() -> Iterator[None]:
    """No garbage collection during a bulk build of objects that live as long as a snapshot: each
    collection would walk every object made so far (100,000 files take half the time without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class FrozenFiles:
    """An immutable set of active files, each with the version that added it: the base of a
    snapshot's FileMap. `ArrowFiles` (a checkpoint's rows) or `DictFiles` (replayed commits).
    Safe to share between threads and snapshots: what is built lazily is only ever replaced by
    equal values."""

    n: int

    @staticmethod
    def empty() -> DictFiles:
        return DictFiles({}, {})

    def get(self, path: str) -> DataFile | None:
        raise NotImplementedError

    def has(self, path: str) -> bool:
        raise NotImplementedError

    def paths(self) -> Iterable[str]:
        raise NotImplementedError

    def version_of(self, path: str) -> int | None:
        raise NotImplementedError

    def tables(self) -> list[str]:
        raise NotImplementedError

    def table_objs(self, table: str) -> list[DataFile]:
        """The files of `table`, in commit order (a list owned by this object: do not change it)."""
        raise NotImplementedError

    def present(self, paths: Iterable[str]) -> int:
        """How many of `paths` (distinct) are files of this set."""
        return sum(1 for p in paths if self.has(p))

    def arrow_files(self) -> ArrowFiles:
        """The same files as an ArrowFiles (its Arrow table is the checkpoint's files section)."""
        raise NotImplementedError

    def merged(self, added: Mapping[str, DataFile], versions: Mapping[str, int], removed: Iterable[str]) -> FrozenFiles:
        """A new set: these files minus `removed` and minus those `added` replaces, plus `added`."""
        raise NotImplementedError


class DictFiles(FrozenFiles):
    """Files held as DataFile objects (replayed from commits): path -> file, and the version that
    added each, given or worked out on first use from `segments` ((version, files it added) of
    each commit, in order; -1 for a file none of them added)."""

    __slots__ = ("files", "n", "_versions", "_segments", "_by_table", "_arrow")

    def __init__(
        self,
        files: dict[str, DataFile],
        versions: dict[str, int] | None = None,
        segments: Iterable[tuple[int, Iterable[DataFile]]] = (),
    ) -> None:
        self.files = files  # owned: never changed after construction
        self.n = len(files)
        self._versions = versions
        self._segments = segments
        self._by_table: dict[str, list[DataFile]] | None = None
        self._arrow: ArrowFiles | None = None

    @property
    def versions(self) -> dict[str, int]:
        v = self._versions
        if v is None:
            v = {}
            for version, added in self._segments:
                for f in added:
                    v[f.path] = version
            if len(v) != self.n or not all(p in v for p in self.files):
                v = {p: v.get(p, -1) for p in self.files}
            self._versions, self._segments = v, ()
        return v

    def get(self, path: str) -> DataFile | None:
        return self.files.get(path)

    def has(self, path: str) -> bool:
        return path in self.files

    def paths(self) -> Iterable[str]:
        return self.files.keys()

    def version_of(self, path: str) -> int | None:
        return self.versions.get(path) if path in self.files else None

    def _groups(self) -> dict[str, list[DataFile]]:
        bt = self._by_table
        if bt is None:
            bt = {}
            with _no_gc():
                for f in self.files.values():
                    lst = bt.get(f.table)
                    if lst is None:
                        lst = bt[f.table] = []
                    lst.append(f)
            self._by_table = bt
        return bt

    def tables(self) -> list[str]:
        return list(self._groups())

    def table_objs(self, table: str) -> list[DataFile]:
        return self._groups().get(table, [])

    def arrow_files(self) -> ArrowFiles:
        a = self._arrow
        if a is None:
            objs = [f for t in sorted(self._groups()) for f in self._groups()[t]]
            a = self._arrow = ArrowFiles.from_objects(objs, [self.versions.get(f.path, -1) for f in objs])
        return a

    def merged(self, added: Mapping[str, DataFile], versions: Mapping[str, int], removed: Iterable[str]) -> FrozenFiles:
        if self._arrow is not None:  # already converted (a checkpoint was written): stay in Arrow
            return self._arrow.merged(added, versions, removed)
        files, vers = dict(self.files), dict(self.versions)
        for p in removed:
            if files.pop(p, None) is not None:
                del vers[p]
        files.update(added)
        vers.update(versions)
        return DictFiles(files, vers)


class ArrowFiles(FrozenFiles):
    """Files held as Arrow columns sorted by table (a checkpoint's files section), each column
    decoded on first use; DataFile objects are built a table at a time when asked for and kept;
    lookups by path build an index on first use."""

    __slots__ = ("n", "ranges", "_cols", "_objs", "_paths", "_index", "_versions", "_parts", "_lock")

    def __init__(
        self, n: int, ranges: Mapping[str, tuple[int, int]], cols: Columns, objs: list[Any] | None = None
    ) -> None:
        self.n = n
        self.ranges = dict(ranges)
        self._cols = cols
        self._objs = objs  # aligned with the rows; None where not built yet
        self._paths: list[str] | None = None
        self._index: dict[str, int] | None = None
        self._versions: list[int] | None = None
        self._parts: dict[str, Mapping[str, str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def table_ranges(tables: pa.Array) -> dict[str, tuple[int, int]]:
        """Row ranges of each table in a table-sorted column; ValueError if it is not sorted."""
        ranges: dict[str, tuple[int, int]] = {}
        start = 0
        for item in pc.value_counts(tables).to_pylist():
            name, count = item["values"], item["counts"]
            if name is None:
                raise ValueError("rows without a table")
            ranges[name] = (start, start + count)
            start += count
        for name, (s, e) in ranges.items():
            if tables[s].as_py() != name or tables[e - 1].as_py() != name:
                raise ValueError(f"the files of table {name!r} are not contiguous")
        return ranges

    @classmethod
    def from_table(cls, table: pa.Table, objs: list[Any] | None = None) -> ArrowFiles:
        """From a files section in memory (columns FILE_COLUMNS, sorted by table)."""
        cols = Columns(table)
        return cls(table.num_rows, cls.table_ranges(cols.column("table")), cols, objs)

    @classmethod
    def from_objects(cls, objs: list[DataFile], versions: list[int]) -> ArrowFiles:
        """From DataFiles already sorted by table, and the version that added each."""
        part_text: dict[int, str] = {}
        parts = []
        for f in objs:
            key = id(f.partition)
            t = part_text.get(key)
            if t is None:
                t = part_text[key] = dump_json(dict(f.partition))
            parts.append(t)
        table = pa.table(
            [
                pa.array([f.table for f in objs], pa.string()),
                pa.array([f.path for f in objs], pa.string()),
                pa.array(parts, pa.string()),
                pa.array([f.rows for f in objs], pa.int64()),
                pa.array([f.bytes for f in objs], pa.int64()),
                pa.array([_stats_text(f.stats) for f in objs], pa.string()),
                pa.array(versions, pa.int64()),
            ],
            schema=FILE_SCHEMA,
        )
        return cls.from_table(table, list(objs))

    # -- reading -------------------------------------------------------------------------------
    def paths(self) -> list[str]:
        p = self._paths
        if p is None:
            p = self._paths = self._cols.column("path").to_pylist()
        return p

    def index(self) -> dict[str, int]:
        ix = self._index
        if ix is None:
            ix = self._index = {p: i for i, p in enumerate(self.paths())}
        return ix

    def get(self, path: str) -> DataFile | None:
        i = self.index().get(path)
        return None if i is None else self.obj(i)

    def has(self, path: str) -> bool:
        return path in self.index()

    def version(self, i: int) -> int:
        v = self._versions
        if v is None:
            v = self._versions = self._cols.column("version").to_pylist()
        return v[i]

    def version_of(self, path: str) -> int | None:
        i = self.index().get(path)
        return None if i is None else self.version(i)

    def tables(self) -> list[str]:
        return list(self.ranges)

    def obj(self, i: int) -> DataFile:
        built: DataFile | None = self._objs[i] if self._objs is not None else None
        return built if built is not None else self._materialize(i, i + 1, keep=False)[0]

    def table_objs(self, table: str) -> list[DataFile]:
        r = self.ranges.get(table)
        if r is None:
            return []
        s, e = r
        objs = self._objs
        if objs is not None:
            out = objs[s:e]
            if None not in out:
                return out
        return self._materialize(s, e, keep=True)

    def _partition(self, text: str) -> Mapping[str, str]:
        p = self._parts.get(text)
        if p is None:
            p = self._parts[text] = json.loads(text)
        return p

    def _materialize(self, lo: int, hi: int, keep: bool) -> list[DataFile]:
        c, n = self._cols, hi - lo
        tables = c.column("table")
        table = tables[lo].as_py()
        if tables[hi - 1].as_py() != table:
            raise AssertionError("rows of several tables")
        paths = self.paths()[lo:hi]
        parts = c.column("partition").slice(lo, n).to_pylist()
        rows = c.column("rows").slice(lo, n).to_pylist()
        nbytes = c.column("bytes").slice(lo, n).to_pylist()
        stats = c.column("stats").slice(lo, n).to_pylist()
        part = self._partition
        with _no_gc():
            out = [
                _new_datafile(table, p, part(pt), r, b, _stats(st))
                for p, pt, r, b, st in zip(paths, parts, rows, nbytes, stats)
            ]
        if keep:
            with self._lock:
                if self._objs is None:
                    self._objs = [None] * self.n
                self._objs[lo:hi] = out
        return out

    def present(self, paths: Iterable[str]) -> int:
        paths = list(paths)
        if not paths or not self.n:
            return 0
        if self._index is None and len(paths) < self.n // 8:
            return pc.sum(pc.is_in(self._cols.column("path"), value_set=pa.array(paths, pa.string()))).as_py() or 0
        ix = self.index()
        return sum(1 for p in paths if p in ix)

    def arrow_files(self) -> ArrowFiles:
        return self

    def to_arrow(self) -> pa.Table:
        return self._cols.table()

    # -- extending -----------------------------------------------------------------------------
    def merged(self, added: Mapping[str, DataFile], versions: Mapping[str, int], removed: Iterable[str]) -> ArrowFiles:
        # Filter and concatenate columns: only the added files become Arrow rows here, and the
        # objects built so far are carried over.
        drop = set(removed) | set(added)
        a = self.to_arrow()
        keep = pc.invert(pc.is_in(a.column("path"), value_set=pa.array(list(drop), pa.string()))) if drop else None
        kept = a.filter(keep) if keep is not None else a
        new_objs = sorted(added.values(), key=lambda f: f.table)
        over = ArrowFiles.from_objects(new_objs, [versions[f.path] for f in new_objs])
        combined = pa.concat_tables([kept, over.to_arrow()]) if over.n else kept
        order = pc.sort_indices(combined, sort_keys=[("table", "ascending")])
        objs = None
        if self._objs is not None:
            with _no_gc():
                old = self._objs if keep is None else [o for o, k in zip(self._objs, keep.to_pylist()) if k]
                both = old + new_objs
                objs = [both[i] for i in order.to_pylist()]
        return ArrowFiles.from_table(combined.take(order).combine_chunks(), objs)


class Columns:
    """The files section as Arrow columns, each decoded on first use: from a checkpoint's Parquet
    bytes (whose checksum was verified when it was opened), or from a table already in memory."""

    def __init__(
        self,
        table: pa.Table | None = None,
        *,
        parquet: pq.ParquetFile | None = None,
        groups: list[int] | None = None,
        name: str = "",
    ) -> None:
        self._table = table
        self._pf, self._groups, self.name = parquet, groups or [], name
        self._cols: dict[str, pa.Array] = {}

    def column(self, name: str) -> pa.Array:
        col = self._cols.get(name)
        if col is None:
            if self._table is not None:
                col = self._table.column(name).combine_chunks()
            else:
                try:
                    t = self._pf.read_row_groups(self._groups, columns=[name], use_threads=False)  # type: ignore[union-attr]
                    col = t.column(0).combine_chunks().cast(FILE_SCHEMA.field(name).type)
                except (OSError, ValueError, pa.ArrowException) as exc:
                    raise CorruptCheckpoint(
                        f"checkpoint {self.name} is unreadable ({type(exc).__name__}: {exc})"
                    ) from None
            self._cols[name] = col
        return col

    def table(self) -> pa.Table:
        if self._table is None:
            missing = [c for c in FILE_COLUMNS if c not in self._cols]
            if len(missing) > 1:  # decode them together, on every core
                try:
                    t = self._pf.read_row_groups(self._groups, columns=missing, use_threads=True)  # type: ignore[union-attr]
                except (OSError, ValueError, pa.ArrowException) as exc:
                    raise CorruptCheckpoint(
                        f"checkpoint {self.name} is unreadable ({type(exc).__name__}: {exc})"
                    ) from None
                for c in missing:
                    self._cols[c] = t.column(c).combine_chunks().cast(FILE_SCHEMA.field(c).type)
            self._table = pa.table([self.column(c) for c in FILE_COLUMNS], schema=FILE_SCHEMA)
        return self._table
