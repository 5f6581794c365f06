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

import functools
import inspect
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from warehouse.core import arguments
from warehouse.core.condition import condition
from warehouse.core.errors import InvalidArgument, InvalidArgumentType
from warehouse.core.schemas import catalog
from warehouse.engine.engine import HasEngine, of

if TYPE_CHECKING:
    import duckdb
    import polars as pl

#: Columns of the `executions` view that results may be grouped by.
EXECUTION_GROUPS = ("dataset", "agent", "attack", "config_hash", "model", "run_id", "task_id", "status")
#: Named groupings taken from the configuration (a join with `configs`): the macros of
#: schemas/views/00_macros.sql, which the `scores` view uses too.
CONFIG_GROUPS = {
    "suite": "config_suite(dataset_config)",
    "agent_model": "config_agent_model(agent_config)",
}
#: Prefixes of JSON-path groupings: `metadata.KEY` (the execution's) and `<part>_config.KEY` (the configuration's).
JSON_PREFIXES = ("metadata", "dataset_config", "agent_config", "attack_config")
#: Metrics: the score columns pass@k and `compare` work on.
METRICS = ("benign_score", "attack_score")
_METRIC_ALIASES = {"utility": "benign_score", "benign": "benign_score", "asr": "attack_score", "attack": "attack_score"}
_KEY = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Group:
    """One grouping key: its output column `name`, its SQL expression, whether it needs `configs`."""

    name: str
    expr: str
    from_config: bool = False


def groups(by: str | Sequence[str] | None) -> list[Group]:
    """Parse a grouping (`"agent,attack"`, `["suite", "metadata.difficulty"]`, `"all"`, `()`).

    Raises InvalidArgument naming a key that is not a grouping.
    """
    if by is None:
        return []
    names = by.split(",") if isinstance(by, str) else list(by)
    out: list[Group] = []
    for raw in names:
        name = str(raw).strip()
        if not name or name == "all":
            continue
        if name in EXECUTION_GROUPS:
            g = Group(name, name)
        elif name in CONFIG_GROUPS:
            g = Group(name, _quote(name), from_config=True)
        elif "." in name and name.split(".", 1)[0] in JSON_PREFIXES:
            prefix, key = name.split(".", 1)
            if not _KEY.match(key):
                raise InvalidArgument(
                    f"cannot group by {name!r}: a JSON key is letters, digits, '_' or '-', nested keys separated by '.'"
                )
            if prefix == "metadata":
                g = Group(name, f"json_extract_string(metadata, {_json_path(key)})")
            else:
                g = Group(name, _quote(name), from_config=True)
        else:
            raise InvalidArgument(
                f"cannot group by {name!r}; choose from {', '.join(EXECUTION_GROUPS)}, "
                f"{', '.join(CONFIG_GROUPS)}, metadata.KEY, dataset_config.KEY, agent_config.KEY, "
                "attack_config.KEY or 'all'"
            )
        if g.name not in {x.name for x in out}:
            out.append(g)
    return out


def _json_path(key: str) -> str:
    return "'$." + ".".join(f'"{seg}"' for seg in key.split(".")) + "'"


def _where(where: str | None) -> str | None:
    """`where` checked as one boolean SQL expression over the columns of `executions` (and the
    configuration's `suite` and `agent_model`), as it is run; None when no condition is given.
    Raises InvalidCondition naming the text (see `warehouse.condition`)."""
    if where is None or where == "":
        return None
    columns = {c.name: c.duckdb_type for c in catalog().table("executions").columns}
    columns.update((name, "VARCHAR") for name in CONFIG_GROUPS)
    return condition(where, columns, over="executions")


def _source(gs: Sequence[Group], where: str | None) -> str:
    """The executions to aggregate: the `executions` view, joined with the configuration's derived
    columns only when a grouping (or the `where` condition) uses them."""
    where = _where(where)
    derived = dict(CONFIG_GROUPS)
    for g in gs:
        if g.from_config and g.name not in derived:
            prefix, key = g.name.split(".", 1)
            derived[g.name] = f"json_extract_string({prefix}, {_json_path(key)})"
    mentioned = where is not None and any(re.search(rf"\b{re.escape(n)}\b", where) for n in CONFIG_GROUPS)
    if not any(g.from_config for g in gs) and not mentioned:
        return "executions"
    cols = ", ".join(f"{expr} as {_quote(name)}" for name, expr in derived.items())
    # Joined on every partition column, so that a partition filter on the executions prunes the
    # configs' files too (the `configs` view's window would stop it); one row per config_hash.
    pcols = ", ".join(catalog().partition_columns)
    configs = (
        f"select {pcols}, arg_min(dataset_config, created_at) as dataset_config, "
        f"arg_min(agent_config, created_at) as agent_config, arg_min(attack_config, created_at) as attack_config "
        f"from raw_configs group by {pcols}"
    )
    return (
        f"(select * from executions left join (select {pcols}, {cols} from ({configs}) as c0) as c "
        f"using ({pcols})) as executions"
    )


#: Suffix of the datasets whose executions are checks, not measurements (see the module docstring).
CHECKS_SUFFIX = ".checks"


def _filter(where: str | None, checks: bool = True) -> str:
    """Finished executions (and, unless `checks`, no checks), and the caller's condition."""
    where = _where(where)
    return (
        "where status <> 'running'"
        + ("" if checks else " and not is_check(dataset)")
        + (f" and {where}" if where else "")
    )


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


def check_keys(wh: HasEngine, by: str | Sequence[str] | None, where: str | None = None) -> None:
    """Raise InvalidArgument when a `metadata.KEY` or `<part>_config.KEY` grouping names a key that none
    of the finished executions `where` selects has (in its metadata, or its configuration), listing
    the keys there are: a typo would otherwise give one row of NULLs. One query per such grouping,
    over the partitions `where` selects, stopping at the first row that has the key; no query for
    the other groupings; no error when no execution is selected at all."""
    from warehouse.core.errors import InvalidArgument

    eng = of(wh)
    for g in groups(by):
        prefix, _, key = g.name.partition(".")
        if not key or prefix not in JSON_PREFIXES:
            continue
        rows = f"select 1 from {_source([g], where)} {_filter(where)}"
        has = f"json_exists(metadata, {_json_path(key)})" if prefix == "metadata" else f"{_quote(g.name)} is not null"
        # (two plain `limit 1` queries, the second only on a miss: ~7 ms at 300k executions, where one
        # query of two EXISTS took twice that)
        if (
            eng.sql_sandboxed(f"{rows} and {has} limit 1").fetchall()
            or not eng.sql_sandboxed(f"{rows} limit 1").fetchall()
        ):
            continue
        parent, _, leaf = key.rpartition(".")
        at = _json_path(parent) if parent else "'$'"
        source = f"{_source([], where)} {_filter(where)}" if prefix == "metadata" else "raw_configs where true"
        keys = [
            r[0]
            for r in eng.sql_sandboxed(
                f"select distinct unnest(json_keys({prefix}, {at})) as k from {source} "
                f"and json_type({prefix}, {at}) = 'OBJECT' order by k limit 51"
            ).fetchall()
        ]
        path = f"{prefix}.{parent}" if parent else prefix
        listed = ", ".join(f"{path}.{k}" for k in keys[:50]) + (", ..." if len(keys) > 50 else "")
        owner = "execution's metadata" if prefix == "metadata" else f"configuration's {prefix}"
        raise InvalidArgument(
            f"cannot group by {g.name!r}: no {owner} has the key {leaf!r}"
            + (f" in {path}" if parent else "")
            + (" (of the executions `where` selects)" if where else "")
            + (f"; the keys there are {listed}" if keys else f"; no {path} is an object with keys")
        )


def _checks_keys(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `check_keys` on the function's `wh`, `by` and `where` before it."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        check_keys(bound.arguments["wh"], bound.arguments["by"], bound.arguments["where"])
        return fn(*args, **kwargs)

    return checked


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of natural order: digit runs compare as numbers (task_2 before task_10)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


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


# -- paired comparison ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """Two configurations compared on the tasks both ran (`compare`).

    Per task, a configuration's rate is the fraction of its scored runs with score >= threshold, and
    the task counts as a success when that rate is at least 1/2 (one run: that run's outcome).
    `rate_a`/`rate_b` are the mean rates over the paired tasks; `diff` = rate_b - rate_a with a
    percentile bootstrap 95% interval (tasks resampled), widened if need be so that
    -1 <= diff_low <= diff <= diff_high <= 1 holds exactly; `p_value` is the exact (binomial) McNemar
    test on the tasks whose outcome flipped. `tasks` holds the per-task rows.
    """

    a: str
    b: str
    metric: str
    threshold: float
    n_pairs: int
    rate_a: float | None
    rate_b: float | None
    diff: float | None
    diff_low: float | None
    diff_high: float | None
    p_value: float | None
    flipped_up: tuple[str, ...]
    flipped_down: tuple[str, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    tasks: pl.DataFrame = field(repr=False, compare=False)

    def to_frame(self) -> pl.DataFrame:
        """The comparison as one row (a, b, metric, threshold, n_pairs, rates, diff and interval,
        p_value, counts of flipped and unpaired tasks)."""
        import polars as pl

        return pl.DataFrame(
            [
                {
                    "a": self.a,
                    "b": self.b,
                    "metric": self.metric,
                    "threshold": self.threshold,
                    "n_pairs": self.n_pairs,
                    "rate_a": self.rate_a,
                    "rate_b": self.rate_b,
                    "diff": self.diff,
                    "diff_low": self.diff_low,
                    "diff_high": self.diff_high,
                    "p_value": self.p_value,
                    "n_flipped_up": len(self.flipped_up),
                    "n_flipped_down": len(self.flipped_down),
                    "n_only_a": len(self.only_a),
                    "n_only_b": len(self.only_b),
                }
            ],
            schema={
                "a": pl.String,
                "b": pl.String,
                "metric": pl.String,
                "threshold": pl.Float64,
                "n_pairs": pl.Int64,
                "rate_a": pl.Float64,
                "rate_b": pl.Float64,
                "diff": pl.Float64,
                "diff_low": pl.Float64,
                "diff_high": pl.Float64,
                "p_value": pl.Float64,
                "n_flipped_up": pl.Int64,
                "n_flipped_down": pl.Int64,
                "n_only_a": pl.Int64,
                "n_only_b": pl.Int64,
            },
        )


def resolve_config(wh: HasEngine, ref: str) -> str:
    """The config hash that `ref` (a hash or a unique prefix of one) names, from the manifest.
    Raises InvalidArgument if none or several match."""
    eng = of(wh)
    ref = ref.strip()
    hashes = sorted(
        {f.partition["config_hash"] for f in eng.files("executions")}
        | {f.partition["config_hash"] for f in eng.files("configs")}
    )
    if ref in hashes:
        return ref
    found = [h for h in hashes if ref and h.startswith(ref)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidArgument(
            f"no configuration {ref!r}: no config_hash starts with it "
            '(see `warehouse sql "select config_hash, dataset, agent, attack from configs"`)'
        )
    raise InvalidArgument(
        f"configuration {ref!r} is ambiguous: it starts {', '.join(found[:5])}"
        f"{', ...' if len(found) > 5 else ''}; give more characters"
    )


def mcnemar_exact(up: int, down: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of min(up, down) of up + down flips at p = 1/2."""
    n = up + down
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(up, down) + 1))
    return min(1.0, 2 * tail / 2**n)


def compare(
    wh: HasEngine,
    a: str,
    b: str,
    metric: str = "attack_score",
    threshold: float = 1.0,
    n_boot: int = 10_000,
    seed: int = 0,
    where: str | None = None,
) -> Comparison:
    """Compare configurations `a` and `b` (hashes or unique prefixes) on `metric` (attack_score or
    benign_score), paired by task_id; see `Comparison`. Tasks whose runs in one of them all lack the
    score (failed) or that only one ran are not paired and listed in `only_a`/`only_b`.
    Raises WarehouseError for an unknown or ambiguous configuration, an unknown metric or n_boot < 1."""
    import polars as pl

    eng = of(wh)
    m = _metric(metric)
    n_boot = arguments.integer("n_boot", n_boot, minimum=1)
    ha, hb = resolve_config(eng, a), resolve_config(eng, b)
    t = _threshold(threshold)
    per_task = eng.sql_sandboxed(
        f"select config_hash, task_id, count({m}) as runs, count(*) filter (where {m} >= {t}) as successes "
        f"from executions {_filter(where, checks=True)} and config_hash in (?, ?) group by config_hash, task_id",
        [ha, hb],
    ).fetchall()
    side: dict[str, dict[str, tuple[int, int]]] = {ha: {}, hb: {}}
    for cfg, task, runs, successes in per_task:
        if runs:
            side[cfg][task] = (runs, successes)
    if ha == hb:
        side[hb] = side[ha]
    paired = sorted(set(side[ha]) & set(side[hb]), key=natural_key)
    rows: list[dict[str, Any]] = []
    for task in paired:
        (na, ca), (nb, cb) = side[ha][task], side[hb][task]
        ra, rb = ca / na, cb / nb
        sa, sb = ra >= 0.5, rb >= 0.5
        rows.append(
            {
                "task_id": task,
                "runs_a": na,
                "successes_a": ca,
                "rate_a": ra,
                "runs_b": nb,
                "successes_b": cb,
                "rate_b": rb,
                "flip": "up" if sb and not sa else "down" if sa and not sb else None,
            }
        )
    tasks = pl.DataFrame(
        rows,
        schema={
            "task_id": pl.String,
            "runs_a": pl.Int64,
            "successes_a": pl.Int64,
            "rate_a": pl.Float64,
            "runs_b": pl.Int64,
            "successes_b": pl.Int64,
            "rate_b": pl.Float64,
            "flip": pl.String,
        },
    )
    up = tuple(r["task_id"] for r in rows if r["flip"] == "up")
    down = tuple(r["task_id"] for r in rows if r["flip"] == "down")
    only_a = tuple(sorted(set(side[ha]) - set(side[hb]), key=natural_key))
    only_b = tuple(sorted(set(side[hb]) - set(side[ha]), key=natural_key))
    if not rows:
        return Comparison(ha, hb, m, float(t), 0, None, None, None, None, None, None, up, down, only_a, only_b, tasks)
    rate_a = math.fsum(r["rate_a"] for r in rows) / len(rows)
    rate_b = math.fsum(r["rate_b"] for r in rows) / len(rows)
    diffs = [r["rate_b"] - r["rate_a"] for r in rows]
    diff = math.fsum(diffs) / len(diffs)  # = rate_b - rate_a, computed as the bootstrap's statistic is
    low, high = bootstrap_mean_interval(diffs, n_boot, seed)
    # The interval holds the estimate exactly and stays within [-1, 1]: resampled means are summed
    # in another order (0.1 + 0.1 + 0.1 = 0.30000000000000004), and a percentile interval of a
    # very skewed resample could otherwise miss the estimate by more.
    low, high = max(-1.0, min(low, diff)), min(1.0, max(high, diff))
    return Comparison(
        ha,
        hb,
        m,
        float(t),
        len(rows),
        rate_a,
        rate_b,
        diff,
        low,
        high,
        mcnemar_exact(len(up), len(down)),
        up,
        down,
        only_a,
        only_b,
        tasks,
    )


def bootstrap_mean_interval(
    values: Sequence[float], n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled with replacement `n_boot`
    times; deterministic for a given `seed`)."""
    import polars as pl

    n = len(values)
    draws = pl.Series("v", values, dtype=pl.Float64).sample(n * n_boot, with_replacement=True, seed=seed)
    means = (
        pl.DataFrame({"v": draws, "b": pl.int_range(0, n * n_boot, eager=True) // n})
        .group_by("b")
        .agg(pl.col("v").mean())["v"]
    )
    alpha = (1 - level) / 2
    low, high = means.quantile(alpha, "linear"), means.quantile(1 - alpha, "linear")
    if low is None or high is None:  # no values: no means to take quantiles of
        raise InvalidArgument("bootstrap_mean_interval needs at least one value")
    return low, high
