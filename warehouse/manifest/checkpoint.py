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

In memory a checkpoint's files section becomes a `filesets.ArrowFiles`, its columns decoded when
first needed: opening a warehouse of 100,000 files checks the seal and builds no object per file.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from warehouse.core.errors import CorruptCheckpoint, UnsupportedFormatVersion
from warehouse.core.storage import Store, arrow_reader
from warehouse.manifest.filesets import FILE_COLUMNS, FILE_SCHEMA, ArrowFiles, Columns, FrozenFiles
from warehouse.manifest.model import CHECKPOINT_SUFFIX, LAST_CHECKPOINT, MANIFEST_DIR, Commit, dump_json, iso, parse_iso
from warehouse.manifest.snapshot import FileMap, Snapshot

__all__ = [
    "CHECKPOINT_FORMAT",
    "COMMIT_COLUMNS",
    "COMMIT_SCHEMA",
    "FILE_COLUMNS",
    "FILE_SCHEMA",
    "LAST_CHECKPOINT",
    "SCHEMA",
    "SUFFIX",
    "CheckpointFile",
    "CheckpointWarning",
    "CorruptCheckpoint",
    "checkpoint_name",
    "commit_rows",
    "encode",
    "hint_state",
    "load",
    "read_checkpoint",
    "read_hint",
    "warn",
    "write_hint",
]

log = logging.getLogger("warehouse.manifest")

#: The checkpoint layout this library writes and the newest it reads.
CHECKPOINT_FORMAT = 1
META_KEY = b"warehouse.checkpoint"
SEAL_KEY = b"warehouse.seal"
SEAL_PLACEHOLDER = b"~" * 16
SUFFIX = CHECKPOINT_SUFFIX

COMMIT_COLUMNS = ("version", "committed_at", "operation", "token", "info")
#: Both sections in one schema: the files section's columns, then the commits section's others.
SCHEMA = pa.schema(
    [
        *FILE_SCHEMA,
        ("committed_at", pa.timestamp("us", tz="UTC")),
        ("operation", pa.string()),
        ("token", pa.string()),
        ("info", pa.string()),
    ]
)
COMMIT_SCHEMA = pa.schema([SCHEMA.field(c) for c in COMMIT_COLUMNS])


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (unreadable) and an older one or the full log used instead."""


def warn(message: str) -> None:
    """Log `message` and issue it as a CheckpointWarning (an unreadable checkpoint was skipped)."""
    log.warning("%s", message)
    warnings.warn(message, CheckpointWarning, stacklevel=3)


def checkpoint_name(version: int) -> str:
    """The path of the checkpoint file of `version`, relative to the warehouse root."""
    return f"{MANIFEST_DIR}/{version:020d}{SUFFIX}"


# -- the file ----------------------------------------------------------------------------------------
def commit_rows(commits: Iterable[Commit]) -> pa.Table:
    """The commits section rows of `commits`."""
    commits = list(commits)
    return pa.table(
        [
            pa.array([c.version for c in commits], pa.int64()),
            pa.array([c.committed_at.astimezone(UTC) for c in commits], pa.timestamp("us", tz="UTC")),
            pa.array([c.operation for c in commits], pa.string()),
            pa.array([c.token for c in commits], pa.string()),
            pa.array([dump_json(dict(c.info)) if c.info else None for c in commits], pa.string()),
        ],
        schema=COMMIT_SCHEMA,
    )


def encode(snapshot: Snapshot, files: FrozenFiles, commits: pa.Table, *, writer: Mapping[str, Any]) -> bytes:
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
        "committed_at": iso(snapshot.committed_at),
        "max_committed_at": iso(max(pc.max(times).as_py(), snapshot.committed_at)),
        "files": fa.num_rows,
        "tables": {t: list(r) for t, r in af.ranges.items()},
        "rows": pc.sum(fa.column("rows")).as_py() or 0,
        "bytes": pc.sum(fa.column("bytes")).as_py() or 0,
        "commits": commits.num_rows,
        "oldest_commit": oldest,
        "written_at": iso(datetime.now(UTC)),
        "writer": dict(writer),
    }
    schema = SCHEMA.with_metadata({META_KEY: dump_json(meta).encode("utf-8")})
    sink = io.BytesIO()
    w = pq.ParquetWriter(
        sink,
        schema,
        compression="zstd",
        write_page_checksum=True,
        write_statistics=False,
        use_dictionary=["table", "partition", "operation"],
    )
    try:
        # Two sections, each in its own row groups (files first): a reader reads only what it needs.
        for section, cols in ((fa, FILE_COLUMNS), (commits, COMMIT_COLUMNS)):
            if section.num_rows:
                full = {c: section.column(c) for c in cols}
                w.write_table(
                    pa.table([full.get(f.name, pa.nulls(section.num_rows, f.type)) for f in SCHEMA], schema=schema),
                    row_group_size=max(section.num_rows, 1),
                )
        # A seal: the CRC-32 of the whole file, footer included, computed with the seal's own 16
        # bytes holding a placeholder and then written over it. Opening checks it in a few
        # milliseconds and then decodes only the columns it needs, when it needs them.
        w.add_key_value_metadata({SEAL_KEY.decode(): SEAL_PLACEHOLDER.decode()})
    finally:
        w.close()
    data = bytearray(sink.getvalue())
    pos = _seal_position(data, SEAL_PLACEHOLDER)
    data[pos : pos + 16] = b"%016x" % zlib.crc32(data)
    _check_seal(bytes(data))  # what a reader will check
    return bytes(data)


def _footer_start(data: bytes | bytearray) -> int:
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
    crc = zlib.crc32(view[pos + 16 :], zlib.crc32(SEAL_PLACEHOLDER, zlib.crc32(view[:pos])))
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
            raise UnsupportedFormatVersion(
                f"{name} was written in checkpoint format {fmt}; this library reads up to "
                f"{CHECKPOINT_FORMAT}: upgrade the warehouse package"
            )
        try:
            if int(meta["version"]) != version:
                raise ValueError(f"it claims version {meta['version']}")
            self.meta = meta
            self.committed_at = parse_iso(meta["committed_at"])
            self.max_committed_at = parse_iso(meta["max_committed_at"])
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
            groups: list[int] = []
            total = 0
            while total < self.n_files and len(groups) < len(sizes):
                total += sizes[len(groups)]
                groups.append(len(groups))
            if total != self.n_files or sum(sizes) != self.n_files + self.n_commits:
                raise ValueError(
                    f"its row groups hold {sum(sizes)} rows, not {self.n_files} files + {self.n_commits} commits"
                )
            self._file_groups = groups
            self._commit_groups = list(range(len(groups), len(sizes)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptCheckpoint(self._why(exc)) from None

    def _why(self, exc: BaseException) -> str:
        return f"checkpoint {self.name} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"

    def files(self) -> ArrowFiles:
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
        if (
            t.num_rows != self.n_commits
            or v.null_count
            or not t.num_rows
            or v[0].as_py() != self.oldest_commit
            or v[-1].as_py() != self.version
            or t.num_rows != self.version - self.oldest_commit + 1
        ):
            raise CorruptCheckpoint(
                self._why(ValueError(f"its commits section does not run from {self.oldest_commit} to {self.version}"))
            )
        return t

    def snapshot(self) -> Snapshot:
        """The snapshot at this checkpoint's version (its files section decoded when first used)."""
        return Snapshot(self.version, self.committed_at, FileMap(self.files()))


def load(store: Store, version: int) -> CheckpointFile:
    """Read and parse the checkpoint at `version`: FileNotFoundError if absent, CorruptCheckpoint
    if it cannot be read, UnsupportedFormatVersion if a newer library wrote it."""
    name = checkpoint_name(version)
    return CheckpointFile(version, store.read_bytes(name), name)


def read_checkpoint(store: Store, version: int) -> Snapshot:
    """The snapshot stored in the checkpoint at `version` (for doctor: compare it with the log).

    Raises FileNotFoundError if there is none, CorruptCheckpoint if it is unreadable.
    """
    return load(store, version).snapshot()


def read_hint(store: Store) -> int | None:
    """The version `_manifest/_last_checkpoint` names, or None if it is absent or unreadable (a hint only)."""
    try:
        return hint_state(store)[1]
    except Exception:
        return None


def hint_state(store: Store) -> tuple[bool, int | None]:
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


def write_hint(store: Store, version: int, nbytes: int | None = None) -> None:
    """Overwrite `_manifest/_last_checkpoint` with `version` unless it names a newer checkpoint that exists.

    Besides pointing readers at the newest checkpoint, the hint is the floor of folding: vacuum
    raises it to its checkpoint before deleting any commit below (see `Log.fold_commits`)."""
    current = read_hint(store)
    if current is not None and current > version and store.exists(checkpoint_name(current)):
        return
    doc: dict[str, Any] = {"version": version, "written_at": iso(datetime.now(UTC))}
    if nbytes is not None:
        doc["bytes"] = nbytes
    store.write_bytes(LAST_CHECKPOINT, dump_json(doc).encode("utf-8"))
