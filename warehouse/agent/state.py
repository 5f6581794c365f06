"""Reading agent state: checkpoints, resume plans, the event stream, RL trajectories.

The writing side is `live.py` (executions in flight) and `Writer.add_trajectory`; these functions
only read the snapshot (behind the `Warehouse` methods of the same names).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.core import arguments
from warehouse.core.condition import condition
from warehouse.core.config import RunConfig
from warehouse.core.errors import (
    CheckpointNotFound,
    ExecutionNotFound,
    InvalidArgumentType,
    InvalidCondition,
    PermissionDenied,
)
from warehouse.core.schemas import catalog
from warehouse.engine import reader
from warehouse.write.live import Checkpoint

if TYPE_CHECKING:
    import polars as pl

    from warehouse.engine.engine import Engine


def _checkpoint(row: Mapping[str, Any]) -> Checkpoint:
    return Checkpoint(
        row["snapshot_id"],
        row["execution_id"],
        row["step"],
        row["thread_id"],
        row["owner"],
        row["created_at"],
        json.loads(row["state"]),
        json.loads(row["metadata"]) if row["metadata"] else None,
    )


def _require_execution(wh: Engine, execution_id: str) -> Mapping[str, Any]:
    found = wh.engine.records(
        "select execution_id, owner, status from executions where execution_id = ?", [execution_id]
    )
    if not found:
        raise ExecutionNotFound(f"no execution with id {execution_id!r} at version {wh.version}")
    return found[0]


def checkpoints(wh: Engine, execution_id: str) -> list[Checkpoint]:
    """Every checkpoint of an execution, oldest first. Raises ExecutionNotFound for an unknown id."""
    _require_execution(wh, execution_id)
    rows = wh.engine.lookup(
        "snapshots",
        "execution_id",
        execution_id,
        "select * from t where kind = 'checkpoint' and execution_id = ? order by created_at, step, snapshot_id",
        [execution_id],
    )
    return [_checkpoint(r) for r in rows]


def latest_checkpoint(wh: Engine, execution_id: str, owner: str | None = None) -> Checkpoint | None:
    """The newest checkpoint of an execution (None if it has none).

    With `owner`, the execution must belong to that owner (or to none): else PermissionDenied,
    as the results service checks before a resume. Raises ExecutionNotFound for an unknown id.
    """
    ex = _require_execution(wh, execution_id)
    if owner is not None and ex["owner"] is not None and ex["owner"] != owner:
        raise PermissionDenied(
            f"execution {execution_id} and its checkpoints belong to owner {ex['owner']!r}, not {owner!r}"
        )
    # Newest files first (by the manifest's max created_at); stop once no other file can hold a
    # newer checkpoint: usually one file is read, however many checkpoints the execution has.
    files = reader.files_holding(wh.snapshot.table_files("snapshots"), "execution_id", execution_id)
    files.sort(key=_newest_first)
    query = (
        "select * from t where kind = 'checkpoint' and execution_id = ? "
        "order by created_at desc, step desc nulls last, snapshot_id desc limit 1"
    )
    best: Mapping[str, Any] | None = None
    for f in files:
        newest = _max_created(f)
        if best is not None and newest is not None and newest < best["created_at"]:
            break
        rows = wh.engine.query_files("snapshots", [f], query, [execution_id])
        if rows and (
            best is None or (rows[0]["created_at"], rows[0]["step"] or -1) > (best["created_at"], best["step"] or -1)
        ):
            best = rows[0]
    return _checkpoint(best) if best is not None else None


def _max_created(f: Any) -> datetime | None:
    st = f.stats.get("created_at")
    return datetime.fromisoformat(st["max"].replace("Z", "+00:00")) if st and st.get("max") else None


def _newest_first(f: Any) -> tuple[int, float]:
    m = _max_created(f)
    return (0, 0.0) if m is None else (1, -m.timestamp())  # files without stats first: they must be read


def load_checkpoint(
    wh: Engine, checkpoint_id: str, execution_id: str | None = None, owner: str | None = None
) -> Checkpoint:
    """One checkpoint by its id (the id `Execution.checkpoint` returned or was given, e.g.
    "turn_2"), within `execution_id` if given. Raises CheckpointNotFound if there is none, or
    several (ids given by callers need not be unique across executions: pass execution_id), and
    PermissionDenied if `owner` is given and the checkpoint belongs to another owner."""
    if execution_id is not None:
        rows = wh.engine.lookup(
            "snapshots",
            "execution_id",
            execution_id,
            "select * from t where kind = 'checkpoint' and execution_id = ? and snapshot_id = ?",
            [execution_id, checkpoint_id],
        )
    else:
        rows = wh.engine.records(
            "select * from snapshots where kind = 'checkpoint' and snapshot_id = ? limit 2", [checkpoint_id]
        )
    where = f" of execution {execution_id}" if execution_id else ""
    if not rows:
        raise CheckpointNotFound(f"no checkpoint {checkpoint_id!r}{where} at version {wh.version}")
    if len(rows) > 1:
        raise CheckpointNotFound(
            f"checkpoint id {checkpoint_id!r} names checkpoints of several executions; give execution_id="
        )
    cp = _checkpoint(rows[0])
    if owner is not None and cp.owner is not None and cp.owner != owner:
        raise PermissionDenied(f"checkpoint {checkpoint_id!r} belongs to owner {cp.owner!r}, not {owner!r}")
    return cp


@dataclass(frozen=True)
class TaskPlan:
    """What a task still needs under one config (one entry of `Warehouse.resume_plan`)."""

    task_id: str
    completed: int  # runs that completed
    failed: int  # runs that failed
    running: tuple[str, ...]  # executions left running (interrupted), newest first
    runs_needed: int  # runs still to do (resumed or new)
    resume_execution_id: str | None  # the interrupted execution to resume first, if any
    checkpoint: Checkpoint | None  # its latest checkpoint, if any

    @property
    def done(self) -> bool:
        return self.runs_needed == 0


def resume_plan(
    wh: Engine, config: Any, task_ids: Sequence[str], *, runs: int = 1, retry_failed: bool = True
) -> list[TaskPlan]:
    """Which of `task_ids` still need runs under `config` (a RunConfig, a {dataset, agent, attack}
    dict, or a config hash), in the order given.

    A task needs `runs` completed runs. With `retry_failed` (the legacy `--retry-on-errors`) failed
    runs do not count, so they are run again; without it they count as done. An interrupted
    execution (still `running`) is offered for resuming, with its latest checkpoint.
    """
    runs = arguments.integer("runs", runs, minimum=1)
    if isinstance(config, str):
        chash = config
    elif isinstance(config, RunConfig):
        chash = config.hash
    elif isinstance(config, Mapping):
        chash = RunConfig.of(config.get("dataset"), config.get("agent"), config.get("attack")).hash
    else:
        raise InvalidArgumentType(f"config must be a RunConfig, a dict or a config hash, got {type(config).__name__}")
    tasks = [str(t) for t in task_ids]
    wh.refresh()
    rows = wh.engine.records(
        "select task_id, status, execution_id from executions where config_hash = ? "
        "and list_contains(?, task_id) order by execution_id desc",
        [chash, tasks],
    )
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
    plans = []
    for t in tasks:
        rs = by_task.get(t, [])
        completed = sum(r["status"] == "completed" for r in rs)
        failed = sum(r["status"] == "failed" for r in rs)
        running = tuple(r["execution_id"] for r in rs if r["status"] == "running")
        needed = max(0, runs - completed - (0 if retry_failed else failed))
        resume_id = running[0] if needed and running else None
        cp = latest_checkpoint(wh, resume_id) if resume_id else None
        plans.append(TaskPlan(t, completed, failed, running, needed, resume_id, cp))
    return plans


def _event_dicts(table: pa.Table) -> list[dict[str, Any]]:
    table = table.sort_by([("timestamp", "ascending"), ("seq", "ascending")])
    return table.to_pylist()


def follow(
    wh: Engine,
    execution_id: str | None = None,
    *,
    follow: bool = False,
    last: int | None = None,
    poll_interval: float = 0.5,
    timeout: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Events (logs, spans, status changes) as dicts, in time order: those committed so far (the
    `last` N only, if given), then, with `follow`, each new one as soon as its commit is seen
    (polling the manifest every `poll_interval` seconds, reading only the files new commits add),
    until `timeout` seconds pass without a new event, or forever (timeout None).
    """
    from warehouse.engine.datafiles import read_data_file

    last = arguments.optional_integer("last", last, minimum=0)
    poll_interval = arguments.number("poll_interval", poll_interval, above=0)
    if timeout is not None:
        timeout = arguments.number("timeout", timeout, minimum=0)
    if execution_id is not None and not isinstance(execution_id, str):
        raise InvalidArgumentType(
            f"execution_id must be a string, got {type(execution_id).__name__} {execution_id!r:.80}"
        )
    wh.refresh()
    where = "where execution_id = ?" if execution_id else ""
    params = [execution_id] if execution_id else []
    source = "t" if execution_id else "events"
    if last is not None:
        query = (
            f"select * from (select * from {source} {where} order by timestamp desc, seq desc limit {int(last)}) "
            "order by timestamp, seq"
        )
    else:
        query = f"select * from {source} {where} order by timestamp, seq"
    yield from (
        wh.engine.lookup("events", "execution_id", execution_id, query, params)
        if execution_id
        else wh.engine.records(query, params)
    )
    if not follow:
        return
    idle_since = time.monotonic()
    while True:
        _, commits = wh.engine.refresh_commits()
        if commits:
            tables = [read_data_file(wh, a) for c in commits for a in c.add if a.table == "events"]
            if tables:
                t = pa.concat_tables(tables)
                if execution_id:
                    t = t.filter(pc.equal(t.column("execution_id"), execution_id))
                if t.num_rows:
                    idle_since = time.monotonic()
                    yield from _event_dicts(t)
                    continue
        if timeout is not None and time.monotonic() - idle_since >= timeout:
            return
        time.sleep(poll_interval)


_KEY = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


def _json_path(key: Any) -> str:
    """The JSONPath of a metadata key (`a.b` = key b inside key a), each key quoted: a key is a
    name, never a pattern (`*` or `..` would match other keys). Raises InvalidCondition otherwise."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidCondition(
            f"metadata key {key!r:.80} is not a key: use letters, digits, '_' and '-', "
            "nested keys separated by '.' (e.g. difficulty or env.seed)"
        )
    return "$" + "".join(f"['{part}']" for part in key.split("."))


def trajectories(
    wh: Engine,
    where: Mapping[str, Any] | str | None = None,
    *,
    metadata: Mapping[str, Any] | None = None,
    metadata_keys: Sequence[str] = (),
    with_messages: bool = False,
) -> pl.LazyFrame:
    """RL trajectories (executions with a reward) as a Polars LazyFrame: execution_id, task_id,
    group, replica, rewards, advantages (list), metadata (JSON text), completions (JSON text),
    partition columns; `metadata_keys` become columns of their own (JSON values as text), `where`
    keeps rows whose metadata key equals the value (a dict; `a.b` is key b inside key a) or that
    an SQL condition over the columns of `executions` selects (text, as for `Warehouse.scores`),
    `metadata` keeps rows whose metadata has each of its key -> value (as a dict `where` does;
    both may be given), `with_messages` adds a `messages` list column. Raises InvalidCondition for a metadata key that
    is not a key name or SQL that is not one condition.
    """
    import polars as pl

    if where is not None and not isinstance(where, (Mapping, str)):
        raise InvalidCondition(
            f"where must be a dict of metadata key -> value or an SQL condition, got "
            f"{type(where).__name__} {where!r:.80}"
        )
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidCondition(
            f"metadata must be a dict of metadata key -> value, got {type(metadata).__name__} {metadata!r:.80}"
        )
    wanted = {**(where if isinstance(where, Mapping) else {}), **(metadata or {})}
    if isinstance(metadata_keys, str):
        metadata_keys = [metadata_keys]
    elif isinstance(metadata_keys, (bytes, bytearray, Mapping)) or not hasattr(metadata_keys, "__iter__"):
        raise InvalidArgumentType(f"metadata_keys must be a list of metadata keys, got {metadata_keys!r:.80}")
    metadata_keys = list(metadata_keys)
    for key in [*wanted, *metadata_keys]:
        _json_path(key)  # raises InvalidCondition for a key that is not a name, before anything is read
    lf = wh.scan("executions").filter(pl.col("reward").is_not_null())
    cols = [
        *catalog().partition_columns,
        "execution_id",
        "task_id",
        pl.col("group_id").alias("group"),
        pl.col("sample").alias("replica"),
        pl.col("reward").alias("rewards"),
        "advantages",
        "metadata",
        "completions",
        "finished_at",
    ]
    lf = lf.select(cols)
    if isinstance(where, str):
        columns = {c.name: c.duckdb_type for c in catalog().table("executions").columns}
        cond = condition(where, columns, over="executions")
        keys = wh.engine.sql_sandboxed(
            f"select execution_id, config_hash from executions where reward is not null and {cond}"
        )
        matching = cast("pl.DataFrame", pl.from_arrow(keys.arrow()))  # a Table gives a DataFrame
        lf = lf.join(matching.lazy(), on=["execution_id", "config_hash"], how="semi")
    elif where is not None and not isinstance(where, Mapping):
        raise InvalidCondition(
            f"where must be a dict of metadata key -> value or an SQL condition, got "
            f"{type(where).__name__} {where!r:.80}"
        )
    for key, value in wanted.items():
        expected = value if isinstance(value, str) else json.dumps(value)
        lf = lf.filter(pl.col("metadata").str.json_path_match(_json_path(key)) == expected)
    if metadata_keys:
        lf = lf.with_columns(pl.col("metadata").str.json_path_match(_json_path(k)).alias(k) for k in metadata_keys)
    if with_messages:
        msgs = (
            wh.scan("messages")
            .sort("seq")
            .group_by("execution_id")
            .agg(pl.struct("seq", "role", "content", "tool_calls", "tool_call_id", "name").alias("messages"))
        )
        lf = lf.join(msgs, on="execution_id", how="left")
    return lf
