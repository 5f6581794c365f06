"""`warehouse export trajectories OUT`: RL trajectories as JSONL in the rollouts `Trajectory` format.

One line per trajectory (an execution with a reward, as `wh.executions.trajectories()` lists them):
{"completions", "messages", "rewards", "group", "replica", "advantages", "metadata"}, the inverse
of the trajectories importer, so exporting and importing again gives the same records:
group_id -> group (an integer again when it is one's text), sample -> replica, a one-element
advantages list -> a number, completions and metadata as the JSON stored (keys the importer kept
in metadata["_extra"] go back to the top level), messages as `wh.sessions.load` returns them
(timestamps as ISO-8601 text). `where={"difficulty": "hard"}` keeps the trajectories whose
metadata has those values (keys dataset, agent, attack and config_hash filter partitions instead;
`"difficulty=hard,dataset=trajectories"` is the same filter as text). Any other text is an SQL
condition over the columns of `executions`, as for `Warehouse.scores`:
`"reward >= 0.5 and metadata->>'$.difficulty' = 'hard'"` (group_id, sample and reward are the
executions' names of group, replica and rewards).

OUT is a file (a local path or an fsspec URL; `.gz` compresses), or an existing directory, which
gets `trajectories.jsonl`; a local file is replaced atomically. The task_id is not written: the
importer takes it from metadata["task_id"] again.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import fsspec
import orjson
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from warehouse.agent import state as agent_state
from warehouse.core import records
from warehouse.core.condition import condition
from warehouse.core.errors import ExportFailed
from warehouse.core.partition_filter import column_value_pairs
from warehouse.core.schemas import catalog
from warehouse.interop.exporters import ExportReport
from warehouse.interop.importers.trajectory_files import EXTRA

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

FILE_NAME = "trajectories.jsonl"
#: Trajectories whose messages are read with one query.
CHUNK = 5_000
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def _group(value: str | None) -> int | str:
    if value is None:
        return 0
    try:
        n = int(value)
    except ValueError:
        return value
    return n if str(n) == value else value


def _advantages(value: list[float] | None) -> float | list[float]:
    if value is None:
        return 0.0
    return value[0] if len(value) == 1 else list(value)


def trajectory(row: Mapping[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One reference-format trajectory from a `wh.executions.trajectories()` row and its messages."""
    meta = orjson.loads(row["metadata"]) if row["metadata"] is not None else None
    extra = meta.pop(EXTRA, None) if isinstance(meta, dict) else None
    out = {
        "completions": orjson.loads(row["completions"]) if row["completions"] is not None else [],
        "messages": messages,
        "rewards": row["rewards"],
        "group": _group(row["group"]),
        "replica": row["replica"] if row["replica"] is not None else 0,
        "advantages": _advantages(row["advantages"]),
        "metadata": meta,
    }
    if isinstance(extra, dict):
        out.update(extra)
    return out


def _lines(wh: Engine, rows: list[dict[str, Any]]) -> Iterator[tuple[bytes, int]]:
    """(JSONL line, message count) of each trajectory row, reading messages CHUNK trajectories at a time."""
    con = wh.connect()
    try:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            keys = pa.table(
                {"execution_id": [r["execution_id"] for r in chunk], "config_hash": [r["config_hash"] for r in chunk]}
            )
            con.register("_export_ids", keys)
            cur = con.execute(
                "select m.* from messages m join _export_ids k using (execution_id, config_hash) "
                "order by m.execution_id, m.seq"
            )
            cols = [d[0] for d in cur.description]
            by_id: dict[str, list[dict[str, Any]]] = {}
            for values in cur.fetchall():
                m = dict(zip(cols, values))
                by_id.setdefault(m["execution_id"], []).append(records.message_from_row(m))
            con.unregister("_export_ids")
            for r in chunk:
                msgs = by_id.get(r["execution_id"], [])
                yield orjson.dumps(trajectory(r, msgs), option=_OPTS), len(msgs)
    finally:
        con.close()


def _where(where: Mapping[str, Any] | str | None) -> tuple[dict[str, str], dict[str, Any], str | None]:
    """(partition filter, metadata filter, SQL condition) of `where`: a dict or `key=value,...`
    text (keys that are partition columns filter partitions, any other key is a metadata key), or
    an SQL condition over the columns of `executions` (checked; see `warehouse.condition`)."""
    if where is None:
        return {}, {}, None
    if isinstance(where, str):
        pairs = column_value_pairs(where)
        if pairs is None:
            types = {c.name: c.duckdb_type for c in catalog().table("executions").columns}
            return {}, {}, condition(where, types, over="executions")
        where = pairs
    if not isinstance(where, Mapping):
        raise ExportFailed(
            f"where must be an SQL condition or a dict of metadata key -> value, got "
            f"{type(where).__name__} {where!r:.80}"
        )
    columns = set(catalog().partition_columns)
    partition, meta = {}, {}
    for key, value in where.items():
        if not isinstance(key, str) or not key.replace("_", "").replace(".", "").replace("-", "").isalnum():
            raise ExportFailed(f"where keys are metadata keys (letters, digits, _, - and .), got {key!r:.80}")
        if key in columns:
            partition[key] = str(value)
        else:
            meta[key] = value
    return partition, meta, None


def export(
    wh: Engine,
    out: str,
    *,
    where: Mapping[str, Any] | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> ExportReport:
    """Write the trajectories of `wh`'s current snapshot (those whose metadata matches `where`) to
    `out` as JSONL; see the module docstring. Raises ExportFailed for a bad `where` dict or an
    unusable target (the target is left as it was), InvalidCondition for SQL that is not one
    condition over the executions' columns."""
    import polars as pl

    t0 = time.perf_counter()
    partition, meta, sql = _where(where)
    try:
        fs, path = fsspec.core.url_to_fs(str(out), **dict(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise ExportFailed(f"cannot export to {out!r}: {exc}") from None
    if fs.isdir(path):
        path = f"{path.rstrip('/')}/{FILE_NAME}"
    lf = agent_state.trajectories(wh, sql if sql is not None else meta)
    for col, value in partition.items():
        lf = lf.filter(pl.col(col) == value)
    frame = lf.collect().sort(["finished_at", "execution_id"])
    rows = frame.to_dicts()
    local = isinstance(fs, LocalFileSystem)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}" if local else path
    n_messages = 0
    try:
        if local:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with fsspec.open(
            tmp, "wb", compression=fsspec.utils.infer_compression(path), **dict(storage_options or {})
        ) as f:
            for line, n in _lines(wh, rows):
                f.write(line)
                n_messages += n
        if local:
            os.replace(tmp, path)
    except OSError as exc:
        if local and os.path.exists(tmp):
            os.unlink(tmp)
        raise ExportFailed(f"cannot write {path}: {exc}") from None
    return ExportReport(
        "trajectories",
        str(out),
        wh.version,
        {"trajectories": len(rows), "messages": n_messages},
        1,
        time.perf_counter() - t0,
    )
