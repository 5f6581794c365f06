"""`warehouse import inspect PATH`: Inspect AI eval logs (`.eval` and `.json`), read by inspect_ai.

Every `*.eval` and `*.json` log under PATH (or one log file) is read with
`inspect_ai.log.read_eval_log` (install with `pip install 'warehouse[inspect]'`). A log maps to:

- one run configuration: dataset `{type: <dataset name, else the task name>, config: {name,
  location, samples, shuffled, task}}`, agent `{type: "inspect", config: {model, model_base_url,
  model_args, model_roles, generate_config, task, task_args, task_version, solver, solver_args,
  plan}}`, attack None unless the eval metadata holds an `attack` ({type, config} or a type name);
  the writer's `run_id` is inspect's `run_id`;
- one execution per sample and epoch, its id derived from the sample's `uuid` (inspect gives each
  sample run one; older logs without it: from eval id, sample id and epoch). A sample already
  imported into the same configuration is not imported again: an eval-set retry reuses the samples
  its failed attempt had completed, copying them (same uuid) into the new log, so a log directory
  holding both logs (`retry_cleanup=False`, or copied while the eval set ran) would otherwise
  count them twice. The failed attempt's errored samples stay, as failed executions. task_id =
  sample id, sample = epoch, status failed when the sample has an error (its message in `error`),
  started/finished/duration from the sample's times, model = the eval's model, usage summed over
  the sample's `model_usage` (input/output/total, cache read/write and reasoning tokens, cost;
  requests = model calls, tool_calls = tool calls made), `scores` = every scorer's value as a
  number (C/I/P/N -> 1/0/0.5/0 and numeric or yes/no strings, as inspect's `value_to_float`; a
  dict value gives `<scorer>/<key>` entries; a value no number can stand for stays only in
  metadata), benign_score = the first scorer's number, result = the output's completion, messages
  = the sample's messages (attachments resolved; inspect's message fields outside the warehouse's
  columns are kept in each message's metadata "extra"); metadata = {"eval": the eval's identity
  (eval_id, run_id, task, created, status, tags, metadata, task args, log file), "sample":
  everything else of the sample (input, target, sample metadata, full score objects, output,
  store, per-model usage, limits, error traceback, ...)};
- events rows (`source` "inspect"): one per transcript event of each sample (kind = inspect's event
  type, attributes = the event as logged, with "attachment://" references), one of kind
  "attachments" per sample holding the content those references point at, and one of kind "eval"
  per log (no execution) holding the whole log header: spec, plan, results, stats, reductions
  (unless the configuration holds that eval's header row already: a live capture stored it,
  `warehouse.compat.inspect_hook`, whose samples are then known by id and skipped too).

The fingerprint of a log is that of its content as inspect reads it, so the same eval written as
`.eval` and as `.json` (`inspect log convert`) is imported once. A log still running (status
"started") is refused until it has finished, and a log that changed since it was imported (edited
scores or tags) is refused rather than imported twice. Non-finite floats (inspect's NaN "unscored"
sentinel) are stored as the strings "NaN"/"Infinity"/"-Infinity" inside JSON; ANSI renderings of
tracebacks (`traceback_ansi`, a copy of `traceback`) are not kept, nor are fields that are None
(inspect's unset defaults) at the top level of messages, tool calls, content parts and events.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from warehouse.core import records
from warehouse.core.errors import ImportFailed
from warehouse.interop.importers.base import FileImporter, Source, SourceRecorder, stable_id
from warehouse.write.live import EVENT_ROW

INSTALL_HINT = "reading Inspect AI logs needs inspect_ai: pip install 'warehouse[inspect]'"
#: JSON files inspect writes next to logs that are not logs (log-dir and eval-set manifests).
NOT_LOGS = frozenset({"logs.json", "eval-set.json", "listing.json"})
ATTACHMENT = "attachment://"
AGENT_TYPE = "inspect"

#: ModelUsage field -> warehouse usage field.
_USAGE = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "total_tokens": "total_tokens",
    "input_tokens_cache_read": "cache_read_tokens",
    "input_tokens_cache_write": "cache_write_tokens",
    "reasoning_tokens": "reasoning_tokens",
    "total_cost": "cost",
}
#: Sample fields that become columns, messages or events rather than metadata["sample"].
_MAPPED = {
    "id",
    "epoch",
    "messages",
    "events",
    "events_data",
    "attachments",
    "started_at",
    "completed_at",
    "total_time",
}


def _inspect_log() -> Any:
    """The `inspect_ai.log` module, imported only when a log is read; ImportFailed saying how to
    install it when it is missing."""
    try:
        import inspect_ai.log as log
    except ImportError as exc:
        raise ImportFailed(f"{INSTALL_HINT} ({exc})") from None
    return log


class InspectImporter(FileImporter):
    """Inspect AI eval logs: `*.eval` and `*.json` files (see the module docstring)."""

    kind = "inspect"
    patterns = ("**/*.eval", "**/*.json")

    def sources(self, path: str) -> Iterator[Source]:
        """Every log file under `path` (inspect's manifest files excepted), or `path` itself."""
        _inspect_log()
        for s in super().sources(path):
            if Path(s.key).name not in NOT_LOGS or Path(path).is_file():
                yield s

    def load(self, source: Source) -> bytes:
        """The log as inspect reads it, as JSON: the same eval in either format has one fingerprint."""
        log = _inspect_log().read_eval_log(source.path)
        return log.model_dump_json().encode("utf-8")

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """Map one log (the JSON inspect wrote of it in `load`) to executions, messages and events."""
        # NaN and infinities (inspect writes them as JSON constants) become the strings "NaN",
        # "Infinity", "-Infinity": JSON columns cannot hold them, and no score is read from them.
        log = json.loads(data, parse_constant=str)
        spec = log["eval"]
        if log.get("status") == "started":
            raise ImportFailed(
                f"eval {spec.get('eval_id')} is still running (status 'started'); import it once it has finished"
            )
        samples = log.get("samples") or []
        if out.changed:
            raise ImportFailed(
                "this log was imported before with other content (edited since: scores, tags or "
                f"metadata?); importing it again would duplicate its {len(samples)} sample(s), so the "
                "imported version is kept"
            )
        dataset, agent, attack = run_config(log)
        w = out.writer(dataset, agent, attack, run_id=spec.get("run_id") or None)
        info = eval_info(log, source.key)
        # (a live capture of this eval, warehouse.compat.inspect_hook, stored its header row already)
        if not _eval_recorded(out, w, spec.get("eval_id")):
            out.rows(w, EVENT_ROW, [eval_row(log)])
        ids = [sample_execution_id(out, spec, sample) for sample in samples]
        known = out.known_executions(w, ids)
        for eid, sample in zip(ids, samples):
            if eid not in known:
                record_sample(out, w, log, sample, info, eid)


IMPORTER = InspectImporter()


def sample_execution_id(out: Any, spec: Mapping[str, Any], sample: Mapping[str, Any]) -> str:
    """The execution id of a sample: from its `uuid` (the same in every log that holds this sample
    run), else from the eval id, sample id and epoch. (`out`: unused, kept for callers.)"""
    if sample.get("uuid"):
        return stable_id(IMPORTER.kind, "sample", sample["uuid"])
    return stable_id(IMPORTER.kind, spec["eval_id"], repr(sample["id"]), sample["epoch"])


def eval_row(log: Mapping[str, Any]) -> tuple:
    """The `events` row of kind "eval" (no execution) holding a log's header (the log's JSON
    without its samples: spec, plan, results, stats, reductions)."""
    spec = log["eval"]
    header = {k: v for k, v in log.items() if k != "samples"}
    error = (log.get("error") or {}).get("message")
    return _event_row(
        None,
        0,
        spec["created"],
        "eval",
        "error" if error else "info",
        spec.get("task"),
        error,
        None,
        None,
        None,
        header,
    )


def _eval_recorded(out: SourceRecorder, w: Any, eval_id: Any) -> bool:
    """Whether `w`'s partition holds the "eval" row of the eval `eval_id` already."""
    if not eval_id or not out.warehouse.snapshot.table_files("events", dict(w.partition)):
        return False
    cols = list(w.partition)
    cond = " and ".join(f"{c} = ?" for c in cols)
    [(n,)] = out.warehouse.sql(
        f"select count(*) from events where {cond} and kind = 'eval' and source = 'inspect' "
        "and json_extract_string(attributes, '$.eval.eval_id') = ?",
        [*(w.partition[c] for c in cols), eval_id],
    ).fetchall()
    return bool(n)


def record_sample(
    out: Any, w: Any, log: Mapping[str, Any], sample: dict[str, Any], eval_info: dict[str, Any], eid: str
) -> None:
    """One sample (one epoch of it, its JSON) as an execution with its messages and events, given
    through `out` (a SourceRecorder, or anything with its `execution` and `rows` methods: the live
    capture's). `log` needs the eval spec (`"eval"`) and, for a sample without a completion time,
    `"stats"`."""
    spec = log["eval"]
    attachments = sample.get("attachments") or {}
    meta = _resolve({k: v for k, v in sample.items() if k not in _MAPPED}, attachments)
    for err in (meta.get("error"), *(meta.get("error_retries") or ())):
        if isinstance(err, dict):
            err.pop("traceback_ansi", None)
    messages = [_message(_resolve(m, attachments)) for m in sample.get("messages") or ()]
    events = sample.get("events") or []
    scores, benign = sample_scores(sample.get("scores"))
    error = (sample.get("error") or {}).get("message")
    finished = sample.get("completed_at") or (log.get("stats") or {}).get("completed_at") or spec["created"]
    total_time = sample.get("total_time")
    out.execution(
        w,
        execution_id=eid,
        task_id=str(sample["id"]),
        sample=sample["epoch"],
        model=spec.get("model"),
        status="failed" if sample.get("error") else "completed",
        error=error,
        started_at=sample.get("started_at") or None,
        finished_at=finished,
        duration_ms=total_time * 1000.0 if isinstance(total_time, (int, float)) else None,
        usage=_usage(sample, events, messages),
        scores=scores,
        benign_score=benign,
        result=(sample.get("output") or {}).get("completion"),
        messages=messages,
        metadata={"eval": eval_info, "sample": meta},
    )
    rows = [_inspect_event_row(eid, i, e) for i, e in enumerate(events)]
    if attachments or sample.get("events_data"):
        rows.append(
            _event_row(
                eid,
                len(rows),
                finished,
                "attachments",
                "info",
                None,
                None,
                None,
                None,
                None,
                {"attachments": attachments, "events_data": sample.get("events_data")},
            )
        )
    out.rows(w, EVENT_ROW, rows, sum(len(r[12] or "") for r in rows))


# -- configuration ----------------------------------------------------------------------------------
def run_config(log: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Mapping[str, Any] | None]:
    """(dataset, agent, attack) of an eval log (its JSON; see the module docstring)."""
    spec, plan = log["eval"], log.get("plan") or {}
    ds = spec.get("dataset") or {}
    dataset: dict[str, Any] = {
        "type": ds.get("name") or spec["task"],
        "config": {
            "name": ds.get("name"),
            "location": ds.get("location"),
            "samples": ds.get("samples"),
            "shuffled": ds.get("shuffled"),
            "task": spec["task"],
        },
    }
    agent: dict[str, Any] = {
        "type": AGENT_TYPE,
        "config": {
            "model": spec.get("model"),
            "model_base_url": spec.get("model_base_url"),
            "model_args": spec.get("model_args"),
            "model_roles": _drop_none(spec.get("model_roles")),
            "generate_config": _drop_none(spec.get("model_generate_config") or {}),
            "task": spec["task"],
            "task_args": spec.get("task_args"),
            "task_version": spec.get("task_version"),
            "solver": spec.get("solver"),
            "solver_args": spec.get("solver_args"),
            "plan": {
                "steps": [{"solver": s.get("solver"), "params": s.get("params")} for s in plan.get("steps") or ()],
                "finish": {"solver": plan["finish"].get("solver"), "params": plan["finish"].get("params")}
                if plan.get("finish")
                else None,
                "config": _drop_none(plan.get("config") or {}),
            },
        },
    }
    attack = (spec.get("metadata") or {}).get("attack")
    if isinstance(attack, str):
        attack = {"type": attack, "config": {}}
    elif not isinstance(attack, Mapping):
        attack = None
    return dataset, agent, attack


def eval_info(log: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    """The `metadata["eval"]` of a log's executions (`key`: the log file, as the import names it)."""
    spec = log["eval"]
    return {
        "eval_id": spec.get("eval_id"),
        "run_id": spec.get("run_id"),
        "eval_set_id": spec.get("eval_set_id"),
        "task": spec.get("task"),
        "task_id": spec.get("task_id"),
        "task_args": spec.get("task_args"),
        "created": spec.get("created"),
        "status": log.get("status"),
        "tags": sorted(set(spec.get("tags") or []) | set(log.get("tags") or [])),
        "metadata": {**(spec.get("metadata") or {}), **(log.get("metadata") or {})},
        "log": key,
    }


# -- scores and usage -------------------------------------------------------------------------------
def score_value(value: Any) -> float | None:
    """A scorer's scalar value as a number the way inspect's `value_to_float` reads it (C/I/P/N ->
    1/0/0.5/0, numbers, booleans, yes/no/true/false and numeric strings); None when no number can
    stand for it (inspect would warn and use 0) or it is not finite (NaN: unscored)."""
    from inspect_ai.scorer import value_to_float

    if isinstance(value, str):
        if value not in {"C", "I", "P", "N"} and value.lower() not in {"yes", "no", "true", "false"}:
            try:
                if not math.isfinite(float(value)):
                    return None
            except ValueError:
                return None
    elif not isinstance(value, (int, float)):
        return None
    f = value_to_float()(value)
    return f if math.isfinite(f) else None


def sample_scores(scores: Mapping[str, Any] | None) -> tuple[dict[str, float], float | None]:
    """({name: number} for every scorer, the first scorer's number) from a sample's `scores`
    ({scorer: Score as JSON}): a dict or list value gives `<scorer>/<key>` entries; values no
    number stands for are left out (they stay in metadata)."""
    out: dict[str, float] = {}
    benign: float | None = None
    for i, (name, score) in enumerate((scores or {}).items()):
        v = score.get("value") if isinstance(score, Mapping) else score
        if isinstance(v, Mapping):
            items = [(f"{name}/{k}", x) for k, x in v.items()]
        elif isinstance(v, list):
            items = [(f"{name}/{k}", x) for k, x in enumerate(v)]
        else:
            items = [(name, v)]
            if i == 0:
                benign = score_value(v)
        for k, x in items:
            f = score_value(x)
            if f is not None:
                out[k] = f
    return out, benign


def _usage(sample: Mapping[str, Any], events: list[Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Token usage summed over the sample's models, model calls and tool calls."""
    usage: dict[str, Any] = {}
    for u in (sample.get("model_usage") or {}).values():
        for src, dst in _USAGE.items():
            v = u.get(src)
            if v is not None:
                usage[dst] = usage.get(dst, 0) + v
    usage["requests"] = sum(1 for e in events if e.get("event") == "model")
    usage["tool_calls"] = sum(len(m.get("tool_calls") or ()) for m in messages)
    return usage


# -- messages and events ----------------------------------------------------------------------------
def _message(m: dict[str, Any]) -> dict[str, Any]:
    """An inspect chat message (JSON) as a warehouse message: fields that are None (inspect's
    defaults) left out, at the top level and in tool calls and content parts; a tool message's
    `function` is its name. Other inspect fields (id, source, model, error) land in metadata "extra"."""
    m = {k: v for k, v in m.items() if v is not None}
    if isinstance(m.get("content"), list):
        m["content"] = [_drop_none(p) if isinstance(p, dict) else p for p in m["content"]]
    if m.get("tool_calls"):
        m["tool_calls"] = [_drop_none(c) if isinstance(c, dict) else c for c in m["tool_calls"]]
    if m.get("role") == "tool" and "function" in m and "name" not in m:
        m["name"] = m.pop("function")
    return m


def _inspect_event_row(eid: str, seq: int, event: Mapping[str, Any]) -> tuple:
    """One transcript event as an `events` row (the whole event, unresolved, in attributes)."""
    e = _drop_none(event)
    kind = e.get("event", "unknown")
    error = e.get("error")
    message = error.get("message") if isinstance(error, Mapping) else error if isinstance(error, str) else None
    level = "error" if message else "info"
    name = None
    if kind == "model":
        name = e.get("model")
    elif kind == "tool":
        name = e.get("function")
    elif kind in ("span_begin", "subtask", "score_edit"):
        name = e.get("name")
    elif kind == "logger":
        rec = e.get("message") or {}
        level, message, name = rec.get("level", "info"), rec.get("message"), rec.get("name")
    elif kind == "info":
        name = e.get("source")
        message = e["data"] if isinstance(e.get("data"), str) else None
    duration = e.get("working_time")
    if not isinstance(duration, (int, float)):
        duration = None
        if e.get("completed") and e.get("timestamp"):
            done, began = records.timestamp("completed", e["completed"]), records.timestamp("timestamp", e["timestamp"])
            if done is not None and began is not None:  # both given, so both are times
                duration = (done - began).total_seconds()
    span_id, parent = (
        (e.get("id"), e.get("parent_id")) if kind in ("span_begin", "span_end") else (None, e.get("span_id"))
    )
    return _event_row(
        eid,
        seq,
        e.get("timestamp"),
        kind,
        level,
        name,
        message,
        duration * 1000.0 if duration is not None else None,
        span_id,
        parent,
        e,
    )


def _event_row(
    eid: str | None,
    seq: int,
    ts: Any,
    kind: str,
    level: str | None,
    name: Any,
    message: Any,
    duration_ms: float | None,
    span_id: Any,
    parent_span_id: Any,
    attributes: Any,
) -> tuple:
    """A validated `events` row (non-partition columns in schema order)."""
    when = records.timestamp("event timestamp", ts)
    if when is None:
        raise ImportFailed(f"event {seq} ({kind}) has no timestamp")
    f = f"events[{seq}]"
    return (
        eid,
        seq,
        when,
        kind,
        records.text(f"{f}.level", _str(level)),
        records.text(f"{f}.name", _str(name)),
        records.text(f"{f}.message", _str(message)),
        records.score(f"{f}.duration_ms", duration_ms),
        None,
        records.text(f"{f}.span_id", _str(span_id)),
        records.text(f"{f}.parent_span_id", _str(parent_span_id)),
        "inspect",
        records.json_text(f"{f}.attributes", attributes),
        None,
        None,
    )


def _str(v: Any) -> str | None:
    return None if v is None else v if isinstance(v, str) else str(v)


# -- JSON helpers -----------------------------------------------------------------------------------
def _resolve(value: Any, attachments: Mapping[str, str]) -> Any:
    """`value` with every "attachment://<hash>" string replaced by the attachment's content."""
    if not attachments:
        return value
    if isinstance(value, str):
        if value.startswith(ATTACHMENT):
            return attachments.get(value[len(ATTACHMENT) :], value)
        return value
    if isinstance(value, dict):
        return {k: _resolve(v, attachments) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, attachments) for v in value]
    return value


def _drop_none(value: Any) -> Any:
    """A dict without its None-valued keys (inspect's unset fields), one level deep; others as they are."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value
