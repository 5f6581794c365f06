"""The SQL of the analytics queries: scores at any grouping level (`scores_sql`), per-task scores
(`task_scores_sql`), pass@k (`pass_at_k_sql`) and usage (`usage_sql`), each one query over the
`executions` view; and the checks of their arguments (k, threshold, metric).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import cast

from warehouse.core import arguments
from warehouse.core.errors import InvalidArgument, InvalidArgumentType
from warehouse.core.schemas import catalog
from warehouse.read.analytics_groups import Group, _filter, _quote, _source, groups

#: Metrics: the score columns pass@k and `compare` work on.
METRICS = ("benign_score", "attack_score")
_METRIC_ALIASES = {"utility": "benign_score", "benign": "benign_score", "asr": "attack_score", "attack": "attack_score"}


def _threshold(threshold: float) -> str:
    return repr(arguments.number("threshold", threshold))


def _ks(k: int | Sequence[int] | None) -> list[int] | None:
    if k is None:
        return None
    values = list(k) if isinstance(k, Sequence) and not isinstance(k, str) else [k]
    ks = []
    for x in values:
        try:
            if isinstance(x, bool):
                raise TypeError
            ks.append(operator.index(x))  # ints, and NumPy's
        except TypeError:
            raise InvalidArgumentType(f"k must be a positive integer, got {x!r}") from None
        if not 1 <= ks[-1] < 1 << 31:
            raise InvalidArgument(f"k must be a positive integer below 2**31, got {x!r}")
    if not ks:
        raise InvalidArgument("k must name at least one value")
    return sorted(set(ks))


def _metric(metric: str) -> str:
    if not isinstance(metric, str):
        raise InvalidArgumentType(f"metric must be benign_score (utility) or attack_score (ASR), got {metric!r:.80}")
    m = _METRIC_ALIASES.get(metric, metric)
    if m not in METRICS:
        raise InvalidArgument(f"unknown metric {metric!r}; choose benign_score (utility) or attack_score (ASR)")
    return m


# -- SQL builders ------------------------------------------------------------------------------------
def scores_sql(
    by: str | Sequence[str] | None = ("dataset", "agent", "attack"),
    where: str | None = None,
    k: int | Sequence[int] | None = None,
    threshold: float = 1.0,
    *,
    checks: bool = False,
) -> str:
    """The SQL of `Warehouse.scores`: one row per group with the columns of schemas/queries/score_columns.sql;
    with `k`, also `pass_at_<k>` and `attack_pass_at_<k>` (pass@k of benign and attack scores) and
    `pass_at_<k>_excluded` / `attack_pass_at_<k>_excluded` (tasks with fewer than k scored runs).
    Checks (datasets `<name>.checks`) are left out unless `checks`."""
    gs = groups(by)
    _threshold(threshold)  # checked even when no k uses it: a bad value is never silently ignored
    select = ", ".join(f"{g.expr} as {_quote(g.name) if g.expr != g.name else g.name}" for g in gs)
    sql = (
        f"select {select + ', ' if select else ''}{catalog().queries['score_columns']} "
        f"from {_source(gs, where)} {_filter(where, checks)}"
    )
    if gs:
        sql += f" group by {', '.join(g.expr for g in gs)}"
    ks = _ks(k)
    if ks is None:
        return sql + (f" order by {', '.join(_quote(g.name) for g in gs)}" if gs else "")
    names = [_quote(g.name) for g in gs]
    wide = []
    for x in ks:
        for metric, prefix in (("benign_score", ""), ("attack_score", "attack_")):
            cond = f"metric = '{metric}' and k = {x}"
            wide.append(f"max(pass_at_k) filter (where {cond}) as {prefix}pass_at_{x}")
            wide.append(f"max(n_excluded) filter (where {cond}) as {prefix}pass_at_{x}_excluded")
    p = f"select {', '.join([*names, *wide])} from ({pass_at_k_sql(gs, ks, threshold, where, checks=checks)}) as p"
    if gs:
        p += f" group by {', '.join(names)}"
    on = " and ".join(f"s.{n} is not distinct from p.{n}" for n in names) or "true"
    out = (
        f"select s.*, p.* exclude ({', '.join(names)}) from ({sql}) as s left join ({p}) as p on {on}"
        if names
        else f"select s.*, p.* from ({sql}) as s, ({p}) as p"
    )
    return out + (f" order by {', '.join('s.' + n for n in names)}" if names else "")


def task_scores_sql(
    by: str | Sequence[str] | None = ("dataset", "agent", "attack", "config_hash"),
    where: str | None = None,
    threshold: float = 1.0,
    *,
    ordered: bool = True,
    checks: bool = False,
) -> str:
    """Per task (task_id within the groups of `by`): runs, failures, scored runs, successes (score >=
    `threshold`), mean scores, tokens and cost; the columns of the `task_scores` view. Checks are
    left out unless `checks`."""
    gs = [g for g in groups(by) if g.name != "task_id"]
    t = _threshold(threshold)
    keys = [*(g.expr for g in gs), "task_id"]
    select = ", ".join([*(f"{g.expr} as {_quote(g.name)}" for g in gs), "task_id"])
    return (
        f"select {select}, count(*) as runs, count(*) filter (where status = 'failed') as n_failed, "
        f"count(benign_score) as benign_runs, count(*) filter (where benign_score >= {t}) as benign_successes, "
        f"avg(benign_score) as utility, count(attack_score) as attack_runs, "
        f"count(*) filter (where attack_score >= {t}) as attack_successes, avg(attack_score) as asr, "
        f"bool_or(attack <> 'none') as attacked, sum(total_tokens)::bigint as total_tokens, sum(cost) as cost "
        f"from {_source(gs, where)} {_filter(where, checks)} group by {', '.join(keys)}"
        + (f" order by {', '.join([*(_quote(g.name) for g in gs), 'task_id'])}" if ordered else "")
    )


# One row per task and metric (the attack metric only for attacked tasks): one scan of the tasks.
_METRIC_ROWS = "(values ('benign_score'), ('attack_score')) as m(metric)"
_UNPIVOT = (
    "case m.metric when 'benign_score' then benign_runs else attack_runs end as n, "
    "case m.metric when 'benign_score' then benign_successes else attack_successes end as c"
)


def _groups_of(by: str | Sequence[str] | Sequence[Group] | None) -> list[Group]:
    """`by` as groups: a sequence of `Group`s as given, anything else parsed by `groups`."""
    if by and not isinstance(by, str) and all(isinstance(g, Group) for g in by):
        return list(cast("Sequence[Group]", by))
    return groups(cast("str | Sequence[str] | None", by))


def pass_at_k_sql(
    by: str | Sequence[str] | Sequence[Group] | None = ("agent",),
    k: int | Sequence[int] | None = None,
    threshold: float = 1.0,
    where: str | None = None,
    *,
    checks: bool = False,
) -> str:
    """pass@k per group and metric: columns by..., metric, k, pass_at_k, n_tasks (tasks with at least
    k scored runs), n_excluded (tasks with fewer). `k=None`: k = 1 .. the most runs of a task in the group.
    Checks are left out unless `checks`."""
    gs = _groups_of(by)
    ks = _ks(k)
    names = [_quote(g.name) for g in gs]
    # A task is a task_id within one configuration (and the groups).
    per_task = task_scores_sql([*(g.name for g in gs), "config_hash"], where, threshold, ordered=False, checks=checks)
    cols = "".join(n + ", " for n in names)
    tasks = (
        f"select {cols}m.metric, {_UNPIVOT} from ({per_task}) as t, {_METRIC_ROWS} "
        "where m.metric = 'benign_score' or attacked or attack_runs > 0"
    )
    part = f"partition by {cols}metric"
    if ks is None:
        expanded = (
            f"select *, unnest(range(1, greatest(n_max, 1) + 1))::bigint as k from "
            f"(select *, max(n) over ({part}) as n_max from ({tasks}) as t) as t"
        )
    else:
        expanded = f"select * from ({tasks}) as t, (select unnest({ks})::bigint as k) as ks"
    return (
        f"select {cols}metric, k, avg(pass_at_k_estimate(n, c, k)) filter (where n >= k) as pass_at_k, "
        f"count(*) filter (where n >= k) as n_tasks, count(*) filter (where n < k) as n_excluded "
        f"from ({expanded}) as x group by {cols}metric, k order by {cols}metric = 'attack_score', k"
    )


def usage_sql(by: str | Sequence[str] | None = ("config_hash", "model"), where: str | None = None) -> str:
    """Tokens, requests, tool calls and cost (sums and means per execution) per group."""
    gs = groups(by)
    select = "".join(f"{g.expr} as {_quote(g.name)}, " for g in gs)
    sql = f"select {select}{catalog().queries['usage_columns']} from {_source(gs, where)} {_filter(where, checks=True)}"
    if gs:
        sql += f" group by {', '.join(g.expr for g in gs)} order by {', '.join(_quote(g.name) for g in gs)}"
    return sql
