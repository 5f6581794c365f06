"""The numbers of a report (`collect`): one Polars DataFrame per section of the page, every one read
through `warehouse.read.analytics` from a warehouse's current snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from warehouse.core import arguments
from warehouse.engine.engine import HasEngine, of
from warehouse.read import analytics

BENIGN = "none"  # the attack partition value of benign runs


# -- data: every number on the page comes from these frames ------------------------------------------
@dataclass(frozen=True)
class ReportData:
    """The frames a report draws (Polars DataFrames, one per section)."""

    #: agent, attack, n, n_tasks, utility(+_low/_high), asr(+_low/_high): every attack, benign ("none") included.
    scores: pl.DataFrame
    #: agent, metric ('benign_score'/'attack_score'), k, pass_at_k, n_tasks, n_excluded.
    pass_at_k: pl.DataFrame
    #: dataset, task_id, runs, compromised (attack_score >= 1), asr(+_low/_high), agents compromised on it:
    #: attacked runs only, highest mean attack_score first.
    top_tasks: pl.DataFrame
    #: `analytics.usage` per dataset, agent, attack, config_hash, model: n, tokens, requests, cost, mean_cost, ...
    usage: pl.DataFrame
    #: executions, configs, tasks (dataset, task_id), max_runs (the largest k of pass@k).
    totals: dict[str, int]


ATTACKED = "attack <> 'none'"


def collect(wh: HasEngine, *, top: int = 10) -> ReportData:
    """Read everything a report shows from `wh`'s current snapshot (finished executions only), through
    `warehouse.analytics`. Raises WarehouseError for `top` < 1."""
    top = arguments.integer("top", top, minimum=1, maximum=(1 << 31) - 1)
    wh = of(wh)
    scores = analytics.attack_success_rates(wh, by=("agent", "attack"))
    # pass@k: a task is a task_id within one configuration; utility from benign runs, ASR from attacked runs.
    pass_at_k = pl.concat(
        [
            analytics.pass_at_k(wh, by=("agent",), where="attack = 'none'").filter(pl.col("metric") == "benign_score"),
            analytics.pass_at_k(wh, by=("agent",), where=ATTACKED).filter(pl.col("metric") == "attack_score"),
        ]
    ).sort("metric", "agent", "k")
    # Most compromised tasks: counts (success = attack_score >= 1) from task_scores, rate and interval from the rates.
    counts = analytics.task_scores(wh, by=("dataset",), where=ATTACKED).filter(pl.col("attack_runs") > 0)
    rates = analytics.attack_success_rates(wh, by=("dataset", "task_id"), where=ATTACKED)
    agents = (
        analytics.task_scores(wh, by=("dataset", "agent"), where=ATTACKED)
        .filter(pl.col("attack_successes") > 0)
        .group_by("dataset", "task_id")
        .agg(pl.col("agent").unique().sort().str.join(", ").alias("agents"))
    )
    top_tasks = (
        counts.select("dataset", "task_id", runs="attack_runs", compromised="attack_successes")
        .join(rates.select("dataset", "task_id", "asr", "asr_low", "asr_high"), on=["dataset", "task_id"])
        .sort(["asr", "compromised", "dataset", "task_id"], descending=[True, True, False, False])
        .head(top)
        .join(agents, on=["dataset", "task_id"], how="left", maintain_order="left")
        .select("dataset", "task_id", "runs", "compromised", "asr", "asr_low", "asr_high", "agents")
    )
    usage = analytics.usage(wh, by=("dataset", "agent", "attack", "config_hash", "model"))
    tasks = int(analytics.attack_success_rates(wh, by="all")["n_tasks"][0] or 0)  # n_tasks of `scores`: one definition
    totals = {
        "executions": int(usage["n"].sum()),
        "configs": usage["config_hash"].n_unique(),
        "tasks": tasks,
        "max_runs": int(pass_at_k["k"].max() or 0),
    }
    return ReportData(scores, pass_at_k, top_tasks, usage, totals)
