"""The analytics benchmark (`python -m benchmarks.analytics`, scores and pass@k against legacy pandas and
raw DuckDB) at a tiny size, in-process: every competitor's answer equals the warehouse's, every figure
is in the JSON, and the legacy pass@k (pandas + math.comb) is an independent check of the warehouse's.
No timing is asserted."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's benchmarks/

from benchmarks import analytics  # noqa: E402

# Each runs a benchmark end to end (many seconds): outside `make check`.
pytestmark = pytest.mark.slow

N = 1_800  # 18 configurations x 20 tasks x 5 runs


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    tmp = tmp_path_factory.mktemp("bench-analytics")
    out = tmp / "bench-analytics.json"
    printed, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(err):
        analytics.main(
            [
                "--executions",
                str(N),
                "--reps",
                "2",
                "--legacy-reps",
                "1",
                "--legacy-files",
                "180",
                "--out",
                str(out),
                "--workdir",
                str(tmp),
            ]
        )
    assert list(tmp.iterdir()) == [out]  # the generated data is deleted
    return json.loads(out.read_text()), printed.getvalue()


def test_every_answer_equals_the_warehouses(run: tuple[dict[str, Any], str]) -> None:
    checks = run[0]["checks"]
    for name in (
        "scores: raw duckdb equals the warehouse (every column)",
        "scores: a fresh open equals the open handle",
        "scores: legacy index equals the warehouse (n, n_tasks, utility, asr)",
        "pass@k: raw duckdb equals the warehouse",
        "pass@k: a fresh open equals the open handle",
        "pass@k: legacy pandas (math.comb) equals the warehouse",
        "warehouse holds every execution once",
        "warehouse holds every message",
        "pass@k rises with k",
    ):
        assert checks[name] == {"ok": True, "detail": checks[name]["detail"]}, name
    [files] = [k for k in checks if k.startswith("scores: legacy index + files")]
    assert checks[files]["ok"], checks[files]
    assert all(c["ok"] for c in checks.values()), checks


def test_the_data_has_five_runs_per_task_and_every_message(run: tuple[dict[str, Any], str]) -> None:
    doc = run[0]
    p = doc["params"]
    assert p["executions"] == N and p["messages"] == 10 * N and p["configs"] == 18 and p["samples_per_task"] == 5
    assert p["legacy_files_executions"] == 180 and p["legacy_files_tasks_per_config"] == 10
    scores = {(r[0], r[1]): r for r in doc["answers"]["scores"]}
    assert len(scores) == 9  # 3 agents x 3 attacks
    assert sum(r[2] for r in scores.values()) == N
    assert all(r[3] == 20 for r in scores.values())  # n_tasks: distinct task ids (the same 20 in both datasets)


def test_pass_at_k_has_every_agent_metric_and_k_with_the_exclusions_counted(run: tuple[dict[str, Any], str]) -> None:
    rows = run[0]["answers"]["pass_at_k"]
    assert {(r[0], r[1], r[2]) for r in rows} == {
        (a, m, k)
        for a in ("plain", "react", "tool_filter")
        for m in ("benign_score", "attack_score")
        for k in range(1, 6)
    }
    for agent, metric, k, value, n_tasks, n_excluded in rows:
        tasks = 6 * 20 if metric == "benign_score" else 4 * 20  # benign configs have no attack metric
        assert n_tasks + n_excluded == tasks, (agent, metric, k)
        assert 0.0 <= value <= 1.0
        if k == 1:
            assert n_excluded == 0  # no task of this seed has all of its runs failed
    assert any(r[5] > 0 for r in rows if r[2] == 5)  # failed runs leave some tasks with fewer than 5 scored runs


def test_legacy_pass_at_k_is_math_comb_per_task(tmp_path: Path) -> None:
    """The legacy reference on a hand-made index, independent of the warehouse: a benign configuration
    h (tasks a, b) and an attacked one h2 (task a) of one agent; None is a failed run."""
    runs = [
        ("h", "benign", "a", 1.0, None),
        ("h", "benign", "a", 0.0, None),
        ("h", "benign", "a", 1.0, None),
        ("h", "benign", "b", 0.0, None),
        ("h", "benign", "b", 0.0, None),
        ("h", "benign", "b", None, None),
        ("h2", "tool_knowledge", "a", 0.0, 1.0),
        ("h2", "tool_knowledge", "a", 1.0, None),
    ]
    with open(tmp_path / "index.jsonl", "w") as f:
        for i, (config, attack, task, benign, attack_score) in enumerate(runs):
            f.write(
                json.dumps(
                    {
                        "execution_id": f"e{i}",
                        "task_id": task,
                        "agent_type": "plain",
                        "attack_type": attack,
                        "config_hash": config,
                        "benign_score": benign,
                        "attack_score": attack_score,
                    }
                )
                + "\n"
            )
    got = {(r[1], r[2]): r[3:] for r in analytics.legacy_pass_at_k(tmp_path, ks=(1, 2, 3))}

    def est(n: int, c: int, k: int) -> float:
        return 1 - math.comb(n - c, k) / math.comb(n, k)

    # benign_score: (h, a) n=3 c=2; (h, b) n=2 c=0; (h2, a) n=2 c=1
    assert got[("benign_score", 1)] == pytest.approx(((est(3, 2, 1) + 0 + est(2, 1, 1)) / 3, 3, 0))
    assert got[("benign_score", 2)] == pytest.approx(((est(3, 2, 2) + 0 + est(2, 1, 2)) / 3, 3, 0))
    assert got[("benign_score", 3)] == pytest.approx((est(3, 2, 3), 1, 2))
    # attack_score: only the attacked configuration's task, n=1 c=1
    assert got[("attack_score", 1)] == (1.0, 1, 0)
    assert got[("attack_score", 2)] == (None, 0, 1)
    assert len(got) == 6


def test_prints_the_tables_ratios_goals_and_the_same_json(run: tuple[dict[str, Any], str]) -> None:
    doc, printed = run
    assert (
        "| scores | warehouse (open handle) |" in printed and "| pass@k | legacy (index.jsonl, math.comb) |" in printed
    )
    assert "| goal | measured | met |" in printed and "extrapolated" in printed
    assert len(doc["goals"]) == 4 and all(g["met"] in (True, False) for g in doc["goals"])
    for name, t in doc["times"].items():
        assert t["median_ms"] > 0 and t["min_ms"] <= t["median_ms"] <= t["max_ms"], name
    assert json.loads(printed[printed.index("\n{") + 1 :]) == doc


def test_too_few_executions_is_refused_naming_the_value() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit):
        analytics.main(["--executions", "17"])
    assert "--executions must be at least 90" in err.getvalue() and "got 17" in err.getvalue()
