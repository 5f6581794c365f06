"""warehouse.compat.simulation: a simulation's RunPersistence, driven as its orchestrator drives it, answers
through the warehouse as the importer of its own `results/<run_id>/state.json` files does."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

import warehouse
from tests.test_import_agent_state import snap
from warehouse.compat.simulation import DEFAULT_URL, URL_VARIABLE, RunPersistence
from warehouse.core.errors import InvalidRecord


class GameEngine:
    """A small simulation whose state changes every step (the original's `game_engine.py`)."""

    def __init__(self) -> None:
        self.step = 0

    def get_state_snapshot(self) -> dict[str, Any]:
        s = snap(self.step)
        return {k: s[k] for k in ("game_state", "global_vars", "agent_vars")}

    def get_message_for_agent(self, name: str) -> str:
        return "Please proceed with the next action"

    def process_agent_response(self, name: str, response: str) -> None:
        pass


class Agent:
    def __init__(self, name: str) -> None:
        self.name = name

    def respond(self, msg: str) -> str:
        return f"Acknowledged — {self.name} 🚀"


class Orchestrator:
    """The original's orchestrator loop: collect messages each step, `should_save`/`save_snapshot`
    after each step, `save_final` at completion."""

    def __init__(self, scenario_name: str, save_frequency: int, max_steps: int) -> None:
        self.game_engine = GameEngine()
        self.agents = [Agent("Agent Alpha"), Agent("Agent Béta")]
        self.max_steps = max_steps
        self.persistence = RunPersistence(scenario_name, save_frequency)

    def run(self) -> None:
        for step in range(self.max_steps):
            self.game_engine.step = step
            messages = []

            for agent in self.agents:
                orchestrator_msg = self.game_engine.get_message_for_agent(agent.name)
                messages.append({"from": "Orchestrator", "to": agent.name, "content": orchestrator_msg})

                agent_response = agent.respond(orchestrator_msg)
                messages.append({"from": agent.name, "to": "Orchestrator", "content": agent_response})

                self.game_engine.process_agent_response(agent.name, agent_response)

            if self.persistence.should_save(step):
                s = self.game_engine.get_state_snapshot()
                self.persistence.save_snapshot(step, s["game_state"], s["global_vars"], s["agent_vars"], messages)
        s = self.game_engine.get_state_snapshot()
        self.persistence.save_final(step, s["game_state"], s["global_vars"], s["agent_vars"], messages)


def legacy_run(root: Path, run_id: str, scenario: str, started_at: str, snapshots: list[dict[str, Any]]) -> Path:
    """The same run as the original persisted it: state.json read, a snapshot appended, written
    back atomically (temp file + rename) at each save."""
    d = root / "results" / run_id
    d.mkdir(parents=True)
    state = d / "state.json"
    doc = {"run_id": run_id, "scenario": scenario, "started_at": started_at, "snapshots": []}
    state.write_text(json.dumps(doc, indent=2))
    for s in snapshots:
        doc = json.loads(state.read_text())
        doc["snapshots"].append(s)
        tmp = d / "state.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
        os.replace(tmp, state)
    return root / "results"


def snapshot_answers(wh: warehouse.Warehouse, run_id: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in s.items() if k != "created_at"} for s in wh.simulations.snapshots(run_id)]


@pytest.mark.parametrize(("save_frequency", "steps"), [(1, [0, 1, 2, 3, 4, 5, 6, 7, 7]), (3, [0, 3, 6, 7])])
def test_orchestrator_code_runs_unchanged_and_equals_the_imported_state_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save_frequency: int, steps: list[int]
) -> None:
    monkeypatch.setenv(URL_VARIABLE, str(tmp_path / "wh"))
    orchestrator = Orchestrator("scenarios/market v2.yaml", save_frequency, max_steps=8)
    orchestrator.run()
    run_id = orchestrator.persistence.run_id
    assert run_id.startswith("run_scenarios_market_v2_yaml_")

    wh = warehouse.open(str(tmp_path / "wh"))
    got = snapshot_answers(wh, run_id)
    assert [(s["step"], s["kind"]) for s in got] == [(n, "snapshot") for n in steps[:-1]] + [(steps[-1], "final")]
    assert got[1]["game_state"] == snap(steps[1])["game_state"]
    assert got[-1]["messages"][1] == {
        "from": "Agent Alpha",
        "to": "Orchestrator",
        "content": "Acknowledged — Agent Alpha 🚀",
    }
    run = wh.simulations.runs().to_dicts()
    assert [(r["run_id"], r["scenario"], r["snapshots"], r["last_step"], r["finished"]) for r in run] == [
        (run_id, "scenarios/market v2.yaml", len(steps), 7, True)
    ]
    sql = wh.sql("select kind, count(*) from snapshots where run_id = ? group by kind order by kind", [run_id])
    assert sql.fetchall() == [("final", 1), ("snapshot", len(steps) - 1)]

    # the same run written by the original and imported gives the same answers
    started = run[0]["started_at"].astimezone(UTC).replace(tzinfo=None).isoformat()
    originals = [
        {"step": s["step"], **{k: s[k] for k in ("game_state", "global_vars", "agent_vars", "messages")}} for s in got
    ]
    results = legacy_run(tmp_path / "legacy", run_id, "scenarios/market v2.yaml", started, originals)
    imported = warehouse.open(str(tmp_path / "imported"), create=True)
    assert imported.import_("simulation", results).failed == []
    assert snapshot_answers(imported, run_id) == got
    assert imported.simulations.runs().to_dicts() == run


def test_the_default_warehouse_is_beside_the_legacy_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    (tmp_path / "results" / "run_old_2025-11-22_14-30-52").mkdir(parents=True)  # a legacy run stays untouched
    p = RunPersistence("config", 0)
    assert [p.should_save(n) for n in range(3)] == [False, False, False]
    p.save_final(2, {"round": 2}, {}, {}, [])
    wh = warehouse.open(str(tmp_path / DEFAULT_URL))
    assert [(s["step"], s["kind"], s["game_state"]) for s in wh.simulations.snapshots(p.run_id)] == [
        (2, "final", {"round": 2})
    ]
    assert sorted(os.listdir(tmp_path / "results")) == ["run_old_2025-11-22_14-30-52", "warehouse"]


@pytest.mark.parametrize("save_frequency", [-1, 1.5, "2", True, None])
def test_a_bad_save_frequency_is_refused_before_anything_is_stored(tmp_path: Path, save_frequency: Any) -> None:
    with pytest.raises(InvalidRecord, match="save_frequency"):
        RunPersistence("config", save_frequency, url=str(tmp_path / "wh"))
    assert not (tmp_path / "wh").exists()


@pytest.mark.parametrize("scenario", ["", None, 42])
def test_a_bad_scenario_name_is_refused(tmp_path: Path, scenario: Any) -> None:
    with pytest.raises(InvalidRecord, match="scenario"):
        RunPersistence(scenario, 1, url=str(tmp_path / "wh"))
    assert warehouse.open(str(tmp_path / "wh")).simulations.runs().height == 0


def test_a_failed_save_is_logged_and_the_simulation_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = RunPersistence("config", 1, url=str(tmp_path / "wh"))
    wh = warehouse.open(str(tmp_path / "wh"))
    with caplog.at_level(logging.WARNING, logger="warehouse.compat.simulation"):
        p.save_snapshot(0, {"ok": True}, {}, {}, [])
        version = wh.refresh()
        p.save_snapshot(1, {"bad": {1, 2}}, {}, {}, [])  # a set: not JSON, as json.dump would refuse it
        p.save_snapshot(2, {}, {}, {}, {"not": "a list"})
        p.save_snapshot(0, {}, {}, {}, [])  # a step before the last one saved
        assert wh.refresh() == version  # nothing of the failed saves was stored
        p.save_final(3, {"round": 3}, {}, {}, [])
        p.save_snapshot(4, {}, {}, {}, [])  # after the final save
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4
    assert "step 1 not saved" in warnings[0] and "game_state" in warnings[0]
    assert "messages must be a list" in warnings[1]
    assert "does not follow" in warnings[2] and "finished" in warnings[3]
    assert [(s["step"], s["kind"]) for s in wh.simulations.snapshots(p.run_id)] == [(0, "snapshot"), (3, "final")]


def test_a_run_on_s3_named_by_the_environment(s3: Any, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(URL_VARIABLE, s3_url)
    orchestrator = Orchestrator("config", 2, max_steps=3)
    orchestrator.run()
    wh = warehouse.open(s3_url, storage_options=s3.options())
    got = wh.simulations.snapshots(orchestrator.persistence.run_id)
    assert [(s["step"], s["kind"]) for s in got] == [(0, "snapshot"), (2, "snapshot"), (2, "final")]
