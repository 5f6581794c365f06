"""Importer of the legacy results layout (`shared/reference/results-saving-index-jsonl.md`).

    <root>/index.jsonl                                            one line per execution
    <root>/{dataset}/{agent}/{attack}/{config_hash}/config.yaml   the configuration, once per directory
    <root>/{dataset}/{agent}/{attack}/{config_hash}/{timestamp}_{task_id}.json   one execution

Each execution file is one source. Its configuration comes from the `config.yaml` beside it (or,
when that is missing, from its `index.jsonl` line); the original `config_hash` and `execution_id`
are kept as they are (hashes are cited in papers and file names; `configs.hash_scheme` says
`legacy` when this package's scheme does not reproduce one). An `index.jsonl` line whose file is
gone is imported from the index alone (scores, no messages); a line that is not JSON is reported.

Mapping: `timestamp` -> finished_at (one without a zone, as prompt-siren writes its local time, is
read as UTC), `results.benign_score`/`attack_score` -> the score columns (other numeric results ->
`scores`), `usage` -> the usage columns (a pydantic-ai `RunUsage`, as prompt-siren writes it,
through `pydantic_ai_messages.run_usage`), `attacks` {vector_id: {type, content}} -> `attacks`
(prompt-siren's {vector_id: {kind, content, media_type}}: `kind` -> type, other keys -> the
vector's metadata). Messages: role messages as they are; pydantic-ai `ModelMessage`s (what
prompt-siren's `ExecutionPersistence` writes) mapped to role rows by `pydantic_ai_messages.to_rows`,
each original message kept verbatim in its first row's metadata (`pydantic_ai_messages.
model_messages` gives them back), and the responses' model name -> `model` when they agree on one.
What has no column goes to `metadata["legacy"]`: usage keys the warehouse does not know (e.g.
RunUsage's `details` and audio tokens), non-numeric results, an agent name other than the default
`{agent type}_agent`, a dataset type/config that differs from config.yaml's, unknown keys.
The warehouse fields the legacy exporter writes beyond the reference format (run_id, model,
status, error, started_at, duration_ms, sample, group, reward, advantages, scores, metadata,
owner, result, completions) map back to their columns, so export + import is a round trip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse.core.config import RunConfig
from warehouse.core.errors import ImportFailed, InvalidRecord
from warehouse.interop.importers import pydantic_ai_messages
from warehouse.interop.importers.base import Source, SourceRecorder

KIND = "legacy"
#: The attack directory of benign runs.
BENIGN = "benign"
INDEX = "index.jsonl"
#: Keys of the reference's execution files that have a place of their own.
REFERENCE_FIELDS = frozenset(
    {
        "execution_id",
        "task_id",
        "dataset_type",
        "dataset_config",
        "agent",
        "config_hash",
        "timestamp",
        "trace_id",
        "span_id",
        "messages",
        "usage",
        "results",
        "attacks",
    }
)
#: Warehouse fields the legacy exporter adds to each file; they map back to their columns.
EXTENSION_FIELDS = (
    "run_id",
    "model",
    "status",
    "error",
    "started_at",
    "duration_ms",
    "sample",
    "group",
    "reward",
    "advantages",
    "scores",
    "metadata",
    "owner",
    "result",
    "completions",
)
#: Path components of an execution file under the root: dataset/agent/attack/hash/file.
DEPTH = 5


def default_agent_name(agent: Mapping[str, Any]) -> str:
    """The `agent` field the legacy writer puts in each file: config `name`, else `{type}_agent`."""
    cfg = agent.get("config") or {}
    return cfg.get("name") or f"{agent['type']}_agent"


@dataclass(frozen=True)
class _Context:
    """What `sources` found for one execution: its directory's config and its index line."""

    config: dict[str, Any] | None = None  #: {dataset, agent, attack} of config.yaml
    config_error: str | None = None  #: why config.yaml could not be read
    index: dict[str, Any] | None = None  #: the execution's index.jsonl line
    index_error: str | None = None  #: an index.jsonl line that is not JSON
    index_only: bool = False  #: the line's execution file is missing


def _file_execution_id(path: Path) -> Any:
    """The `execution_id` inside an execution file, or None if it cannot be read (read() reports why)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read()).get("execution_id")
    except (OSError, ValueError, AttributeError):
        return None


def _tail(path: str) -> str:
    return "/".join(Path(path).parts[-DEPTH:])


def _read_config(directory: Path) -> tuple[dict[str, Any] | None, str | None]:
    p = directory / "config.yaml"
    if not p.is_file():
        return None, None
    try:
        return RunConfig.from_yaml(p.read_text(encoding="utf-8")).as_dict(), None
    except InvalidRecord as exc:
        return None, f"{p}: {exc}"
    except Exception as exc:  # unreadable, not UTF-8, not YAML, not a mapping
        return None, f"{p}: {type(exc).__name__}: {exc}"


class LegacyImporter:
    """Sources: every execution JSON file under the root, plus index lines whose file is missing."""

    kind = KIND

    def sources(self, path: str) -> Iterator[Source]:
        """Every execution file under `path` (sorted), then the index lines without a file."""
        root = Path(path)
        if not root.exists():
            raise ImportFailed(f"{path}: no such file or directory")
        if root.is_file():
            cfg, err = _read_config(root.parent)
            yield Source(root.name, str(root), root.stat().st_size, _Context(cfg, err))
            return
        index, bad_lines = self._index(root)
        configs: dict[Path, tuple[dict[str, Any] | None, str | None]] = {}
        seen: set[str] = set()
        overwritten: list[tuple[Path, dict[str, Any]]] = []
        for p in sorted(root.rglob("*.json")):
            if not p.is_file():
                continue
            if p.parent not in configs:
                configs[p.parent] = _read_config(p.parent)
            rel = p.relative_to(root).as_posix()
            tail = _tail(rel)
            seen.add(tail)
            entries = index.get(tail, [])
            entry = entries[-1] if entries else None
            if len(entries) > 1:
                # Runs of one task saved within the same second share a file name: the last one
                # overwrote the others' files, and only the index still holds those runs.
                eid = _file_execution_id(p)
                entry = next((e for e in reversed(entries) if e.get("execution_id") == eid), entry)
                overwritten += [(p.parent, e) for e in entries if e is not entry and e.get("execution_id") != eid]
            cfg, err = configs[p.parent]
            yield Source(rel, str(p), p.stat().st_size, _Context(cfg, err, entry))
        for lineno, reason in bad_lines:
            yield Source(f"{INDEX}:{lineno}", f"{root / INDEX} line {lineno}", None, _Context(index_error=reason))
        missing = [
            (root / Path(tail).parent, e) for tail, entries in index.items() if tail not in seen for e in entries
        ]
        for directory, entry in [*overwritten, *missing]:
            cfg, err = configs.get(directory) or _read_config(directory)
            yield Source(
                f"{INDEX}#{entry.get('execution_id')}",
                f"{root / INDEX} (execution {entry.get('execution_id')})",
                None,
                _Context(cfg, err, entry, index_only=True),
            )

    @staticmethod
    def _index(root: Path) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[int, str]]]:
        """index.jsonl lines by the tail of their `path` (several when runs shared a file name), and
        the lines that could not be parsed."""
        p = root / INDEX
        by_tail: dict[str, list[dict[str, Any]]] = {}
        bad: list[tuple[int, str]] = []
        if not p.is_file():
            return by_tail, bad
        with open(p, encoding="utf-8", errors="surrogateescape") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                        raise ValueError(f"expected an object with a 'path', got {line.strip()[:120]!r}")
                except ValueError as exc:
                    bad.append((lineno, f"{type(exc).__name__}: {exc}"))
                    continue
                by_tail.setdefault(_tail(entry["path"]), []).append(entry)
        return by_tail, bad

    def load(self, source: Source) -> bytes:
        """The execution file's bytes (an index-only source: its index line as canonical JSON)."""
        ctx: _Context = source.payload
        if ctx.index_error is not None:
            return ctx.index_error.encode("utf-8")
        if ctx.index_only:
            return json.dumps(ctx.index, sort_keys=True, ensure_ascii=False).encode("utf-8")
        with open(source.path, "rb") as f:  # type: ignore[arg-type]
            return f.read()

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """One execution file (or index line) -> one execution of its configuration."""
        ctx: _Context = source.payload
        if ctx.index_error is not None:
            raise ImportFailed(f"index line is not valid: {ctx.index_error}")
        if ctx.index_only:
            doc = _doc_from_index(ctx.index or {})
        else:
            doc = json.loads(data.decode("utf-8"))
            if not isinstance(doc, dict):
                raise ImportFailed(f"expected a JSON object (one execution), got {type(doc).__name__}")
        for key in ("execution_id", "task_id"):
            if key not in doc:
                raise ImportFailed(f"not a legacy execution file: missing key {key!r}")
        config = _config(source, ctx, doc)
        given_hash = doc.get("config_hash") or (ctx.index or {}).get("config_hash")
        fields = execution_fields(doc, config, index_only=ctx.index_only)
        w = out.writer(
            config["dataset"],
            config["agent"],
            config["attack"],
            run_id=fields.pop("run_id", None),
            config_hash=given_hash,
        )
        out.execution(w, **fields)


def _doc_from_index(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An execution document from an index line alone (its file is gone): ids, time, scores."""
    doc = {k: entry[k] for k in ("execution_id", "task_id", "timestamp", "config_hash") if k in entry}
    doc["dataset_type"] = entry.get("dataset")
    doc["dataset_config"] = entry.get("dataset_config") or {}
    doc["agent"] = entry.get("agent_name")
    doc["results"] = {"benign_score": entry.get("benign_score"), "attack_score": entry.get("attack_score")}
    return doc


def _config(source: Source, ctx: _Context, doc: Mapping[str, Any]) -> dict[str, Any]:
    """{dataset, agent, attack} from config.yaml, else from the index line and the file."""
    if ctx.config_error is not None:
        raise ImportFailed(ctx.config_error)
    if ctx.config is not None:
        return ctx.config
    entry = ctx.index
    if entry is None or not entry.get("agent_type") or not doc.get("dataset_type"):
        where = Path(source.path).parent if source.path else "its directory"
        raise ImportFailed(f"no config.yaml in {where} and no index.jsonl line naming the agent type of this execution")
    attack_type = entry.get("attack_type")
    return {
        "dataset": {"type": doc["dataset_type"], "config": doc.get("dataset_config") or {}},
        "agent": {"type": entry["agent_type"], "config": {}},
        "attack": None if attack_type in (None, BENIGN) else {"type": attack_type, "config": {}},
    }


def _is_score(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def execution_fields(doc: Mapping[str, Any], config: Mapping[str, Any], *, index_only: bool = False) -> dict[str, Any]:
    """The `add_execution` arguments of one legacy execution document (see the module docstring),
    plus `run_id` (an argument of the writer) when the document has one."""
    legacy: dict[str, Any] = {}
    dataset = config["dataset"]
    if doc.get("dataset_type") not in (None, dataset["type"]):
        legacy["dataset_type"] = doc["dataset_type"]
    if "dataset_config" in doc and doc["dataset_config"] != (dataset.get("config") or {}):
        legacy["dataset_config"] = doc["dataset_config"]
    if doc.get("agent") is not None and doc["agent"] != default_agent_name(config["agent"]):
        legacy["agent_name"] = doc["agent"]

    usage = doc.get("usage")
    if usage is not None:
        if not isinstance(usage, Mapping):
            raise ImportFailed(f"'usage' must be an object, got {type(usage).__name__}")
        usage, other = pydantic_ai_messages.run_usage(usage)
        if other:
            legacy["usage"] = other

    results = doc.get("results") or {}
    if not isinstance(results, Mapping):
        raise ImportFailed(f"'results' must be an object, got {type(results).__name__}")
    scores = doc.get("scores") or {}
    if not isinstance(scores, Mapping):
        raise ImportFailed(f"'scores' must be an object, got {type(scores).__name__}")
    scores = dict(scores)
    other_results = {}
    for k, v in results.items():
        if k in ("benign_score", "attack_score"):
            continue
        if _is_score(v) and k not in scores:
            scores[k] = v
        else:
            other_results[k] = v
    if other_results:
        legacy["results"] = other_results

    unknown = {k: v for k, v in doc.items() if k not in REFERENCE_FIELDS and k not in EXTENSION_FIELDS}
    if unknown:
        legacy["fields"] = unknown
    if index_only:
        legacy["index_only"] = True
    metadata = doc.get("metadata")
    if legacy:
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict) or "legacy" in metadata:
            raise ImportFailed(
                f"'metadata' must be an object without a 'legacy' key to hold {sorted(legacy)}, "
                f"got {str(metadata)[:120]!r}"
            )
        metadata = {**metadata, "legacy": legacy}

    fields: dict[str, Any] = {k: doc[k] for k in EXTENSION_FIELDS if doc.get(k) is not None}
    messages = doc.get("messages")
    if isinstance(messages, list) and any(pydantic_ai_messages.is_model_message(m) for m in messages):
        if fields.get("model") is None:
            model = pydantic_ai_messages.model_name(messages)
            if model is not None:
                fields["model"] = model
        messages = pydantic_ai_messages.to_rows(messages)
    fields.update(
        execution_id=doc["execution_id"],
        task_id=doc["task_id"],
        finished_at=doc.get("timestamp"),
        trace_id=doc.get("trace_id"),
        span_id=doc.get("span_id"),
        messages=messages,
        usage=usage,
        benign_score=results.get("benign_score"),
        attack_score=results.get("attack_score"),
        attacks=_attacks(doc.get("attacks")),
        scores=scores or None,
        metadata=metadata,
    )
    return fields


def _attacks(value: Any) -> Any:
    """The `attacks` of a file: prompt-siren's vectors {kind, content[, media_type]} get their `kind`
    as the vector's type (other keys go to its metadata); anything else as it is."""
    if not value:
        return None
    if not isinstance(value, Mapping):
        return value
    return {
        k: {"type": v["kind"], **{f: x for f, x in v.items() if f != "kind"}}
        if isinstance(v, Mapping) and "kind" in v and "type" not in v
        else v
        for k, v in value.items()
    }


IMPORTER = LegacyImporter()
