"""Simulation runs (what a simulation kept as `results/<run_id>/state.json`): a recorder saves
snapshots of the simulation's state every `save_frequency` steps and a final one at the end, each
as one row of table `snapshots` committed before the call returns.

A run's rows live in the partition of dataset `simulation` (config {"scenario": <scenario>}),
agent `simulation`, benign. A snapshot row holds snapshot_id `<run_id>:<kind>:<step>`, run_id,
kind (`snapshot` or `final`), step, state (JSON of {game_state, global_vars, agent_vars,
messages}), created_at, and metadata {scenario, started_at}. Nothing is ever rewritten: a crash
leaves every snapshot saved before it readable, in place of a half-rewritten `state.json`.

Run ids are claimed with a create-if-absent write of `runs/<run_id>.json` (holding the scenario
and start time), so they are unique across processes and machines sharing the warehouse.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, overload

from warehouse.core import records
from warehouse.core.errors import InvalidRecord, RunNotFound, StateError, WriterClosed
from warehouse.manifest import writer_info
from warehouse.write.live import SNAPSHOT_ROW
from warehouse.write.writer import Writer

if TYPE_CHECKING:
    import polars as pl

    from warehouse.engine.engine import Engine

#: Where run-id claims are kept, relative to the warehouse root.
RUNS_DIR = "runs"
#: Longest sanitised scenario name inside a run id, in characters (as the legacy layout).
SCENARIO_CHARS = 50
#: Suffixes `_1`, `_2`, ... tried before giving up on a run id taken that many times.
MAX_CLAIMS = 10_000
AGENT = {"type": "simulation", "config": {}}
KINDS = ("snapshot", "final")
STATE_FIELDS = ("game_state", "global_vars", "agent_vars", "messages")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_RUN_ID = re.compile(r"[A-Za-z0-9_-]+")
_PARTITION = {"dataset": "simulation", "agent": "simulation", "attack": "none"}


def sanitize_scenario(scenario: str) -> str:
    """The scenario name as it appears in a run id: every character outside [A-Za-z0-9_-]
    replaced by `_`, then cut to SCENARIO_CHARS characters (the legacy rule)."""
    return _UNSAFE.sub("_", scenario)[:SCENARIO_CHARS]


def dataset_config(scenario: str) -> dict[str, Any]:
    """The `dataset` component of the run configuration of a scenario's runs."""
    return {"type": "simulation", "config": {"scenario": scenario}}


@overload
def _nonnegative_int(field: str, value: Any, *, optional: Literal[False] = False) -> int: ...
@overload
def _nonnegative_int(field: str, value: Any, *, optional: bool) -> int | None: ...


def _nonnegative_int(field: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # Python's and NumPy's ints
        raise InvalidRecord(f"{field} must be an integer >= 0, got {type(value).__name__} {value!r:.80}")
    value = int(value)
    if value < 0:
        raise InvalidRecord(f"{field} must be >= 0, got {value}")
    return value


class RunRecorder:
    """Records one simulation run: `step(...)` after each step, `finish(...)` at the end.

    `save_frequency` 0 saves only the final snapshot, 1 every step, k every k-th step (steps
    divisible by k, step 0 included); if it exceeds `max_steps` only the final snapshot is saved.
    Every save is committed before the call returns, so a crash loses no saved snapshot.

    Unlike the legacy persistence, which logged a failed save and went on, a failed save raises
    (results and checkpoints raise in this product); the failed snapshot stays pending and is
    committed, once, by the next save, `finish` or `close`. One recorder per run, used from one
    thread. A context manager: leaving the block closes the recorder (without a final snapshot,
    unless `finish` was called).

    Raises InvalidRecord at construction for a bad scenario, save_frequency (< 0 or not an int)
    or max_steps; ReadOnlyWarehouse on a time-travel snapshot.
    """

    def __init__(
        self,
        wh: Engine,
        scenario: str,
        save_frequency: int = 1,
        max_steps: int | None = None,
        started_at: datetime | str | None = None,
    ) -> None:
        self.scenario = records.text("scenario", scenario, required=True)
        if not self.scenario:
            raise InvalidRecord("scenario must be a non-empty string")
        self.save_frequency = _nonnegative_int("save_frequency", save_frequency)
        self.max_steps = _nonnegative_int("max_steps", max_steps, optional=True)
        started = records.timestamp("started_at", started_at) or datetime.now(UTC)
        self.started_at: datetime = started.astimezone(UTC)
        self.wh = wh
        self._writer: Writer = Writer(
            wh.engine,
            dataset=dataset_config(self.scenario),
            agent=AGENT,
            flush_interval=None,
            flush_rows=1 << 62,
            flush_bytes=1 << 62,
        )
        try:
            self.run_id: str = self._claim()
        except BaseException:
            self._writer.close()
            raise
        self._metadata = records.json_text(
            "metadata", {"scenario": self.scenario, "started_at": records.iso_utc(self.started_at)}
        )
        self._last_step: int | None = None
        self._finished = False

    def __repr__(self) -> str:
        return f"<RunRecorder {self.run_id!r} save_frequency={self.save_frequency}>"

    def _claim(self) -> str:
        """`run_<scenario>_<UTC start>`, with `_1`, `_2`, ... appended while another run holds it."""
        base = f"run_{sanitize_scenario(self.scenario)}_{self.started_at.strftime('%Y-%m-%d_%H-%M-%S')}"
        doc = {
            "scenario": self.scenario,
            "started_at": records.iso_utc(self.started_at),
            "claimed_by": writer_info(self._writer.writer_id),
        }
        store = self.wh.store
        with store.errors():
            for n in range(MAX_CLAIMS):
                run_id = base if n == 0 else f"{base}_{n}"
                body = json.dumps({"run_id": run_id, **doc}, ensure_ascii=False, sort_keys=True).encode("utf-8")
                rel = f"{RUNS_DIR}/{run_id}.json"
                if store.put_if_absent(rel, body):
                    return run_id
                # Refused as existing: another run's claim, or ours, whose answer was lost and whose
                # retry was refused. The claim names our writer: only a definite other claim counts.
                try:
                    if store.read_bytes(rel) == body:
                        return run_id
                except FileNotFoundError:
                    pass
        raise StateError(f"run ids {base!r} to {base}_{MAX_CLAIMS - 1} are all taken; pass another started_at")

    def should_save(self, step: int) -> bool:
        """True if `step(step, ...)` saves a snapshot: save_frequency > 0, step divisible by it,
        and save_frequency not above max_steps."""
        return (
            self.save_frequency > 0
            and step % self.save_frequency == 0
            and (self.max_steps is None or self.save_frequency <= self.max_steps)
        )

    def step(
        self,
        step: int,
        *,
        game_state: Any = None,
        global_vars: Any = None,
        agent_vars: Any = None,
        messages: Any = None,
    ) -> bool:
        """End of step `step`: save a snapshot (kind `snapshot`) if `should_save(step)`; returns
        whether it did. Steps must increase from call to call. The state is checked only when
        saved: each field must be JSON-serialisable (None is stored as {} / [] for messages).

        Raises InvalidRecord naming a bad field or step (nothing is stored), WarehouseError after
        `finish`/`close`, and the storage's error if the commit fails.
        """
        n = self._check_step(step, final=False)
        if not self.should_save(n):
            self._last_step = n
            return False
        self._save("snapshot", n, game_state, global_vars, agent_vars, messages)
        return True

    def finish(
        self,
        step: int,
        *,
        game_state: Any = None,
        global_vars: Any = None,
        agent_vars: Any = None,
        messages: Any = None,
    ) -> None:
        """Save the final snapshot (kind `final`, whatever the save frequency) and close the recorder.

        `step` may equal the last step given to `step()`. Raises as `step()` does.
        """
        n = self._check_step(step, final=True)
        self._save("final", n, game_state, global_vars, agent_vars, messages)
        self._finished = True
        self._writer.close()

    def close(self) -> None:
        """Commit anything pending and stop recording (no final snapshot is added)."""
        self._finished = True
        self._writer.close()

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _check_step(self, step: Any, *, final: bool) -> int:
        if self._finished:
            raise WriterClosed(f"run {self.run_id} is finished or closed; start a new recorder for a new run")
        n = records.integer("step", step)
        if n is None:
            raise InvalidRecord("step is required, got None")
        last = self._last_step
        if last is not None and (n < last or (n == last and not final)):
            raise InvalidRecord(f"step {n} does not follow the previous step {last}: steps must increase")
        return n

    def _save(self, kind: str, step: int, game_state: Any, global_vars: Any, agent_vars: Any, messages: Any) -> None:
        """Validate, buffer and commit one snapshot row."""
        row, size = snapshot_row(
            self.run_id, kind, step, game_state, global_vars, agent_vars, messages, datetime.now(UTC), self._metadata
        )
        self._writer._add_rows(SNAPSHOT_ROW, [row], size)
        # Buffered: from here a failed flush stays pending in the writer and is retried, once, by
        # the next save; so the step counts as taken.
        self._last_step = step
        self._writer.flush()


def snapshot_row(
    run_id: str,
    kind: str,
    step: int,
    game_state: Any,
    global_vars: Any,
    agent_vars: Any,
    messages: Any,
    created_at: datetime,
    metadata: str | None,
) -> tuple[tuple, int]:
    """One validated row of `snapshots` (non-partition columns) for a simulation snapshot, and its
    text size: the state is the JSON of {game_state, global_vars, agent_vars, messages} (None
    becomes {}, or [] for messages); `metadata` is JSON text. Raises InvalidRecord naming a field
    that is not JSON-serialisable, or messages that are not a list."""
    if messages is None:
        messages = []
    elif isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, (list, tuple)):
        raise InvalidRecord(f"messages must be a list, got {type(messages).__name__} {messages!r:.80}")
    values = (game_state, global_vars, agent_vars, messages)
    texts = [records.json_text(f, {} if v is None else v) for f, v in zip(STATE_FIELDS, values)]
    state = "{" + ",".join(f'"{f}":{t}' for f, t in zip(STATE_FIELDS, texts)) + "}"
    row = (f"{run_id}:{kind}:{step}", None, run_id, kind, step, None, None, state, created_at, metadata)
    return row, len(state)


def _partition_filter() -> tuple[str, list[str]]:
    return " and ".join(f"{c} = ?" for c in _PARTITION), list(_PARTITION.values())


def snapshots(wh: Engine, run_id: str) -> list[dict[str, Any]]:
    """The saved snapshots of a run, after reading other processes' commits, in step order (a
    final snapshot after a snapshot of the same step): dicts of step, kind, game_state,
    global_vars, agent_vars, messages, created_at (UTC datetime).

    Raises RunNotFound if the run has no snapshot (an unknown id, or a run that saved nothing yet).
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise RunNotFound(f"no simulation run with id {run_id!r}: run ids are made of A-Z, a-z, 0-9, _ and -")
    wh.refresh()
    where, params = _partition_filter()
    rows = wh.engine.lookup(
        "snapshots",
        "run_id",
        run_id,
        f"select kind, step, state, created_at from t where {where} "
        "and run_id = ? order by step, kind = 'final', created_at",
        [*params, run_id],
    )
    if not rows:
        raise RunNotFound(
            f"no simulation run {run_id!r} with a saved snapshot at version {wh.version}; "
            "see wh.simulations.runs() for the runs there are"
        )
    out = []
    for r in rows:
        state = json.loads(r["state"])
        out.append(
            {
                "step": r["step"],
                "kind": r["kind"],
                **{f: state.get(f) for f in STATE_FIELDS},
                "created_at": r["created_at"],
            }
        )
    return out


def runs(wh: Engine) -> pl.DataFrame:
    """Every simulation run with a saved snapshot, newest first (after reading other processes'
    commits): run_id, scenario (as given), started_at (UTC), snapshots (rows saved), last_step,
    finished (a final snapshot was saved)."""
    wh.refresh()
    where, params = _partition_filter()
    return wh.sql(
        "select run_id, any_value(json_extract_string(metadata, '$.scenario')) as scenario, "
        "min(cast(json_extract_string(metadata, '$.started_at') as timestamptz)) as started_at, "
        "count(*) as snapshots, max(step) as last_step, bool_or(kind = 'final') as finished "
        f"from snapshots where {where} and run_id is not null group by run_id "
        "order by started_at desc, run_id desc",
        params,
    ).pl()


__all__ = ["RunRecorder", "snapshots", "runs", "sanitize_scenario", "dataset_config", "snapshot_row"]
