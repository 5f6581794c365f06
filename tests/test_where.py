"""A `where=` filter is one boolean SQL expression over the rows it filters and nothing else, for
the Python API and the CLI alike: it cannot add a statement or a clause, read or write a file, read
the session, or reach the running executions that analytics leave out. The queries that embed one
run on a connection that reads the warehouse's own files only. `Warehouse.sql` stays full SQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

import warehouse
from tests.conftest import AGENT, ATTACK, DATASET
from warehouse import InvalidCondition, WarehouseError
from warehouse.core.condition import condition
from warehouse.engine import reader
from warehouse.read import analytics

BENIGN_AGENT = {"type": "react", "config": {"model": "claude"}}


@pytest.fixture
def seeded(wh: warehouse.Warehouse) -> warehouse.Warehouse:
    """Two configurations, 3 finished executions each (one hard task), and one still running."""
    for agent, attack in ((AGENT, ATTACK), (BENIGN_AGENT, ATTACK)):
        with wh.writer(dataset=DATASET, agent=agent, attack=attack) as w:
            for i in range(3):
                w.add_execution(
                    task_id=f"user_task_{i}",
                    benign_score=1.0,
                    attack_score=float(i == 0),
                    metadata={"difficulty": "hard" if i == 2 else "easy"},
                    messages=[{"role": "user", "content": "hi"}],
                )
    with wh.writer(dataset=DATASET, agent=AGENT, attack=ATTACK) as w:
        w.start_execution(task_id="user_task_9")
    wh.refresh()
    return wh


def config_hashes(wh: warehouse.Warehouse) -> list[str]:
    return sorted(f.partition["config_hash"] for f in wh.files("configs"))


def hostile(tmp_path: Path) -> list[str]:
    """Conditions from the report: a second statement that writes a file, file reads, and an
    escape from the finished-only filter."""
    target = tmp_path / "owned.txt"
    return [
        f"true) group by agent; copy (select 'owned') to '{target}'; select 1 where (true",
        f"true; copy (select 'owned') to '{target}'",
        "exists (select * from read_text('/etc/passwd'))",
        "(select count(*) from read_text('/etc/passwd')) > 0",
        "read_text('/etc/passwd') is not null",
        "true) or (status = 'running'",
        "agent in (select agent from executions)",
        "current_setting('enable_external_access')",
        "getvariable('x') is null",
        "agent = ?",
        "true order by 1",
        "true limit 1",
        "count(*) > 0",
        "row_number() over () > 0",
    ]


CALLS: dict[str, Callable[[warehouse.Warehouse, str], Any]] = {
    "Warehouse.scores": lambda wh, w: wh.scores(by="agent", where=w).fetchall(),
    "analytics.attack_success_rates": lambda wh, w: analytics.attack_success_rates(wh, by="agent", where=w),
    "analytics.pass_at_k": lambda wh, w: analytics.pass_at_k(wh, where=w),
    "analytics.task_scores": lambda wh, w: analytics.task_scores(wh, where=w),
    "analytics.usage": lambda wh, w: analytics.usage(wh, where=w),
    "analytics.scores_sql": lambda wh, w: analytics.scores_sql(where=w, k=2),
    "analytics.compare": lambda wh, w: analytics.compare(wh, *config_hashes(wh), where=w, n_boot=10),
}


@pytest.mark.parametrize("call", CALLS)
def test_where_that_is_not_one_condition_is_refused_and_changes_nothing(seeded, tmp_path, call) -> None:
    for text in hostile(tmp_path):
        with pytest.raises(InvalidCondition) as info:
            CALLS[call](seeded, text)
        assert text in str(info.value)
        assert isinstance(info.value, ValueError) and isinstance(info.value, WarehouseError)
    assert not (tmp_path / "owned.txt").exists()


def test_the_error_says_what_is_wrong(seeded) -> None:
    cases = {
        "modle = 'gpt'": "unknown column 'modle'",
        "read_text('/etc/passwd') is not null": "function 'read_text' cannot be used",
        "exists (select 1)": "subquery",
        "agent": "VARCHAR, not a boolean",
        "agent = $1": "parameter",
        "true; select 1": "more than one statement",
        "true group by agent": "not a single expression",
        "random() < 0.5": "function 'random' cannot be used",
        "   ": "empty",
    }
    for text, reason in cases.items():
        with pytest.raises(InvalidCondition, match=reason):
            seeded.scores(where=text)


@pytest.mark.slow
def test_where_can_not_reach_running_executions(seeded) -> None:
    """The condition is ANDed with the finished-only filter: asking for running rows finds none."""
    everything = seeded.scores(by="all").fetchall()
    [(n,)] = seeded.sql("select count(*) from executions where status = 'running'").fetchall()
    assert n == 1
    assert seeded.scores(by="all", where="status = 'running' or true").fetchall() == everything
    [row] = seeded.scores(by="all", where="status = 'running'").pl().to_dicts()
    assert row["n"] == 0


@pytest.mark.slow
def test_conditions_filter_like_the_same_sql_written_by_hand(seeded) -> None:
    def by_hand(cond: str) -> list[tuple]:
        return seeded.sql(
            f"select agent, count(*) from executions where status <> 'running' and ({cond}\n) "
            "group by agent order by agent"
        ).fetchall()

    for cond in [
        "metadata->>'$.difficulty' = 'hard'",
        "agent like 'pl%' or task_id in ('user_task_1')",
        "attack_score between 0.5 and 1",
        "lower(agent) = 'react' and benign_score >= 1.0 -- a comment",
        "started_at > now() - interval '1 day'",
        "json_extract_string(metadata, '$.difficulty') <> 'easy'",
        "suite = 'workspace' and agent_model = 'claude'",
    ]:
        if "suite" in cond:
            got = [
                (r["agent"], r["n"]) for r in analytics.attack_success_rates(seeded, by="agent", where=cond).to_dicts()
            ]
            assert got == [("react", 3)]
            continue
        got = [(r["agent"], r["n"]) for r in analytics.attack_success_rates(seeded, by="agent", where=cond).to_dicts()]
        assert got == by_hand(cond), cond


def test_condition_is_returned_as_parsed_without_comments() -> None:
    cols = {"agent": "VARCHAR", "score": "DOUBLE"}
    assert condition("agent = 'a' -- ) or (true", cols) == "((agent = 'a'))"
    assert condition("score >= 1 /* x */ and Agent <> 'it''s'", cols) == "(((score >= 1) AND (Agent != 'it''s')))"
    with pytest.raises(InvalidCondition, match="unknown column 'other'"):
        condition("other = 1", cols, over="things")


def test_cli_scores_and_compare_refuse_a_where_that_writes_a_file(seeded, root, tmp_path) -> None:
    target = tmp_path / "owned.txt"
    attack = f"true) group by agent; copy (select 'owned') to '{target}'; select 1 where (true"
    a, b = config_hashes(seeded)
    for args in (
        ["scores", "--by", "agent", "--where", attack],
        ["compare", a, b, "--where", attack],
        ["scores", "--where", "read_text('/etc/passwd') is not null"],
    ):
        res = subprocess.run(
            [sys.executable, "-m", "warehouse", *args, "--url", str(root)], capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 1, res.stdout
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: where") and "is not a condition" in lines[0]
    assert not target.exists()
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "warehouse",
            "scores",
            "--by",
            "agent",
            "--where",
            "metadata->>'$.difficulty' = 'hard'",
            "--format",
            "csv",
            "--url",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert [line.split(",")[:2] for line in ok.stdout.splitlines()[1:]] == [["react", "1"], ["tool_agent", "1"]]


def test_files_only_connection_reads_the_warehouse_and_nothing_else(seeded, tmp_path) -> None:
    """The second wall: even SQL that got past the check could only read the warehouse's files."""
    con = reader.connect(seeded.store, seeded.snapshot, files_only=True)
    assert con.sql("select count(*) from executions").fetchall() == [(7,)]
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    for sql in (
        f"select * from read_text('{outside}')",
        f"copy (select 1) to '{tmp_path / 'x.csv'}'",
        f"attach '{tmp_path / 'x.duckdb'}'",
        "set enable_external_access = true",
        f"set allowed_directories = ['{tmp_path}']",
        "install httpfs",
        f"select * from read_parquet('{seeded.store.root}/../outside.txt')",
    ):
        with pytest.raises(duckdb.Error):
            con.sql(sql).fetchall()
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.duckdb").exists()


def test_sql_stays_full_sql(seeded, tmp_path) -> None:
    """`Warehouse.sql` is documented as full SQL: it may read and write other files."""
    side = tmp_path / "side.txt"
    side.write_text("hello")
    assert seeded.sql("select content from read_text(?)", [str(side)]).fetchall() == [("hello",)]
    out = tmp_path / "scores.csv"
    seeded.sql(f"copy (select * from scores) to '{out}'")
    assert out.exists() and os.path.getsize(out) > 0


def test_trajectory_metadata_keys_are_names_not_json_path_patterns(wh) -> None:
    with wh.writer(dataset={"type": "rl", "config": {}}, agent={"type": "policy", "config": {}}) as w:
        w.add_trajectory(rewards=1.0, metadata={"difficulty": "hard", "env-id": "maze", "env": {"seed": "7"}})
        w.add_trajectory(rewards=0.0, metadata={"difficulty": "easy", "*": "star", "deep": {"difficulty": "hard"}})
    wh.refresh()
    assert wh.trajectories(where={"env-id": "maze"}).collect()["rewards"].to_list() == [1.0]
    assert wh.trajectories(where={"env.seed": "7"}).collect()["rewards"].to_list() == [1.0]
    got = wh.trajectories(metadata_keys=["env.seed", "difficulty"]).collect().sort("rewards")
    assert got["env.seed"].to_list() == [None, "7"] and got["difficulty"].to_list() == ["easy", "hard"]
    for key in ("*", "..difficulty", "a[0]", "x']['y", "", 3):
        with pytest.raises(InvalidCondition, match="is not a key"):
            wh.trajectories(where={key: "hard"}).collect()
        with pytest.raises(InvalidCondition, match="is not a key"):
            wh.trajectories(metadata_keys=[key]).collect()
    assert wh.trajectories(where="reward > 0.5 and metadata->>'$.difficulty' = 'hard'").collect().height == 1
    with pytest.raises(InvalidCondition, match="subquery"):
        wh.trajectories(where="execution_id in (select execution_id from executions)")


def test_scan_and_files_refuse_a_partition_filter_on_another_column(seeded) -> None:
    assert seeded.scan("executions", where={"agent": "react"}).collect().height == 3
    with pytest.raises(WarehouseError, match="cannot filter partitions by 'agnet'"):
        seeded.scan("executions", where={"agnet": "react"})
    with pytest.raises(WarehouseError, match="cannot filter partitions by 'agnet'"):
        seeded.files("executions", {"agnet": "react"})
