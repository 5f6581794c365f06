"""The manifest: an append-only log of JSON commits, and the snapshots replayed from it.

Commits are plain data (frozen dataclasses); `replay` is a pure function from commits to a
snapshot. `Log` is the only code that touches `_manifest/`: it lists, reads and creates commit
files, with create-if-absent so that exactly one writer wins each version.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from .errors import CommitConflict, CorruptCommit, UnsupportedFormatVersion, VersionNotFound, WarehouseNotFound
from .storage import Store

#: The on-disk format this library writes and the newest it can read.
FORMAT_VERSION = 1
MANIFEST_DIR = "_manifest"
_COMMIT_NAME = re.compile(r"^(\d{20})\.json$")

OPERATIONS = frozenset({"create", "append", "compact", "vacuum", "sync", "import", "delete"})


def commit_name(version: int) -> str:
    return f"{MANIFEST_DIR}/{version:020d}.json"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


@dataclass(frozen=True)
class Snapshot:
    """The set of active data files at one version."""

    version: int
    committed_at: datetime
    files: Mapping[str, DataFile]  # path -> file; read-only

    def table_files(self, table: str, where: Mapping[str, str] | None = None) -> list[DataFile]:
        """Active files of `table`, optionally only those whose partition matches `where`."""
        out = [f for f in self.files.values() if f.table == table]
        if where:
            out = [f for f in out if all(f.partition.get(k) == v for k, v in where.items())]
        return out


def replay(commits: Iterable[Commit], base: Snapshot | None = None) -> Snapshot:
    """Apply commits in order to `base` (or to the empty warehouse); a pure function."""
    files: dict[str, DataFile] = dict(base.files) if base else {}
    version, ts = (base.version, base.committed_at) if base else (-1, utcnow())
    for c in commits:
        if c.version != version + 1:
            raise CorruptCommit(f"manifest commit {version + 1} is missing (found {c.version} after {version})")
        for r in c.remove:
            files.pop(r.path, None)
        for a in c.add:
            files[a.path] = a
        version, ts = c.version, c.committed_at
    return Snapshot(version, ts, MappingProxyType(files))


def writer_info(writer_id: str) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "writer_id": writer_id}


class Log:
    """Reads and appends the commit log under `<root>/_manifest/`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reading ---------------------------------------------------------------------------------
    def versions(self) -> list[int]:
        """Every committed version, ascending (one listing of `_manifest/`)."""
        out = []
        for name in self.store.list_names(MANIFEST_DIR):
            m = _COMMIT_NAME.match(name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

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
        names = [commit_name(v) for v in versions]
        blobs = self.store.read_many(names)
        out = []
        for v, n in zip(versions, names):
            data = blobs.get(n)
            if data is None:
                raise CorruptCommit(f"manifest file {n} is missing from {self.store.url}; the log has a gap: "
                                    "restore it from a backup")
            commit = Commit.from_bytes(data, name=n)
            if commit.version != v:
                raise CorruptCommit(f"manifest file {n} claims version {commit.version}")
            out.append(commit)
        return out

    def commits(self, upto: int | None = None) -> list[Commit]:
        """All commits from 0 to `upto` (default: the latest)."""
        versions = self.versions()
        if not versions:
            raise WarehouseNotFound(f"no warehouse at {self.store.url!r} (no {MANIFEST_DIR}/); open it with create=True")
        if upto is not None:
            if upto < 0 or upto > versions[-1]:
                raise VersionNotFound(f"version {upto} does not exist; the latest version is {versions[-1]}")
            versions = [v for v in versions if v <= upto]
        return self.read_many(versions)

    def snapshot(self, version: int | None = None, as_of: datetime | None = None) -> Snapshot:
        """Replay the log up to `version`, or up to the last commit at or before `as_of`."""
        commits = self.commits(version)
        if as_of is not None:
            if as_of.tzinfo is None:
                as_of = as_of.replace(tzinfo=timezone.utc)
            commits = [c for c in commits if c.committed_at <= as_of]
            if not commits:
                raise VersionNotFound(f"the warehouse did not exist yet at {_iso(as_of)}")
        return replay(commits)

    def refresh(self, snap: Snapshot) -> tuple[Snapshot, list[Commit]]:
        """Read only the commits after `snap` (probing version by version) and apply them."""
        new: list[Commit] = []
        v = snap.version + 1
        while (c := self.read(v)) is not None:
            new.append(c)
            v += 1
        return (replay(new, snap) if new else snap), new

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
    ) -> Commit:
        """Commit `add`/`remove` as the version after the latest, retrying on conflict.

        If a commit carrying `token` already exists after version `token_since` (a retry of a commit
        whose acknowledgement was lost), that commit is returned and nothing new is written; the same
        holds within one call, when the store's answer to our create was lost and its retry was refused
        because the object exists: the version is read back and its token compared. Without a `token`
        one is made up for the call. Commits of other writers read on the way are appended to `seen`
        (if given), so that the caller can bring its snapshot up to date without reading them again.
        Raises CommitConflict if a file to remove was removed by someone else meanwhile, or if
        `max_attempts` versions were all taken by other writers.
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
        if token is not None and token_since is not None and token_since < base.version:
            for c in self.read_many(list(range(token_since + 1, base.version + 1))):
                if c.token == token:
                    return c
        for attempt in range(max_attempts):
            commit = Commit(version, utcnow(), operation, writer, token, add, remove, info=info or {})
            if self.store.put_if_absent(commit_name(version), commit.to_bytes()):
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
            if seen is not None:
                seen.append(other)
            lost = removing.intersection(r.path for r in other.remove)
            if lost:
                raise CommitConflict(
                    f"version {other.version} ({other.operation}) already removed {sorted(lost)[0]}; "
                    "reload the warehouse and retry"
                )
            version += 1
        raise CommitConflict(f"gave up after {max_attempts} attempts to commit; the log is too contended")
