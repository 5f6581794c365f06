"""The flushing half of `Writer`: the buffers of one partition, the batch a flush swaps out, and the
flush itself (write one Parquet file per table, commit them all at once, retry a failed batch), run
by the caller or by a background flusher thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.core.buffer import TableBuffer
from warehouse.core.errors import StaleDataFile
from warehouse.core.schemas import catalog
from warehouse.engine import keyed
from warehouse.engine.datafiles import write_data_file
from warehouse.manifest import DataFile, writer_info

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine
    from warehouse.write.wal import WriteAheadLog

#: Times a flush writes a batch's files afresh after the commit refused them as too old (StaleDataFile).
STALE_ATTEMPTS = 3


def keyed_rows(buffers: _Buffers) -> pa.Table | None:
    """(execution_id, write_id) of the buffered final rows whose ids may be stored already (the
    buffers' `keyed` ids), in add order; None if there are none."""
    buf = buffers.get("executions")
    if buf is None or not len(buf) or not buffers.keyed:
        return None
    t = buf.table().select(["execution_id", "write_id"])
    t = t.filter(pc.is_in(t.column("execution_id"), value_set=pa.array(sorted(buffers.keyed), pa.string())))
    return t if t.num_rows else None


def _record_count(buffers: Mapping[str, TableBuffer]) -> int:
    return sum(len(buf) for t, buf in buffers.items() if t not in ("configs", "messages", "attacks"))


class _Buffers(dict):
    """table name -> TableBuffer of the writer's partition, created on first use; `keyed`: the
    execution ids among its final rows that may be stored already (given by the caller)."""

    def __init__(self, partition: Mapping[str, str]) -> None:
        super().__init__()
        self.partition = partition
        self.keyed: set[str] = set()

    def __missing__(self, table: str) -> TableBuffer:
        buf = self[table] = TableBuffer(catalog().table(table), self.partition)
        return buf


@dataclass
class _Batch:
    """Buffers swapped out for one flush; kept whole (same token) until committed."""

    buffers: dict[str, TableBuffer]  # kept until committed (files found too old are written again)
    token: str
    seen_version: int
    executions: int
    files: list[DataFile] = field(default_factory=list)
    keys: pa.Table | None = None  # (execution_id, write_id) of its rows with given ids, in add order


class Flushing:
    """The flush machinery `Writer` inherits: its methods use the writer state declared below
    (set up by `Writer.__init__`)."""

    wh: Engine
    partition: Mapping[str, str]
    writer_id: str
    flush_rows: int
    flush_bytes: int
    flush_interval: float | None
    _caller_flushes: bool
    _lock: threading.Lock
    _flush_lock: threading.Lock
    _buffers: _Buffers
    _retry: _Batch | None
    _seq: int
    _last_flush: float
    _background_error: BaseException | None
    _wal: WriteAheadLog | None
    _wake: threading.Condition
    _flush_due: bool
    _stopping: bool
    _thread: threading.Thread | None

    def _new_buffers(self) -> _Buffers:
        return _Buffers(self.partition)

    def _maybe_flush(self) -> None:
        with self._lock:
            b = self._buffers
            rows = len(b["executions"]) + len(b["executions_live"]) + len(b["snapshots"]) + len(b["sessions"])
            nbytes = sum(t.nbytes for t in b.values())
        if rows >= self.flush_rows or nbytes >= self.flush_bytes:
            # With a flusher thread, the flush (whose Parquet encoding releases the GIL) runs beside
            # the caller; if that thread is still busy with the previous batch and this one is twice
            # over the limit, or an earlier background flush failed, flush here and now.
            if self._caller_flushes and (
                self._thread is None
                or self._background_error is not None
                or rows >= 2 * self.flush_rows
                or nbytes >= 2 * self.flush_bytes
            ):
                self.flush()
            else:
                with self._wake:
                    self._flush_due = True
                    self._wake.notify()

    # -- flushing ------------------------------------------------------------------------------
    @property
    def buffered_rows(self) -> int:
        """Records (executions and their revisions, events, snapshots, session revisions) buffered and
        not yet committed, including a batch waiting for retry; messages and attacks count with
        their execution."""
        with self._lock:
            n = _record_count(self._buffers)
        r = self._retry
        return n + (r.executions if r else 0)

    def _take_batch(self) -> _Batch | None:
        with self._lock:
            if not any(len(buf) for t, buf in self._buffers.items() if t != "configs"):
                return None  # a config row alone waits for the writer's first results
            buffers = self._buffers
            self._buffers = self._new_buffers()
            if self._wal is not None:  # the records after this point go to the next batch's segment
                self._wal.take(f"{self.writer_id}:{self._seq + 1}", self.wh.version)
        self._seq += 1
        return _Batch(
            buffers, f"{self.writer_id}:{self._seq}", self.wh.version, _record_count(buffers), keys=keyed_rows(buffers)
        )

    def _commit_batch(self, batch: _Batch) -> int:
        if self._wal is not None:
            self._wal.before_commit(batch.token)
        for attempt in range(STALE_ATTEMPTS):
            # A retry writes only the files still missing. The buffers are kept until the commit
            # lands: files older than the commit deadline (a flush retried long after it failed, a
            # process that stalled) may have been taken by a vacuum, and are written again.
            written = {f.table for f in batch.files}
            for table_name, buf in batch.buffers.items():
                if len(buf) and table_name not in written:
                    batch.files.append(write_data_file(self.wh, table_name, self.partition, buf.table()))
            try:
                commit = keyed.commit(
                    self.wh,
                    keys=[(self.partition, batch.keys)],
                    add=batch.files,
                    write=lambda t, part, rows: write_data_file(self.wh, t, part, rows),
                    operation="append",
                    writer=writer_info(self.writer_id),
                    token=batch.token,
                    token_since=batch.seen_version,
                )
                break
            except StaleDataFile:
                batch.files = []  # left for vacuum as orphans
                if attempt == STALE_ATTEMPTS - 1:
                    raise
        if self._wal is not None:
            self._wal.committed(batch.token)
        return commit.version

    def flush(self) -> int | None:
        """Write and commit everything buffered; returns the committed version, or None if nothing was.

        A batch whose commit fails stays pending with the same idempotency token and is retried
        first by the next flush, so it is committed at most once.
        """
        with self._flush_lock:
            version = None
            if self._retry is not None:
                version = self._commit_batch(self._retry)
                self._retry = None
            batch = self._take_batch()
            if batch is not None:
                try:
                    version = self._commit_batch(batch)
                except BaseException:
                    self._retry = batch
                    raise
            self._last_flush = time.monotonic()
            self._background_error = None
            return version

    def _flusher(self) -> None:
        """The background thread: flushes when add_execution finds the buffer full, and every
        `flush_interval` seconds; errors are kept for the next flush()/close(), which retry."""
        interval = float(self.flush_interval or 0)
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._flush_due or self._stopping, timeout=min(interval, 1.0))
                if self._stopping:
                    return
                due, self._flush_due = self._flush_due, False
            if due or (time.monotonic() - self._last_flush >= interval and self.buffered_rows):
                try:
                    self.flush()
                except Exception as exc:  # kept for close(), which retries and raises
                    self._background_error = exc
