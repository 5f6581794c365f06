"""One `--where` syntax everywhere: compaction and every export take the SQL condition that
`scores` and `compare` take (on the partition columns for compaction and the Parquet and Delta
exports, which work on whole files; on any executions column for the trajectory and legacy
exports). A filter that names an unknown column or selects no partition is an error that writes
nothing; `column=value` pairs and the Python API's dicts stay as documented aliases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import warehouse
from warehouse import ExportFailed, InvalidCondition, WarehouseError

AGENTDOJO = {"type": "agentdojo", "config": {"suite": "workspace"}}
OTHER = {"type": "injecagent", "config": {"suite_name": "dh"}}
PLAIN = {"type": "plain", "config": {"model": "gpt-5"}}
REACT = {"type": "react", "config": {"model": "claude"}}
ATTACK = {"type": "important_instructions", "config": {}}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def grid(wh: warehouse.Warehouse) -> warehouse.Warehouse:
    """2 datasets x 2 agents x (no attack, attack), two flushes each (so each partition can be
    compacted); 2 executions per partition."""
    for dataset in (AGENTDOJO, OTHER):
        for agent in (PLAIN, REACT):
            for attack in (None, ATTACK):
                with wh.writer(dataset=dataset, agent=agent, attack=attack, flush_interval=None) as w:
                    for i in range(2):
                        w.add_execution(
                            task_id=f"task_{i}",
                            benign_score=1.0,
                            reward=float(i),
                            attack_score=None if attack is None else 0.0,
                            metadata={"difficulty": "hard" if i else "easy"},
                            messages=[{"role": "user", "content": "hi"}],
                        )
                        w.flush()
    wh.refresh()
    return wh


def exported_partitions(out: Path) -> set[tuple[str, str, str]]:
    frame = pl.scan_parquet(out / "executions" / "**" / "*.parquet").select("dataset", "agent", "attack").collect()
    return set(frame.unique().iter_rows())


def test_export_parquet_takes_the_sql_condition_scores_takes(grid, root, tmp_path) -> None:
    out = tmp_path / "pq"
    res = cli("export", "parquet", str(out), "--url", str(root), "--where", "dataset = 'agentdojo'")
    assert res.returncode == 0, res.stderr
    assert "8 executions" in res.stdout
    assert exported_partitions(out) == {
        ("agentdojo", a, k) for a in ("plain", "react") for k in ("none", "important_instructions")
    }
    scores = json.loads(
        cli("scores", "--url", str(root), "--by", "all", "--where", "dataset = 'agentdojo'", "-f", "json").stdout
    )
    assert scores[0]["n"] == 8


def test_compact_and_delta_export_take_sql_and_select_the_same_partitions(grid, root, tmp_path) -> None:
    cond = "agent = 'plain' and attack <> 'none'"
    res = cli("compact", "--url", str(root), "--table", "executions", "--where", cond, "-f", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert {(r["dataset"], r["agent"], r["attack"]) for r in rows} == {
        ("agentdojo", "plain", "important_instructions"),
        ("injecagent", "plain", "important_instructions"),
    }
    assert all(r["status"] == "compacted" and r["files in"] == 2 for r in rows)
    res = cli("export", "delta", str(tmp_path / "delta"), "--url", str(root), "--where", cond)
    assert res.returncode == 0, res.stderr
    frame = pl.read_delta(str(tmp_path / "delta" / "executions"))
    assert set(frame.select("agent", "attack").unique().iter_rows()) == {("plain", "important_instructions")}
    assert frame.height == 4


@pytest.mark.parametrize(
    "where, message",
    [
        ("dataset = 'agentdojoo'", "matches no partition"),
        ("agent=palin", "matches no partition"),
        ("model = 'gpt-5'", "unknown column 'model'"),
        ("model=gpt-5", "cannot filter partitions by 'model'"),
        ("read_text('/etc/passwd') is not null", "function 'read_text' cannot be used"),
        ("agent = 'plain'; select 1", "more than one statement"),
        ("agent=my agent", "write SQL with quoted values"),
    ],
)
def test_a_filter_that_selects_nothing_or_names_an_unknown_column_is_an_error(
    grid, root, tmp_path, where, message
) -> None:
    from typer.testing import CliRunner

    from warehouse.cli import app

    before = grid.version
    runner = CliRunner()  # in-process: the same command functions, without a start-up each
    for args in (
        ["compact", "--url", str(root), "--where", where],
        ["export", "parquet", str(tmp_path / "pq"), "--url", str(root), "--where", where],
        ["export", "delta", str(tmp_path / "delta"), "--url", str(root), "--where", where],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, lines)
    assert warehouse.open(str(root)).version == before
    assert not (tmp_path / "pq").exists() and not (tmp_path / "delta").exists()


def test_no_match_names_the_values_that_exist(grid) -> None:
    with pytest.raises(
        WarehouseError,
        match=r"matches no partition; the partitions have dataset in "
        r"\('agentdojo', 'injecagent'\); agent in \('plain', 'react'\)",
    ):
        grid.compact(partition="dataset = 'agentdojoo'")
    with pytest.raises(ExportFailed, match="matches no partition"):
        grid.export("parquet", "unused", where={"agent": "palin"})


def test_column_value_pairs_and_dicts_are_aliases_of_the_sql(grid, tmp_path) -> None:
    forms: list[Any] = [
        "agent=plain,attack=none",
        " agent = plain , attack = none ",
        {"agent": "plain", "attack": "none"},
        "agent = 'plain' and attack = 'none'",
    ]
    results = []
    for i, where in enumerate(forms):
        out = tmp_path / f"pq{i}"
        grid.export("parquet", str(out), where=where)
        results.append(exported_partitions(out))
        plan = grid.compact(partition=where, dry_run=True)
        results.append(
            {
                (p.partition["dataset"], p.partition["agent"], p.partition["attack"])
                for p in plan.partitions
                if p.table == "executions"
            }
        )
    assert all(r == {("agentdojo", "plain", "none"), ("injecagent", "plain", "none")} for r in results), results


def test_trajectory_and_legacy_exports_take_a_condition_over_executions(grid, root, tmp_path) -> None:
    out = tmp_path / "hard.jsonl"
    res = cli(
        "export",
        "trajectories",
        str(out),
        "--url",
        str(root),
        "--where",
        "metadata->>'$.difficulty' = 'hard' and dataset = 'agentdojo'",
    )
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4 and {line["metadata"]["difficulty"] for line in lines} == {"hard"}
    alias = grid.export("trajectories", str(tmp_path / "alias.jsonl"), where="difficulty=hard,dataset=agentdojo")
    assert alias.rows["trajectories"] == 4
    legacy = grid.export("legacy", str(tmp_path / "legacy"), where="agent = 'react' and task_id = 'task_0'")
    assert legacy.rows["executions"] == 4
    index = [json.loads(line) for line in (tmp_path / "legacy" / "index.jsonl").read_text().splitlines()]
    assert {(r["agent_type"], r["task_id"]) for r in index} == {("react", "task_0")}
    with pytest.raises(InvalidCondition, match="unknown column 'difficulty'"):
        grid.export("trajectories", str(tmp_path / "x.jsonl"), where="difficulty = 'hard'")
    with pytest.raises(InvalidCondition, match="subquery"):
        grid.export("legacy", str(tmp_path / "y"), where="task_id in (select task_id from executions)")
