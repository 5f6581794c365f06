"""Analytics over a warehouse snapshot: scores at any grouping level, pass@k, usage, paired comparison.

Every function builds one SQL query over the `executions` view (finished executions only: running
ones are not counted until they complete or fail) and returns a Polars DataFrame; the same numbers
as the SQL views `scores`, `task_scores`, `pass_at_k` and `usage` (schemas/views/5*.sql), which are
the config-level case of these queries.

Grouping keys (`by=`):

- execution columns: dataset, agent, attack, config_hash, model, run_id, task_id, status;
- from the configuration (a join with `configs`, made only when asked for): `suite` (the dataset
  config's `suite`, else `suite_name`), `agent_model` (the agent config's `model`), and any key of
  a config as `dataset_config.KEY`, `agent_config.KEY`, `attack_config.KEY`;
- `metadata.KEY` (nested: `metadata.a.b`): the execution's metadata at that JSON path, as text;
- `all` (or nothing): one overall row.

Rates: utility = mean benign_score and ASR = mean attack_score over the executions that have that
score; failed executions (NULL scores) are excluded from the rates and counted (`n_failed`,
`n_errors`, and `n - n_utility`). Intervals are 95% Wilson intervals. pass@k is the unbiased
estimator 1 - C(n-c, k)/C(n, k) per task (n runs with a score, c of them >= `threshold`), averaged
over the tasks with at least k runs; tasks with fewer are excluded and counted (`n_excluded`).
A task is a task_id within one configuration (and within the grouping keys).

Checks are left out: executions of a dataset named `<name>.checks` check the benchmark itself
(AgentDojo's injection tasks run alone, to show each can be achieved) and are not measurements, as
in AgentDojo's own results. `checks=True` counts them (as groups of their own dataset); `usage`
always does. The condition is the `is_check` macro (schemas/views/00_macros.sql), on a partition
column: it prunes files and costs the default path nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from warehouse.engine.engine import HasEngine, of

# The public names of the analytics modules, importable from here as they always were.
from warehouse.read.analytics_compare import (
    Comparison,
    bootstrap_mean_interval,
    compare,
    mcnemar_exact,
    natural_key,
    resolve_config,
)
from warehouse.read.analytics_groups import (
    CHECKS_SUFFIX,
    CONFIG_GROUPS,
    EXECUTION_GROUPS,
    JSON_PREFIXES,
    Group,
    _checks_keys,
    check_keys,
    groups,
)
from warehouse.read.analytics_sql import METRICS, pass_at_k_sql, scores_sql, task_scores_sql, usage_sql

if TYPE_CHECKING:
    import duckdb
    import polars as pl

__all__ = [
    "CHECKS_SUFFIX",
    "CONFIG_GROUPS",
    "EXECUTION_GROUPS",
    "JSON_PREFIXES",
    "METRICS",
    "Comparison",
    "Group",
    "attack_success_rates",
    "bootstrap_mean_interval",
    "check_keys",
    "compare",
    "groups",
    "mcnemar_exact",
    "natural_key",
    "pass_at_k",
    "pass_at_k_sql",
    "resolve_config",
    "scores",
    "scores_sql",
    "task_scores",
    "task_scores_sql",
    "usage",
    "usage_sql",
]


# -- DataFrames ----------------------------------------------------------------------------------------
@_checks_keys
def attack_success_rates(
    wh: HasEngine,
    by: str | Sequence[str] | None = ("agent", "attack"),
    where: str | None = None,
    *,
    checks: bool = False,
) -> pl.DataFrame:
    """ASR (mean attack_score) and utility (mean benign_score) with 95% Wilson intervals per group:
    the columns of `Warehouse.scores` (n, n_tasks, utility, utility_low, utility_high, asr, asr_low,
    asr_high, n_failed, n_errors, utility_under_attack, tokens, cost, ...). `where` is an SQL condition
    over `executions`; checks are left out unless `checks`. Raises InvalidArgument for an unknown grouping."""
    return of(wh).sql_sandboxed(scores_sql(by, where, checks=checks)).pl()


@_checks_keys
def pass_at_k(
    wh: HasEngine,
    k: int | Sequence[int] | None = None,
    by: str | Sequence[str] | None = ("agent",),
    threshold: float = 1.0,
    where: str | None = None,
    *,
    checks: bool = False,
) -> pl.DataFrame:
    """pass@k of benign and attack scores per group: by..., metric ('benign_score'/'attack_score'), k,
    pass_at_k, n_tasks, n_excluded. A run succeeds when its score >= `threshold`; `k=None` gives
    k = 1 .. the most scored runs of a task in the group; checks are left out unless `checks`. Raises
    WarehouseError for a bad k or grouping."""
    return of(wh).sql_sandboxed(pass_at_k_sql(by, k, threshold, where, checks=checks)).pl()


@_checks_keys
def task_scores(
    wh: HasEngine,
    by: str | Sequence[str] | None = ("dataset", "agent", "attack", "config_hash"),
    where: str | None = None,
    threshold: float = 1.0,
    *,
    checks: bool = False,
) -> pl.DataFrame:
    """One row per task within each group: runs, n_failed, benign_runs, benign_successes, utility,
    attack_runs, attack_successes, asr, attacked, total_tokens, cost; checks left out unless `checks`."""
    return of(wh).sql_sandboxed(task_scores_sql(by, where, threshold, checks=checks)).pl()


@_checks_keys
def usage(
    wh: HasEngine, by: str | Sequence[str] | None = ("config_hash", "model"), where: str | None = None
) -> pl.DataFrame:
    """Token, request, tool-call and cost sums (and means per execution) per group, checks included."""
    return of(wh).sql_sandboxed(usage_sql(by, where)).pl()


@_checks_keys
def scores(
    wh: HasEngine,
    by: str | Sequence[str] | None = ("dataset", "agent", "attack"),
    where: str | None = None,
    k: int | Sequence[int] | None = None,
    threshold: float = 1.0,
    *,
    checks: bool = False,
) -> duckdb.DuckDBPyRelation:
    """`Warehouse.scores`: the scores of each group as a DuckDB relation (see `scores_sql`)."""
    return of(wh).sql_sandboxed(scores_sql(by, where, k, threshold, checks=checks))
