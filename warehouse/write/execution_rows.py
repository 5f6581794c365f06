"""The rows of an execution: the shapes of `executions`/`executions_live` rows, an execution validated
into rows (`PreparedExecution`), and the `add_execution` arguments of an RL trajectory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from warehouse.core import records
from warehouse.core.rows import RowShape


def trajectory_execution(
    *,
    messages: Any,
    completions: Any,
    rewards: Any,
    group: Any,
    replica: Any,
    advantages: Any,
    metadata: Any,
    task_id: Any,
) -> dict[str, Any]:
    """The `add_execution` arguments of one RL trajectory (see `Writer.add_trajectory`, and the
    trajectories importer): rewards -> reward, group -> group (text), replica -> sample, a single
    advantage -> a one-element list, task_id defaulting to metadata["task_id"]."""
    if records.is_number(advantages):  # one number, of any kind (NumPy's too): a one-element list
        advantages = [advantages]
    if task_id is None and isinstance(metadata, Mapping):
        task_id = metadata.get("task_id")
    return {
        "task_id": str(task_id) if task_id is not None else "trajectory",
        "messages": messages,
        "completions": completions if completions is not None else [],
        "reward": records.score("rewards", rewards),
        "group": str(group),
        "sample": records.integer("replica", replica, records.INT32),
        "advantages": advantages,
        "metadata": metadata,
    }


#: The tuples of `Writer._execution_row`, by name (final rows; revisions of live ones in executions_live).
EXECUTION_ROW = RowShape(
    "executions",
    (
        "execution_id",
        "task_id",
        "run_id",
        "sample",
        "group_id",
        "status",
        "error",
        "revision",
        "started_at",
        "finished_at",
        "duration_ms",
        "trace_id",
        "span_id",
        "model",
        *records.USAGE_FIELDS,
        "benign_score",
        "attack_score",
        "reward",
        "advantages",
        "scores",
        "metadata",
        "owner",
        "result",
        "completions",
        "write_id",
    ),
)
EXECUTION_LIVE_ROW = EXECUTION_ROW.on("executions_live")


class PreparedExecution(NamedTuple):
    """One execution validated into rows (`Writer.prepare_execution`), not yet buffered."""

    execution_id: str
    row: tuple
    message_rows: list[tuple]
    message_bytes: int
    attack_rows: list[tuple]
    keyed: bool = False  # the id was given, so an earlier add of it may be stored (see warehouse.keys)
