"""Realistic legacy result trees (the per-task JSON layout of
`shared/reference/results-saving-index-jsonl.md`), written by the reference's own persistence class
(`benchmarks.legacy.LegacyPersistence`) from the demo's executions: multi-turn conversations with
tool calls, unicode, usage, scores and attack vectors, over the demo grid's configurations.

Shared by the legacy importer's tests and the import benchmark; keep `write_legacy_tree`'s
signature stable.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from benchmarks.legacy import LegacyPersistence
from warehouse.cli import demo


def write_legacy_tree(root: str | Path, n_files: int, seed: int = 0) -> dict[str, Any]:
    """Write `n_files` execution files (plus config.yaml per configuration and index.jsonl) under
    `root`, spread over the 18 configurations of the demo grid (2 datasets x 3 agents x 3 attacks
    incl. benign). Content is determined by `seed`; execution ids (uuid4) and file timestamps
    (the time of writing) are not, as in the reference.

    Returns {"root", "files", "configs", "messages", "attacks", "benign_score_sum",
    "attack_score_sum", "per_config": {config_hash: files}}.
    """
    root = Path(root)
    grid = list(demo.configs())
    per_config: dict[str, int] = {}
    messages = attacks = 0
    benign_sum = attack_sum = 0.0
    persisters = [LegacyPersistence(root, d, a, k) for d, a, k in grid[: max(1, min(len(grid), n_files))]]
    rng = random.Random(f"legacy-tree:{seed}")
    for i in range(n_files):
        p = persisters[i % len(persisters)]
        task = i // len(persisters)
        attack = p.attack["type"] if p.attack else None
        ex = demo.execution(
            rng, p.dataset["type"], p.agent["type"], attack, task, difficulty=demo.task_difficulty(task, seed)
        )
        p.save(ex)
        per_config[p.config_hash] = per_config.get(p.config_hash, 0) + 1
        messages += len(ex["messages"])
        attacks += len(ex.get("attacks") or [])
        benign_sum += ex["benign_score"]
        attack_sum += ex["attack_score"] or 0.0
    return {
        "root": str(root),
        "files": n_files,
        "configs": len(per_config),
        "messages": messages,
        "attacks": attacks,
        "benign_score_sum": benign_sum,
        "attack_score_sum": attack_sum,
        "per_config": per_config,
    }
