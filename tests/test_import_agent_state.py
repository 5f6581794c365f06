"""Importers of the agent-state formats (warehouse/importers/session_dirs.py, checkpoint_files.py,
trajectory_files.py, simulation_runs.py) and the trajectories exporter, end to end through
`wh.import_`/`wh.export` and the CLI, on files written here as the legacy tools write them:
imported data reads back through the warehouse's own APIs (wh.sessions.load, wh.checkpoints,
wh.trajectories, wh.runs/wh.snapshots), re-imports add nothing, grown files add what is new, and a
corrupt file is reported with its path while the rest is imported."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

import warehouse
from warehouse.cli import app
from warehouse.interop.importers.simulation_runs import last_is_final

LONG = "Le résumé complet du rapport trimestriel — 数据分析 📊. " * 300  # ~16 KB of non-ASCII text


# -- fixture files, written as the legacy tools write them -------------------------------------------
def runner_messages(task: str, turns: int, start: int = 0) -> list[dict[str, Any]]:
    """agent-runner messages.jsonl records: ids, explicit nulls, tool calls, per-message `meta`."""
    out: list[dict[str, Any]] = []
    for i in range(start, start + turns):
        tc = f"tc{i}"
        out += [
            {
                "id": f"u{i}",
                "role": "user",
                "content": task if i == 0 else f"Étape {i}: continue ✅",
                "tool_calls": None,
                "tool_call_id": None,
                "meta": {"ts": f"2025-01-15T10:{i:02d}:00"},
            },
            {
                "id": f"a{i}",
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": tc,
                        "name": "write_file",
                        "arguments": {"path": f"f{i}.py", "content": "def f():\n    return 'ü'"},
                    }
                ],
                "tool_call_id": None,
                "meta": {"ts": f"2025-01-15T10:{i:02d}:05", "tokens": 42 + i},
            },
            {
                "id": f"t{i}",
                "role": "tool",
                "content": "Error: disk full" if i == 1 else "File created",
                "tool_calls": None,
                "tool_call_id": tc,
                "meta": {"ts": f"2025-01-15T10:{i:02d}:10", "tool_name": "write_file"},
            },
        ]
    return out


def write_session(d: Path, messages: list[dict[str, Any]], config: dict | None, meta: dict | None) -> None:
    """As agent-runner's SessionManager.save: JSONL, gzip-compressed past 1 KB (into
    messages.jsonl.gz, leaving any older messages.jsonl beside it), config.json, meta.json."""
    d.mkdir(parents=True, exist_ok=True)
    body = "\n".join(json.dumps(m) for m in messages).encode("utf-8")
    if len(body) > 1024:
        (d / "messages.jsonl.gz").write_bytes(gzip.compress(body))
    else:
        (d / "messages.jsonl").write_bytes(body)
    if config is not None:
        (d / "config.json").write_text(json.dumps(config, indent=2))
    if meta is not None:
        (d / "meta.json").write_text(json.dumps(meta, indent=2))


CONFIG = {"model": "gpt-4o", "temperature": 0.7, "max_tokens": 2000, "timeout": 120}


def meta(updated: str, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "created_at": "2025-01-15T10:00:00+00:00",
        "updated_at": updated,
        "total_tokens": 1542,
        "total_cost": 0.0234,
        "model": "gpt-4o",
        **extra,
    }


def checkpoint(turn: int, *, stop: Any = None, ts: float = 1705318800.0) -> dict[str, Any]:
    msgs = [{"role": "user", "content": "Solve: 2 + 2, puis explique — 🧮"}]
    for t in range(turn):
        msgs += [
            {
                "role": "assistant",
                "content": f"Let me calculate (turn {t})",
                "tool_calls": [{"id": f"tc{t}", "name": "calculator", "args": {"expr": "2+2"}}],
            },
            {"role": "tool", "content": "4", "tool_call_id": f"tc{t}"},
        ]
    return {
        "_metadata": {
            "checkpoint_id": f"turn_{turn}",
            "timestamp": ts + turn,
            "iso_time": datetime.fromtimestamp(ts + turn, UTC).isoformat(),
        },
        "actor": {
            "endpoint": {
                "base_url": "https://api.openai.com/v1",
                "model": "gpt-4o",
                "api_key": "sk-SECRET-123",
                "max_tokens": 2000,
                "temperature": 0.7,
            },
            "messages": msgs,
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "calculator", "description": "Evaluates", "parameters": {"type": "object"}},
                }
            ],
        },
        "environment": {"class_name": "CalculatorEnvironment", "data": {"state": {"history": ["2+2"] * turn}}},
        "turn_idx": turn,
        "max_turns": 10,
        "stop": stop,
        "pending_tool_calls": [{"id": f"tc{turn}", "name": "calculator", "args": {"expr": "2+2"}}],
        "next_tool_idx": 0,
    }


def write_json(p: Path, doc: Any) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    return p


def trajectories_fixture() -> list[dict[str, Any]]:
    return [
        {
            "completions": [
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": "gpt-4o",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "15"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 31, "completion_tokens": 2},
                }
            ],
            "messages": [
                {"role": "system", "content": "You are a careful solver."},
                {"role": "user", "content": "If John has 5 apples… and triples them?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": '{"e":"5*3"}'}}
                    ],
                },
                {"role": "tool", "content": "15", "tool_call_id": "c1"},
                {"role": "assistant", "content": "15"},
            ],
            "rewards": 1.0,
            "group": 0,
            "replica": 0,
            "advantages": 0.5,
            "metadata": {
                "task_id": "gsm8k_001",
                "problem": "If John has 5 apples…",
                "ground_truth": "15",
                "difficulty": "hard",
            },
        },
        {
            "completions": [],
            "messages": [{"role": "user", "content": LONG}, {"role": "assistant", "content": "Résumé: ok"}],
            "rewards": 0.0,
            "group": 0,
            "replica": 1,
            "advantages": -0.5,
            "metadata": {"task_id": "gsm8k_001", "difficulty": "hard", "bbox": [100, 200, 150, 250]},
        },
        {
            "completions": [{"id": "chatcmpl-3"}],
            "messages": [{"role": "user", "content": "10 / 0 ?"}, {"role": "assistant", "content": "undefined"}],
            "rewards": 0.25,
            "group": 7,
            "replica": 0,
            "advantages": [0.1, -0.2, 0.3],
            "metadata": {"task_id": "calc_002", "difficulty": "easy", "iou": 0.85},
            "episode": {"seed": 3},
        },  # extra key
    ]


def write_jsonl(p: Path, rows: list[dict[str, Any]]) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return p


def snap(step: int) -> dict[str, Any]:
    return {
        "step": step,
        "game_state": {"resources": 150 - step, "difficulty": "normal", "round": step},
        "global_vars": {"interest_rate": 0.05, "market_volatility": 0.1, "simulation_active": True},
        "agent_vars": {
            "Agent Alpha": {"economic_strength": 2500.0 + step, "risk_tolerance": 0.8, "action_count": step},
            "Agent Béta": {"economic_strength": 1000.0, "risk_tolerance": 0.5, "action_count": step},
        },
        "messages": [
            {"from": "Orchestrator", "to": "Agent Alpha", "content": "Please proceed with the next action"},
            {"from": "Agent Alpha", "to": "Orchestrator", "content": f"Acknowledged — step {step} 🚀"},
        ],
    }


def state(run_id: str, steps: list[int], **extra: Any) -> dict[str, Any]:
    scenario = run_id.split("_")[1]
    return {
        "run_id": run_id,
        "scenario": scenario,
        "started_at": "2025-11-22T14:30:52",
        "snapshots": [snap(s) for s in steps],
        **extra,
    }


@pytest.fixture()
def wh(tmp_path: Path) -> warehouse.Warehouse:
    return warehouse.open(str(tmp_path / "wh"), create=True)


# -- sessions ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sessions_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("sessions")
    small = runner_messages("Write a function", 1)[:3]
    big = runner_messages("Résume ce long rapport, s'il te plaît 📄", 4)
    big[0]["content"] = LONG
    write_session(root / "abc123", small, CONFIG, meta("2025-01-15T10:05:00+00:00"))
    write_session(
        root / "big-7f3e", big, {**CONFIG, "model": "claude"}, meta("2025-01-16T09:00:00+00:00", title="Rapport")
    )
    (root / "big-7f3e" / "messages.jsonl").write_text(json.dumps(big[0]))  # stale pre-compression file
    write_session(root / "nested" / "no-meta", small[:1], None, None)
    return root, {"abc123": small, "big-7f3e": big, "no-meta": small[:1]}


def test_session_directories_load_back_exactly_as_written(wh, sessions_dir):
    root, expected = sessions_dir
    report = wh.import_("sessions", root)
    assert (report.sources, report.imported, report.failed) == (3, 3, [])
    for sid, msgs in expected.items():
        loaded, config, meta_ = wh.sessions.load(sid)
        assert loaded == msgs  # ids, explicit nulls, meta, tool calls, unicode, 16 KB text
    assert wh.sessions.load("abc123")[1:] == (CONFIG, meta("2025-01-15T10:05:00+00:00"))
    assert wh.sessions.load("big-7f3e")[1]["model"] == "claude"
    assert wh.sessions.load("no-meta")[1:] == (None, None)
    listed = {r["id"]: r for r in wh.sessions.list().to_dicts()}
    assert listed["big-7f3e"]["title"] == "Rapport" and listed["abc123"]["title"] == "Write a function"
    assert listed["big-7f3e"]["message_count"] == 12
    assert listed["abc123"]["created_at"] == datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    assert listed["big-7f3e"]["updated_at"] == datetime(2025, 1, 16, 9, 0, tzinfo=UTC)
    rows = wh.sql("select seq, role, tool_call_id from messages where execution_id = 'abc123' order by seq").fetchall()
    assert rows == [(0, "user", None), (1, "assistant", None), (2, "tool", "tc0")]
    again = wh.import_("sessions", root)
    assert (again.imported, again.skipped, again.versions) == (0, 3, [])


def test_a_grown_session_is_imported_again_as_a_new_revision(wh, tmp_path):
    d = tmp_path / "sessions" / "s1"
    first = runner_messages("Write a function", 1)
    write_session(d, first, CONFIG, meta("2025-01-15T10:05:00+00:00"))
    wh.import_("sessions", tmp_path / "sessions")
    grown = first + runner_messages("x", 2, start=1)  # past 1 KB: now messages.jsonl.gz, the old file stays
    write_session(d, grown, CONFIG, meta("2025-01-15T11:00:00+00:00", total_tokens=3000))
    report = wh.import_("sessions", tmp_path / "sessions")
    assert report.changed == ["s1"] and report.records["messages"] == len(grown) - len(first)
    loaded, _, meta_ = wh.sessions.load("s1")
    assert loaded == grown and meta_["total_tokens"] == 3000
    assert wh.sql("select revision, message_count from sessions where session_id = 's1'").fetchall() == [
        (1, len(grown))
    ]
    assert wh.sql("select count(*), count(distinct seq) from messages where execution_id = 's1'").fetchall() == [
        (len(grown), len(grown))
    ]
    # appending through the API continues after the imported messages
    assert wh.sessions.append("s1", [{"role": "user", "content": "merci"}]) == len(grown) + 1


def test_a_rewritten_or_corrupt_session_is_reported_and_the_rest_imported(wh, tmp_path):
    root = tmp_path / "sessions"
    msgs = runner_messages("Write a function", 1)
    write_session(root / "good", msgs, CONFIG, None)
    write_session(root / "rewritten", msgs, CONFIG, None)
    assert wh.import_("sessions", root).imported == 2  # the same content under two ids: two sessions
    assert wh.sessions.load("good")[0] == wh.sessions.load("rewritten")[0] == msgs
    changed = copy.deepcopy(msgs)
    changed[0]["content"] = "Something else entirely"
    write_session(root / "rewritten", changed, CONFIG, None)
    (root / "badline").mkdir()
    (root / "badline" / "messages.jsonl").write_text(json.dumps(msgs[0]) + '\n{"role": "assistant", "content": "cut')
    (root / "badgz").mkdir()
    (root / "badgz" / "messages.jsonl.gz").write_bytes(gzip.compress(b'{"role": "user"}' * 200)[:60])
    write_session(root / "later", msgs[:2], None, None)  # a new directory: imported incrementally
    write_session(root / "one" / "twin", msgs[:1], None, None)
    write_session(root / "two" / "twin", msgs[:2], None, None)  # another directory of the same id
    report = wh.import_("sessions", root)
    reasons = {Path(f.source).name: f.reason for f in report.failed}
    assert set(reasons) == {"rewritten", "badline", "badgz", "twin"}
    assert f"is also the directory {root / 'one' / 'twin'}" in reasons["twin"]
    assert wh.sessions.load("twin")[0] == msgs[:1]
    assert "message 0" in reasons["rewritten"] and "wh.sessions.delete('rewritten')" in reasons["rewritten"]
    assert "messages.jsonl line 2: invalid JSON" in reasons["badline"]
    assert "not a complete gzip file" in reasons["badgz"]
    assert report.imported == 2 and wh.sessions.load("later")[0] == msgs[:2]
    assert wh.sessions.load("rewritten")[0] == msgs  # untouched
    with pytest.raises(warehouse.errors.SessionNotFound):
        wh.sessions.load("badline")


# -- checkpoints ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_checkpoint_files_become_the_checkpoints_of_one_execution_per_rollout(wh, tmp_path):
    root = tmp_path / "ckpts"
    files = {t: write_json(root / "rollout-a" / f"turn_{t}.json", checkpoint(t)) for t in range(3)}
    write_json(root / "rollout-b" / "turn_0.json", checkpoint(0, ts=1705400000.0))
    write_json(root / "rollout-b" / "turn_1.json", checkpoint(1, stop="MAX_TURNS", ts=1705400000.0))
    report = wh.import_("checkpoints", root)
    assert (report.imported, report.failed) == (5, [])
    ex = {
        r["task_id"]: r
        for r in wh.sql("select task_id, execution_id, status, revision, model from executions").pl().to_dicts()
    }
    assert {t: (r["status"], r["revision"], r["model"]) for t, r in ex.items()} == {
        "rollout-a": ("running", 3, "gpt-4o"),
        "rollout-b": ("completed", 2, "gpt-4o"),
    }
    a = ex["rollout-a"]["execution_id"]
    cps = wh.checkpoints(a)
    assert [(c.checkpoint_id, c.step) for c in cps] == [("turn_0", 0), ("turn_1", 1), ("turn_2", 2)]
    for c in cps:
        want = json.loads(files[c.step].read_text())
        want_meta = want.pop("_metadata")
        want["actor"]["endpoint"]["api_key"] = "[redacted]"
        assert c.state == want
        assert c.metadata == {**want_meta, "redacted": ["actor.endpoint.api_key"]}
        assert c.created_at == datetime.fromtimestamp(want_meta["timestamp"], UTC)
    assert wh.sql("select count(*) from snapshots where state like '%sk-SECRET%'").fetchall() == [(0,)]
    assert wh.latest_checkpoint(a).checkpoint_id == "turn_2"
    assert wh.load_checkpoint("turn_1", execution_id=a).state["turn_idx"] == 1
    # the interrupted rollout is offered for resuming from its latest checkpoint
    cfg = {
        "dataset": {"type": "rollouts", "config": {"environment": "CalculatorEnvironment"}},
        "agent": {"type": "rollouts", "config": {}},
    }
    plan = wh.resume_plan(cfg, ["rollout-a", "rollout-b"])
    assert (plan[0].resume_execution_id, plan[0].checkpoint.checkpoint_id) == (a, "turn_2") and plan[1].done

    # a later turn is imported incrementally; broken files are reported with their paths
    write_json(root / "rollout-a" / "turn_3.json", checkpoint(3))
    (root / "rollout-a" / "turn_4.json").write_text(json.dumps(checkpoint(4))[:500])
    write_json(root / "rollout-a" / "notes.json", {"comment": "not a checkpoint"})
    report = wh.import_("checkpoints", root)
    assert (report.imported, report.skipped) == (1, 5)
    reasons = {Path(f.source).name: f.reason for f in report.failed}
    assert "turn_4.json: invalid JSON" in reasons["turn_4.json"]
    assert "missing key(s) ['actor', 'turn_idx']" in reasons["notes.json"]
    assert wh.latest_checkpoint(a).checkpoint_id == "turn_3"
    assert wh.sql(f"select revision from executions where execution_id = '{a}'").fetchall() == [(4,)]


# -- trajectories and their export ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trajectory_wh(tmp_path_factory: pytest.TempPathFactory) -> tuple[warehouse.Warehouse, Path]:
    root = tmp_path_factory.mktemp("traj")
    write_jsonl(root / "data" / "train.jsonl", trajectories_fixture())
    write_jsonl(root / "data" / "val.jsonl", trajectories_fixture()[:1])
    wh = warehouse.open(str(root / "wh"), create=True)
    report = wh.import_("trajectories", root / "data")
    assert (report.imported, report.failed) == (2, [])
    return wh, root


def test_trajectory_jsonl_reads_back_through_wh_trajectories(trajectory_wh):
    wh, _ = trajectory_wh
    src = trajectories_fixture()
    got = wh.trajectories(with_messages=True).collect().sort("execution_id")
    assert len(got) == 4
    train = [r for r in got.to_dicts() if r["dataset"] == "trajectories"]
    by_key = {(json.loads(r["metadata"])["task_id"], r["group"], r["replica"]): r for r in train}
    one = by_key[("gsm8k_001", "0", 0)]
    assert (one["task_id"], one["rewards"], one["advantages"]) == ("gsm8k_001", 1.0, [0.5])
    assert json.loads(one["completions"]) == src[0]["completions"] and json.loads(one["metadata"]) == src[0]["metadata"]
    assert len([r for r in train if json.loads(r["metadata"])["difficulty"] == "hard"]) == 3  # two train + one val
    three = [r for r in train if r["group"] == "7"][0]
    assert three["advantages"] == [0.1, -0.2, 0.3]
    assert json.loads(three["metadata"]) == {**src[2]["metadata"], "_extra": {"episode": {"seed": 3}}}
    msgs = sorted(three["messages"], key=lambda m: m["seq"])
    assert [(m["role"], m["content"]) for m in msgs] == [("user", "10 / 0 ?"), ("assistant", "undefined")]
    hard = wh.trajectories(where={"difficulty": "hard"}).collect()
    assert sorted(hard["replica"].to_list()) == [0, 0, 1]
    configs = wh.sql("select dataset_config from configs where dataset_type = 'trajectories' order by 1").fetchall()
    assert configs == [('{"split":"train"}',), ('{"split":"val"}',)]


@pytest.mark.slow
def test_export_writes_the_reference_format_and_a_round_trip_gives_the_same_records(trajectory_wh, tmp_path):
    wh, _ = trajectory_wh
    report = wh.export("trajectories", str(tmp_path / "all.jsonl"), where={"dataset": "trajectories"})
    assert report.rows == {"trajectories": 4, "messages": 5 + 2 + 2 + 5}
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()]
    src = trajectories_fixture()
    assert sorted(lines, key=json.dumps) == sorted(src + src[:1], key=json.dumps)  # the very same records
    hard = tmp_path / "hard.jsonl"
    wh.export("trajectories", str(hard), where={"difficulty": "hard"})
    assert sorted(json.loads(x)["replica"] for x in hard.read_text().splitlines()) == [0, 0, 1]

    # importing the export into another warehouse gives the same rows, messages included
    other = warehouse.open(str(tmp_path / "wh2"), create=True)
    assert other.import_("trajectories", tmp_path / "all.jsonl").imported == 1
    cols = "task_id, group_id, sample, reward, advantages, metadata, completions, status"
    q = (
        f"select {cols}, (select list(struct_pack(seq := m.seq, role := m.role, content := m.content, "
        "tool_calls := m.tool_calls, tool_call_id := m.tool_call_id) order by m.seq) from messages m "
        f"where m.execution_id = e.execution_id) as msgs from executions e order by all"
    )
    assert other.sql(q).fetchall() == wh.sql(q).fetchall()
    empty = wh.export("trajectories", str(tmp_path / "none.jsonl"), where={"difficulty": "impossible"})
    assert empty.rows["trajectories"] == 0 and (tmp_path / "none.jsonl").read_text() == ""


def test_a_grown_trajectory_file_adds_only_its_new_lines_and_bad_lines_are_named(wh, tmp_path):
    src = trajectories_fixture()
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", src[:2])
    assert wh.import_("trajectories", data).records["executions"] == 2
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:  # incremental saves append lines
        f.write(json.dumps(src[2]) + "\n")
    report = wh.import_("trajectories", data)
    assert report.changed == ["train.jsonl"] and report.records["executions"] == 1
    assert wh.trajectories().collect().height == 3
    (data / "bad.jsonl").write_text(json.dumps(src[0]) + "\n" + json.dumps({**src[1], "rewards": float("nan")}) + "\n")
    (data / "cut.jsonl").write_text(json.dumps(src[0]) + "\n" + json.dumps(src[1])[:80])
    write_jsonl(data / "test.jsonl", src[:1])
    report = wh.import_("trajectories", data)
    reasons = {Path(f.source).name: f.reason for f in report.failed}
    assert "line 2" in reasons["bad.jsonl"] and "rewards must be finite" in reasons["bad.jsonl"]
    assert "line 2: invalid JSON" in reasons["cut.jsonl"]
    assert report.imported == 1 and wh.trajectories().collect().height == 4  # bad.jsonl's good line: not stored


# -- simulation runs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "steps, final",
    [
        ([0, 1, 2, 2], True),  # save frequency 1: the final save repeats the last step
        ([0, 5, 10, 13], True),  # frequency 5, final at 13
        ([0, 1, 2, 3], False),  # crashed after step 3
        ([0, 5, 10], False),  # crashed, or finished on a multiple of 5 without its repeat
        ([7], False),
        ([], False),
        ([4, 4], True),
    ],
)
def test_the_final_snapshot_is_read_from_the_steps(steps, final):
    assert last_is_final(steps) is final


def test_simulation_runs_are_listed_with_their_snapshots(wh, tmp_path):
    res = tmp_path / "results"
    done = "run_config_2025-11-22_14-30-52"
    freq5 = "run_market_2025-11-22_15-45-10"
    crashed = "run_config_2025-11-23_08-00-00"
    write_json(res / done / "state.json", state(done, [0, 1, 2, 2], seed=42))
    write_json(res / freq5 / "state.json", state(freq5, [0, 5, 10, 13]))
    write_json(res / crashed / "state.json", state(crashed, [0, 1, 2]))
    cut = write_json(
        res / "run_config_2025-11-24_00-00-00" / "state.json", state("run_config_2025-11-24_00-00-00", [0, 1])
    )
    cut.write_bytes(cut.read_bytes()[:-200])  # truncated mid-write
    report = wh.import_("simulation", res)
    assert report.imported == 3 and [(f.source, "truncated" in f.reason) for f in report.failed] == [(str(cut), True)]
    runs = {r["run_id"]: r for r in wh.runs().to_dicts()}
    assert set(runs) == {done, freq5, crashed}
    assert {k: (r["scenario"], r["snapshots"], r["last_step"], r["finished"]) for k, r in runs.items()} == {
        done: ("config", 4, 2, True),
        freq5: ("market", 4, 13, True),
        crashed: ("config", 3, 2, False),
    }
    assert runs[done]["started_at"] == datetime(2025, 11, 22, 14, 30, 52, tzinfo=UTC)
    got = wh.snapshots(done)
    assert [(s["step"], s["kind"]) for s in got] == [(0, "snapshot"), (1, "snapshot"), (2, "snapshot"), (2, "final")]
    wanted = state(done, [0, 1, 2, 2])["snapshots"]
    assert len(wanted) == len(got)
    for s, want in zip(got, wanted):
        assert {k: s[k] for k in want} == want
    meta_ = wh.sql(f"select distinct metadata from snapshots where run_id = '{done}'").fetchall()
    assert [json.loads(m) for (m,) in meta_] == [
        {"scenario": "config", "started_at": "2025-11-22T14:30:52Z", "extra": {"seed": 42}}
    ]

    # the crashed run's file gets its final snapshot (it was imported while running): only that is added
    write_json(res / crashed / "state.json", state(crashed, [0, 1, 2, 3, 3]))
    report = wh.import_("simulation", res)
    assert report.changed == [f"{crashed}/state.json"] and report.records["snapshots"] == 2
    assert wh.runs().filter(run_id=crashed).to_dicts()[0]["finished"] is True
    # a recorder's run and an imported one read alike
    with wh.run_recorder("config", save_frequency=1) as rec:
        rec.step(0, game_state=snap(0)["game_state"])
        rec.finish(0)
    assert wh.runs().height == 4


# -- the CLI -------------------------------------------------------------------------------------------
def test_cli_imports_and_exports_and_exits_1_when_a_source_failed(tmp_path):
    url = str(tmp_path / "wh")
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", trajectories_fixture())

    def cli(*args: str) -> Result:
        return CliRunner().invoke(app, [*args, "--url", url])

    ok = cli("import", "trajectories", str(data))
    assert ok.exit_code == 0, ok.output
    assert "1 imported" in ok.stdout and "3 executions" in ok.stdout
    (data / "broken.jsonl").write_text("{not json\n")
    bad = cli("import", "trajectories", str(data))
    assert bad.exit_code == 1 and "broken.jsonl" in bad.stderr and "1 already imported" in bad.stdout
    out = tmp_path / "hard.jsonl"
    exported = cli("export", "trajectories", str(out), "--where", "difficulty=hard")
    assert exported.exit_code == 0, exported.output
    assert [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()] == trajectories_fixture()[:2]
