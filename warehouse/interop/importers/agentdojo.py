"""Importer of AgentDojo benchmark logs (what `agentdojo.logging.TraceLogger.save` writes):

    {logdir}/{pipeline}/{suite}/{user_task}/{attack}/{injection_task}.json   (benign: none/none.json)

with keys suite_name, pipeline_name, user_task_id, injection_task_id, attack_type, injections,
messages, error, and the context of the run: evaluation_timestamp, agentdojo_package_version,
benchmark_version, duration, utility, security (and whatever else the run put in its context).

Mapping, one execution per file:
- dataset {"type": "agentdojo", "config": {"suite": suite_name, "version": benchmark_version (when
  set)}}, agent {"type": pipeline_name}, attack {"type": attack_type} (None for benign runs).
- task_id: the user task id; for an attacked run `{user_task_id}:{injection_task_id}`, because
  each (user task, injection task) pair is its own task of the benchmark (AgentDojo reports
  utility and security over pairs). Both ids are also in metadata (`user_task_id`,
  `injection_task_id`) and the injection task id in each attack vector's metadata.
- utility -> benign_score; security (the injection task succeeded) -> attack_score on attacked
  runs. Benign runs have no attack_score: AgentDojo reports security True for them whatever
  happened, so it is kept as metadata `security` only.
- injections {placeholder: text} -> attacks (vector_id = placeholder, type = attack_type).
- error -> error (status failed); duration (s) -> duration_ms; evaluation_timestamp (the local
  time the run started, no zone: read as UTC; the text is kept in metadata too) -> started_at,
  and started_at + duration -> finished_at; every other key -> metadata.
- messages: role, content (a string, or blocks {"type": "text", "content": ...} that become
  content parts {"type": "text", "text": ...}; other blocks, e.g. thinking, are kept as they are),
  assistant `tool_calls` [{function, args, id, placeholder_args}] -> [{"id", "type": "function",
  "function": {"name", "arguments": args}}] (placeholder_args kept in the call when set), tool
  messages' `tool_call_id` -> tool_call_id and `tool_call.function` -> name; the tool message's
  `tool_call` and `error` are kept in the message's metadata (`extra`).

Injection-task checks: `benchmark_suite_with_injections` also runs each injection task alone, as a
user task without attack, to check that it can be achieved ({pipeline}/{suite}/injection_task_N/
none/none.json: user_task_id `injection_task_N`, no injection task, no attack). They are not
benchmark runs, and AgentDojo's own results leave them out of utility and security; so they are
imported as the dataset `agentdojo.checks` (same suite config), which the score views and
`warehouse.analytics` leave out unless asked (`checks=True`, `warehouse scores --checks`; see
`analytics.CHECKS_SUFFIX`), with metadata `check` = "injection_task". Query them with
`select * from executions where dataset = 'agentdojo.checks'`.

A log without `utility` is a run still in progress (AgentDojo rewrites the file at every step):
it is reported as failed and imported by a later import, once finished.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from warehouse.core.errors import ImportFailed
from warehouse.interop.importers.base import FileImporter, Source, SourceRecorder, stable_id
from warehouse.read.analytics import CHECKS_SUFFIX

KIND = "agentdojo"
BENIGN = "none"
#: The dataset of AgentDojo's runs, and of its injection-task checks.
DATASET = "agentdojo"
CHECKS_DATASET = DATASET + CHECKS_SUFFIX
#: AgentDojo's ids of injection tasks (`TaskSuite.register_injection_task`): injection_task_<n>.
INJECTION_TASK_PREFIX = "injection_task_"
#: Keys of a log that map to columns or to the configuration; every other key goes to metadata.
MAPPED = frozenset(
    {
        "suite_name",
        "pipeline_name",
        "user_task_id",
        "injection_task_id",
        "attack_type",
        "injections",
        "messages",
        "error",
        "utility",
        "security",
        "duration",
        "benchmark_version",
    }
)
REQUIRED = ("suite_name", "pipeline_name", "user_task_id", "messages")


def _content(field: str, content: Any) -> Any:
    """A string as it is; AgentDojo content blocks as content parts (text blocks -> {type, text})."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ImportFailed(f"{field} must be a string, a list of content blocks or null, got {type(content).__name__}")
    parts = []
    for block in content:
        if (
            isinstance(block, Mapping)
            and block.get("type") == "text"
            and block.keys() <= {"type", "content"}
            and isinstance(block.get("content"), str)
        ):
            parts.append({"type": "text", "text": block["content"]})
        else:
            parts.append(block)
    return parts


def _tool_call(field: str, call: Any) -> dict[str, Any]:
    """An AgentDojo FunctionCall {function, args, id, placeholder_args} as an OpenAI-style tool call."""
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), str):
        raise ImportFailed(f"{field} must be a function call with a 'function' name, got {str(call)[:120]!r}")
    out: dict[str, Any] = {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": call["function"], "arguments": call.get("args", {})},
    }
    for k, v in call.items():
        if k not in ("function", "args", "id") and v is not None:
            out[k] = v  # placeholder_args and anything newer
    return out


def message(i: int, m: Any) -> dict[str, Any]:
    """One AgentDojo chat message as a warehouse message (see the module docstring)."""
    f = f"messages[{i}]"
    if not isinstance(m, Mapping):
        raise ImportFailed(f"{f} must be an object, got {type(m).__name__}")
    out: dict[str, Any] = {"role": m.get("role"), "content": _content(f"{f}.content", m.get("content"))}
    calls = m.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise ImportFailed(f"{f}.tool_calls must be a list, got {type(calls).__name__}")
        out["tool_calls"] = [_tool_call(f"{f}.tool_calls[{j}]", c) for j, c in enumerate(calls)]
    if m.get("tool_call_id") is not None:
        out["tool_call_id"] = m["tool_call_id"]
    call = m.get("tool_call")
    if isinstance(call, Mapping) and isinstance(call.get("function"), str):
        out["name"] = call["function"]
    # Kept as message keys: records stores unknown keys losslessly in the message's metadata["extra"].
    for k, v in m.items():
        if k not in ("role", "content", "tool_calls", "tool_call_id") and (v is not None or k == "error"):
            out[k] = v
    return out


def _started(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ImportFailed(f"evaluation_timestamp must be a string, got {type(value).__name__}")
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            raise ImportFailed(f"evaluation_timestamp is not a time: {value!r}") from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)


def _score(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (bool, int, float)):
        raise ImportFailed(f"{name} must be true/false, got {type(value).__name__} {value!r:.60}")
    return float(value)


class AgentDojoImporter(FileImporter):
    """Sources: every `*.json` file under the log directory."""

    kind = KIND
    patterns = ("**/*.json",)

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """One AgentDojo task log -> one execution (see the module docstring)."""
        log = json.loads(data.decode("utf-8"))
        if not isinstance(log, dict):
            raise ImportFailed(f"expected a JSON object (one AgentDojo task log), got {type(log).__name__}")
        missing = [k for k in REQUIRED if k not in log]
        if missing:
            raise ImportFailed(f"not an AgentDojo task log: missing key {missing[0]!r}")
        if "utility" not in log:
            raise ImportFailed(
                "the run has not finished (no 'utility' yet; AgentDojo rewrites the log at every "
                "step): import again once it has"
            )
        out.execution(out.writer(*run_config(log)), **execution_fields(log))


def run_config(log: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(dataset, agent, attack) of a task log: agentdojo/{suite, version} x pipeline x attack."""
    dataset_cfg = {"suite": log["suite_name"]}
    if log.get("benchmark_version") is not None:
        dataset_cfg["version"] = log["benchmark_version"]
    attack_type = log.get("attack_type")
    attack = None if attack_type in (None, BENIGN) else {"type": attack_type, "config": {}}
    dataset = CHECKS_DATASET if is_injection_task_check(log) else DATASET
    return {"type": dataset, "config": dataset_cfg}, {"type": log["pipeline_name"], "config": {}}, attack


def is_injection_task_check(log: Mapping[str, Any]) -> bool:
    """Whether the log is an injection task run alone, without attack (to check it can be achieved)."""
    user_task = log.get("user_task_id")
    return (
        log.get("attack_type") in (None, BENIGN)
        and log.get("injection_task_id") is None
        and isinstance(user_task, str)
        and user_task.startswith(INJECTION_TASK_PREFIX)
    )


def execution_id(log: Mapping[str, Any]) -> str:
    """The execution id of a task log: the same for every copy of the log, and for the same run
    recorded live (`warehouse.compat.agentdojo`)."""
    return stable_id(
        KIND,
        log["pipeline_name"],
        log["suite_name"],
        log["user_task_id"],
        log.get("attack_type"),
        log.get("injection_task_id"),
        log.get("evaluation_timestamp"),
    )


def execution_fields(log: Mapping[str, Any]) -> dict[str, Any]:
    """The `add_execution` arguments of one finished AgentDojo task log. Raises ImportFailed."""
    user_task, injection_task = log["user_task_id"], log.get("injection_task_id")
    attack_type = log.get("attack_type")
    attacked = attack_type not in (None, BENIGN)
    task_id = f"{user_task}:{injection_task}" if attacked and injection_task is not None else user_task
    messages = log["messages"]
    if not isinstance(messages, list):
        raise ImportFailed(f"messages must be a list, got {type(messages).__name__}")
    injections = log.get("injections") or {}
    if not isinstance(injections, Mapping):
        raise ImportFailed(f"injections must be an object {{placeholder: text}}, got {type(injections).__name__}")
    meta: dict[str, Any] = {"user_task_id": user_task, "injection_task_id": injection_task}
    meta.update({k: v for k, v in log.items() if k not in MAPPED})
    if is_injection_task_check(log):
        meta["check"] = "injection_task"
    if not attacked:
        meta["security"] = log.get("security")
    started = _started(log.get("evaluation_timestamp"))
    duration = log.get("duration")
    if duration is not None and not isinstance(duration, (int, float)):
        raise ImportFailed(f"duration must be seconds, got {duration!r:.60}")
    finished = started + timedelta(seconds=duration) if started is not None and duration is not None else None
    error = log.get("error")
    return dict(
        execution_id=execution_id(log),
        task_id=task_id,
        messages=[message(i, m) for i, m in enumerate(messages)],
        benign_score=_score("utility", log.get("utility")),
        attack_score=_score("security", log.get("security")) if attacked else None,
        attacks=[
            {"vector_id": k, "type": attack_type, "content": v, "metadata": {"injection_task_id": injection_task}}
            for k, v in injections.items()
        ]
        or None,
        error=error,
        status="failed" if error else "completed",
        started_at=started,
        finished_at=finished,
        duration_ms=duration * 1000.0 if duration is not None else None,
        metadata=meta,
    )


IMPORTER = AgentDojoImporter()
