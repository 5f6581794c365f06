"""Simulation runs (`wh.run_recorder`, `wh.snapshots`, `wh.runs`), the replacement of the simulation's
`results/<run_id>/state.json`: run ids, save frequency, snapshots committed per save, `kill -9`."""

from __future__ import annotations

import importlib.util
import os
import signal
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import warehouse
from warehouse.agent.simulation import sanitize_scenario
from warehouse.core.errors import InvalidRecord, RunNotFound, WarehouseError

PROCS = Path(__file__).resolve().parent / "procs"
REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 11, 22, 14, 30, 52, 123456, tzinfo=UTC)
STAMP = "2025-11-22_14-30-52"


def _load_child_module() -> Any:
    spec = importlib.util.spec_from_file_location("sim_crash", PROCS / "sim_crash.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The state the child process saves at each step (what the tests expect to read back).
state = _load_child_module().state


def steps_of(snaps: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(s["step"], s["kind"]) for s in snaps]


from processes import Children, watchdog  # noqa: E402


# -- run ids ---------------------------------------------------------------------------------------
def test_run_id_is_scenario_and_utc_start_time(wh: warehouse.Warehouse, root: Path) -> None:
    rec = wh.run_recorder("config", started_at=T0)
    assert rec.run_id == f"run_config_{STAMP}"
    assert (root / "runs" / f"run_config_{STAMP}.json").is_file()
    # An aware time in another zone is named by its UTC time; a naive one is UTC.
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert wh.run_recorder("config", started_at=paris).run_id == f"run_config_{STAMP}_1"
    assert wh.run_recorder("config", started_at=T0.replace(tzinfo=None)).run_id == f"run_config_{STAMP}_2"
    assert wh.run_recorder("config", started_at="2025-11-22T14:30:52Z").run_id == f"run_config_{STAMP}_3"


@pytest.mark.parametrize(
    "scenario",
    [
        "../../etc",
        "a/b\\c",
        "x" * 200,
        "シナリオ 🚀 é",
        "..",
        ".",
        "a\x00b",
        "scenarios/my scenario.yaml",
        "%2e%2e",
        "C:\\temp\\x",
    ],
)
def test_scenario_names_never_leave_the_runs_directory(wh: warehouse.Warehouse, root: Path, scenario: str) -> None:
    rec = wh.run_recorder(scenario, save_frequency=1, started_at=T0)
    name = sanitize_scenario(scenario)
    assert len(name) == min(len(scenario), 50) and set(name) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
    )
    assert rec.run_id == f"run_{name}_{STAMP}"
    assert sorted(os.listdir(root / "runs")) == [f"{rec.run_id}.json"]
    assert sorted(os.listdir(root)) == ["_manifest", "configs", "runs"]  # nothing written elsewhere
    rec.step(0, game_state={"s": scenario})
    rec.finish(1)
    # The scenario is kept verbatim beside the sanitised id.
    runs = wh.runs()
    assert runs["run_id"].to_list() == [rec.run_id] and runs["scenario"].to_list() == [scenario]
    assert wh.snapshots(rec.run_id)[0]["game_state"] == {"s": scenario}
    assert wh.sql("select distinct json_extract_string(metadata, '$.scenario') from snapshots").fetchall() == [
        (scenario,)
    ]


def test_sanitising_follows_the_legacy_rule() -> None:
    assert sanitize_scenario("scenarios/config.yaml") == "scenarios_config_yaml"
    assert sanitize_scenario("my-scenario_2") == "my-scenario_2"
    assert sanitize_scenario("a b\\c/d") == "a_b_c_d"
    assert sanitize_scenario("é" * 60) == "_" * 50


def test_run_ids_started_in_the_same_second_are_unique(wh: warehouse.Warehouse) -> None:
    ids = [wh.run_recorder("config", started_at=T0 + timedelta(microseconds=i)).run_id for i in range(4)]
    assert ids == [f"run_config_{STAMP}", f"run_config_{STAMP}_1", f"run_config_{STAMP}_2", f"run_config_{STAMP}_3"]


def test_a_claim_whose_answer_was_lost_is_recognised_as_ours(s3: Any, s3_url: str) -> None:
    from faultproxy import FaultProxy

    firsts: set[str] = set()

    def first_put_of_a_claim(method: str, path: str) -> bool:
        if method == "PUT" and "/runs/" in path and path not in firsts:
            firsts.add(path)
            return True
        return False

    warehouse.open(s3_url, storage_options=s3.options(), create=True)
    with FaultProxy(s3.url, rate=1.0, faults=("drop",), only=first_put_of_a_claim) as proxy:
        wh = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
        rec = wh.run_recorder("config", started_at=T0)
        assert proxy.stats.faults["drop"] == 1
    assert rec.run_id == f"run_config_{STAMP}"  # was: run_config_..._1, beside a claim nobody used
    claims = [p.rsplit("/", 1)[-1] for p in s3.fs().find(f"{s3_url.removeprefix('s3://')}/runs")]
    assert claims == [f"run_config_{STAMP}.json"]


def test_run_ids_claimed_by_racing_processes_are_unique(root: Path, children: Children) -> None:
    warehouse.open(str(root), create=True)
    n = 4
    procs = [children.start("sim_crash.py", root, "race", T0.isoformat(), 2) for _ in range(n)]
    with watchdog(procs, 120):
        for p in procs:
            children.line(p, "ready")
        for p in procs:  # the barrier: release them together
            p.stdin.write("go\n")
            p.stdin.flush()
        ids = [children.line(p, "run ") for p in procs]
        for p in procs:
            for i in range(2):
                assert children.line(p, "step ") == str(i)
            children.line(p, "done")
            assert p.wait() == 0
    base = f"run_race_{STAMP}"
    assert sorted(ids) == sorted([base] + [f"{base}_{i}" for i in range(1, n)])
    wh = warehouse.open(str(root))
    for run_id in ids:  # and each run's snapshots are its own
        assert steps_of(wh.snapshots(run_id)) == [(0, "snapshot"), (1, "snapshot"), (2, "final")]
    assert sorted(wh.runs()["run_id"].to_list()) == sorted(ids)


# -- save frequency --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "frequency, max_steps, saved",
    [
        (0, None, []),
        (1, None, list(range(10))),
        (3, None, [0, 3, 6, 9]),
        (4, 10, [0, 4, 8]),
        (10, 10, [0]),
        (11, 10, []),  # save_frequency > max_steps: only the final snapshot
        (5, 4, []),
    ],
)
def test_save_frequency_decides_which_steps_are_saved(
    wh: warehouse.Warehouse, frequency: int, max_steps: int | None, saved: list[int]
) -> None:
    rec = wh.run_recorder("freq", save_frequency=frequency, max_steps=max_steps)
    returned = [n for n in range(10) if rec.step(n, game_state={"round": n}, agent_vars={"A": {"n": n}})]
    assert returned == saved == [n for n in range(10) if rec.should_save(n)]
    rec.finish(10, game_state={"round": 10})
    snaps = wh.snapshots(rec.run_id)
    assert steps_of(snaps) == [(n, "snapshot") for n in saved] + [(10, "final")]
    assert [s["game_state"] for s in snaps] == [{"round": n} for n in saved + [10]]
    runs = wh.runs().row(0, named=True)
    assert (runs["snapshots"], runs["last_step"], runs["finished"]) == (len(saved) + 1, 10, True)


@pytest.mark.parametrize("frequency", [-1, 1.5, "2", True, None])
def test_bad_save_frequency_is_refused_before_anything_is_claimed(
    wh: warehouse.Warehouse, root: Path, frequency: Any
) -> None:
    with pytest.raises(InvalidRecord, match="save_frequency"):
        wh.run_recorder("config", save_frequency=frequency)
    assert not (root / "runs").exists() and wh.version == 0


@pytest.mark.parametrize("scenario", ["", None, 3, "bad \ud800 surrogate"])
def test_bad_scenario_is_refused(wh: warehouse.Warehouse, scenario: Any) -> None:
    with pytest.raises(InvalidRecord, match="scenario"):
        wh.run_recorder(scenario)


# -- snapshots -------------------------------------------------------------------------------------
def test_snapshots_hold_the_state_as_saved_in_step_order(wh: warehouse.Warehouse, root: Path) -> None:
    rec = wh.run_recorder("scenarios/config.yaml", save_frequency=2, max_steps=6, started_at=T0)
    for n in range(7):
        rec.step(n, **state(n))
    rec.finish(6, **state(6))  # the final snapshot may repeat the last step

    snaps = warehouse.open(str(root)).snapshots(rec.run_id)  # any other reader sees them
    assert steps_of(snaps) == [(0, "snapshot"), (2, "snapshot"), (4, "snapshot"), (6, "snapshot"), (6, "final")]
    for s in snaps:
        assert {k: s[k] for k in ("game_state", "global_vars", "agent_vars", "messages")} == state(s["step"])
        assert s["created_at"].utcoffset() == timedelta(0)
    assert [s["created_at"] for s in snaps] == sorted(s["created_at"] for s in snaps)
    ids = wh.sql("select snapshot_id from snapshots order by step, kind").fetchall()
    assert ids == [(f"{rec.run_id}:snapshot:{n}",) for n in (0, 2, 4)] + [
        (f"{rec.run_id}:final:6",),
        (f"{rec.run_id}:snapshot:6",),
    ]
    run = wh.runs().row(0, named=True)
    assert run == {
        "run_id": rec.run_id,
        "scenario": "scenarios/config.yaml",
        "started_at": T0,
        "snapshots": 5,
        "last_step": 6,
        "finished": True,
    }


def test_each_save_is_committed_before_it_returns(wh: warehouse.Warehouse, root: Path) -> None:
    rec = wh.run_recorder("committed")
    other = warehouse.open(str(root))
    for n in range(3):
        assert rec.step(n, game_state={"n": n})
        assert wh.version == n + 1
        assert steps_of(other.snapshots(rec.run_id)) == [(i, "snapshot") for i in range(n + 1)]
    assert not other.runs().row(0, named=True)["finished"]
    rec.finish(3)
    assert wh.history()[0].tables == ("snapshots",)


def test_empty_and_missing_state_fields_are_saved(wh: warehouse.Warehouse) -> None:
    rec = wh.run_recorder("empty")
    rec.step(0, game_state={"r": 1}, global_vars={}, agent_vars={}, messages=[])
    rec.finish(1)
    snaps = wh.snapshots(rec.run_id)
    assert [{k: s[k] for k in ("game_state", "global_vars", "agent_vars", "messages")} for s in snaps] == [
        {"game_state": {"r": 1}, "global_vars": {}, "agent_vars": {}, "messages": []},
        {"game_state": {}, "global_vars": {}, "agent_vars": {}, "messages": []},
    ]


@pytest.mark.parametrize(
    "field, value",
    [
        ("game_state", {"x": object()}),
        ("global_vars", {"rate": float("nan")}),
        ("agent_vars", {"A": {"cash": float("inf")}}),
        ("messages", [{"content": "lone \ud800 surrogate"}]),
        ("messages", "not a list"),
    ],
)
def test_state_that_is_not_json_is_refused_naming_the_field(wh: warehouse.Warehouse, field: str, value: Any) -> None:
    rec = wh.run_recorder("bad")
    version = wh.version
    with pytest.raises(InvalidRecord, match=field):
        rec.step(0, **{field: value})
    with pytest.raises(InvalidRecord, match=field):
        rec.finish(0, **{field: value})
    assert wh.version == version
    with pytest.raises(RunNotFound):
        wh.snapshots(rec.run_id)
    # Nothing was stored or counted: the same step can then be saved.
    assert rec.step(0, game_state={"ok": True})
    assert steps_of(wh.snapshots(rec.run_id)) == [(0, "snapshot")]


def test_steps_must_increase(wh: warehouse.Warehouse) -> None:
    rec = wh.run_recorder("order", save_frequency=2)
    rec.step(2)
    rec.step(3)  # not saved, but counted
    for bad in (3, 1):
        with pytest.raises(InvalidRecord, match="step"):
            rec.step(bad)
    with pytest.raises(InvalidRecord, match="step"):
        rec.finish(2)
    with pytest.raises(InvalidRecord, match="step"):
        rec.step("4")
    rec.finish(3)
    with pytest.raises(WarehouseError, match="finished"):
        rec.step(4)
    with pytest.raises(WarehouseError, match="finished"):
        rec.finish(4)
    assert steps_of(wh.snapshots(rec.run_id)) == [(2, "snapshot"), (3, "final")]


@pytest.mark.parametrize("run_id", ["run_nope_2025-01-01_00-00-00", "", "../runs/x", "a/b", None])
def test_unknown_run_ids_raise_run_not_found(wh: warehouse.Warehouse, run_id: Any) -> None:
    with pytest.raises(RunNotFound):
        wh.snapshots(run_id)


def test_a_run_that_saved_nothing_is_not_listed(wh: warehouse.Warehouse) -> None:
    rec = wh.run_recorder("quiet", save_frequency=0)
    rec.step(0)
    with pytest.raises(RunNotFound, match="saved snapshot"):
        wh.snapshots(rec.run_id)
    assert wh.runs().height == 0
    rec.close()
    assert wh.version == 0


def test_runs_lists_each_run_newest_first(wh: warehouse.Warehouse) -> None:
    old = wh.run_recorder("alpha", started_at=T0)
    old.step(0)
    old.step(1)
    new = wh.run_recorder("beta", started_at=T0 + timedelta(hours=1))
    new.step(0)
    new.finish(5)
    df = wh.runs()
    assert df.columns == ["run_id", "scenario", "started_at", "snapshots", "last_step", "finished"]
    assert df.rows() == [
        (new.run_id, "beta", T0 + timedelta(hours=1), 2, 5, True),
        (old.run_id, "alpha", T0, 2, 1, False),
    ]


# -- kill -9 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("acks", [1, 7])
def test_killed_simulation_keeps_every_acknowledged_snapshot(root: Path, children: Children, acks: int) -> None:
    warehouse.open(str(root), create=True)
    proc = children.start("sim_crash.py", root, "crash test/é", datetime.now(UTC).isoformat(), 0)
    with watchdog([proc], 120):
        children.line(proc, "ready")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        run_id = children.line(proc, "run ")
        for n in range(acks):
            assert children.line(proc, "step ") == str(n)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    wh = warehouse.open(str(root))
    snaps = wh.snapshots(run_id)
    steps = [s["step"] for s in snaps]
    # Every acknowledged step is there, in order; the one in flight at the kill may be too.
    assert steps in (list(range(acks)), list(range(acks + 1)))
    assert {s["kind"] for s in snaps} == {"snapshot"}
    for s in snaps:
        assert {k: s[k] for k in ("game_state", "global_vars", "agent_vars", "messages")} == state(s["step"])
    run = wh.runs().row(0, named=True)
    assert (run["run_id"], run["scenario"], run["finished"]) == (run_id, "crash test/é", False)


def test_runs_on_s3_claim_ids_and_save_snapshots(s3_url: str, s3_options: dict[str, Any]) -> None:
    wh = warehouse.open(s3_url, create=True, storage_options=s3_options)
    a = wh.run_recorder("s3/run", started_at=T0)
    b = wh.run_recorder("s3/run", started_at=T0)
    assert (a.run_id, b.run_id) == (f"run_s3_run_{STAMP}", f"run_s3_run_{STAMP}_1")
    for n in range(3):
        a.step(n, **state(n))
    a.finish(3, **state(3))
    snaps = warehouse.open(s3_url, storage_options=s3_options).snapshots(a.run_id)
    assert steps_of(snaps) == [(0, "snapshot"), (1, "snapshot"), (2, "snapshot"), (3, "final")]
    assert snaps[3]["agent_vars"] == state(3)["agent_vars"]
    b.close()
