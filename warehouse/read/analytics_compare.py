"""Paired comparison of two configurations (`compare`): per-task success rates paired by task_id,
the difference with a percentile bootstrap interval (`bootstrap_mean_interval`) and the exact
McNemar test on the tasks whose outcome flipped (`mcnemar_exact`), returned as a `Comparison`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warehouse.core import arguments
from warehouse.core.errors import InvalidArgument
from warehouse.engine.engine import HasEngine, of
from warehouse.read.analytics_groups import _filter
from warehouse.read.analytics_sql import _metric, _threshold

if TYPE_CHECKING:
    import polars as pl


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of natural order: digit runs compare as numbers (task_2 before task_10)."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


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
