"""The benchmark suite (`benchmarks/`, run by `warehouse bench`): every case at the small scale, once,
asserting what must hold whatever the timings are: counts, equal answers across competitors, nothing
lost or duplicated. Plus the faithfulness of the competitors' layouts and the suite's failure paths."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import warehouse
from warehouse.cli import bench, demo

runner = bench.load_runner()  # puts the checkout's benchmarks/ on sys.path

from benchmarks import CheckFailed, harness, legacy, raw_pyarrow  # noqa: E402

CASE_NAMES = [
    "bulk_write",
    "small_flushes",
    "concurrency",
    "scores_query",
    "partition_pruning",
    "snapshot_load",
    "memory",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, Any]:
    """Every case at --scale small, one repetition each (correctness, not timings)."""
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "bench-results.json"
    console = Console(file=io.StringIO(), width=200)
    rep = runner.run("small", out, workdir=tmp, console=console, progress=console, reps=1, raise_on_failure=False)
    rep["_printed"] = console.file.getvalue()
    rep["_json"] = json.loads(out.read_text())
    return rep


def case(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["cases"] if c["name"] == name)


def failed_checks(c: dict[str, Any]) -> list[str]:
    return [f"{k['name']}: {k['detail']}" for k in c["checks"] if not k["ok"]]


def test_every_case_runs_and_reports_medians_and_ratios(report: dict[str, Any]) -> None:
    assert [c["name"] for c in report["cases"]] == CASE_NAMES
    for c in report["cases"]:
        assert c["error"] is None, c["error"]
        assert c["measurements"] and c["goals"] and c["checks"], c["name"]
        for m in c["measurements"]:
            assert m["values"] and m["median"] == sorted(m["values"])[len(m["values"]) // 2]
        baseline = [m for m in c["measurements"] if m["competitor"] == c["baseline"]]
        assert baseline and all(m["ratio_to_baseline"] == pytest.approx(1.0) for m in baseline if m["median"])
    assert report["ok"], [f for c in report["cases"] for f in failed_checks(c)]


def test_results_json_records_machine_versions_and_the_printed_table_shows_every_case(report: dict[str, Any]) -> None:
    doc = report["_json"]
    assert doc["scale"] == "small" and doc["machine"]["cores"] >= 1 and doc["machine"]["memory_bytes"] > 0
    assert {"pyarrow", "duckdb", "deltalake", "pandas", "filelock"} <= set(doc["versions"])
    for c in doc["cases"]:
        assert f"{c['id']}. " in report["_printed"]
    assert "Goals" in report["_printed"] and "correctness checks passed" in report["_printed"]


def test_bulk_write_stores_every_execution_and_message_in_every_competitor(report: dict[str, Any]) -> None:
    c = case(report, "bulk_write")
    assert not failed_checks(c)
    assert {k["name"].split(":")[0] for k in c["checks"]} == {"warehouse", "legacy", "raw pyarrow", "delta"}
    sizes = {m["competitor"]: m["median"] for m in c["measurements"] if m["metric"] == "bytes on disk (file sizes)"}
    assert all(v > 0 for v in sizes.values()) and len(sizes) == 4


def test_small_flushes_commit_once_per_flush_and_lose_nothing(report: dict[str, Any]) -> None:
    c = case(report, "small_flushes")
    assert not failed_checks(c) and len(c["checks"]) == 3


def test_concurrent_writers_lose_and_duplicate_nothing(report: dict[str, Any]) -> None:
    c = case(report, "concurrency")
    assert not failed_checks(c)
    assert any(k["name"].startswith("warehouse") for k in c["checks"])
    assert c["goals"][0]["met"] is True


def test_scores_query_gives_the_same_answer_in_every_competitor(report: dict[str, Any]) -> None:
    c = case(report, "scores_query")
    names = {k["name"] for k in c["checks"]}
    assert {
        "raw duckdb answers equal the warehouse's",
        "legacy (index.jsonl) answers equal the warehouse's",
        "legacy (index + JSON files) answers equal the warehouse's",
    } <= names
    assert not failed_checks(c)


def test_pruned_query_counts_exactly_the_selected_partition(report: dict[str, Any]) -> None:
    c = case(report, "partition_pruning")
    assert not failed_checks(c)
    assert c["params"]["files_selected"] >= 1 and c["params"]["files_full"] >= 100


def test_snapshot_load_and_memory_probe_see_every_commit_and_message(report: dict[str, Any]) -> None:
    assert not failed_checks(case(report, "snapshot_load"))
    mem = case(report, "memory")
    assert not failed_checks(mem)
    peak = next(m for m in mem["measurements"] if m["metric"] == "peak RSS")["median"]
    before = next(m for m in mem["measurements"] if m["metric"] == "RSS before writing (imports, open)")["median"]
    assert peak > before > 0  # the probe measured its own process, not the runner that started it


# -- the competitors are faithful -----------------------------------------------------------------
def test_legacy_layout_is_the_reference_layout(tmp_path: Path) -> None:
    d, a, k = list(demo.configs())[1]
    rng = random.Random(0)
    execs = [demo.execution(rng, d["type"], a["type"], k["type"], t) for t in range(3)]
    assert legacy.write(tmp_path, [(d, a, k, execs), (d, a, None, execs[:1])]) == 4
    h = warehouse.config_hash(d, a, k)
    cfg_dir = tmp_path / d["type"] / a["type"] / k["type"] / h
    assert (cfg_dir / "config.yaml").read_text().startswith(f"# Config hash: {h}\n# Created: ")
    files = {f.name.split("_", 2)[2]: f for f in cfg_dir.glob("*.json")}  # {timestamp}_{task_id}.json
    assert sorted(files) == [f"user_task_{t}.json" for t in (0, 1, 2)]
    assert all(len(f.name.split("_")[0]) == 8 and len(f.name.split("_")[1]) == 6 for f in files.values())
    doc = json.loads(files["user_task_0.json"].read_text())
    assert list(doc) == [
        "execution_id",
        "task_id",
        "dataset_type",
        "dataset_config",
        "agent",
        "config_hash",
        "timestamp",
        "trace_id",
        "span_id",
        "messages",
        "usage",
        "results",
        "attacks",
    ]
    assert doc["results"] == {"benign_score": execs[0]["benign_score"], "attack_score": execs[0]["attack_score"]}
    assert len(doc["messages"]) == 10 and list(doc["attacks"].values())[0]["type"] == "str_content"
    lines = (tmp_path / "index.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    assert len(lines) == 4 and list(entry) == [
        "execution_id",
        "task_id",
        "timestamp",
        "dataset",
        "dataset_config",
        "agent_type",
        "agent_name",
        "attack_type",
        "config_hash",
        "benign_score",
        "attack_score",
        "path",
    ]
    assert Path(entry["path"]).exists() and (tmp_path / "index.jsonl.lock").exists()
    assert (tmp_path / d["type"] / a["type"] / legacy.BENIGN).is_dir()
    assert legacy.count(tmp_path) == (4, 4, 4)


def test_raw_pyarrow_converts_every_message_with_its_execution_and_position(tmp_path: Path) -> None:
    d, a, k = list(demo.configs())[1]
    rng = random.Random(1)
    execs = [demo.execution(rng, d["type"], a["type"], k["type"], t) for t in range(4)]
    tables = raw_pyarrow.to_arrow(execs, warehouse.RunConfig.of(d, a, k).partition)
    ex, msgs = tables["executions"].to_pylist(), tables["messages"].to_pylist()
    assert [e["task_id"] for e in ex] == [e["task_id"] for e in execs]
    assert len(msgs) == sum(len(e["messages"]) for e in execs)
    by_id = {e["execution_id"]: i for i, e in enumerate(ex)}
    for m in msgs:
        original = execs[by_id[m["execution_id"]]]["messages"][m["seq"]]
        assert m["role"] == original["role"]
        if isinstance(original["content"], list):
            assert m["content_parts"] == original["content"] and m["content"] is None
        else:
            assert m["content"] == original["content"]
    raw_pyarrow.write(tmp_path, tables)
    assert raw_pyarrow.count_rows(tmp_path, "messages") == len(msgs)
    assert raw_pyarrow.count_rows(tmp_path, "attacks") == 4


# -- failure paths --------------------------------------------------------------------------------
def test_a_failed_check_fails_loudly_naming_it() -> None:
    res = harness.CaseResult(3, "concurrency", "Concurrency")
    res.check("warehouse: 0 rows lost", False, "executions 799 of 800")
    with pytest.raises(CheckFailed, match="executions 799 of 800"):
        harness.fail_loudly([res])


def test_bench_outside_a_source_checkout_says_to_run_from_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "find_checkout", lambda start=None: None)
    with pytest.raises(warehouse.WarehouseError, match="source checkout"):
        bench.run("small")


def test_bench_refuses_an_unknown_scale() -> None:
    with pytest.raises(warehouse.WarehouseError, match="small, medium, large"):
        bench.run("huge")
