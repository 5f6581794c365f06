"""Every interval the warehouse computes holds its point estimate and lies in its range exactly, at
the edges too: Wilson intervals of rates at every k of every n <= 200 (p = 0 and p = 1 included,
where the formula's rounding used to put the upper bound 1e-16 below a rate of 1), pass@k at every
n, c and k (n < k excluded, n = k), the bootstrap interval of `compare`, and the report built over
configurations at p = 0 and p = 1 (it used to crash in matplotlib on a negative error bar)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import warehouse
from warehouse.read import analytics

N_MAX = 200


def test_wilson_bounds_hold_the_rate_exactly_for_every_k_of_every_n_up_to_200(wh):
    """The macros the views use, over every (n, k) with n <= 200: the rate is the mean of n runs of
    which k scored 1 (as `avg(score)` computes it), and 0 <= low <= rate <= high <= 1 exactly."""
    bad = wh.sql(f"""
        with runs as (
            select n, k, (i < k)::double as score
            from range(1, {N_MAX + 1}) a(n), range(0, {N_MAX + 1}) b(k), range(0, {N_MAX}) c(i)
            where k <= n and i < n),
        rates as (
            select n, k, avg(score) as p, wilson_low(avg(score), count(score)) as lo,
                   wilson_high(avg(score), count(score)) as hi
            from runs group by n, k)
        select n, k, p, lo, hi, (select count(*) from rates) as cases from rates
        where not (0 <= lo and lo <= p and p <= hi and hi <= 1) or lo is null or hi is null
        """).fetchall()
    assert bad == []
    assert wh.sql(
        f"select count(*) from range(1, {N_MAX + 1}) a(n), range(0, {N_MAX + 1}) b(k) where k <= n"
    ).fetchall() == [((N_MAX + 1) * (N_MAX + 2) // 2 - 1,)]


def test_wilson_interval_is_null_for_a_mean_that_is_not_a_rate(wh):
    got = wh.sql(
        "select wilson_low(p, 10), wilson_high(p, 10) from (values (-0.5), (1.5), (1.0000000000000002)) t(p)"
    ).fetchall()
    assert got == [(None, None)] * 3
    assert wh.sql("select wilson_low(0.5, 0), wilson_high(1.0, 0)").fetchall() == [(None, None)]


def _runs(wh: warehouse.Warehouse, agent: str, results: dict[str, list[float]], attack: str | None = "inj") -> str:
    with wh.writer(dataset="d", agent=agent, attack=attack, flush_interval=None) as w:
        for task, scores in results.items():
            for s in scores:
                w.add_execution(task_id=task, benign_score=s, attack_score=s if attack else None)
        return w.config.hash


@pytest.mark.slow
def test_scores_intervals_hold_their_rates_at_p_0_and_p_1_for_every_n_up_to_200_and_every_k_up_to_40(wh):
    """End to end through the writer, the `scores` view and `wh.scores(by=...)`: one task per
    (n, k), all n <= 200 at k = 0 and k = n, and every k of every n <= 40."""
    cases = [(n, k) for n in range(1, N_MAX + 1) for k in {0, n}] + [(n, k) for n in range(1, 41) for k in range(1, n)]
    _runs(wh, "edges", {f"n{n}_k{k}": [1.0] * k + [0.0] * (n - k) for n, k in cases})
    rows = wh.scores(by="task_id").pl()
    assert rows.height == len(cases)
    for prefix in ("utility", "asr"):
        p, lo, hi = rows[prefix], rows[f"{prefix}_low"], rows[f"{prefix}_high"]
        assert lo.null_count() == 0 and hi.null_count() == 0
        assert ((lo >= 0) & (lo <= p) & (p <= hi) & (hi <= 1)).all()
    view = wh.sql("select asr, asr_low, asr_high, utility, utility_low, utility_high from scores").fetchall()
    for asr, asr_low, asr_high, u, u_low, u_high in view:
        assert 0 <= asr_low <= asr <= asr_high <= 1 and 0 <= u_low <= u <= u_high <= 1


@pytest.mark.slow
def test_every_rate_function_gives_intervals_that_hold_their_rates_at_p_1(wh):
    _runs(wh, "perfect", {f"t{i}": [1.0] for i in range(10)})  # n = 10: the formula gives 1 - 1e-16
    frames = {
        "scores": wh.scores(by=["agent", "attack"]).pl(),
        "attack_success_rates": analytics.attack_success_rates(wh, by=("agent", "attack")),
        "scores view": wh.sql("select * from scores").pl(),
    }
    for name, f in frames.items():
        for prefix in ("asr", "utility"):
            assert (f[prefix] == 1.0).all(), name
            assert (f[f"{prefix}_high"] == 1.0).all() and (f[f"{prefix}_low"] <= 1.0).all(), name


def test_pass_at_k_lies_in_0_1_at_every_n_c_and_k_up_to_200_and_is_null_when_n_is_below_k(wh):
    bad = wh.sql(f"""
        select n, c, k, pass_at_k_estimate(n, c, k) as e
        from range(1, {N_MAX + 1}) a(n), range(0, {N_MAX + 1}) b(c), range(1, {N_MAX + 2}) d(k)
        where c <= n and not (case when n < k then e is null
                                   when n = k then e = (c > 0)::double
                                   else e between 0 and 1 end)
        """).fetchall()
    assert bad == []
    # Against the exact estimator 1 - C(n-c, k) / C(n, k) on a sample of the same grid.
    rng = random.Random(7)
    sample = [(n, c, k) for n, c, k in ((rng.randint(1, N_MAX), 0, 0) for _ in range(300))]
    sample = [(n, rng.randint(0, n), rng.randint(1, n)) for n, _, _ in sample]
    got = wh.sql(
        "select pass_at_k_estimate(n, c, k) from (select unnest(?) as n, unnest(?) as c, unnest(?) as k)",
        [[s[0] for s in sample], [s[1] for s in sample], [s[2] for s in sample]],
    ).fetchall()
    assert len(got) == len(sample)
    for (n, c, k), (e,) in zip(sample, got):
        assert e == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_at_n_equal_k_and_below(wh):
    """4 runs per task: k = 4 is 1 for a task with any success (0 without); k = 5 excludes every task."""
    _runs(wh, "a", {"hit": [0.0, 0.0, 0.0, 1.0], "miss": [0.0] * 4})
    got = wh.scores(by="agent", k=[4, 5]).pl()
    assert got["attack_pass_at_4"].to_list() == [0.5] and got["attack_pass_at_4_excluded"].to_list() == [0]
    assert got["attack_pass_at_5"].to_list() == [None] and got["attack_pass_at_5_excluded"].to_list() == [2]
    view = wh.sql(
        "select k, pass_at_k, n_tasks, n_excluded from pass_at_k where metric = 'attack_score' order by k"
    ).fetchall()
    assert view[-1] == (4, 0.5, 2, 0) and all(0 <= p <= 1 for _, p, _, _ in view)


def test_compare_interval_holds_the_difference_when_every_task_moves_by_the_same_amount(wh):
    """Six tasks, each 1 of 7 runs compromised under B and none under A: every resampled mean is
    1/7 to the last bit, while the rates' difference summed the other way was 2e-17 below it,
    outside an interval of zero width."""
    a = _runs(wh, "a", {f"t{i}": [0.0] * 7 for i in range(6)})
    b = _runs(wh, "b", {f"t{i}": [1.0] + [0.0] * 6 for i in range(6)})
    got = analytics.compare(wh, a, b)
    assert got.diff == pytest.approx(1 / 7)
    assert got.diff_low <= got.diff <= got.diff_high


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.integers(1, 6), st.integers(0, 6), st.integers(1, 6), st.integers(0, 6)), min_size=1, max_size=8
    ),
    st.integers(1, 300),
    st.integers(0, 2**32 - 1),
)
def test_compare_interval_holds_the_difference_and_lies_in_minus_1_1(tmp_path_factory, tasks, n_boot, seed):
    values = [((ra, min(ca, ra)), (rb, min(cb, rb))) for ra, ca, rb, cb in tasks]
    diffs = [cb / rb - ca / ra for (ra, ca), (rb, cb) in values]
    low, high = analytics.bootstrap_mean_interval(diffs, n_boot, seed)
    assert -1 <= low <= high <= 1
    wh = warehouse.open(str(tmp_path_factory.mktemp("cmp") / "wh"), create=True)
    a = _runs(wh, "a", {f"t{i}": [1.0] * c + [0.0] * (r - c) for i, ((r, c), _) in enumerate(values)})
    b = _runs(wh, "b", {f"t{i}": [1.0] * c + [0.0] * (r - c) for i, (_, (r, c)) in enumerate(values)})
    got = analytics.compare(wh, a, b, n_boot=n_boot, seed=seed)
    assert -1 <= got.diff_low <= got.diff <= got.diff_high <= 1
    assert 0 <= got.rate_a <= 1 and 0 <= got.rate_b <= 1


@pytest.mark.slow
def test_report_builds_over_configurations_at_p_0_and_p_1(wh, tmp_path):
    for agent, rate in (("always", 1.0), ("never", 0.0)):
        _runs(wh, agent, {f"t{i}": [rate] for i in range(4)})  # n = 4: the formula gives 1 - 1e-16
        _runs(wh, agent, {f"t{i}": [1.0 - rate] for i in range(4)}, attack=None)
    page = Path(wh.report(tmp_path / "report.html")).read_text()
    assert "Scatter of utility under attack against attack success rate" in page  # the chart that crashed
    assert "Bar chart of the tasks most often compromised" in page


@pytest.mark.slow
def test_report_builds_when_scores_are_not_rates(wh, tmp_path):
    """Scores outside [0, 1] have a mean but no Wilson interval: the report shows them without error bars."""
    _runs(wh, "points", {f"t{i}": [5.0, 3.0] for i in range(3)})
    row = wh.scores(by="agent").pl().row(0, named=True)
    assert (row["asr"], row["asr_low"], row["asr_high"]) == (4.0, None, None)
    assert Path(wh.report(tmp_path / "report.html")).exists()
