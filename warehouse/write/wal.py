"""The optional write-ahead log of a writer: buffered records survive a crash of the writing process.

`wh.writer(..., wal="path/")` appends every record to a local WAL file before `add_*` returns. The
WAL is cut into segments, one per batch (one future commit) of one writer run:

    <wal>/LOCK                               flock'ed by the writer using the directory
    <wal>/<writer_id>-<seq:08d>.wal          the records of batch <seq> of that writer run

Batch <seq> of a writer is committed with the idempotency token `<writer_id>:<seq>`, so each
segment knows the token of the commit its records go into. When a flush takes the buffers, the
current segment gets a `take` line (token, the version seen then) and the next records go to a
new segment; when the batch's commit lands, its segment is deleted. After a crash, the next writer
opened on the same directory first looks for each segment's token in the log (after the version
the segment saw: `Log.commit`'s token_since rule) and commits, with that same token, the segments
whose commit never landed. So every acknowledged record is committed exactly once, whether the
crash came before a flush, during it, or after its commit and before the segment was deleted, and
even if the recovering writer crashes in turn.

The segment files (their lines, how rows are encoded, the directory lock) are written and read by
`warehouse.write.wal_format`; this module is the WAL a writer appends to, and its recovery.

A crash mid-append leaves a torn tail: bytes after the last newline (every line is written whole,
newline last, with one write(2)). That tail is ignored: its `add_*` never returned. Anything else
that cannot be read is damage, not a crash: a whole line (newline-terminated) that is not a valid
record, or a damaged header (without it the records cannot be placed). Recovery then commits every
record that can be read, moves the segment unchanged into `<wal>/damaged/` (never deleted: a person
decides what the unreadable lines held), and raises WalError naming the segment and its damaged
lines. The next writer opens normally and logs a warning while `damaged/` holds segments.

Durability (`wal_sync`): every record reaches the OS with one write(2) before `add_*` returns,
which survives the process being killed (kill -9, the OOM killer, a segfault). Against an OS crash
or power loss: "always" fdatasyncs after every result record (events ride along with the next);
"flush" (default) fdatasyncs a segment when its batch is taken for a flush, so a batch being
committed is durable and only records added since the last flush can be lost; "never" leaves it to
the OS. Whatever the policy, a repeated commit is impossible: recovery asks the log.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from warehouse.core.buffer import rows_to_batch
from warehouse.core.errors import SchemaMismatch, WalError, WalLocked, WarehouseError  # noqa: F401 (re-exported)
from warehouse.core.schemas import catalog
from warehouse.manifest import Commit, writer_info
from warehouse.write.wal_format import (  # noqa: F401 (re-exported: the format's names stay importable from here)
    DAMAGED_DIR,
    LOCK_NAME,
    SEGMENT_NAME,
    SYNC_POLICIES,
    WAL_FORMAT,
    Segment,
    describe_error,
    encode_line,
    lock_dir,
    read_dir,
    segment_name,
    store_id,
)

if TYPE_CHECKING:
    from warehouse.core.config import RunConfig
    from warehouse.engine.engine import Engine

log = logging.getLogger("warehouse")


class WriteAheadLog:
    """The WAL of one writer: a locked directory, the open segment, and the sealed ones.

    Created by `Writer(..., wal=path)` before the writer registers its config; recovers what a
    crashed writer left in the directory (see the module docstring) before returning. Every method
    but `recover` is called by the writer under its buffer lock or flush lock.
    """

    def __init__(
        self, path: str | os.PathLike[str], wh: Engine, writer_id: str, config: RunConfig, *, sync: str = "flush"
    ) -> None:
        if sync not in SYNC_POLICIES:
            raise WalError(f"wal_sync must be one of {', '.join(SYNC_POLICIES)}, got {sync!r}")
        self.dir = Path(path).expanduser().absolute()
        self.wh = wh
        self.writer_id = writer_id
        self.config = config
        self.sync = sync
        self.recovered: list[Commit] = []  # the commits made by recovery (new or found in the log)
        self._fd = -1
        self._seq = 0
        self._rows = 0  # record lines in the open segment
        self._sealed: dict[str, tuple[int, Path]] = {}  # token -> (fd, path) of taken segments
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WalError(f"cannot create the WAL directory {self.dir}: {exc}") from None
        self._lock_fd = lock_dir(self.dir, self.writer_id)
        try:
            self.recover()
            self._open_segment(1, wh.version)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for fd, _ in self._sealed.values():
            if fd >= 0:
                os.close(fd)
        self._sealed.clear()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    # -- appending (under the writer's buffer lock) ------------------------------------------------
    def _open_segment(self, seq: int, version: int) -> None:
        self._seq, self._rows = seq, 0
        path = self.dir / segment_name(self.writer_id, seq)
        npart = len(catalog().partition_columns)
        header = {
            "format": WAL_FORMAT,
            "writer_id": self.writer_id,
            "seq": seq,
            "warehouse": store_id(self.wh),
            "url": self.wh.url,
            "config": self.config.as_dict(),
            "partition": dict(self.config.partition),
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "columns": {name: [c.name for c in t.columns[npart:]] for name, t in catalog().tables.items()},
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._size = 0
        self._write(encode_line(("header", header)))
        if self.sync == "always":
            os.fdatasync(self._fd)
            self._sync_dir()

    def _write(self, line: bytes) -> None:
        """Append one whole line; on failure, cut the file back so that no torn line is left mid-log."""
        try:
            n = os.write(self._fd, line)
            if n < len(line):  # a short write (a full disk, a signal): finish it or fail
                view = memoryview(line)[n:]
                while view:
                    view = view[os.write(self._fd, view) :]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise WalError(f"cannot append to the WAL in {self.dir}: {exc}") from None
        self._size += len(line)

    def append(self, groups: tuple[tuple[str, list[tuple]], ...], *, durable: bool = True) -> None:
        """Log the rows one `add_*` call buffers: ((table, rows), ...). `durable=False` (events)
        never waits for an fdatasync. Raises WalError (nothing logged) if the WAL cannot be written,
        InvalidRecord for a value JSON cannot hold."""
        try:
            line = encode_line(("rows", groups))
        except TypeError as exc:  # validation lets nothing through that JSON cannot hold; be explicit anyway
            from warehouse.core.errors import InvalidRecord

            raise InvalidRecord(f"a value cannot be written to the WAL: {exc}") from None
        self._write(line)
        self._rows += 1
        if durable and self.sync == "always":
            os.fdatasync(self._fd)

    def take(self, token: str, version: int) -> None:
        """The writer took its buffers for the batch `token` (seeing `version`): seal the open
        segment with a take line and start the next one."""
        self._write(encode_line(("take", token, version)))
        self._sealed[token] = (self._fd, self.dir / segment_name(self.writer_id, self._seq))
        self._fd = -1
        self._open_segment(self._seq + 1, version)

    # -- flushing (under the writer's flush lock) ----------------------------------------------------
    def before_commit(self, token: str) -> None:
        """Make a taken segment durable (policies always and flush) before its batch is committed."""
        sealed = self._sealed.get(token)
        if sealed is None or sealed[0] < 0:
            return
        fd, path = sealed
        try:
            if self.sync != "never":
                os.fdatasync(fd)
                self._sync_dir()
        finally:
            os.close(fd)
            self._sealed[token] = (-1, path)

    def committed(self, token: str) -> None:
        """The batch `token` is committed: its segment is no longer needed."""
        self.before_commit(token)  # closes it if still open
        _, path = self._sealed.pop(token, (-1, None))
        if path is not None:
            path.unlink(missing_ok=True)

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Release the directory: the open segment is deleted if it holds no records (a writer that
        closed after committing everything leaves an empty WAL); uncommitted segments stay."""
        if self._lock_fd < 0:
            return
        if self._fd >= 0 and self._rows == 0:
            os.close(self._fd)
            self._fd = -1
            (self.dir / segment_name(self.writer_id, self._seq)).unlink(missing_ok=True)
        self._release()

    @property
    def pending_segments(self) -> list[Path]:
        """Segment files in the directory (the writer's own included)."""
        return sorted(p for p in self.dir.iterdir() if SEGMENT_NAME.match(p.name))

    # -- recovery ----------------------------------------------------------------------------------
    def recover(self) -> list[Commit]:
        """Commit, exactly once, the records that crashed writers left in the directory, then delete
        their segments. Returns the commits that hold them (made now or found in the log).

        A segment with damaged lines (see the module docstring) has its readable records committed
        too, and is then moved to `<wal>/damaged/` instead of deleted; once every segment is done,
        WalError names each such segment and its damaged lines. Raises WalError if a segment belongs
        to another warehouse (nothing is changed then), and the storage errors of the commits (the
        segments stay for the next attempt).
        """
        kept = self.damaged_segments
        if kept:
            log.warning(
                "WAL %s: %d damaged segment(s) set aside in %s await a decision: %s",
                self.dir,
                len(kept),
                self.dir / DAMAGED_DIR,
                ", ".join(p.name for p in kept[:5]),
            )
        segments = [Segment.read(p) for p in self.pending_segments if not p.name.startswith(self.writer_id)]
        newer = [s for s in segments if s.header and int(s.header.get("format", 0)) > WAL_FORMAT]
        if newer:
            header = newer[0].header or {}
            raise WalError(
                f"{newer[0].path} was written by a newer warehouse library (WAL format "
                f"{header['format']}; this one reads {WAL_FORMAT}): upgrade the package"
            )
        foreign = [s for s in segments if s.header and s.records and s.header["warehouse"] != store_id(self.wh)]
        if foreign:
            s = foreign[0]
            header = s.header or {}
            raise WalError(
                f"the WAL directory {self.dir} holds {sum(len(f.records) for f in foreign)} unflushed record(s) of warehouse "
                f"{header['url']!r} (writer {s.writer_id[:8]}), not of {self.wh.url!r}; open a writer on that "
                "warehouse with this wal= to commit them, or move the directory away to discard them"
            )
        # Oldest run first; within a run, batch order (a retried batch precedes the next one).
        segments.sort(key=lambda s: (s.header["created_at"] if s.header else "", s.writer_id, s.seq))
        damage: list[str] = []
        for seg in segments:
            if seg.torn_bytes:
                log.warning(
                    "WAL segment %s ends with %d torn byte(s) (a crash mid-append); ignored",
                    seg.path.name,
                    seg.torn_bytes,
                )
            commit = None
            if seg.records or seg.damaged:
                self.wh.refresh()
                commit = _find_token(self.wh, seg.token, seg.since)
                if commit is not None and seg.damaged:
                    # The batch was committed from the crashed writer's memory: every record of it,
                    # the damaged lines' too, is in the warehouse. Nothing is left to decide.
                    log.warning(
                        "WAL segment %s has damaged line(s) %s, but its batch was committed in version %d "
                        "before the crash: nothing is lost; deleted",
                        seg.path.name,
                        ", ".join(str(n) for n, _ in seg.damaged),
                        commit.version,
                    )
                    seg.damaged.clear()
                if commit is None and seg.records and seg.header is not None:
                    try:
                        commit = self._recover_segment(seg)
                    except _DamagedHeader as exc:
                        seg.damaged.insert(0, (1, str(exc)))
                        seg.header, seg.unplaced = None, len(seg.records)
            if commit is not None:
                self.recovered.append(commit)
            if seg.damaged:
                damage.append(self._set_aside(seg, commit))
            else:
                seg.path.unlink(missing_ok=True)
        if self.recovered:
            log.info(
                "WAL %s: recovered %d crashed batch(es) in version(s) %s",
                self.dir,
                len(self.recovered),
                ", ".join(str(c.version) for c in self.recovered),
            )
        if damage:
            raise WalError(
                f"the WAL {self.dir} had damaged lines (whole lines that are not valid records: damage, not a "
                f"crash's torn tail): {'; '.join(damage)}. Every readable record was committed; the damaged "
                f"segment(s) were moved unchanged to {self.dir / DAMAGED_DIR} and are kept: inspect the lines named, "
                "re-add by hand (with a writer) what they held if it matters, then delete the file(s). A writer "
                "can use this WAL directory again now"
            )
        return self.recovered

    @property
    def damaged_segments(self) -> list[Path]:
        """Segments that recovery set aside in `<wal>/damaged/` (damaged lines), awaiting a person."""
        d = self.dir / DAMAGED_DIR
        return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []

    def _set_aside(self, seg: Segment, commit: Commit | None) -> str:
        """Move a damaged segment, unchanged, into `<wal>/damaged/`; returns what to tell a person."""
        d = self.dir / DAMAGED_DIR
        d.mkdir(exist_ok=True)
        target = d / seg.path.name
        n = 1
        while target.exists():  # never over another kept file
            n += 1
            target = d / f"{seg.path.name}.{n}"
        os.replace(seg.path, target)
        self._sync_dir()
        lines = ", ".join(f"line {n} ({why})" for n, why in seg.damaged[:5]) + (
            f" and {len(seg.damaged) - 5} more" if len(seg.damaged) > 5 else ""
        )
        if seg.header is None:
            held = f"{seg.unplaced} record line(s) after it could not be placed without the header"
        elif commit is not None:
            held = f"its {len(seg.records)} readable record(s) are in version {commit.version}"
        else:
            held = "it held no readable record"
        return f"segment {seg.path.name}: {lines} unreadable, {held}; kept as {target}"

    def _recover_segment(self, seg: Segment) -> Commit:
        """Commit `seg`'s records (whose token the log does not have yet) with its token.

        A record whose values do not fit its table (a damaged line that is still valid JSON) is
        added to `seg.damaged` and left out; raises _DamagedHeader if the header contradicts itself.
        """
        from warehouse.core.config import RunConfig, config_row
        from warehouse.engine import keyed
        from warehouse.engine.datafiles import write_data_file

        wh = self.wh
        header = seg.header
        assert header is not None
        partition = {str(k): v for k, v in header["partition"].items()}
        h = partition.get("config_hash")
        if not isinstance(h, str) or set(partition) != set(catalog().partition_columns):
            raise _DamagedHeader(f"the header's partition {str(partition)[:80]} is not one of this warehouse")
        tables = self._tables(seg, partition)
        if not wh.snapshot.table_files("configs", {"config_hash": h}):
            cfg = header["config"]
            try:
                config = RunConfig.of(cfg["dataset"], cfg["agent"], cfg.get("attack"))
                created = datetime.fromisoformat(header["created_at"])
            except (WarehouseError, KeyError, TypeError, ValueError) as exc:
                raise _DamagedHeader(f"the header's run configuration cannot be read ({describe_error(exc)})") from None
            if config.hash != h:
                raise _DamagedHeader(f"the header's config hashes to {config.hash}, not {h}")
            tables["configs"] = rows_to_batch(catalog().table("configs"), partition, [config_row(config, created)])
        files = [
            write_data_file(wh, table, partition, pa.Table.from_batches([batch]))
            for table, batch in tables.items()
            if batch.num_rows
        ]
        # Which ids the crashed writer generated is not logged: every recovered row is checked.
        finals = tables.get("executions")
        batch_keys = (
            pa.Table.from_batches([finals]).select(["execution_id", "write_id"]) if finals is not None else None
        )
        return keyed.commit(
            wh,
            keys=[(partition, batch_keys)],
            add=files,
            write=lambda t, part, rows: write_data_file(wh, t, part, rows),
            operation="append",
            writer=writer_info(self.writer_id),
            token=seg.token,
            token_since=seg.since,
            info={"wal": {"writer_id": seg.writer_id, "seq": seg.seq, "records": len(seg.records)}},
        )

    @staticmethod
    def _tables(seg: Segment, partition: dict[str, Any]) -> dict[str, pa.RecordBatch]:
        """The segment's rows as one batch per table. Records whose values do not fit their table's
        types are moved to `seg.damaged` (found one record at a time, only if the whole fails)."""

        def convert(records: list[tuple[tuple[str, list[tuple]], ...]]) -> dict[str, pa.RecordBatch]:
            rows: dict[str, list[tuple]] = {}
            for groups in records:
                for table, r in groups:
                    rows.setdefault(table, []).extend(r)
            return {t: rows_to_batch(catalog().table(t), partition, r) for t, r in rows.items()}

        try:
            return convert(seg.records)
        except _CONVERSION_ERRORS:
            pass
        good, good_lines = [], []
        for record, line in zip(seg.records, seg.record_lines):
            try:
                convert([record])
            except _CONVERSION_ERRORS as exc:
                seg.damaged.append((line, f"values that do not fit the table ({describe_error(exc)})"))
                continue
            good.append(record)
            good_lines.append(line)
        seg.damaged.sort()
        seg.records, seg.record_lines = good, good_lines
        return convert(good)


_CONVERSION_ERRORS = (SchemaMismatch, pa.ArrowException, TypeError, ValueError, OverflowError, KeyError, IndexError)


class _DamagedHeader(Exception):
    """A header that parses but contradicts itself: its records cannot be placed."""


def _find_token(wh: Engine, token: str, since: int) -> Commit | None:
    """The commit after version `since` that carries `token`, if any (also among commits that
    vacuum folded into a checkpoint, where the log can look there)."""
    return wh.log.find_token(token, since, wh.version)
