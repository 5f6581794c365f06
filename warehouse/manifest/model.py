"""The manifest's plain data: the commit file format (`Commit`, `DataFile`, `RemovedFile`), its
constants, and the clocks that bound how long a data file may wait for its commit.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from warehouse.core.errors import CorruptCommit, StaleDataFile, UnsupportedFormatVersion

#: The on-disk format this library writes and the newest it can read.
FORMAT_VERSION = 1
MANIFEST_DIR = "_manifest"
CHECKPOINT_SUFFIX = ".checkpoint.parquet"
LAST_CHECKPOINT = f"{MANIFEST_DIR}/_last_checkpoint"

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
    """The path of the commit file of `version`, relative to the warehouse root."""
    return f"{MANIFEST_DIR}/{version:020d}.json"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


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


def iso(ts: datetime) -> str:
    """`ts` in UTC as ISO 8601 text ending in "Z", as the manifest files store times."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The time `iso` wrote as `text`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dump_json(value: Any) -> str:
    """`value` as compact JSON text (no spaces, non-ASCII kept), as the manifest files store it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


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
        return {
            "table": self.table,
            "path": self.path,
            "partition": dict(self.partition),
            "rows": self.rows,
            "bytes": self.bytes,
            "stats": dict(self.stats),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DataFile:
        return cls(d["table"], d["path"], d.get("partition", {}), int(d["rows"]), int(d["bytes"]), d.get("stats", {}))


@dataclass(frozen=True)
class RemovedFile:
    """One data file a commit removes from the snapshot."""

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
            "committed_at": iso(self.committed_at),
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
        return dump_json(doc).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str) -> Commit:
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
                committed_at=parse_iso(doc["committed_at"]),
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


def writer_info(writer_id: str) -> dict[str, Any]:
    """The `writer` of a commit: this host, this process and `writer_id`."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "writer_id": writer_id}


def check_deadline(staged: list[tuple[Staged, str]]) -> None:
    """Raise StaleDataFile if one of the files a commit adds (when it was staged, its path) is older
    than COMMIT_DEADLINE (both read at each call: tests and the torture run shorten them)."""
    if not staged:
        return
    deadline = COMMIT_DEADLINE.total_seconds()
    age, path = max((staged_age(s), p) for s, p in staged)
    if age > deadline:
        raise StaleDataFile(
            f"{path} began to be written {age:.0f} s ago, more than the commit deadline ({deadline:.0f} s): a "
            f"vacuum (orphan window at least {MIN_ORPHAN_WINDOW}) may have deleted it as an orphan, so it is not "
            "committed; nothing was: write the data again"
        )
