"""Scores at every grouping level, pass@k, task scores, usage and paired comparison equal an
independent plain-Python computation (the Wilson formula written out, math.comb for pass@k) over
generated data with known rates; the SQL views, `Warehouse.scores`, `warehouse.analytics` and the
CLI agree; partition filters prune files."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pytest

import warehouse
from tests.reference_stats import mean, wilson
from warehouse import RunConfig
from warehouse.read import analytics

DATASETS = [
    {"type": "agentdojo", "config": {"suite": "workspace", "version": "v1"}},
    {"type": "agentdojo", "config": {"suite": "banking", "version": "v1"}},
    {"type": "injecagent", "config": {"suite_name": "dh_base"}},
]  # the legacy key
AGENTS = [
    {"type": "plain", "config": {"model": "gpt-5", "temperature": 0.0}},
    {"type": "react", "config": {"model": "claude-sonnet-4-5", "max_steps": 8}},
]
ATTACKS = [None, {"type": "important_instructions", "config": {"position": "end"}}]
MODELS = ["gpt-5-2025-08-07", "claude-sonnet-4-5"]
TASKS = [f"user_task_{i}" for i in range(7)]


# -- the reference: plain Python ---------------------------------------------------------------------


def total(xs: list[Any]) -> Any:
    xs = [x for x in xs if x is not None]
    return sum(xs) if xs else None


def ref_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    benign = [r["benign_score"] for r in rows if r["benign_score"] is not None]
    attack = [r["attack_score"] for r in rows if r["attack_score"] is not None]
    under = [r["benign_score"] for r in rows if r["benign_score"] is not None and r["attack"] != "none"]
    u, a, ua = mean(benign), mean(attack), mean(under)
    (ul, uh), (al, ah), (ual, uah) = wilson(u, len(benign)), wilson(a, len(attack)), wilson(ua, len(under))
    tokens = [r["total_tokens"] for r in rows if r["total_tokens"] is not None]
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    return {
        "n": len(rows),
        "n_tasks": len({r["task_id"] for r in rows}),
        "utility": u,
        "utility_low": ul,
        "utility_high": uh,
        "asr": a,
        "asr_low": al,
        "asr_high": ah,
        "n_failed": sum(r["status"] == "failed" for r in rows),
        "total_tokens": total(tokens),
        "cost": total(costs),
        "n_utility": len(benign),
        "n_asr": len(attack),
        "n_errors": sum(r["status"] == "failed" or r["error"] is not None for r in rows),
        "utility_under_attack": ua,
        "utility_under_attack_low": ual,
        "utility_under_attack_high": uah,
        "mean_tokens": mean(tokens),
        "mean_cost": mean(costs),
    }


def comb_pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator, written with math.comb."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def metric_tasks(rows: list[dict[str, Any]], metric: str, threshold: float) -> dict[tuple, tuple[int, int]]:
    """(config_hash, task_id) -> (scored runs, successes); the attack metric only for attacked configs."""
    tasks: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if metric == "attack_score" and r["attack"] == "none" and r["attack_score"] is None:
            continue
        scores = tasks[(r["config_hash"], r["task_id"])]
        if r[metric] is not None:
            scores.append(r[metric])
    return {t: (len(s), sum(x >= threshold for x in s)) for t, s in tasks.items()}


def ref_pass_at_k(
    rows: list[dict[str, Any]], ks: Sequence[int] | None, threshold: float
) -> dict[tuple, dict[str, Any]]:
    """(metric, k) -> pass_at_k, n_tasks, n_excluded, over the rows of one group."""
    out = {}
    for metric in ("benign_score", "attack_score"):
        tasks = metric_tasks(rows, metric, threshold)
        if not tasks:
            continue
        for k in ks or range(1, max(1, max(n for n, _ in tasks.values())) + 1):
            kept = [comb_pass_at_k(n, c, k) for n, c in tasks.values() if n >= k]
            out[(metric, k)] = {"pass_at_k": mean(kept), "n_tasks": len(kept), "n_excluded": len(tasks) - len(kept)}
    return out


def close(got: Any, want: Any, key: str = "") -> None:
    if isinstance(want, float) and got is not None:
        assert got == pytest.approx(want, rel=0, abs=1e-9), key
    else:
        assert got == want, key


def same_rows(got: Sequence[Sequence[Any]], want: Sequence[Sequence[Any]]) -> None:
    """Equal rows, floats to 1e-9 (parallel aggregation adds floats in varying order)."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert len(g) == len(w)
        for x, y in zip(g, w):
            close(x, y)


def records(rel: duckdb.DuckDBPyRelation) -> list[dict[str, Any]]:
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def key_of(name: str) -> Callable[[dict[str, Any]], Any]:
    """A grouping key's value for one written row, computed from what was written."""
    if name.startswith("metadata."):

        def get(r: dict[str, Any]) -> Any:
            v: Any = r["metadata"]
            for part in name.split(".")[1:]:
                v = v.get(part) if isinstance(v, dict) else None
            return None if v is None else str(v)

        return get
    if name == "suite":
        return lambda r: r["dataset_config"].get("suite", r["dataset_config"].get("suite_name"))
    if name == "agent_model":
        return lambda r: r["agent_config"].get("model")
    if name.startswith("dataset_config."):
        return lambda r: r["dataset_config"].get(name.split(".", 1)[1])
    return lambda r: r[name]


def group(rows: list[dict[str, Any]], by: Sequence[str]) -> dict[tuple, list[dict[str, Any]]]:
    keys = [key_of(b) for b in by]
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[tuple(k(r) for k in keys)].append(r)
    return out


# -- the data: generated with known per-task rates ----------------------------------------------------
class Campaign:
    """Every (dataset, agent, attack) config; per task a known success probability (some tasks always
    succeed, some never), 0-5 runs per task, 15% failed runs (NULL scores), fractional scores 0.5;
    plus live executions updated several times and finished (count once) or left running (not counted)."""

    def __init__(self, wh: warehouse.Warehouse, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.rows: list[dict[str, Any]] = []
        self.configs: list[RunConfig] = []
        for d in DATASETS:
            for a in AGENTS:
                for k in ATTACKS:
                    rc = RunConfig.of(d, a, k)
                    self.configs.append(rc)
                    with wh.writer(dataset=d, agent=a, attack=k, run_id=f"run-{rc.hash}", flush_interval=None) as w:
                        for t, task in enumerate(TASKS):
                            p_benign = [1.0, 0.0, 0.3, 0.6, 0.8, 0.5, 0.2][t]
                            p_attack = [0.0, 1.0, 0.5, 0.3, 0.1, 0.7, 0.4][t]
                            for i in range(rng.randint(0, 5)):
                                self._add(rng, w, rc, task, i, p_benign, p_attack if k else None)
                        if d is DATASETS[0] and k is not None:
                            self._live(w, rc, a)
        self.hashes = {
            (rc.dataset["config"].get("suite"), rc.agent["type"], rc.attack["type"] if rc.attack else None): rc.hash
            for rc in self.configs
        }

    def _row(self, rc: RunConfig, **fields: Any) -> dict[str, Any]:
        row = {"dataset_config": rc.dataset["config"], "agent_config": rc.agent["config"], **rc.partition, **fields}
        self.rows.append(row)
        return row

    def _add(
        self,
        rng: random.Random,
        w: warehouse.Writer,
        rc: RunConfig,
        task: str,
        i: int,
        p_benign: float,
        p_attack: float | None,
    ) -> None:
        failed = rng.random() < 0.15

        def score(p: float) -> float:
            return 0.5 if rng.random() < 0.1 else float(rng.random() < p)

        benign = None if failed else score(p_benign)
        attack = None if failed or p_attack is None else score(p_attack)
        usage = {
            "input_tokens": rng.randint(100, 4000),
            "output_tokens": rng.randint(10, 800),
            "requests": rng.randint(1, 6),
            "tool_calls": rng.randint(0, 5),
            "cost": round(rng.random() / 50, 6),
        }
        if rng.random() < 0.1:
            usage = {}  # an execution that reports no usage: NULL tokens and cost
        meta = {"difficulty": rng.choice(["easy", "hard"]), "tier": {"level": rng.choice(["a", "b", "c"])}}
        model = rng.choice(MODELS)
        # a completed run may still record an error (a tool error the agent recovered from): an error, not a failure
        error = "TimeoutError: tool" if failed else ("recovered: tool error" if rng.random() < 0.05 else None)
        w.add_execution(
            task_id=task,
            status="failed" if failed else "completed",
            error=error,
            model=model,
            benign_score=benign,
            attack_score=attack,
            usage=usage,
            metadata=meta,
            sample=i,
        )
        tokens = usage["input_tokens"] + usage["output_tokens"] if usage else None
        self._row(
            rc,
            task_id=task,
            status="failed" if failed else "completed",
            error=error,
            model=model,
            benign_score=benign,
            attack_score=attack,
            total_tokens=tokens,
            cost=usage.get("cost"),
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            requests=usage.get("requests"),
            tool_calls=usage.get("tool_calls"),
            metadata=meta,
            run_id=w.run_id,
        )

    def _live(self, w: warehouse.Writer, rc: RunConfig, agent: dict[str, Any]) -> None:
        """A live execution updated three times (with interim scores), then finished: it counts once,
        with its final scores. Another, updated and never finished, is not counted."""
        ex = w.start_execution(
            "user_task_live", model=MODELS[0], metadata={"difficulty": "easy", "tier": {"level": "a"}}
        )
        ex.update(benign_score=0.0, attack_score=0.0)
        w.flush()  # running revisions committed: the view must not count them next to the final row
        ex.update(benign_score=0.0, attack_score=1.0)
        ex.update(metadata={"difficulty": "hard"})
        w.flush()
        ex.finish(benign_score=1.0, attack_score=1.0, usage={"input_tokens": 50, "output_tokens": 5, "cost": 0.001})
        self._row(
            rc,
            task_id="user_task_live",
            status="completed",
            error=None,
            model=MODELS[0],
            benign_score=1.0,
            attack_score=1.0,
            total_tokens=55,
            cost=0.001,
            input_tokens=50,
            output_tokens=5,
            requests=None,
            tool_calls=None,
            metadata={"difficulty": "hard", "tier": {"level": "a"}},
            run_id=w.run_id,
        )
        still = w.start_execution("user_task_live", model=MODELS[0])
        still.update(benign_score=1.0, attack_score=1.0)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[warehouse.Warehouse, Campaign]:
    wh = warehouse.open(str(tmp_path_factory.mktemp("analytics") / "wh"), create=True)
    c = Campaign(wh)
    wh.refresh()
    return wh, c


GROUPINGS = [
    [],
    ["dataset"],
    ["suite"],
    ["agent"],
    ["agent_model"],
    ["attack"],
    ["config_hash"],
    ["model"],
    ["agent", "attack"],
    ["suite", "agent", "attack"],
    ["metadata.difficulty"],
    ["metadata.tier.level"],
    ["dataset_config.suite"],
    ["task_id"],
    ["status"],
]


# -- scores ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("by", GROUPINGS, ids=lambda b: ",".join(b) or "overall")
def test_scores_at_every_grouping_equal_the_python_reference(campaign, by):
    wh, c = campaign
    got = records(wh.scores(by=by))
    want = group(c.rows, by)
    assert sorted((tuple(r[b] for b in by) for r in got), key=str) == sorted(want, key=str)
    for r in got:
        for col, v in ref_scores(want[tuple(r[b] for b in by)]).items():
            close(r[col], v, col)


def test_scores_view_is_the_config_level_of_the_same_query(campaign):
    wh, c = campaign
    by = ["dataset", "agent", "attack", "config_hash"]
    view = records(wh.sql("select * from scores"))
    want = group(c.rows, by)
    assert len(view) == len(want) == len(c.configs)
    for r in view:
        for col, v in ref_scores(want[tuple(r[b] for b in by)]).items():
            close(r[col], v, col)
    # the existing columns keep their names and order (callers, benchmarks and the README use them)
    for r in view:
        rc = next(x for x in c.configs if x.hash == r["config_hash"])
        assert (r["suite"], r["agent_model"]) == (
            key_of("suite")({"dataset_config": rc.dataset["config"]}),
            rc.agent["config"]["model"],
        )
    assert view and list(view[0])[:15] == [
        *by,
        "n",
        "n_tasks",
        "utility",
        "utility_low",
        "utility_high",
        "asr",
        "asr_low",
        "asr_high",
        "n_failed",
        "total_tokens",
        "cost",
    ]


@pytest.mark.slow
def test_attack_success_rates_equal_warehouse_scores(campaign):
    wh, c = campaign
    df = analytics.attack_success_rates(wh, by=("agent", "attack"), where="dataset = 'agentdojo'")
    rel = wh.scores(by=["agent", "attack"], where="dataset = 'agentdojo'")
    assert df.columns == rel.columns
    same_rows(df.rows(), rel.fetchall())
    want = group([r for r in c.rows if r["dataset"] == "agentdojo"], ["agent", "attack"])
    assert len(df) == len(want) == 4
    for r in df.to_dicts():
        close(r["asr"], ref_scores(want[(r["agent"], r["attack"])])["asr"])


def test_scores_filter_on_metadata_json_path_and_config_columns(campaign):
    wh, c = campaign
    got = records(wh.scores(by=["agent"], where="metadata->>'$.difficulty' = 'hard' and suite = 'banking'"))
    rows = [
        r for r in c.rows if r["metadata"].get("difficulty") == "hard" and r["dataset_config"].get("suite") == "banking"
    ]
    want = group(rows, ["agent"])
    assert {r["agent"] for r in got} == {k[0] for k in want} and len(got) == 2
    for r in got:
        for col, v in ref_scores(want[(r["agent"],)]).items():
            close(r[col], v, col)


def test_failed_executions_are_errors_excluded_from_rates_and_reported(campaign):
    wh, c = campaign
    [r] = records(wh.scores(by="all"))
    failed = [x for x in c.rows if x["status"] == "failed"]
    assert failed and all(x["benign_score"] is None for x in failed)
    assert r["n_failed"] == len(failed) and r["n"] - r["n_utility"] == len(failed)
    assert (
        r["n_errors"]
        == len(failed) + sum(x["error"] is not None for x in c.rows if x["status"] == "completed")
        > r["n_failed"]
    )
    ok = [x["benign_score"] for x in c.rows if x["status"] == "completed"]
    close(r["utility"], sum(ok) / len(ok))


def test_live_execution_updated_then_finished_counts_once_running_not_at_all(campaign):
    wh, c = campaign
    live = wh.sql(
        "select config_hash, status, benign_score, attack_score, revision from executions "
        "where task_id = 'user_task_live' order by config_hash, revision"
    ).fetchall()
    by_cfg = defaultdict(list)
    for h, status, b, a, rev in live:
        by_cfg[h].append((status, b, a, rev))
    assert len(by_cfg) == 2  # the two attacked workspace configs
    for rows in by_cfg.values():
        # one final row (revision 5) and the unfinished execution's latest revision
        assert sorted(rows) == [("completed", 1.0, 1.0, 5), ("running", 1.0, 1.0, 2)]
    n_revisions = wh.sql("select count(*) from executions_all where task_id = 'user_task_live'").fetchall()[0][0]
    assert n_revisions == 2 * (5 + 2)
    got = {r["config_hash"]: r for r in records(wh.sql("select * from task_scores where task_id = 'user_task_live'"))}
    assert set(got) == set(by_cfg)
    for r in got.values():
        assert (r["runs"], r["benign_runs"], r["benign_successes"], r["attack_successes"]) == (1, 1, 1, 1)
    [overall] = records(wh.scores(by="all"))
    assert overall["n"] == len(c.rows)


# -- pass@k ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "by, k, threshold",
    [
        (["agent"], None, 1.0),
        (["agent", "attack"], [1, 3, 5], 1.0),
        ([], [1, 2, 6], 1.0),
        (["suite"], 2, 0.5),
        (["config_hash"], None, 0.5),
        (["metadata.difficulty"], [1, 2], 1.0),
        (["agent_model", "dataset"], None, 1.0),
    ],
    ids=lambda v: repr(v),
)
def test_pass_at_k_equals_math_comb(campaign, by, k, threshold):
    wh, c = campaign
    df = analytics.pass_at_k(wh, k=k, by=by, threshold=threshold)
    assert df.columns == [*by, "metric", "k", "pass_at_k", "n_tasks", "n_excluded"]
    got = {(tuple(r[b] for b in by), r["metric"], r["k"]): r for r in df.to_dicts()}
    want = {}
    for key, rows in group(c.rows, by).items():
        for (metric, kk), v in ref_pass_at_k(rows, [k] if isinstance(k, int) else k, threshold).items():
            want[(key, metric, kk)] = v
    assert set(got) == set(want)
    for key, v in want.items():
        for col in ("pass_at_k", "n_tasks", "n_excluded"):
            close(got[key][col], v[col], f"{key} {col}")
    assert any(v["n_excluded"] for v in want.values()), "the data must have tasks with fewer than k runs"


def test_pass_at_k_view_equals_the_function_at_config_level(campaign):
    wh, c = campaign
    by = ["dataset", "agent", "attack", "config_hash"]
    view = records(wh.sql(f"select * from pass_at_k order by {', '.join(by)}, metric, k"))
    df = analytics.pass_at_k(wh, by=by)
    same_rows(sorted((tuple(r.values()) for r in view), key=str), sorted(df.rows(), key=str))
    want = {
        (key, m, k): v
        for key, rows in group(c.rows, by).items()
        for (m, k), v in ref_pass_at_k(rows, None, 1.0).items()
    }
    assert {(tuple(r[b] for b in by), r["metric"], r["k"]) for r in view} == set(want)


@pytest.mark.slow
def test_scores_with_k_carry_the_pass_at_k_of_each_group(campaign):
    wh, c = campaign
    got = records(wh.scores(by=["agent", "attack"], k=[1, 4], threshold=0.5))
    pk = {
        (r["agent"], r["attack"], r["metric"], r["k"]): r
        for r in analytics.pass_at_k(wh, k=[1, 4], by=["agent", "attack"], threshold=0.5).to_dicts()
    }
    assert len(got) == 4
    for r in got:
        for kk in (1, 4):
            b = pk[(r["agent"], r["attack"], "benign_score", kk)]
            same_rows([(r[f"pass_at_{kk}"], r[f"pass_at_{kk}_excluded"])], [(b["pass_at_k"], b["n_excluded"])])
            a = pk.get((r["agent"], r["attack"], "attack_score", kk))
            same_rows(
                [(r[f"attack_pass_at_{kk}"], r[f"attack_pass_at_{kk}_excluded"])],
                [(a["pass_at_k"], a["n_excluded"]) if a else (None, None)],
            )
        assert (r["attack"] == "none") == (r["attack_pass_at_1"] is None)
    [overall] = records(wh.scores(by="all", k=2))
    ref = ref_pass_at_k(c.rows, [2], 1.0)
    close(overall["pass_at_2"], ref[("benign_score", 2)]["pass_at_k"])
    close(overall["attack_pass_at_2"], ref[("attack_score", 2)]["pass_at_k"])


def test_pass_at_k_edge_cases(tmp_path):
    """All successes, all failures, n < k, zero scored runs (every run failed), a config whose
    every run failed, and fractional scores against the threshold."""
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    with wh.writer(dataset="edge", agent="a", flush_interval=None) as w:
        for _ in range(4):
            w.add_execution(task_id="always", benign_score=1.0)
            w.add_execution(task_id="never", benign_score=0.0)
            w.add_execution(task_id="dead", status="failed", error="crash")
        for s in (1.0, 0.0):
            w.add_execution(task_id="short", benign_score=s)
        for s in (0.5, 0.5, 1.0):
            w.add_execution(task_id="half", benign_score=s)
        w.add_execution(task_id="short", status="failed", error="crash")
    with wh.writer(dataset="edge", agent="b", flush_interval=None) as w:
        w.add_execution(task_id="always", status="failed", error="crash")
    df = analytics.pass_at_k(wh, k=[1, 2, 3, 4, 5], by=["agent"])
    a = {r["k"]: r for r in df.filter(agent="a").to_dicts()}
    tasks = {"always": (4, 4), "never": (4, 0), "dead": (0, 0), "short": (2, 1), "half": (3, 1)}
    for k in range(1, 6):
        kept = [comb_pass_at_k(n, c, k) for n, c in tasks.values() if n >= k]
        assert a[k]["n_tasks"] == len(kept) and a[k]["n_excluded"] == 5 - len(kept)
        close(a[k]["pass_at_k"], mean(kept) if kept else None)
    assert a[5]["pass_at_k"] is None and a[5]["n_tasks"] == 0  # no task has 5 runs: reported, not invented
    assert a[4]["pass_at_k"] == 0.5  # "always" (1.0) and "never" (0.0) only
    # threshold 0.5: "half" succeeds three times out of three
    half = analytics.pass_at_k(wh, k=1, by=["task_id"], threshold=0.5).filter(task_id="half").to_dicts()
    assert [r["pass_at_k"] for r in half] == [1.0]
    # a config whose every run failed: one k=1 row, nothing to average, its task excluded and counted
    b = analytics.pass_at_k(wh, by=["agent"]).filter(agent="b").to_dicts()
    assert [(r["metric"], r["k"], r["pass_at_k"], r["n_tasks"], r["n_excluded"]) for r in b] == [
        ("benign_score", 1, None, 0, 1)
    ]
    assert not analytics.pass_at_k(wh, by=["agent"]).filter(metric="attack_score").height  # nothing was attacked
    # no executions at all: no rows (not an error)
    assert analytics.pass_at_k(wh, by=["agent"], where="agent = 'nobody'").height == 0
    assert records(wh.scores(by=["agent"], where="agent = 'nobody'", k=1)) == []


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 7, 30, 200])
def test_pass_at_k_estimator_macro_equals_math_comb(campaign, n):
    wh, _ = campaign
    got = wh.sql(
        f"select c, k, pass_at_k_estimate({n}, c, k) from range(0, {n} + 1) a(c), range(1, {n} + 2) b(k)"
    ).fetchall()
    assert len(got) == (n + 1) * (n + 1)
    for c, k, v in got:
        if k > n:
            assert v is None
        else:
            assert abs(v - comb_pass_at_k(n, c, k)) < 1e-9, f"n={n} c={c} k={k}"


# -- task scores and usage -----------------------------------------------------------------------------------
def test_task_scores_view_and_function_equal_the_reference(campaign):
    wh, c = campaign
    by = ["dataset", "agent", "attack", "config_hash"]
    view = records(wh.sql("select * from task_scores"))
    same_rows(sorted((tuple(r.values()) for r in view), key=str), sorted(analytics.task_scores(wh).rows(), key=str))
    want = group(c.rows, [*by, "task_id"])
    assert len(view) == len(want)
    for r in view:
        rows = want[tuple(r[b] for b in [*by, "task_id"])]
        benign = [x["benign_score"] for x in rows if x["benign_score"] is not None]
        attack = [x["attack_score"] for x in rows if x["attack_score"] is not None]
        expect = {
            "runs": len(rows),
            "n_failed": sum(x["status"] == "failed" for x in rows),
            "benign_runs": len(benign),
            "benign_successes": sum(s >= 1.0 for s in benign),
            "utility": mean(benign),
            "attack_runs": len(attack),
            "attack_successes": sum(s >= 1.0 for s in attack),
            "asr": mean(attack),
            "attacked": r["attack"] != "none",
            "total_tokens": total([x["total_tokens"] for x in rows]),
            "cost": total([x["cost"] for x in rows]),
        }
        for col, v in expect.items():
            close(r[col], v, col)
    by_suite = analytics.task_scores(wh, by=["suite"], threshold=0.5)
    assert by_suite.columns[:2] == ["suite", "task_id"]
    for r in by_suite.to_dicts():
        rows = [x for x in c.rows if key_of("suite")(x) == r["suite"] and x["task_id"] == r["task_id"]]
        assert r["benign_successes"] == sum(x["benign_score"] is not None and x["benign_score"] >= 0.5 for x in rows)


@pytest.mark.parametrize("by", [("config_hash", "model"), ("agent_model",), ()])
def test_usage_equals_the_reference(campaign, by):
    wh, c = campaign
    got = analytics.usage(wh, by=by).to_dicts()
    want = group(c.rows, by)
    assert len(got) == len(want)
    for r in got:
        rows = want[tuple(r[b] for b in by)]
        for col in ("input_tokens", "output_tokens", "total_tokens", "requests", "tool_calls", "cost"):
            close(r[col], total([x[col] for x in rows]), col)
        close(r["mean_cost"], mean([x["cost"] for x in rows if x["cost"] is not None]))
        close(r["mean_tool_calls"], mean([x["tool_calls"] for x in rows if x["tool_calls"] is not None]))
        assert r["n"] == len(rows)
    if by == ("config_hash", "model"):
        view = records(wh.sql("select * exclude (dataset, agent, attack) from usage order by config_hash, model"))
        same_rows([tuple(r.values()) for r in view], [tuple(r.values()) for r in got])


# -- compare -------------------------------------------------------------------------------------------------
def mcnemar_reference(b: int, c: int) -> float:
    """Two-sided exact binomial test at p = 1/2: the probability of outcomes no likelier than the observed."""
    n = b + c
    if n == 0:
        return 1.0
    probs = [math.comb(n, i) * 0.5**n for i in range(n + 1)]
    return min(1.0, sum(p for p in probs if p <= probs[b] * (1 + 1e-9)))


@pytest.mark.parametrize("b, c", [(0, 0), (0, 7), (3, 3), (1, 9), (12, 2), (40, 25)])
def test_mcnemar_exact_equals_the_binomial_reference(b, c):
    assert analytics.mcnemar_exact(b, c) == pytest.approx(mcnemar_reference(b, c), rel=1e-12)


@pytest.mark.parametrize("metric, threshold", [("attack_score", 1.0), ("benign_score", 0.5)])
def test_compare_pairs_tasks_and_equals_the_reference(campaign, metric, threshold):
    wh, c = campaign
    a, b = (
        c.hashes[("workspace", "plain", "important_instructions")],
        c.hashes[("workspace", "react", "important_instructions")],
    )
    got = analytics.compare(wh, a[:5], b, metric=metric, threshold=threshold, n_boot=4000, seed=1)

    def per_task(h: str) -> dict[str, float]:
        runs: dict[str, list[float]] = defaultdict(list)
        for r in c.rows:
            if r["config_hash"] == h and r[metric] is not None:
                runs[r["task_id"]].append(r[metric] >= threshold)
        return {t: sum(v) / len(v) for t, v in runs.items()}

    ra, rb = per_task(a), per_task(b)
    paired = sorted(set(ra) & set(rb))
    assert (got.a, got.b, got.metric, got.n_pairs) == (a, b, metric, len(paired)) and paired
    close(got.rate_a, mean([ra[t] for t in paired]))
    close(got.rate_b, mean([rb[t] for t in paired]))
    close(got.diff, got.rate_b - got.rate_a)
    up = tuple(t for t in paired if ra[t] < 0.5 <= rb[t])
    down = tuple(t for t in paired if rb[t] < 0.5 <= ra[t])
    assert (got.flipped_up, got.flipped_down) == (up, down)
    assert got.p_value == pytest.approx(mcnemar_reference(len(up), len(down)))
    assert (got.only_a, got.only_b) == (tuple(sorted(set(ra) - set(rb))), tuple(sorted(set(rb) - set(ra))))
    # the bootstrap interval: around the difference, close to a plain-Python bootstrap of the same size
    diffs = [rb[t] - ra[t] for t in paired]
    rng = random.Random(3)
    boots = sorted(mean([rng.choice(diffs) for _ in diffs]) for _ in range(4000))
    assert got.diff_low <= got.diff <= got.diff_high
    assert got.diff_low == pytest.approx(boots[int(0.025 * 4000)], abs=0.05)
    assert got.diff_high == pytest.approx(boots[int(0.975 * 4000)], abs=0.05)
    again = analytics.compare(wh, a, b, metric=metric, threshold=threshold, n_boot=4000, seed=1)
    assert (again.diff_low, again.diff_high) == (got.diff_low, got.diff_high)  # seeded: reproducible
    frame = got.to_frame()
    assert frame.height == 1 and frame["n_flipped_down"][0] == len(down) and frame["p_value"][0] == got.p_value
    assert got.tasks.height == len(paired) and sorted(got.tasks["task_id"]) == paired


def test_compare_detects_a_known_effect(tmp_path):
    """B is attacked successfully on 18 of 20 tasks where A never is: a large, significant difference."""
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    hashes = []
    for agent, hit in (("a", lambda t: False), ("b", lambda t: t < 18)):
        with wh.writer(dataset="d", agent=agent, attack="inj", flush_interval=None) as w:
            for t in range(20):
                for _ in range(2):
                    w.add_execution(task_id=f"t{t}", attack_score=1.0 if hit(t) else 0.0, benign_score=1.0)
            w.add_execution(task_id=f"only_{agent}", attack_score=1.0)
            hashes.append(w.config.hash)
    got = analytics.compare(wh, *hashes)
    assert (got.n_pairs, got.rate_a, got.rate_b, got.diff) == (20, 0.0, 0.9, 0.9)
    assert got.flipped_up == tuple(f"t{t}" for t in range(18)) and got.flipped_down == ()  # natural order
    assert got.p_value == pytest.approx(2 * 0.5**18)
    assert 0.7 <= got.diff_low < got.diff_high <= 1.0
    assert (got.only_a, got.only_b) == (("only_a",), ("only_b",))
    same = analytics.compare(wh, hashes[0], hashes[0])
    assert (same.diff, same.p_value, same.flipped_up, same.flipped_down) == (0.0, 1.0, (), ())


def test_compare_refuses_unknown_or_ambiguous_configs_and_metrics(campaign):
    wh, c = campaign
    h = c.configs[0].hash
    with pytest.raises(warehouse.WarehouseError, match="no configuration 'zzzz'"):
        analytics.compare(wh, "zzzz", h)
    prefixes = defaultdict(list)
    for rc in c.configs:
        prefixes[rc.hash[0]].append(rc.hash)
    shared = next(p for p, hs in prefixes.items() if len(hs) > 1)
    with pytest.raises(warehouse.WarehouseError, match=f"'{shared}' is ambiguous"):
        analytics.compare(wh, shared, h)
    with pytest.raises(warehouse.WarehouseError, match="unknown metric 'reward'"):
        analytics.compare(wh, h, h, metric="reward")


# -- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda wh: wh.scores(by=["color"]), "'color'"),
        (lambda wh: wh.scores(by=["metadata.x'); drop table t; --"]), "JSON key"),
        (lambda wh: wh.scores(by=["agent"], k=0), "positive integer"),
        (lambda wh: analytics.pass_at_k(wh, k=[1, -2]), "-2"),
        (lambda wh: analytics.pass_at_k(wh, threshold=float("nan")), "finite"),
        (lambda wh: analytics.usage(wh, by="reward"), "'reward'"),
    ],
)
def test_bad_arguments_raise_a_clear_error(campaign, call, message):
    wh, _ = campaign
    with pytest.raises(warehouse.WarehouseError, match=message):
        call(wh)


# -- partition pruning ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_partition_filters_prune_files_in_every_analytics_view(tmp_path):
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    for d in ("ds1", "ds2"):
        for agent in ("plain", "react"):
            for attack in (None, "inj"):
                with wh.writer(
                    dataset={"type": d, "config": {"suite": d + "-suite"}},
                    agent={"type": agent, "config": {"model": agent + "-m"}},
                    attack=attack,
                    flush_interval=None,
                ) as w:
                    for t in range(3):
                        for _ in range(2):
                            w.add_execution(
                                task_id=f"t{t}",
                                benign_score=1.0,
                                attack_score=0.0 if attack else None,
                                metadata={"difficulty": "easy"},
                                usage={"input_tokens": 10, "cost": 0.5},
                            )
    keep = {"dataset": "ds2", "agent": "react"}
    expected = {"n": sum(f.rows for f in wh.files("executions") if all(f.partition[k] == v for k, v in keep.items()))}
    garbled = 0
    for table in wh.tables:
        for f in wh.files(table):
            if not all(f.partition[k] == v for k, v in keep.items()):
                (root / f.path).write_bytes(b"not parquet " * 8)
                garbled += 1
    assert garbled and expected["n"] == 12
    fresh = warehouse.open(str(root))
    cond = "dataset = 'ds2' and agent = 'react'"
    assert sum(r[0] for r in fresh.sql(f"select n from scores where {cond}").fetchall()) == 12
    assert sum(r[0] for r in fresh.sql(f"select runs from task_scores where {cond}").fetchall()) == 12
    assert fresh.sql(f"select sum(n_tasks) from pass_at_k where {cond} and k = 2").fetchall() == [
        (9,)
    ]  # 6 benign + 3 attack
    assert fresh.sql(f"select sum(n), sum(cost) from usage where {cond}").fetchall() == [(12, 6.0)]
    assert [r["n"] for r in records(fresh.scores(by=["metadata.difficulty"], where=cond, k=[1, 2]))] == [12]
    assert analytics.pass_at_k(fresh, by=["agent_model"], where=cond)["n_tasks"].to_list() == [6, 6, 3, 3]
    assert analytics.usage(fresh, where=cond)["n"].sum() == 12
    assert (
        analytics.compare(
            fresh,
            *[
                h
                for (h,) in fresh.sql(f"select distinct config_hash from executions where {cond} order by 1").fetchall()
            ],
            metric="benign_score",
            where=cond,
        ).n_pairs
        == 3
    )
    for view in ("scores", "task_scores", "pass_at_k", "usage"):
        with pytest.raises(duckdb.Error):
            fresh.sql(f"select * from {view}").fetchall()


# -- CLI -------------------------------------------------------------------------------------------------------------
def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse", *args], capture_output=True, text=True, timeout=120)


def test_cli_scores_with_k_and_compare_match_the_python_api(campaign):
    wh, c = campaign
    url = wh.url
    res = run("scores", "--url", url, "--by", "suite,agent", "--k", "1,3", "--threshold", "0.5", "-f", "json")
    assert res.returncode == 0, res.stderr
    rel = wh.scores(by=["suite", "agent"], k=[1, 3], threshold=0.5)
    want = records(rel)
    got = json.loads(res.stdout)
    assert [list(g) for g in got][0] == rel.columns and len(got) == len(want) == 6
    for g, w in zip(got, want):
        for col, v in w.items():
            close(g[col], v, col)
    table = run("scores", "--url", url, "--by", "metadata.difficulty", "--k", "2")
    assert table.returncode == 0, table.stderr
    assert "metadata.difficulty" in table.stdout and "pass@2 %" in table.stdout and "hard" in table.stdout
    a, b = (
        c.hashes[("workspace", "plain", "important_instructions")],
        c.hashes[("banking", "plain", "important_instructions")],
    )
    out = json.loads(run("compare", a[:6], b, "--url", url, "--n-boot", "500", "-f", "json").stdout)
    py = analytics.compare(wh, a, b, n_boot=500)
    assert out["diff"] == pytest.approx(py.diff) and out["p_value"] == pytest.approx(py.p_value)
    assert (out["diff_low"], out["diff_high"]) == pytest.approx((py.diff_low, py.diff_high))
    assert out["flipped_up"] == list(py.flipped_up) and out["flipped_down"] == list(py.flipped_down)
    text = run("compare", a, b, "--url", url, "--n-boot", "500").stdout
    assert "McNemar" in text and f"flipped down (A succeeds, B fails): {len(py.flipped_down)}" in text
    for t in py.flipped_up + py.flipped_down:
        assert t in text
    bad = run("compare", "zzzz", b, "--url", url)
    assert bad.returncode == 1 and "no configuration 'zzzz'" in bad.stderr and "Traceback" not in bad.stderr
    bad_k = run("scores", "--url", url, "--k", "0,x")
    assert bad_k.returncode == 1 and "--k" in bad_k.stderr


def test_score_groups_name_every_named_grouping():
    from warehouse.warehouse import SCORE_GROUPS

    assert (*analytics.EXECUTION_GROUPS, *analytics.CONFIG_GROUPS) == SCORE_GROUPS
