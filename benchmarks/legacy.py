"""The legacy layout, as `shared/reference/results-saving-index-jsonl.md` describes it.

    <root>/index.jsonl                      one JSON line per execution, appended under a FileLock
    <root>/index.jsonl.lock
    <root>/{dataset}/{agent}/{attack}/{config_hash}/config.yaml                  once per config
    <root>/{dataset}/{agent}/{attack}/{config_hash}/{timestamp}_{task_id}.json   one file per execution

Execution files have the reference's JSON shape (execution_id, task_id, dataset_type, dataset_config,
agent, config_hash, timestamp, trace_id, span_id, messages, usage, results, attacks), pretty-printed
with `indent=2` as the reference shows them; benign runs live under `attack=benign`. Analysis reads
`index.jsonl` (and, for token/cost columns, every JSON file) with pandas, the way users do today.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from warehouse import config_hash

BENIGN = "benign"


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


class LegacyPersistence:
    """`ExecutionPersistence` of the reference: one instance per configuration, `save()` per task."""

    def __init__(
        self,
        base_dir: str | Path,
        dataset: Mapping[str, Any],
        agent: Mapping[str, Any],
        attack: Mapping[str, Any] | None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.dataset, self.agent, self.attack = dict(dataset), dict(agent), (dict(attack) if attack else None)
        self.config_hash = config_hash(self.dataset, self.agent, self.attack)
        self.attack_type = self.attack["type"] if self.attack else BENIGN
        self.agent_name = self.agent.get("config", {}).get("name") or f"{self.agent['type']}_agent"
        self.dir = self.base_dir / self.dataset["type"] / self.agent["type"] / self.attack_type / self.config_hash
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index = self.base_dir / "index.jsonl"
        self.lock = FileLock(str(self.base_dir / "index.jsonl.lock"))
        cfg = self.dir / "config.yaml"
        if not cfg.exists():
            created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            body = yaml.safe_dump(
                {"dataset": self.dataset, "agent": self.agent, "attack": self.attack}, sort_keys=False
            )
            cfg.write_text(f"# Config hash: {self.config_hash}\n# Created: {created}\n\n{body}", encoding="utf-8")

    def save(self, execution: Mapping[str, Any]) -> Path:
        """Write one execution (`add_execution` keyword arguments) as its JSON file plus an index line."""
        now = datetime.now(UTC)
        execution_id = uuid.uuid4().hex
        task_id = execution["task_id"]
        usage = dict(execution.get("usage") or {})
        if "total_tokens" not in usage and ("input_tokens" in usage or "output_tokens" in usage):
            usage["total_tokens"] = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
        attacks = {
            a.get("vector_id", str(i)): {"type": a.get("type"), "content": a.get("content")}
            for i, a in enumerate(execution.get("attacks") or [])
        }
        stamp = now.isoformat().replace("+00:00", "Z")
        doc = {
            "execution_id": execution_id,
            "task_id": task_id,
            "dataset_type": self.dataset["type"],
            "dataset_config": self.dataset.get("config", {}),
            "agent": self.agent_name,
            "config_hash": self.config_hash,
            "timestamp": stamp,
            "trace_id": execution.get("trace_id"),
            "span_id": execution.get("span_id"),
            "messages": execution.get("messages") or [],
            "usage": usage,
            "results": {"benign_score": execution.get("benign_score"), "attack_score": execution.get("attack_score")},
            "attacks": attacks,
        }
        safe_task = str(task_id).replace(":", "_").replace("/", "_")
        path = self.dir / f"{now:%Y%m%d_%H%M%S}_{safe_task}.json"
        path.write_text(json.dumps(doc, indent=2, default=_json_default), encoding="utf-8")
        entry = {
            "execution_id": execution_id,
            "task_id": task_id,
            "timestamp": stamp,
            "dataset": self.dataset["type"],
            "dataset_config": self.dataset.get("config", {}),
            "agent_type": self.agent["type"],
            "agent_name": self.agent_name,
            "attack_type": self.attack_type,
            "config_hash": self.config_hash,
            "benign_score": execution.get("benign_score"),
            "attack_score": execution.get("attack_score"),
            "path": str(path),
        }
        line = json.dumps(entry, separators=(",", ":"), default=_json_default) + "\n"
        with self.lock, open(self.index, "a", encoding="utf-8") as f:
            f.write(line)
        return path


def write(
    base_dir: str | Path, batches: Iterable[tuple[Mapping, Mapping, Mapping | None, list[Mapping[str, Any]]]]
) -> int:
    """Save every execution of every (dataset, agent, attack, executions) batch; returns how many."""
    n = 0
    for dataset, agent, attack, executions in batches:
        p = LegacyPersistence(base_dir, dataset, agent, attack)
        for e in executions:
            p.save(e)
            n += 1
    return n


# -- analysis (pandas, as users do it today) -------------------------------------------------------
def read_index(base_dir: str | Path):
    import pandas as pd

    return pd.read_json(Path(base_dir) / "index.jsonl", lines=True)


def scores_from_index(base_dir: str | Path):
    """n, n_tasks, utility, asr by agent x attack, from `index.jsonl` alone (no tokens or cost there)."""
    idx = read_index(base_dir)
    g = idx.groupby(["agent_type", "attack_type"]).agg(
        n=("execution_id", "size"),
        n_tasks=("task_id", "nunique"),
        utility=("benign_score", "mean"),
        asr=("attack_score", "mean"),
    )
    return g.reset_index().rename(columns={"agent_type": "agent", "attack_type": "attack"})


def scores_with_files(base_dir: str | Path):
    """The full scores by agent x attack: `index.jsonl` plus every execution's JSON file (for tokens, cost)."""
    import pandas as pd

    idx = read_index(base_dir)
    docs = []
    for p in idx["path"]:
        with open(p, encoding="utf-8") as f:
            docs.append(json.load(f))
    files = pd.json_normalize(docs, max_level=1)
    df = files.merge(idx[["execution_id", "agent_type", "attack_type"]], on="execution_id")
    g = df.groupby(["agent_type", "attack_type"]).agg(
        n=("execution_id", "size"),
        n_tasks=("task_id", "nunique"),
        utility=("results.benign_score", "mean"),
        asr=("results.attack_score", "mean"),
        total_tokens=("usage.total_tokens", "sum"),
        cost=("usage.cost", "sum"),
    )
    return g.reset_index().rename(columns={"agent_type": "agent", "attack_type": "attack"})


def scores_by_group(df: Any, columns: Sequence[str]) -> dict[tuple, dict[str, Any]]:
    """A scores frame of `scores_from_index`/`scores_with_files` keyed like the warehouse's answers:
    {(agent, attack): {column: value}}, attack BENIGN as the warehouse's 'none', NaN as None."""
    out = {}
    for rec in df.to_dict("records"):
        attack = "none" if rec["attack"] == BENIGN else rec["attack"]
        out[(rec["agent"], attack)] = {
            c: (None if rec[c] != rec[c] else (rec[c].item() if hasattr(rec[c], "item") else rec[c])) for c in columns
        }
    return out


def count(base_dir: str | Path) -> tuple[int, int, int]:
    """(index lines, distinct execution ids in the index, execution JSON files on disk)."""
    base = Path(base_dir)
    ids = []
    with open(base / "index.jsonl", encoding="utf-8") as f:
        for line in f:
            ids.append(json.loads(line)["execution_id"])
    files = sum(1 for p in base.rglob("*.json"))
    return len(ids), len(set(ids)), files


def count_messages(base_dir: str | Path) -> int:
    """Messages in every execution JSON file that index.jsonl points to."""
    n = 0
    with open(Path(base_dir) / "index.jsonl", encoding="utf-8") as f:
        for line in f:
            with open(json.loads(line)["path"], encoding="utf-8") as doc:
                n += len(json.load(doc)["messages"])
    return n
