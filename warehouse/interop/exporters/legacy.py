"""Export to the legacy results layout (`shared/reference/results-saving-index-jsonl.md`), so that
scripts written for it keep working:

    <out>/index.jsonl                                            one line per execution
    <out>/{dataset}/{agent}/{attack}/{config_hash}/config.yaml   once per configuration
    <out>/{dataset}/{agent}/{attack}/{config_hash}/{timestamp}_{task_id}.json   one execution

`attack` is `benign` for benign runs; path components are percent-encoded. Files have the
reference's keys (execution_id, task_id, dataset_type, dataset_config, agent, config_hash,
timestamp = finished_at, trace_id, span_id, messages, usage, results, attacks), extra numeric
scores inside `results`, and, only where they hold a value, the warehouse fields the reference
has no key for (run_id, model, status unless completed, error, started_at, duration_ms, sample,
group, reward, advantages, metadata, owner, result, completions): `warehouse import legacy` maps
all of them back, so importing an export answers every query like the original.

Only finished executions are exported. Exporting again into the same directory writes only the
executions its index.jsonl does not list yet. Two executions of one task finished in the same
second get distinct files (the second one's name ends with its execution id).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from filelock import FileLock

from warehouse.core import records
from warehouse.core.config import RunConfig
from warehouse.core.errors import ExportFailed, InvalidCondition
from warehouse.core.schemas import catalog
from warehouse.interop.exporters import ExportReport
from warehouse.interop.importers.legacy import BENIGN, INDEX, default_agent_name

if TYPE_CHECKING:
    from warehouse.core.partition_filter import PartitionFilter
    from warehouse.engine.engine import Engine

#: Longest task-id part of a file name, in characters (file names are limited to 255 bytes).
MAX_NAME_TASK = 120
#: Execution columns written, when they hold a value, under the same key (the reference has none for them).
EXTENSION_COLUMNS = (
    "run_id",
    "model",
    "error",
    "started_at",
    "duration_ms",
    "sample",
    "reward",
    "advantages",
    "owner",
    "result",
)


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return records.iso_utc(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def _component(value: str) -> str:
    """A path component that stays in its directory."""
    q = quote(value, safe="")
    if q in ("", ".", ".."):
        q = q.replace(".", "%2E") or "%00"
    return q


def _file_name(finished: datetime, task_id: str) -> str:
    safe = task_id.replace(":", "_").replace("/", "_")
    if len(safe) > MAX_NAME_TASK:
        safe = safe[:MAX_NAME_TASK] + "_" + hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:8]
    safe = quote(safe, safe="_-.~ ")
    return f"{finished.astimezone(UTC):%Y%m%d_%H%M%S}_{safe}"


def _exported_ids(index: Path) -> set[str]:
    ids: set[str] = set()
    if index.exists():
        with open(index, encoding="utf-8") as f:
            for line in f:
                try:
                    ids.add(json.loads(line)["execution_id"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line of another writer that is not an execution: not ours to judge
    return ids


def execution_document(
    ex: dict[str, Any], config: RunConfig, messages: list[dict[str, Any]], attacks: list[dict[str, Any]]
) -> dict[str, Any]:
    """One execution (a row of the `executions` view) as the legacy JSON document."""
    meta = json.loads(ex["metadata"]) if ex.get("metadata") is not None else None
    legacy = meta.pop("legacy", None) if isinstance(meta, dict) else None
    if legacy is not None and not meta:
        meta = None  # the importer made the metadata only to hold `legacy`
    legacy = legacy or {}
    usage = {k: ex[k] for k in records.USAGE_FIELDS if ex.get(k) is not None}
    usage.update(legacy.get("usage") or {})
    scores = dict(ex["scores"]) if ex.get("scores") else {}
    results: dict[str, Any] = {"benign_score": ex.get("benign_score"), "attack_score": ex.get("attack_score")}
    scores_key = None
    if scores.keys() & results.keys() or scores.keys() & (legacy.get("results") or {}).keys():
        scores_key = scores  # a name the results object already uses: keep the scores apart
    else:
        results.update(scores)
    results.update(legacy.get("results") or {})
    doc: dict[str, Any] = {
        "execution_id": ex["execution_id"],
        "task_id": ex["task_id"],
        "dataset_type": legacy.get("dataset_type", config.dataset["type"]),
        "dataset_config": legacy.get("dataset_config", config.dataset["config"]),
        "agent": legacy.get("agent_name", default_agent_name(config.agent)),
        "config_hash": ex["config_hash"],
        "timestamp": None if ex["finished_at"] is None else records.iso_utc(ex["finished_at"]),
        "trace_id": ex.get("trace_id"),
        "span_id": ex.get("span_id"),
        "messages": messages,
        "usage": usage,
        "results": results,
        "attacks": {
            a["vector_id"]: {
                k: v
                for k, v in (("type", a["type"]), ("content", a["content"]), ("metadata", a["metadata"]))
                if k != "metadata" or v is not None
            }
            for a in attacks
        },
    }
    for col in EXTENSION_COLUMNS:
        if ex.get(col) is not None:
            doc[col] = ex[col]
    if ex.get("status") != "completed":
        doc["status"] = ex["status"]
    if ex.get("group_id") is not None:
        doc["group"] = ex["group_id"]
    if scores_key is not None:
        doc["scores"] = scores_key
    if meta is not None:
        doc["metadata"] = meta
    if ex.get("completions") is not None:
        doc["completions"] = json.loads(ex["completions"])
    for k, v in (legacy.get("fields") or {}).items():
        doc.setdefault(k, v)
    return doc


def _run_config(
    chash: str, dtype: str, dcfg: str | None, atype: str, acfg: str | None, ktype: str | None, kcfg: str | None
) -> RunConfig:
    def component(typ: str, cfg: str | None) -> dict[str, Any]:
        return {"type": typ, "config": json.loads(cfg) if cfg is not None else {}}

    attack = component(ktype, kcfg) if ktype is not None else None
    return RunConfig.of(component(dtype, dcfg), component(atype, acfg), attack).with_hash(chash)


def _attack_dict(row: dict[str, Any]) -> dict[str, Any]:
    meta = json.loads(row["metadata"]) if row.get("metadata") is not None else None
    return {"vector_id": row["vector_id"], "type": row["type"], "content": row["content"], "metadata": meta}


def _by_execution(
    wh: Engine, sql: str, params: Any, wanted: set[str], convert: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """The rows of `sql` whose execution is in `wanted`, converted, grouped by execution id (in order)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rel = wh.sql(sql, params)
    cols = rel.columns
    for r in rel.fetchall():
        row = dict(zip(cols, r))
        if row["execution_id"] in wanted:
            out[row["execution_id"]].append(convert(row))
    return out


def _filter(wh: Engine, where: str | Mapping[str, str] | None) -> tuple[PartitionFilter | None, str | None]:
    """(partition filter, SQL condition over the executions) of `where`: a dict or `column=value`
    pairs select partitions (and must select one), other text is a checked condition."""
    from warehouse.core.condition import condition
    from warehouse.core.errors import WarehouseError
    from warehouse.core.partition_filter import column_value_pairs, partition_filter

    if where is None or (isinstance(where, str) and not where):
        return None, None
    if isinstance(where, str) and column_value_pairs(where) is None:
        columns = {c.name: c.duckdb_type for c in catalog().table("executions").columns}
        return None, condition(where, columns, over="executions")
    try:
        flt = partition_filter(where)
        if flt is not None:
            flt.require(f.partition for f in wh.snapshot.files.values())
    except InvalidCondition:
        raise
    except WarehouseError as exc:
        raise ExportFailed(str(exc)) from None
    return flt, None


def export(wh: Engine, out: str, *, where: str | Mapping[str, str] | None = None, **options: Any) -> ExportReport:
    """Write the finished executions of `wh`'s current snapshot to `out` in the legacy layout
    (see the module docstring). `where`: only the executions this SQL condition over the columns
    of `executions` selects (`"dataset = 'agentdojo'"`), or the partitions a dict or
    `column=value` pairs name. Raises ExportFailed if `out` is a file, an option is unknown or the
    partitions named do not exist; InvalidCondition for SQL that is not one condition."""
    if options:
        raise ExportFailed(f"legacy export takes only where=, got {sorted(options)}")
    t0 = time.perf_counter()
    flt, cond = _filter(wh, where)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ExportFailed(f"{out}: exists and is not a directory; give a directory to export to")
    root.mkdir(parents=True, exist_ok=True)
    index = root / INDEX
    report = ExportReport("legacy", out, wh.version)
    if not wh.snapshot.table_files("executions"):
        report.seconds = time.perf_counter() - t0
        return report
    done = _exported_ids(index)
    # The per-component columns keep the key order the config was written with (`config` is canonical).
    configs = {
        r[0]: r[1:]
        for r in wh.sql(
            "select config_hash, dataset_type, dataset_config, agent_type, agent_config, "
            "attack_type, attack_config from configs"
        ).fetchall()
    }
    extra = f" and {cond}" if cond else ""
    partitions = wh.engine.sql_sandboxed(
        "select distinct dataset, agent, attack, config_hash from executions "
        f"where status <> 'running'{extra} order by all"
    ).fetchall()
    if flt is not None:
        cols = catalog().partition_columns
        partitions = [p for p in partitions if flt.matches(dict(zip(cols, p)))]
    lines: list[str] = []
    n_exec = n_msgs = 0
    with FileLock(str(root / f"{INDEX}.lock")):
        for dataset, agent, attack, chash in partitions:
            if chash not in configs:
                raise ExportFailed(f"config {chash} of partition {dataset}/{agent}/{attack} has no row in `configs`")
            config = _run_config(chash, *configs[chash])
            where = "dataset = ? and agent = ? and attack = ? and config_hash = ?"
            params = [dataset, agent, attack, chash]
            rel = wh.engine.sql_sandboxed(
                f"select * from executions where {where} and status <> 'running'{extra} "
                "order by finished_at, execution_id",
                params,
            )
            names = rel.columns
            execs = [dict(zip(names, r)) for r in rel.fetchall()]
            execs = [e for e in execs if e["execution_id"] not in done]
            if not execs:
                continue
            wanted = {e["execution_id"] for e in execs}
            msgs = _by_execution(
                wh,
                f"select * from messages where {where} order by execution_id, seq",
                params,
                wanted,
                records.message_from_row,
            )
            atts = _by_execution(
                wh,
                f"select * from attacks where {where} order by execution_id, vector_id",
                params,
                wanted,
                _attack_dict,
            )
            directory = root.joinpath(
                *map(_component, (dataset, agent, BENIGN if config.attack is None else attack, chash))
            )
            directory.mkdir(parents=True, exist_ok=True)
            cfg_file = directory / "config.yaml"
            if not cfg_file.exists():
                cfg_file.write_text(config.to_yaml(), encoding="utf-8")
                report.files += 1
            taken: set[str] = set()
            for e in execs:
                eid = e["execution_id"]
                doc = execution_document(e, config, msgs.get(eid, []), atts.get(eid, []))
                name = _file_name(e["finished_at"], e["task_id"])
                if name in taken or (directory / f"{name}.json").exists():
                    name = f"{name}_{eid}"
                taken.add(name)
                path = directory / f"{name}.json"
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default), encoding="utf-8")
                os.replace(tmp, path)
                report.files += 1
                n_exec += 1
                n_msgs += len(doc["messages"])
                entry = {
                    "execution_id": eid,
                    "task_id": e["task_id"],
                    "timestamp": doc["timestamp"],
                    "dataset": config.dataset["type"],
                    "dataset_config": config.dataset["config"],
                    "agent_type": config.agent["type"],
                    "agent_name": doc["agent"],
                    "attack_type": BENIGN if config.attack is None else config.attack["type"],
                    "config_hash": chash,
                    "benign_score": e["benign_score"],
                    "attack_score": e["attack_score"],
                    "path": os.path.join(out, path.relative_to(root).as_posix()),
                }
                lines.append(json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n")
            # The index lines of a configuration go in once its files exist: a line never names a missing file.
            with open(index, "a", encoding="utf-8") as f:
                f.writelines(lines)
            lines.clear()
    report.rows = {"executions": n_exec, "messages": n_msgs}
    report.seconds = time.perf_counter() - t0
    return report
