"""Buffered writers: rows accumulate column-wise per table, and each flush writes one Parquet file
per (table, partition) and commits them all in one manifest commit (all or nothing).
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from warehouse.core import records
from warehouse.core.buffer import PENDING_ROW_BYTES
from warehouse.core.config import CONFIG_ROW, RunConfig, config_row
from warehouse.core.errors import ConfigHashCollision, InvalidRecord, StateError, WriterClosed
from warehouse.core.partition_paths import partition_dir
from warehouse.core.rows import RowShape
from warehouse.engine import keys
from warehouse.write.execution_rows import (
    EXECUTION_LIVE_ROW,
    EXECUTION_ROW,
    PreparedExecution,
    trajectory_execution,
)
from warehouse.write.flushing import Flushing, _Batch
from warehouse.write.live import Execution
from warehouse.write.options import WriterOptions

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine
    from warehouse.write.wal import WriteAheadLog

_STATUSES = ("completed", "failed")
log = logging.getLogger("warehouse")


class Writer(Flushing):
    """Buffers rows of one run configuration and commits them in flushes.

    Thread-safe. Use as a context manager: leaving the block flushes and closes. A flush happens
    when `flush_rows` executions or about `flush_bytes` bytes are buffered, every `flush_interval`
    seconds, or on `flush()`/`close()`. With a `flush_interval` (the default), a background thread
    (which `close()` joins) does the size- and time-triggered flushes while the caller goes on
    adding; with `flush_interval=None` there is no thread and add_execution flushes in place.
    Either way a failed flush keeps its batch and is retried, and its error raised, by the next
    flush()/close() (a full or read-only disk raises StorageError naming the file). With `wal=`
    every record is also appended to a local write-ahead log before `add_*` returns, and what a
    crashed writer left there is committed first (see `warehouse.wal`).
    Bad options (`flush_rows` not an int >= 1, `flush_interval` not None or a number >= 0, ...)
    raise InvalidArgument/InvalidArgumentType.
    """

    LIVE_ROW = EXECUTION_LIVE_ROW  # (for live.Execution, which cannot import this module)

    def __init__(
        self,
        wh: Engine,
        *,
        dataset: Any,
        agent: Any,
        attack: Any = None,
        run_id: str | None = None,
        options: WriterOptions | None = None,
        **option_values: Any,
    ) -> None:
        """`options` (default: WriterOptions()), with any of its fields given as keywords instead
        (`Writer(engine, dataset=..., agent=..., flush_rows=100)`); see `WriterOptions`."""
        wh.engine.require_writable()
        if options is None or option_values:
            options = dataclasses.replace(options or WriterOptions(), **option_values)
        self.options = options
        flush_interval = options.flush_interval
        wal, config_hash = options.wal, options.config_hash
        self.wh = wh
        self.config = RunConfig.of(dataset, agent, attack).with_hash(config_hash)
        self.partition = self.config.partition
        for col, val in self.partition.items():
            partition_dir("x", {col: val}, [col])  # raises InvalidPartitionValue now, not at flush
        self.config_hash = self.partition["config_hash"]
        self.run_id = records.ident("run_id", run_id, required=False)
        self.flush_rows, self.flush_bytes, self.flush_interval = options.flush_rows, options.flush_bytes, flush_interval
        self.writer_id = uuid.uuid4().hex
        self._rng = random.Random(os.urandom(16))
        self._write_ids = keys.WriteIds()
        self._seq = 0
        self.event_limit, self.max_buffered_events = options.event_limit, options.max_buffered_events
        self._event_seq = itertools.count()
        self._dropped: Counter[str] = Counter()
        self._caller_flushes = True  # False: size-triggered flushes only ever run on the flusher thread
        self._lock = threading.Lock()  # guards the buffers
        self._flush_lock = threading.Lock()  # serialises flushes (one commit at a time, in order)
        self._buffers = self._new_buffers()
        self._retry: _Batch | None = None
        self._closed = False
        self._last_flush = time.monotonic()
        self._background_error: BaseException | None = None
        self._wal: WriteAheadLog | None = None
        if wal is not None:  # first: a crashed run's records (and config row) are committed before ours
            from warehouse.write import wal as wal_module

            self._wal = wal_module.WriteAheadLog(wal, wh, self.writer_id, self.config, sync=options.wal_sync)
        try:
            self._register_config()
        except BaseException:
            if self._wal is not None:
                self._wal.close()
            raise
        self._wake = threading.Condition()  # the flusher waits on it for a size trigger or close()
        self._flush_due = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        if flush_interval:
            self._thread = threading.Thread(
                target=self._flusher, name=f"warehouse-flusher-{self.writer_id[:8]}", daemon=True
            )
            self._thread.start()

    # -- config --------------------------------------------------------------------------------
    def _register_config(self) -> None:
        """Store configs/<hash>.yaml once; a different config under the same hash is an error."""
        path = f"configs/{self.config_hash}.yaml"
        store = self.wh.store
        created_at = datetime.now(UTC)
        if not store.exists(path):
            store.put_if_absent(path, self.config.to_yaml(created_at).encode("utf-8"))
        existing = RunConfig.from_yaml(store.read_bytes(path).decode("utf-8"))
        if existing.canonical() != self.config.canonical():
            raise ConfigHashCollision(
                f"config hash {self.config_hash} already belongs to a different config "
                f"(stored in {path}: {existing.canonical()[:200]}); this config: {self.config.canonical()[:200]}. "
                "Change any field of the config (e.g. add a 'variant' key) to get a new hash."
            )
        if not self.wh.snapshot.table_files("configs", {"config_hash": self.config_hash}):
            self._buffers["configs"].append(CONFIG_ROW, config_row(self.config, created_at))

    def _new_id(self) -> str:
        """A 32-hex-digit id, time-ordered like UUIDv7: 48 bits of milliseconds, 80 random bits
        (from a per-writer generator seeded by the OS: no system call per id)."""
        return f"{time.time_ns() // 1_000_000:012x}{self._rng.getrandbits(80):020x}"

    # -- adding --------------------------------------------------------------------------------
    def add_execution(
        self,
        *,
        task_id: str | None = None,
        messages: Any = None,
        usage: Mapping[str, Any] | None = None,
        benign_score: float | None = None,
        attack_score: float | None = None,
        attacks: Any = None,
        metadata: Any = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        started_at: Any = None,
        finished_at: Any = None,
        model: str | None = None,
        scores: dict[str, float] | None = None,
        execution_id: str | None = None,
        sample: int | None = None,
        group: str | None = None,
        status: str | None = None,
        error: str | None = None,
        reward: float | None = None,
        advantages: Any = None,
        duration_ms: float | None = None,
        owner: str | None = None,
        result: str | None = None,
        completions: Any = None,
        **unknown: Any,
    ) -> str:
        """Buffer one finished task execution with its messages and attacks; returns its execution_id.

        Scores are finite numbers (utility `benign_score`, attack success `attack_score`, any extra in
        `scores`); `usage` holds token counts, requests, tool_calls and cost; timestamps are datetimes
        (naive = UTC) or ISO-8601 strings. Raises InvalidRecord naming the field for any bad value,
        before anything is buffered.
        """
        # These keywords are the one definition of an execution's fields (EXECUTION_FIELDS); every
        # default is None, so a field left out of a mapping below reads as its default.
        prepared = self._prepare(locals(), unknown)
        self._buffer_final(prepared)
        self._maybe_flush()
        return prepared.execution_id

    def prepare_execution(self, **fields: Any) -> PreparedExecution:
        """Validate one execution (the keywords of `add_execution`) into its rows without buffering
        anything: importers validate every record of a source file before adding any of them.
        Raises InvalidRecord naming the field."""
        return self._prepare(fields, fields.keys() - _EXECUTION_FIELD_SET)

    def _prepare(self, f: Mapping[str, Any], unknown: Any) -> PreparedExecution:
        """`prepare_execution` of the fields in `f` (keys outside EXECUTION_FIELDS are ignored;
        `unknown`: those the caller was given, refused here)."""
        if self._closed:
            raise WriterClosed("this writer is closed")
        if unknown:
            raise InvalidRecord(f"add_execution() got unknown field(s) {sorted(unknown)}")
        execution_id = f.get("execution_id")
        eid = records.ident("execution_id", execution_id, required=False) or self._new_id()
        status, error = f.get("status"), f.get("error")
        if status is None:
            status = "failed" if error else "completed"
        if status not in _STATUSES:
            raise InvalidRecord(f"status must be one of {_STATUSES}, got {status!r}")
        finished = records.timestamp("finished_at", f.get("finished_at")) or datetime.now(UTC)
        row = self._row_of(eid, f.get("task_id"), 0, status, f, finished)
        write_id = row[-1]
        msg_rows, size = records.messages(eid, f.get("messages"), 0, write_id)
        return PreparedExecution(
            eid, row, msg_rows, size, records.attacks(eid, f.get("attacks"), write_id), execution_id is not None
        )

    def _execution_row(
        self,
        eid: str,
        task_id: Any,
        revision: int,
        status: str,
        fields: Mapping[str, Any],
        finished_at: datetime | None = None,
    ) -> tuple:
        """One validated row of `executions`/`executions_live` (non-partition columns, schema order)
        of the execution `fields` (keywords of `add_execution`; `finished_at`, validated, is given
        apart, and `messages`/`attacks` are not part of the row). Raises InvalidRecord for a bad value
        or a name that is not a field."""
        if not fields.keys() <= _EXECUTION_FIELD_SET:
            raise InvalidRecord(f"unknown execution field(s) {sorted(fields.keys() - _EXECUTION_FIELD_SET)}")
        return self._row_of(eid, task_id, revision, status, fields, finished_at)

    def _row_of(
        self, eid: str, task_id: Any, revision: int, status: str, f: Mapping[str, Any], finished_at: datetime | None
    ) -> tuple:
        get = f.get
        started = records.timestamp("started_at", get("started_at"))
        duration_ms = get("duration_ms")
        if duration_ms is None and started is not None and finished_at is not None:
            duration_ms = (finished_at - started).total_seconds() * 1000.0
        if task_id.__class__ is not str or not task_id.isascii() or not 0 < len(task_id) <= records.MAX_ID_LENGTH:
            task_id = records.ident("task_id", task_id)
        opt_text, opt_score = records.opt_text, records.opt_score
        return (
            eid,
            task_id,
            self.run_id,
            records.integer("sample", get("sample"), records.INT32),
            opt_text("group", get("group")),
            status,
            opt_text("error", get("error")),
            revision,
            started,
            finished_at,
            opt_score("duration_ms", duration_ms),
            opt_text("trace_id", get("trace_id")),
            opt_text("span_id", get("span_id")),
            opt_text("model", get("model")),
            *records.usage(get("usage")),
            opt_score("benign_score", get("benign_score")),
            opt_score("attack_score", get("attack_score")),
            opt_score("reward", get("reward")),
            records.float_list("advantages", get("advantages")),
            records.score_map(get("scores")),
            records.json_text("metadata", get("metadata")),
            opt_text("owner", get("owner")),
            opt_text("result", get("result")),
            records.json_text("completions", get("completions")),
            self._write_ids.next(),
        )

    def _add_final(
        self, row: tuple, eid: str, messages: Any, attacks: Any, seq_start: int = 0, *, keyed: bool = True
    ) -> None:
        """Buffer a final execution row with its messages and attacks (validated first); may flush.
        `keyed`: the id may have been stored before (not one this writer generated)."""
        msg_rows, size = records.messages(eid, messages, seq_start, row[-1])
        self._buffer_final(PreparedExecution(eid, row, msg_rows, size, records.attacks(eid, attacks, row[-1]), keyed))
        self._maybe_flush()

    def _buffer_final(self, p: PreparedExecution) -> None:
        with self._lock:
            if self._wal is not None:
                self._wal.append((("executions", [p.row]), ("messages", p.message_rows), ("attacks", p.attack_rows)))
            b = self._buffers
            if p.keyed:
                b.keyed.add(p.execution_id)
            b["executions"].append(EXECUTION_ROW, p.row)
            b["messages"].extend(records.MESSAGE_ROW, p.message_rows, p.message_bytes)
            b["attacks"].extend(records.ATTACK_ROW, p.attack_rows, sum(len(r[3] or "") for r in p.attack_rows))

    def _add_rows(self, shape: RowShape, rows: list[tuple], text_bytes: int = 0, *, flush: bool = True) -> None:
        """Buffer validated rows of any table, built as `shape` says (may trigger a size flush like
        add_execution). Raises SchemaMismatch if the shape's columns are not its table's."""
        table = shape.table
        if self._closed:
            raise WriterClosed("this writer is closed")
        with self._lock:
            if self._wal is not None:
                self._wal.append(((table, rows),))
            if table == "executions":  # final rows given whole (importers): their ids may be stored
                self._buffers.keyed.update(r[0] for r in rows)
            self._buffers[table].extend(shape, rows, text_bytes)
        if flush:
            self._maybe_flush()

    # -- live executions and events (live.py) ---------------------------------------------------------
    def start_execution(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        metadata: Any = None,
        execution_id: str | None = None,
        trace_id: str | None = None,
        model: str | None = None,
        sample: int | None = None,
        group: str | None = None,
        started_at: Any = None,
    ) -> Execution:
        """Start a live execution (status running, revision 1); see `Execution` for what it offers.

        Its revisions, events and checkpoints are committed by this writer's flushes. Raises
        InvalidRecord for bad values, before anything is buffered.
        """
        eid = records.ident("execution_id", execution_id, required=False) or self._new_id()
        task_id = records.ident("task_id", task_id)
        owner = records.ident("owner", owner, required=False)
        fields = {
            "started_at": records.timestamp("started_at", started_at) or datetime.now(UTC),
            "trace_id": records.ident("trace_id", trace_id, required=False) or self._new_id(),
            "model": model,
            "sample": sample,
            "group": group,
            "metadata": metadata,
        }
        ex = Execution(self, eid, task_id, owner=owner, revision=1, fields=fields, keyed=execution_id is not None)
        self._add_rows(EXECUTION_LIVE_ROW, [ex._row(1, "running", fields)])
        ex._event("status", "info", "running", None, None)
        return ex

    def resume_execution(self, execution_id: str, *, owner: str | None = None) -> Execution:
        """Take over an execution left running (e.g. by a killed process) in this writer's config.

        Its next revision continues from the latest one (metadata, scores, usage kept); load its
        state with `Warehouse.latest_checkpoint`. Raises ExecutionNotFound if the id is unknown,
        PermissionDenied if it belongs to another owner, WarehouseError if it already completed or
        failed, or belongs to another config. One process should resume an execution at a time.
        """
        from warehouse.core.errors import ExecutionNotFound, PermissionDenied

        self.wh.refresh()
        found = self.wh.engine.records("select * from executions where execution_id = ?", [execution_id])
        if not found:
            raise ExecutionNotFound(f"no execution with id {execution_id!r} at version {self.wh.version}")
        row = found[0]
        if row["config_hash"] != self.config_hash:
            raise StateError(
                f"execution {execution_id} belongs to config {row['config_hash']}, not this writer's "
                f"{self.config_hash}; resume it with a writer of that config"
            )
        if row["status"] != "running":
            raise StateError(f"cannot resume execution {execution_id}: it is already {row['status']}")
        if row["owner"] is not None and owner is not None and owner != row["owner"]:
            raise PermissionDenied(f"execution {execution_id} belongs to owner {row['owner']!r}, not {owner!r}")
        usage = {k: row[k] for k in records.USAGE_FIELDS if row.get(k) is not None}
        fields = {
            "started_at": row["started_at"],
            "trace_id": row["trace_id"],
            "model": row["model"],
            "sample": row["sample"],
            "group": row["group_id"],
            "result": row["result"],
            "metadata": json.loads(row["metadata"]) if row["metadata"] else None,
            "scores": dict(row["scores"]) if row["scores"] else None,
            "usage": usage or None,
            "benign_score": row["benign_score"],
            "attack_score": row["attack_score"],
        }
        ex = Execution(
            self, execution_id, row["task_id"], owner=row["owner"] or owner, revision=row["revision"], fields=fields
        )
        ex._event("status", "info", "running", f"resumed at revision {row['revision']}", None)
        return ex

    def _add_event(self, shape: RowShape, row: tuple) -> None:
        """Buffer one event row (of `shape`); raises (to the Execution, which counts a drop) if it cannot."""
        if self._closed:
            raise WriterClosed("the writer is closed")
        with self._lock:
            buf = self._buffers["events"]
            if shape not in buf.shapes:
                buf.accept(shape)
            if buf.rows >= self.max_buffered_events:
                raise StateError(f"{buf.rows} events buffered (max_buffered_events): flushes are not keeping up")
            if self._wal is not None:
                self._wal.append((("events", [row]),), durable=False)
            # Kept as tuples: the flush converts them to Arrow (on the flusher thread when there is
            # one), so a log call never pays for a chunk conversion.
            buf.pending.append(row)
            buf.rows += 1
            buf.pending_bytes += PENDING_ROW_BYTES
            due = buf.rows >= self.flush_rows
        if due and self._thread is not None and not self._flush_due:
            with self._wake:
                self._flush_due = True
                self._wake.notify()

    def _drop_event(self, reason: str) -> None:
        self._dropped[reason[:200]] += 1

    def _next_event_seq(self) -> int:
        return next(self._event_seq)

    def _span_id(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    @property
    def dropped_events(self) -> dict[str, int]:
        """Events that could not be recorded, counted by reason (logging never raises)."""
        return dict(self._dropped)

    # -- trajectories ------------------------------------------------------------------------------
    def add_trajectory(
        self,
        *,
        messages: Any = None,
        completions: Any = None,
        rewards: float = 0.0,
        group: int | str = 0,
        replica: int = 0,
        advantages: Any = 0.0,
        metadata: Any = None,
        task_id: str | None = None,
        usage: Mapping[str, Any] | None = None,
        execution_id: str | None = None,
    ) -> str:
        """Buffer one RL trajectory (the rollouts `Trajectory`: completions, messages, rewards, group,
        replica, advantages, metadata) as a completed execution; returns its execution_id.

        rewards -> `reward`, group -> `group_id`, replica -> `sample`, advantages (a number or a list
        of numbers) -> `advantages` (a list), completions -> `completions` (JSON), task_id defaults
        to metadata["task_id"]. Read them back with `Warehouse.trajectories()`.
        """
        return self.add_execution(
            **trajectory_execution(
                messages=messages,
                completions=completions,
                rewards=rewards,
                group=group,
                replica=replica,
                advantages=advantages,
                metadata=metadata,
                task_id=task_id,
            ),
            usage=usage,
            execution_id=execution_id,
        )

    def close(self) -> int | None:
        """Flush what is buffered, stop the background flusher; returns the last committed version."""
        if self._closed:
            return None
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        try:
            return self.flush()
        finally:
            self._closed = True
            if self._wal is not None:  # what the flush could not commit stays in the WAL for the next writer
                self._wal.close()
            if self._dropped:
                log.warning(
                    "warehouse writer %s dropped %d event(s): %s",
                    self.writer_id[:8],
                    sum(self._dropped.values()),
                    dict(self._dropped.most_common(5)),
                )

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


#: The fields of an execution: the keywords of `Writer.add_execution`, its one definition.
EXECUTION_FIELDS: tuple[str, ...] = tuple(
    name for name, p in inspect.signature(Writer.add_execution).parameters.items() if p.kind is p.KEYWORD_ONLY
)
_EXECUTION_FIELD_SET = frozenset(EXECUTION_FIELDS)
