"""Live executions: status revisions, logs and trace spans, durable checkpoints.

`Writer.start_execution(...)` returns an `Execution`. Its status revisions (running, each
`update`) go to the side table `executions_live`; `finish`/`fail` write the final revision to
`executions` (the `executions` view shows the latest revision of each). Logs and spans become rows
of `events`: appended to the writer's buffer on the caller's thread without I/O and committed by
the next flush; they never raise into the agent (failures are counted and reported on close).
Checkpoints are rows of `snapshots`, committed before `checkpoint()` returns.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from warehouse.core import records
from warehouse.core.errors import InvalidRecord, StateError
from warehouse.core.rows import RowShape


class RowSink(Protocol):
    """What an `Execution` needs of the writer it belongs to (a `Writer`): span ids, validated
    execution rows, and buffering of rows (which may flush)."""

    #: The shape of `_execution_row`'s tuples in `executions_live`.
    LIVE_ROW: RowShape
    #: The run id every row of this writer carries (None: none given).
    run_id: str | None
    #: The cut-off for an event's message and attributes, in characters.
    event_limit: int

    def _new_id(self) -> str: ...

    def _add_event(self, shape: RowShape, row: tuple) -> None: ...

    def _drop_event(self, reason: str) -> None: ...

    def _next_event_seq(self) -> int: ...

    def flush(self) -> int | None: ...

    def _span_id(self) -> str: ...

    def _execution_row(
        self,
        eid: str,
        task_id: Any,
        revision: int,
        status: str,
        fields: Mapping[str, Any],
        finished_at: datetime | None = None,
    ) -> tuple: ...

    def _add_rows(self, shape: RowShape, rows: list[tuple], text_bytes: int = 0, *, flush: bool = True) -> None: ...

    def _add_final(
        self, row: tuple, eid: str, messages: Any, attacks: Any, seq_start: int = 0, *, keyed: bool = True
    ) -> None: ...


log = logging.getLogger("warehouse")

#: The tuples of `Execution._event` (and the importers' events), by name.
EVENT_ROW = RowShape(
    "events",
    (
        "execution_id",
        "seq",
        "timestamp",
        "kind",
        "level",
        "name",
        "message",
        "duration_ms",
        "trace_id",
        "span_id",
        "parent_span_id",
        "source",
        "attributes",
        "message_length",
        "attributes_length",
    ),
)
#: The tuples of `Execution.checkpoint` (and of simulation snapshots), by name.
SNAPSHOT_ROW = RowShape(
    "snapshots",
    ("snapshot_id", "execution_id", "run_id", "kind", "step", "thread_id", "owner", "state", "created_at", "metadata"),
)

#: Default cut-off for an event's message and attributes, in characters.
EVENT_LIMIT = 8192
#: The span enclosing the current code (per thread and per asyncio task), parent of new spans.
_current_span: contextvars.ContextVar[str | None] = contextvars.ContextVar("warehouse_span", default=None)
_LEVELS = frozenset({"debug", "info", "warn", "warning", "error", "critical"})


def _truncate(text: str, limit: int) -> tuple[str, int | None]:
    n = len(text)
    if n <= limit:
        return text, None
    return f"{text[:limit]}…[truncated: {n} chars]", n


def event_attributes(attrs: Any, limit: int) -> tuple[str | None, int | None]:
    """Attributes as JSON text (values JSON cannot hold become their str()); past `limit` characters
    they are replaced by a JSON object holding a preview, so that the column stays valid JSON."""
    if attrs is None:
        return None, None
    try:
        text = orjson.dumps(attrs, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. lone surrogates, integers beyond 64 bits
        text = orjson.dumps(str(attrs)).decode()
    n = len(text)
    if n <= limit:
        return text, None
    return orjson.dumps({"_truncated": True, "_length": n, "_preview": text[:limit]}).decode(), n


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of an execution: the state saved by `Execution.checkpoint`."""

    checkpoint_id: str
    execution_id: str
    step: int | None
    thread_id: str | None
    owner: str | None
    created_at: datetime
    state: Any
    metadata: Any = None


class Span:
    """A timed operation of an execution (a tool call): `tool_start` on entry, `tool_end` or
    `tool_error` (with the exception) on exit, both with the span id, the end with `duration_ms`.
    Usable as `with` and `async with`; exceptions pass through."""

    def __init__(self, ex: Execution, name: str, attrs: Any, kind: str) -> None:
        self.ex, self.name, self.attrs, self.kind = ex, name, attrs, kind
        self.span_id = ex._writer._span_id()
        self.parent_span_id: str | None = None
        self._token: contextvars.Token | None = None
        self._t0 = 0.0

    def __enter__(self) -> Span:
        self.parent_span_id = _current_span.get()
        self._token = _current_span.set(self.span_id)
        self._t0 = time.perf_counter()
        self.ex._event(
            f"{self.kind}_start",
            "info",
            self.name,
            None,
            self.attrs,
            span_id=self.span_id,
            parent_span_id=self.parent_span_id,
        )
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        ms = (time.perf_counter() - self._t0) * 1000.0
        if self._token is not None:
            try:
                _current_span.reset(self._token)
            except ValueError:  # exited in another context than entered (e.g. another task)
                pass
        if exc is None:
            self.ex._event(
                f"{self.kind}_end",
                "info",
                self.name,
                None,
                None,
                span_id=self.span_id,
                parent_span_id=self.parent_span_id,
                duration_ms=ms,
            )
        else:
            self.ex._event(
                f"{self.kind}_error",
                "error",
                self.name,
                f"{type(exc).__name__}: {exc}",
                None,
                span_id=self.span_id,
                parent_span_id=self.parent_span_id,
                duration_ms=ms,
            )

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


class Execution:
    """One task execution in flight. Made by `Writer.start_execution` / `Writer.resume_execution`.

    `log` and `span` never raise and never wait for I/O. `update`, `finish` and `fail` validate
    their input and raise InvalidRecord before anything is buffered; they are committed by the
    writer's next flush (a failed commit raises from flush()/close()). `checkpoint` commits before
    it returns. As a context manager, an exception escaping the block fails the execution and a
    block left normally finishes it (if neither was done explicitly).
    """

    def __init__(
        self,
        writer: RowSink,
        execution_id: str,
        task_id: str,
        *,
        owner: str | None,
        revision: int,
        fields: dict[str, Any],
        keyed: bool = True,
    ) -> None:
        self._writer = writer
        self._keyed = keyed  # False for an id its writer generated: no earlier add of it can exist
        self.execution_id = execution_id
        self.task_id = task_id
        self.owner = owner
        self.revision = revision
        self.status = "running"
        self._fields = fields  # started_at, trace_id, model, sample, group, metadata, scores, usage, result

    def __repr__(self) -> str:
        return f"<Execution {self.execution_id} task={self.task_id!r} {self.status} rev={self.revision}>"

    @property
    def trace_id(self) -> str | None:
        return self._fields.get("trace_id")

    # -- events (never raise) --------------------------------------------------------------------
    def _event(
        self,
        kind: str,
        level: str | None,
        name: str | None,
        message: Any,
        attrs: Any,
        *,
        span_id: str | None = None,
        parent_span_id: str | None = None,
        duration_ms: float | None = None,
        source: str | None = None,
    ) -> None:
        w = self._writer
        try:
            limit = w.event_limit
            mlen = None
            if message is not None:
                if message.__class__ is not str:
                    message = str(message)
                if len(message) > limit:
                    message, mlen = _truncate(message, limit)
                elif not message.isascii():
                    message.encode("utf-8")  # lone surrogates cannot be stored
            alen = None
            if attrs is not None:
                attrs, alen = event_attributes(attrs, limit)
            if name is not None and name.__class__ is not str:
                name = str(name)
            # the time as integer microseconds: Arrow converts those 7x faster than datetimes
            w._add_event(
                EVENT_ROW,
                (
                    self.execution_id,
                    w._next_event_seq(),
                    time.time_ns() // 1000,
                    kind,
                    level,
                    name,
                    message,
                    duration_ms,
                    self._fields.get("trace_id"),
                    span_id,
                    parent_span_id,
                    source,
                    attrs,
                    mlen,
                    alen,
                ),
            )
        except Exception as exc:  # logging must never break the agent
            w._drop_event(f"{type(exc).__name__}: {exc}")

    def log(
        self, level: str, message: Any, *, source: str | None = None, attrs: Any = None, name: str | None = None
    ) -> None:
        """Record a log line (level debug/info/warn/error/critical; others are kept as given).

        Never raises and never waits for I/O: the event is buffered and committed by the writer's
        next flush. A message or attributes longer than the writer's `event_limit` characters is
        cut, with a marker, keeping its original length in message_length/attributes_length.
        """
        lv = (
            level
            if level.__class__ is str and level in _LEVELS
            else (str(level).lower() if level is not None else None)
        )
        self._event("log", lv, name, message, attrs, parent_span_id=_current_span.get(), source=source)

    def span(self, name: str, attrs: Any = None, *, kind: str = "tool") -> Span:
        """A context manager timing an operation: events `<kind>_start` and `<kind>_end` or
        `<kind>_error`, with duration_ms; nested spans record their parent."""
        return Span(self, name, attrs, kind)

    # -- revisions (raise on bad input) -------------------------------------------------------------
    def _require_running(self, what: str) -> None:
        if self.status != "running":
            raise StateError(f"cannot {what} execution {self.execution_id}: it is already {self.status}")

    def _row(
        self,
        revision: int,
        status: str,
        fields: Mapping[str, Any],
        *,
        error: Any = None,
        finished_at: datetime | None = None,
    ) -> tuple:
        # `fields` holds what start/update/finish/resume set: add_execution's names, none of them
        # messages or attacks (those go with the final row).
        return self._writer._execution_row(
            self.execution_id,
            self.task_id,
            revision,
            status,
            {**fields, "owner": self.owner, "error": error},
            finished_at,
        )

    @staticmethod
    def _merged(fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
        out = dict(fields)
        for key, value in changes.items():
            if value is None:
                continue
            if (
                key in ("metadata", "scores", "usage")
                and isinstance(value, Mapping)
                and isinstance(out.get(key), Mapping)
            ):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
        return out

    def update(
        self,
        *,
        metadata: Any = None,
        scores: Mapping[str, float] | None = None,
        usage: Mapping[str, Any] | None = None,
        result: str | None = None,
        model: str | None = None,
        benign_score: float | None = None,
        attack_score: float | None = None,
    ) -> int:
        """Record progress as a new revision (status still running); dicts are merged into the
        previous revision's. Returns the new revision number. Raises InvalidRecord for bad values."""
        self._require_running("update")
        fields = self._merged(
            self._fields,
            metadata=metadata,
            scores=scores,
            usage=usage,
            result=result,
            model=model,
            benign_score=benign_score,
            attack_score=attack_score,
        )
        row = self._row(self.revision + 1, "running", fields)
        self._writer._add_rows(self._writer.LIVE_ROW, [row])
        self._fields = fields
        self.revision += 1
        return self.revision

    def checkpoint(
        self,
        state: Any,
        *,
        step: int | None = None,
        thread_id: str | None = None,
        checkpoint_id: str | None = None,
        metadata: Any = None,
    ) -> str:
        """Save `state` (anything JSON can hold) and commit it, with everything else buffered,
        before returning its checkpoint id. Raises InvalidRecord if the state is not JSON, and the
        storage error if the commit fails (the checkpoint then stays buffered for the next flush)."""
        self._require_running("checkpoint")
        w = self._writer
        state_json = records.json_text("state", state)
        if state_json is None:
            raise InvalidRecord("state is required (a JSON-serialisable value), got None")
        cid = records.ident("checkpoint_id", checkpoint_id, required=False) or w._new_id()
        row = (
            cid,
            self.execution_id,
            w.run_id,
            "checkpoint",
            records.integer("step", step),
            records.opt_text("thread_id", thread_id),
            self.owner,
            state_json,
            datetime.now(UTC),
            records.json_text("metadata", metadata),
        )
        w._add_rows(SNAPSHOT_ROW, [row], len(state_json), flush=False)
        w.flush()
        return cid

    def _final(self, status: str, *, error: str | None, messages: Any, attacks: Any, **changes: Any) -> None:
        self._require_running("finish" if status == "completed" else "fail")
        fields = self._merged(self._fields, **changes)
        row = self._row(self.revision + 1, status, fields, error=error, finished_at=datetime.now(UTC))
        self._writer._add_final(row, self.execution_id, messages, attacks, keyed=self._keyed)
        self._fields = fields
        self.revision += 1
        self.status = status
        self._event("status", "error" if status == "failed" else "info", status, error, None)

    def finish(
        self,
        *,
        benign_score: float | None = None,
        attack_score: float | None = None,
        messages: Any = None,
        usage: Mapping[str, Any] | None = None,
        attacks: Any = None,
        result: str | None = None,
        scores: Mapping[str, float] | None = None,
        metadata: Any = None,
        reward: float | None = None,
        model: str | None = None,
    ) -> None:
        """Complete the execution: its final revision (status completed) with scores, messages,
        usage and attacks. Raises InvalidRecord for bad values (the execution then stays running)."""
        self._final(
            "completed",
            error=None,
            messages=messages,
            attacks=attacks,
            benign_score=benign_score,
            attack_score=attack_score,
            usage=usage,
            result=result,
            scores=scores,
            metadata=metadata,
            reward=reward,
            model=model,
        )

    def fail(
        self,
        error: Any,
        *,
        messages: Any = None,
        usage: Mapping[str, Any] | None = None,
        attacks: Any = None,
        metadata: Any = None,
        result: str | None = None,
    ) -> None:
        """Fail the execution: its final revision with status failed and `error` (text or exception)."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self._final(
            "failed",
            error=records.opt_text("error", error),
            messages=messages,
            attacks=attacks,
            usage=usage,
            metadata=metadata,
            result=result,
        )

    def __enter__(self) -> Execution:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.status != "running":
            return
        if exc is not None:
            self.fail(exc)
        else:
            self.finish()
