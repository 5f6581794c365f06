"""Manifest checkpoints: the whole snapshot at one version in one Parquet file, so that a reader
loads it and replays only the commits made after it.

`_manifest/<version:020d>.checkpoint.parquet` has two sections, each in its own row groups:

- files: one row per active data file: `table`, `path`, `partition` and `stats` (JSON text), `rows`,
  `bytes`, and `version`, the commit that added the file; sorted by table (stable, so commit order
  within a table);
- commits: one row per commit from the oldest the log still had up to the checkpoint's version:
  `version`, `committed_at`, `operation`, `token`, `info` (JSON text). Idempotency checks
  (`Log.find_token`), time travel by timestamp and sync's provenance need these once vacuum has
  folded the commit files away; opening the warehouse never reads them.

The Parquet key-value metadata `warehouse.checkpoint` is a JSON document: the checkpoint format, the
version, its commit's `committed_at`, `max_committed_at` (the latest commit time up to the version:
time travel treats a clock that went backwards as standing still), the row counts of both sections.
A seal in the footer (the CRC-32 of the whole file) is checked when the file is opened, and page
checksums when a column is decoded: a damaged or truncated file is refused (CorruptCheckpoint),
never half read. A checkpoint is written once, with create-if-absent, and never changed.

In memory a checkpoint becomes an `ArrowFiles`: an immutable, table-sorted set of files whose
Parquet columns are decoded when first needed; a `DataFile` is built only when asked for (a table
at a time), its stats parsed from JSON only when read. Opening a warehouse of 100,000 files checks
the seal and builds no Python object per file. Snapshots replayed from commits alone hold a
`DictFiles` instead; both are the `FrozenFiles` base of a snapshot's `manifest.FileMap`.
"""

from __future__ import annotations

import gc
import io
import json
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.core.errors import CorruptCheckpoint, UnsupportedFormatVersion  # noqa: F401 (CorruptCheckpoint re-exported)
from warehouse.core.storage import arrow_reader

if TYPE_CHECKING:
    from warehouse.manifest import Commit, DataFile, Snapshot
    from warehouse.core.storage import Store

#: The checkpoint layout this library writes and the newest it reads.
CHECKPOINT_FORMAT = 1
META_KEY = b"warehouse.checkpoint"
SEAL_KEY = b"warehouse.seal"
SEAL_PLACEHOLDER = b"~" * 16
SUFFIX = ".checkpoint.parquet"
LAST_CHECKPOINT = "_manifest/_last_checkpoint"

FILE_COLUMNS = ("table", "path", "partition", "rows", "bytes", "stats", "version")
COMMIT_COLUMNS = ("version", "committed_at", "operation", "token", "info")
SCHEMA = pa.schema([
    ("table", pa.string()), ("path", pa.string()), ("partition", pa.string()), ("rows", pa.int64()),
    ("bytes", pa.int64()), ("stats", pa.string()), ("version", pa.int64()),
    ("committed_at", pa.timestamp("us", tz="UTC")), ("operation", pa.string()), ("token", pa.string()),
    ("info", pa.string()),
])
FILE_SCHEMA = pa.schema([SCHEMA.field(c) for c in FILE_COLUMNS])
COMMIT_SCHEMA = pa.schema([SCHEMA.field(c) for c in COMMIT_COLUMNS])


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (unreadable) and an older one or the full log used instead."""


def checkpoint_name(version: int) -> str:
    return f"_manifest/{version:020d}{SUFFIX}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
    return _json(dict(stats)) if stats else "{}"


def _new_datafile(cls: type, table: str, path: str, partition: Mapping[str, str], rows: int, nbytes: int,
                  stats: Mapping[str, Any]) -> "DataFile":
    # DataFile is a frozen dataclass: filling its __dict__ skips six object.__setattr__ calls.
    obj = object.__new__(cls)
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
    def empty() -> "DictFiles":
        return DictFiles({}, {})

    def get(self, path: str) -> "DataFile | None":
        raise NotImplementedError

    def has(self, path: str) -> bool:
        raise NotImplementedError

    def paths(self) -> Iterable[str]:
        raise NotImplementedError

    def version_of(self, path: str) -> int | None:
        raise NotImplementedError

    def tables(self) -> list[str]:
        raise NotImplementedError

    def table_objs(self, table: str) -> list["DataFile"]:
        """The files of `table`, in commit order (a list owned by this object: do not change it)."""
        raise NotImplementedError

    def present(self, paths: Iterable[str]) -> int:
        """How many of `paths` (distinct) are files of this set."""
        return sum(1 for p in paths if self.has(p))

    def arrow_files(self) -> "ArrowFiles":
        """The same files as an ArrowFiles (its Arrow table is the checkpoint's files section)."""
        raise NotImplementedError

    def merged(self, added: Mapping[str, "DataFile"], versions: Mapping[str, int], removed: Iterable[str]) -> "FrozenFiles":
        """A new set: these files minus `removed` and minus those `added` replaces, plus `added`."""
        raise NotImplementedError


class DictFiles(FrozenFiles):
    """Files held as DataFile objects (replayed from commits): path -> file, and the version that
    added each, given or worked out on first use from `segments` ((version, files it added) of
    each commit, in order; -1 for a file none of them added)."""

    __slots__ = ("files", "n", "_versions", "_segments", "_by_table", "_arrow")

    def __init__(self, files: dict[str, "DataFile"], versions: dict[str, int] | None = None,
                 segments: Iterable[tuple[int, Iterable["DataFile"]]] = ()) -> None:
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

    def get(self, path: str) -> "DataFile | None":
        return self.files.get(path)

    def has(self, path: str) -> bool:
        return path in self.files

    def paths(self) -> Iterable[str]:
        return self.files.keys()

    def version_of(self, path: str) -> int | None:
        return self.versions.get(path) if path in self.files else None

    def _groups(self) -> dict[str, list["DataFile"]]:
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

    def table_objs(self, table: str) -> list["DataFile"]:
        return self._groups().get(table, [])

    def arrow_files(self) -> "ArrowFiles":
        a = self._arrow
        if a is None:
            objs = [f for t in sorted(self._groups()) for f in self._groups()[t]]
            a = self._arrow = ArrowFiles.from_objects(objs, [self.versions.get(f.path, -1) for f in objs])
        return a

    def merged(self, added: Mapping[str, "DataFile"], versions: Mapping[str, int], removed: Iterable[str]) -> FrozenFiles:
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

    def __init__(self, n: int, ranges: Mapping[str, tuple[int, int]], cols: "Columns",
                 objs: list[Any] | None = None) -> None:
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
    def from_table(cls, table: pa.Table, objs: list[Any] | None = None) -> "ArrowFiles":
        """From a files section in memory (columns FILE_COLUMNS, sorted by table)."""
        cols = Columns(table)
        return cls(table.num_rows, cls.table_ranges(cols.column("table")), cols, objs)

    @classmethod
    def from_objects(cls, objs: list["DataFile"], versions: list[int]) -> "ArrowFiles":
        """From DataFiles already sorted by table, and the version that added each."""
        part_text: dict[int, str] = {}
        parts = []
        for f in objs:
            key = id(f.partition)
            t = part_text.get(key)
            if t is None:
                t = part_text[key] = _json(dict(f.partition))
            parts.append(t)
        table = pa.table([
            pa.array([f.table for f in objs], pa.string()),
            pa.array([f.path for f in objs], pa.string()),
            pa.array(parts, pa.string()),
            pa.array([f.rows for f in objs], pa.int64()),
            pa.array([f.bytes for f in objs], pa.int64()),
            pa.array([_stats_text(f.stats) for f in objs], pa.string()),
            pa.array(versions, pa.int64()),
        ], schema=FILE_SCHEMA)
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

    def get(self, path: str) -> "DataFile | None":
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

    def obj(self, i: int) -> "DataFile":
        objs = self._objs
        if objs is not None and objs[i] is not None:
            return objs[i]
        return self._materialize(i, i + 1, keep=False)[0]

    def table_objs(self, table: str) -> list["DataFile"]:
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

    def _materialize(self, lo: int, hi: int, keep: bool) -> list["DataFile"]:
        from warehouse.manifest import DataFile

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
            out = [_new_datafile(DataFile, table, p, part(pt), r, b, _stats(st))
                   for p, pt, r, b, st in zip(paths, parts, rows, nbytes, stats)]
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

    def arrow_files(self) -> "ArrowFiles":
        return self

    def to_arrow(self) -> pa.Table:
        return self._cols.table()

    # -- extending -----------------------------------------------------------------------------
    def merged(self, added: Mapping[str, "DataFile"], versions: Mapping[str, int], removed: Iterable[str]) -> "ArrowFiles":
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

    def __init__(self, table: pa.Table | None = None, *, parquet: pq.ParquetFile | None = None,
                 groups: list[int] | None = None, name: str = "") -> None:
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
                    raise CorruptCheckpoint(f"checkpoint {self.name} is unreadable ({type(exc).__name__}: {exc})") from None
            self._cols[name] = col
        return col

    def table(self) -> pa.Table:
        if self._table is None:
            missing = [c for c in FILE_COLUMNS if c not in self._cols]
            if len(missing) > 1:  # decode them together, on every core
                try:
                    t = self._pf.read_row_groups(self._groups, columns=missing, use_threads=True)  # type: ignore[union-attr]
                except (OSError, ValueError, pa.ArrowException) as exc:
                    raise CorruptCheckpoint(f"checkpoint {self.name} is unreadable ({type(exc).__name__}: {exc})") from None
                for c in missing:
                    self._cols[c] = t.column(c).combine_chunks().cast(FILE_SCHEMA.field(c).type)
            self._table = pa.table([self.column(c) for c in FILE_COLUMNS], schema=FILE_SCHEMA)
        return self._table


# -- the file ----------------------------------------------------------------------------------------
def commit_rows(commits: Iterable["Commit"]) -> pa.Table:
    """The commits section rows of `commits`."""
    commits = list(commits)
    return pa.table([
        pa.array([c.version for c in commits], pa.int64()),
        pa.array([c.committed_at.astimezone(timezone.utc) for c in commits], pa.timestamp("us", tz="UTC")),
        pa.array([c.operation for c in commits], pa.string()),
        pa.array([c.token for c in commits], pa.string()),
        pa.array([_json(dict(c.info)) if c.info else None for c in commits], pa.string()),
    ], schema=COMMIT_SCHEMA)


def encode(snapshot: "Snapshot", files: FrozenFiles, commits: pa.Table, *, writer: Mapping[str, Any]) -> bytes:
    """The bytes of the checkpoint of `snapshot` (whose files, flattened, are `files`), with the
    commits section `commits` (every commit up to the snapshot's version the log still has)."""
    af = files.arrow_files()
    fa = af.to_arrow()
    versions = commits.column("version")
    if commits.num_rows == 0 or versions[-1].as_py() != snapshot.version:
        raise ValueError(f"the commits section must end at version {snapshot.version}")
    oldest = versions[0].as_py()
    if commits.num_rows != snapshot.version - oldest + 1:
        raise ValueError("the commits section has a gap")
    times = commits.column("committed_at")
    meta = {
        "checkpoint_format": CHECKPOINT_FORMAT,
        "version": snapshot.version,
        "committed_at": _iso(snapshot.committed_at),
        "max_committed_at": _iso(max(pc.max(times).as_py(), snapshot.committed_at)),
        "files": fa.num_rows,
        "tables": {t: list(r) for t, r in af.ranges.items()},
        "rows": pc.sum(fa.column("rows")).as_py() or 0,
        "bytes": pc.sum(fa.column("bytes")).as_py() or 0,
        "commits": commits.num_rows,
        "oldest_commit": oldest,
        "written_at": _iso(datetime.now(timezone.utc)),
        "writer": dict(writer),
    }
    schema = SCHEMA.with_metadata({META_KEY: _json(meta).encode("utf-8")})
    sink = io.BytesIO()
    w = pq.ParquetWriter(sink, schema, compression="zstd", write_page_checksum=True, write_statistics=False,
                         use_dictionary=["table", "partition", "operation"])
    try:
        # Two sections, each in its own row groups (files first): a reader reads only what it needs.
        for section, cols in ((fa, FILE_COLUMNS), (commits, COMMIT_COLUMNS)):
            if section.num_rows:
                full = {c: section.column(c) for c in cols}
                w.write_table(pa.table([full.get(f.name, pa.nulls(section.num_rows, f.type)) for f in SCHEMA],
                                       schema=schema), row_group_size=max(section.num_rows, 1))
        # A seal: the CRC-32 of the whole file, footer included, computed with the seal's own 16
        # bytes holding a placeholder and then written over it. Opening checks it in a few
        # milliseconds and then decodes only the columns it needs, when it needs them.
        w.add_key_value_metadata({SEAL_KEY.decode(): SEAL_PLACEHOLDER.decode()})
    finally:
        w.close()
    data = bytearray(sink.getvalue())
    pos = _seal_position(data, SEAL_PLACEHOLDER)
    data[pos:pos + 16] = b"%016x" % zlib.crc32(data)
    _check_seal(bytes(data))  # what a reader will check
    return bytes(data)


def _footer_start(data: bytes) -> int:
    if len(data) < 12 or data[-4:] != b"PAR1":
        raise ValueError("not a Parquet file (no PAR1 at the end: truncated?)")
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    if start < 4:
        raise ValueError("bad footer length")
    return start


def _seal_position(data: bytes | bytearray, value: bytes) -> int:
    """Where the seal's 16 bytes are: the value of the SEAL_KEY entry of the footer."""
    key = data.rfind(SEAL_KEY, _footer_start(data))
    pos = data.find(value, key + len(SEAL_KEY), key + len(SEAL_KEY) + 8 + len(value)) if key >= 0 else -1
    if pos < 0:
        raise ValueError("no seal in the footer")
    return pos


def _check_seal(data: bytes, pf: pq.ParquetFile | None = None) -> None:
    """ValueError unless the file's CRC-32 (seal bytes as the placeholder) is the seal."""
    kv = (pf or pq.ParquetFile(arrow_reader(data))).metadata.metadata or {}
    seal = kv.get(SEAL_KEY)
    if seal is None or len(seal) != 16:
        raise ValueError("no seal in the footer")
    pos = _seal_position(data, seal)
    view = memoryview(data)
    crc = zlib.crc32(view[pos + 16:], zlib.crc32(SEAL_PLACEHOLDER, zlib.crc32(view[:pos])))
    if int(seal, 16) != crc:
        raise ValueError("checksum mismatch: the file was damaged")


class CheckpointFile:
    """One parsed checkpoint: its metadata, and each section read on demand from its bytes."""

    def __init__(self, version: int, data: bytes, name: str) -> None:
        self.version = version
        self.name = name
        try:
            _footer_start(data)
            self._pf = pq.ParquetFile(arrow_reader(data), page_checksum_verification=True)
            _check_seal(data, self._pf)
            raw = (self._pf.schema_arrow.metadata or {}).get(META_KEY)
            if raw is None:
                raise ValueError("no warehouse.checkpoint metadata")
            meta = json.loads(raw)
            fmt = int(meta["checkpoint_format"])
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            raise CorruptCheckpoint(self._why(exc)) from None
        if fmt > CHECKPOINT_FORMAT:
            raise UnsupportedFormatVersion(f"{name} was written in checkpoint format {fmt}; this library reads up to "
                                           f"{CHECKPOINT_FORMAT}: upgrade the warehouse package")
        try:
            if int(meta["version"]) != version:
                raise ValueError(f"it claims version {meta['version']}")
            self.meta = meta
            self.committed_at = _parse_ts(meta["committed_at"])
            self.max_committed_at = _parse_ts(meta["max_committed_at"])
            self.n_files, self.n_commits = int(meta["files"]), int(meta["commits"])
            self.oldest_commit = int(meta["oldest_commit"])
            ranges = {str(t): (int(s), int(e)) for t, (s, e) in meta["tables"].items()}
            pos = 0
            for s, e in sorted(ranges.values()):
                if s != pos or e <= s:
                    raise ValueError("its table ranges do not cover the files")
                pos = e
            if pos != self.n_files:
                raise ValueError("its table ranges do not cover the files")
            self.ranges = ranges
            md = self._pf.metadata
            sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
            groups, total = [], 0
            while total < self.n_files and len(groups) < len(sizes):
                total += sizes[len(groups)]
                groups.append(len(groups))
            if total != self.n_files or sum(sizes) != self.n_files + self.n_commits:
                raise ValueError(f"its row groups hold {sum(sizes)} rows, not {self.n_files} files + "
                                 f"{self.n_commits} commits")
            self._file_groups = groups
            self._commit_groups = list(range(len(groups), len(sizes)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptCheckpoint(self._why(exc)) from None

    def _why(self, exc: BaseException) -> str:
        return (f"checkpoint {self.name} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")

    def files(self) -> FrozenFiles:
        """The files section, its columns decoded when first used (the checksum was verified)."""
        cols = Columns(parquet=self._pf, groups=self._file_groups, name=self.name)
        return ArrowFiles(self.n_files, self.ranges, cols)

    def commits(self) -> pa.Table:
        """The commits section: version, committed_at, operation, token, info (JSON text or null)."""
        if self._commit_groups:
            try:
                t = self._pf.read_row_groups(self._commit_groups, columns=list(COMMIT_COLUMNS), use_threads=False)
                t = t.cast(COMMIT_SCHEMA)
            except (OSError, ValueError, pa.ArrowException) as exc:
                raise CorruptCheckpoint(self._why(exc)) from None
        else:
            t = COMMIT_SCHEMA.empty_table()
        v = t.column("version")
        if (t.num_rows != self.n_commits or v.null_count or not t.num_rows or v[0].as_py() != self.oldest_commit
                or v[-1].as_py() != self.version or t.num_rows != self.version - self.oldest_commit + 1):
            raise CorruptCheckpoint(self._why(ValueError("its commits section does not run from "
                                                         f"{self.oldest_commit} to {self.version}")))
        return t

    def snapshot(self) -> "Snapshot":
        from warehouse.manifest import FileMap, Snapshot

        return Snapshot(self.version, self.committed_at, FileMap(self.files()))


def load(store: "Store", version: int) -> CheckpointFile:
    """Read and parse the checkpoint at `version`: FileNotFoundError if absent, CorruptCheckpoint
    if it cannot be read, UnsupportedFormatVersion if a newer library wrote it."""
    name = checkpoint_name(version)
    return CheckpointFile(version, store.read_bytes(name), name)


def read_checkpoint(store: "Store", version: int) -> "Snapshot":
    """The snapshot stored in the checkpoint at `version` (for doctor: compare it with the log).

    Raises FileNotFoundError if there is none, CorruptCheckpoint if it is unreadable.
    """
    return load(store, version).snapshot()


def read_hint(store: "Store") -> int | None:
    """The version `_manifest/_last_checkpoint` names, or None if it is absent or unreadable (a hint only)."""
    try:
        return hint_state(store)[1]
    except Exception:
        return None


def hint_state(store: "Store") -> tuple[bool, int | None]:
    """(whether `_manifest/_last_checkpoint` exists, the version it names or None if unreadable)."""
    try:
        data = store.read_bytes(LAST_CHECKPOINT)
    except FileNotFoundError:
        return False, None
    try:
        v = json.loads(data)["version"]
        return True, (v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None)
    except Exception:
        return True, None


def write_hint(store: "Store", version: int, nbytes: int | None = None) -> None:
    """Overwrite `_manifest/_last_checkpoint` with `version` unless it names a newer checkpoint that exists.

    Besides pointing readers at the newest checkpoint, the hint is the floor of folding: vacuum
    raises it to its checkpoint before deleting any commit below (see `Log.fold_commits`)."""
    current = read_hint(store)
    if current is not None and current > version and store.exists(checkpoint_name(current)):
        return
    doc: dict[str, Any] = {"version": version, "written_at": _iso(datetime.now(timezone.utc))}
    if nbytes is not None:
        doc["bytes"] = nbytes
    store.write_bytes(LAST_CHECKPOINT, _json(doc).encode("utf-8"))
