"""The on-disk format of the writer's write-ahead log: segment files, their lines, and the directory lock.

What the WAL is for, and how recovery commits a crashed writer's records exactly once, is in
`warehouse.write.wal`; this module only writes and reads the files.

A segment is JSON Lines (orjson: a tenth of the cost of pickling datetimes). Line 1 is the header
`["header", {writer, warehouse, run configuration, column names of every table, version seen}]`;
then one line per `add_*` call, `["rows", [[table, [row, ...]], ...]]` with the rows it buffered
(all tables together: an execution is never replayed without its messages); then at most one
`["take", token, version]`. Rows are the writer's tuples, in the column order the header names;
values are decoded by the table schema on replay (timestamps from RFC 3339 text, event times as
integer microseconds, maps from [key, value] pairs), so they round-trip exactly.

A crash mid-append leaves a torn tail: bytes after the last newline (every line is written whole,
newline last, with one write(2)); `Segment.read` counts it and reads on. A whole line that is not a
valid record is damage: `Segment.read` lists it (by number) and reads the lines after it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from warehouse.core.errors import WalError, WalLocked, WarehouseError
from warehouse.core.schemas import catalog

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: The WAL format this module writes and reads.
WAL_FORMAT = 1
SYNC_POLICIES = ("always", "flush", "never")
LOCK_NAME = "LOCK"
#: Where recovery moves segments with damaged lines (kept for a person to inspect, never deleted).
DAMAGED_DIR = "damaged"
#: A segment file name: <writer_id>-<seq:08d>.wal (groups: writer id, batch number).
SEGMENT_NAME = re.compile(r"^([0-9a-f]{32})-(\d{8})\.wal$")
_dumps = orjson.dumps
_JSON = orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def segment_name(writer_id: str, seq: int) -> str:
    """The file name of batch `seq` of writer `writer_id`."""
    return f"{writer_id}-{seq:08d}.wal"


def store_id(wh: Engine) -> str:
    """The warehouse a WAL belongs to: protocol and absolute root (a relative local URL and its
    absolute form are the same warehouse)."""
    return f"{wh.store.protocol}://{wh.store.root}"


def encode_line(payload: Any) -> bytes:
    """One WAL line: `payload` as JSON, newline last (raises TypeError for a value JSON cannot hold)."""
    return _dumps(payload, option=_JSON | orjson.OPT_APPEND_NEWLINE)


@dataclass
class Segment:
    """One segment file as read back: its header, record lines (decoded), take line, and torn tail."""

    path: Path
    writer_id: str
    seq: int
    header: dict[str, Any] | None = None
    records: list[tuple[tuple[str, list[tuple]], ...]] = field(default_factory=list)
    take: tuple[str, int] | None = None  # (token, version seen when the batch was taken)
    torn_bytes: int = 0  # bytes after the last whole line (a crash mid-append)
    damaged: list[tuple[int, str]] = field(default_factory=list)  # (1-based line, why) of whole lines unread
    record_lines: list[int] = field(default_factory=list)  # the line number of each of `records`
    unplaced: int = 0  # record lines after a damaged header (their columns and partition are unknown)

    @property
    def token(self) -> str:
        return f"{self.writer_id}:{self.seq}"

    @property
    def since(self) -> int:
        """A version before any commit of this segment's batch: where to look for its token."""
        if self.take is not None:
            return self.take[1]
        return int(self.header["version"]) if self.header else -1

    @classmethod
    def read(cls, path: Path) -> Segment:
        """Read a segment: every whole line that is a valid record, the damaged whole lines (by
        number), and the torn tail after the last newline (a crash mid-append)."""
        m = SEGMENT_NAME.match(path.name)
        if m is None:
            raise WalError(f"{path} is not a WAL segment name")
        seg = cls(path, m.group(1), int(m.group(2)))
        data = path.read_bytes()
        pos, end, lineno = 0, len(data), 0
        decoders: dict[str, Callable[[list[Any]], list[tuple]]] = {}
        while pos < end:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            lineno += 1
            try:
                seg._parse(orjson.loads(data[pos:nl]), lineno, decoders)
            except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError, WarehouseError) as exc:
                # A whole line is never the product of a crash (it ends with the newline written
                # last): the line is damaged. The lines after it are still read.
                seg.damaged.append((lineno, describe_error(exc)))
            pos = nl + 1
        seg.torn_bytes = end - pos
        return seg

    def _parse(self, line: Any, lineno: int, decoders: dict[str, Callable[[list[Any]], list[tuple]]]) -> None:
        kind = line[0]
        if kind == "header" and lineno == 1:
            header = line[1]
            for key, kind_of in _HEADER_FIELDS.items():
                if not isinstance(header.get(key), kind_of):
                    raise ValueError(f"the header's {key!r} is missing or not a {kind_of.__name__}")
            self.header = header
        elif kind == "rows" and lineno > 1:
            if self.header is None:
                self.unplaced += 1  # readable, but which table columns and partition? Kept for a person.
                return
            columns = self.header["columns"]
            groups = []
            for table, rows in line[1]:
                if table not in decoders:
                    decoders[table] = _decoder(table, columns.get(table))
                groups.append((table, decoders[table](rows)))
            self.records.append(tuple(groups))
            self.record_lines.append(lineno)
        elif kind == "take" and lineno > 1:
            self.take = (str(line[1]), int(line[2]))
        else:
            raise ValueError(f"not a WAL line: {str(line)[:60]}")

    @property
    def unreadable(self) -> bool:
        """True if whole lines of it could not be read (damage rather than a crash)."""
        return bool(self.damaged)


#: What a header must hold for its records to be recovered.
_HEADER_FIELDS: dict[str, type] = {
    "writer_id": str,
    "warehouse": str,
    "url": str,
    "config": dict,
    "partition": dict,
    "version": int,
    "created_at": str,
    "columns": dict,
}


def describe_error(exc: BaseException) -> str:
    """A short one-line account of `exc`, for the list of damaged lines."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:120]


def lock_dir(directory: Path, writer_id: str) -> int:
    """flock `directory`'s LOCK file for `writer_id` (released by the OS if this process dies), noting
    who holds it; returns the open descriptor (closing it releases the lock). Raises WalLocked if
    another writer holds it, WalError if the filesystem cannot lock."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            holder = {}
        os.close(fd)
        who = (
            f"writer {holder.get('writer_id', '?')[:8]} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')})"
            if holder
            else "another writer"
        )
        raise WalLocked(
            f"the WAL directory {directory} is in use by {who}; a WAL directory serves one writer "
            "at a time: close that writer first, or give this one its own wal= directory"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise WalError(f"cannot lock the WAL directory {directory} ({exc}); it must be on a local filesystem") from None
    note = json.dumps(
        {
            "writer_id": writer_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(),
        }
    ).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, note, 0)
    return fd


def _timestamp(v: Any) -> Any:
    return datetime.fromisoformat(v) if v.__class__ is str else v  # event times stay integer microseconds


def _map(v: Any) -> Any:
    return None if v is None else [tuple(kv) for kv in v]


_DECODE: dict[str, Callable[[Any], Any]] = {"timestamp": _timestamp, "map<string,float64>": _map}


def _decoder(table: str, columns: list[str] | None) -> Callable[[list[Any]], list[tuple]]:
    """Rows as logged (JSON arrays in the order of `columns`) -> row tuples of the table's current
    schema, values decoded by column type; a column added since the WAL was written reads null."""
    npart = len(catalog().partition_columns)
    current = catalog().table(table).columns[npart:]
    index = {name: i for i, name in enumerate(columns if columns is not None else [c.name for c in current])}
    picks = [(index.get(c.name), _DECODE.get(c.type)) for c in current]

    def decode(rows: list[Any]) -> list[tuple]:
        return [tuple(None if i is None else (r[i] if fn is None else fn(r[i])) for i, fn in picks) for r in rows]

    return decode


def read_dir(path: str | os.PathLike[str]) -> list[Segment]:
    """Every segment in a WAL directory, read (for inspection and tests; takes no lock)."""
    d = Path(path)
    return [Segment.read(p) for p in sorted(d.iterdir()) if SEGMENT_NAME.match(p.name)] if d.is_dir() else []
