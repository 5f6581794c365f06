"""The CLI, run as a real process (`python -m warehouse ...`) against real warehouses."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import warehouse
from warehouse.cli import demo

COMMANDS = ["init", "demo", "ls", "show", "sql", "scores", "compare", "history"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "warehouse", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo_wh(tmp_path_factory) -> Path:
    """A small demo campaign, written by the CLI from two processes."""
    url = tmp_path_factory.mktemp("cli") / "demo"
    res = run("demo", "--url", str(url), "--tasks", "6", "--samples", "2", "--processes", "2")
    assert res.returncode == 0, res.stderr
    (url.parent / "demo.out").write_text(res.stdout)
    return url


def test_demo_runs_campaign_from_two_processes_and_prints_scores(demo_wh: Path) -> None:
    out = (demo_wh.parent / "demo.out").read_text()
    assert "Scores at version 18" in out
    for agent in demo.AGENTS:
        assert agent in out
    assert "important_instructions" in out and "ASR %" in out and str(demo_wh) in out
    wh = warehouse.open(str(demo_wh))
    assert wh.sql("select count(*) from executions").fetchall() == [(18 * 6 * 2,)]
    assert wh.sql("select count(*) from messages").fetchall() == [(18 * 6 * 2 * 10,)]
    # every task runs twice per configuration (samples 0 and 1), for pass@k
    assert wh.sql("select sample, count(*) from executions group by sample order by sample").fetchall() == [
        (0, 18 * 6),
        (1, 18 * 6),
    ]
    assert wh.sql(
        "select count(*) from (select config_hash, task_id from executions group by all having count(*) <> 2)"
    ).fetchall() == [(0,)]
    assert wh.sql("select count(distinct config_hash) from configs").fetchall() == [(18,)]
    pids = {c.writer["pid"] for c in wh.history() if c.operation == "append"}
    assert len(pids) >= 2, "the demo must write from at least two processes"


def test_demo_fresh_replaces_only_a_warehouse(tmp_path: Path) -> None:
    not_wh = tmp_path / "notes"
    not_wh.mkdir()
    (not_wh / "precious.txt").write_text("keep me")
    res = run("demo", "--url", str(not_wh), "--tasks", "1", "--fresh")
    assert res.returncode == 1 and "not a warehouse" in res.stderr
    assert (not_wh / "precious.txt").read_text() == "keep me"


def test_init_creates_a_warehouse_once(tmp_path: Path) -> None:
    url = str(tmp_path / "w")
    assert run("init", "--url", url).returncode == 0
    assert run("init", "--url", url).returncode == 0
    assert warehouse.open(url).version == 0


def test_url_comes_from_environment(demo_wh: Path) -> None:
    res = run("sql", "select count(*) as n from executions", "--format", "json", env={"WAREHOUSE_URL": str(demo_wh)})
    assert json.loads(res.stdout) == [{"n": 216}]


def test_ls_reports_manifest_counts(demo_wh: Path) -> None:
    res = run("ls", "--url", str(demo_wh), "--format", "json")
    rows = {r["table"]: r for r in json.loads(res.stdout)}
    assert rows["executions"]["rows"] == 216 and rows["executions"]["partitions"] == 18
    assert rows["messages"]["rows"] == 2160
    wh = warehouse.open(str(demo_wh))
    assert rows["messages"]["bytes"] == sum(f.bytes for f in wh.files("messages"))
    parts = json.loads(run("ls", "--url", str(demo_wh), "--partitions", "--format", "json").stdout)
    assert {(p["dataset"], p["agent"], p["attack"]) for p in parts if p["table"] == "executions"} == {
        (d["type"], a["type"], k["type"] if k else "none") for d, a, k in demo.configs()
    }


def test_show_prints_the_conversation_with_scores(demo_wh: Path) -> None:
    wh = warehouse.open(str(demo_wh))
    [(eid,)] = wh.sql(
        "select execution_id from executions where attack <> 'none' order by execution_id limit 1"
    ).fetchall()
    ex = wh.execution(eid)
    res = run("show", eid[-10:], "--url", str(demo_wh))  # a unique suffix (ids are time-ordered)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert eid in out and ex["task_id"] in out and "attack_score" in out and "benign_score" in out
    tool_call = next(m for m in ex["messages"] if m.get("tool_calls"))
    assert tool_call["tool_calls"][0]["function"]["name"] in out
    assert "北京" in out  # unicode survives the round trip
    assert "attack injection_" in out  # the attack vector is shown
    assert [m["role"] for m in ex["messages"]][:3] == ["system", "user", "assistant"]


def test_sql_formats_json_and_csv(demo_wh: Path) -> None:
    q = "select agent, count(*) as n from executions group by agent order by agent"
    as_json = json.loads(run("sql", q, "--url", str(demo_wh), "-f", "json").stdout)
    as_csv = list(csv.DictReader(io.StringIO(run("sql", q, "--url", str(demo_wh), "-f", "csv").stdout)))
    assert as_json == [{"agent": a, "n": 72} for a in sorted(demo.AGENTS)]
    assert [(r["agent"], int(r["n"])) for r in as_csv] == [(r["agent"], r["n"]) for r in as_json]
    table = run("sql", q, "--url", str(demo_wh)).stdout
    assert "tool_filter" in table and "72" in table


def test_scores_match_the_python_api(demo_wh: Path) -> None:
    res = run("scores", "--url", str(demo_wh), "--by", "agent,attack", "--where", "dataset = 'agentdojo'", "-f", "json")
    got = json.loads(res.stdout)
    wh = warehouse.open(str(demo_wh))
    rel = wh.scores(by=["agent", "attack"], where="dataset = 'agentdojo'")
    want = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    assert len(got) == len(want) == 9
    for g, w in zip(got, want):
        assert (g["agent"], g["attack"], g["n"]) == (w["agent"], w["attack"], w["n"])
        assert g["asr"] == pytest.approx(w["asr"]) if w["asr"] is not None else g["asr"] is None
    overall = json.loads(run("scores", "--url", str(demo_wh), "--by", "all", "-f", "json").stdout)
    assert len(overall) == 1 and overall[0]["n"] == 216


def test_history_lists_every_commit_newest_first(demo_wh: Path) -> None:
    rows = json.loads(run("history", "--url", str(demo_wh), "-f", "json").stdout)
    assert [r["version"] for r in rows] == list(range(18, -1, -1))
    assert rows[-1]["operation"] == "create" and all(r["operation"] == "append" for r in rows[:-1])
    assert sum(r["rows+"] for r in rows) == 216 + 2160 + 144 + 18  # executions, messages, attacks, configs


@pytest.mark.parametrize(
    "args, message",
    [
        (["ls", "--url", "{missing}"], "no warehouse at"),
        (["sql", "select nope from executions", "--url", "{wh}"], "nope"),
        (["scores", "--by", "agent,color", "--url", "{wh}"], "'color'"),
        (["show", "does-not-exist", "--url", "{wh}"], "does-not-exist"),
    ],
)
def test_user_errors_exit_1_with_one_line_and_no_traceback(demo_wh: Path, tmp_path: Path, args, message) -> None:
    args = [a.format(wh=demo_wh, missing=tmp_path / "missing") for a in args]
    res = run(*args)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    res = run(command, "--help")
    assert res.returncode == 0 and "--url" in res.stdout
