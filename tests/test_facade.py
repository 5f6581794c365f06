"""The facade's surface: `Warehouse`'s public members are a deliberate list (verbs, properties,
namespaces, and the aliases kept for scripts written before 0.2), and every alias answers exactly
as the namespace call it stands for, on one small warehouse."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

import warehouse
from warehouse.namespaces import Executions, Maintenance, Simulations

VERBS = {
    "of",
    "refresh",
    "history",
    "sql",
    "scan",
    "connect",
    "execution",
    "scores",
    "report",
    "files",
    "table_summary",
    "writer",
    "async_writer",
    "import_",
    "export",
    "sync_to",
    "publish",
    "wait_for_publication",
}
PROPERTIES = {"url", "version", "read_only", "snapshot", "tables", "engine"}
NAMESPACES = {"maintenance": Maintenance, "executions": Executions, "simulations": Simulations}
#: alias -> the namespace call it stands for (`store` and `log` are the engine's)
ALIASES = {
    "store": "engine.store",
    "log": "engine.log",
    "checkpoint": "maintenance.checkpoint_manifest",
    "compact": "maintenance.compact",
    "vacuum": "maintenance.vacuum",
    "expire": "maintenance.expire",
    "doctor": "maintenance.doctor",
    "checkpoints": "executions.checkpoints",
    "latest_checkpoint": "executions.latest_checkpoint",
    "load_checkpoint": "executions.load_checkpoint",
    "resume_plan": "executions.resume_plan",
    "follow": "executions.follow",
    "trajectories": "executions.trajectories",
    "run_recorder": "simulations.recorder",
    "snapshots": "simulations.snapshots",
    "runs": "simulations.runs",
}
T0 = datetime(2025, 11, 22, 14, 30, 52, tzinfo=UTC)


def test_public_members_are_exactly_the_verbs_namespaces_and_aliases() -> None:
    public = {name for name in dir(warehouse.Warehouse) if not name.startswith("_")}
    assert public == VERBS | PROPERTIES | set(NAMESPACES) | {"sessions"} | set(ALIASES)


def test_every_alias_says_what_it_stands_for() -> None:
    for name, target in ALIASES.items():
        doc = inspect.getdoc(getattr(warehouse.Warehouse, name))
        assert doc is not None and doc.startswith(f"Alias of `wh.{target}`") and "before 0.2" in doc, name


def test_no_namespace_call_shares_a_name_with_a_verb() -> None:
    for cls in NAMESPACES.values():
        calls = {n for n in vars(cls) if not n.startswith("_")}
        assert calls and not calls & (VERBS | PROPERTIES), cls


@pytest.fixture
def filled(wh: warehouse.Warehouse, config: dict[str, Any], open_writer: Any) -> tuple[warehouse.Warehouse, str]:
    """A warehouse with three small commits of one configuration, a live execution (now finished)
    with two checkpoints and a log line, three trajectories and one simulation run; returns it and the live execution's id."""
    for i in range(3):
        w = open_writer(wh, **config)
        w.add_execution(task_id=f"t{i}", benign_score=i / 2, attack_score=0.0)
        w.close()
    w = open_writer(wh, **config)
    ex = w.start_execution("live", owner="agent-7")
    ex.checkpoint({"turn": 1}, step=1)
    ex.checkpoint({"turn": 2}, step=2)
    ex.log("info", "done with turn 2")
    ex.finish(benign_score=1.0)
    for g in range(3):
        w.add_trajectory(
            messages=[{"role": "user", "content": "q"}],
            rewards=g / 2,
            group=g,
            replica=0,
            metadata={"difficulty": "hard" if g else "easy"},
        )
    w.close()
    rec = wh.simulations.recorder("config", started_at=T0)
    rec.step(0, game_state={"s": 0})
    rec.finish(1, game_state={"s": 1})
    wh.refresh()
    return wh, ex.execution_id


def test_executions_namespace_answers_as_the_aliases(
    filled: tuple[warehouse.Warehouse, str], config: dict[str, Any]
) -> None:
    wh, eid = filled
    ns = wh.executions
    assert [c.state for c in ns.checkpoints(eid)] == [{"turn": 1}, {"turn": 2}]
    assert ns.checkpoints(eid) == wh.checkpoints(eid)
    assert ns.latest_checkpoint(eid, "agent-7") == wh.latest_checkpoint(eid, "agent-7")
    latest = ns.latest_checkpoint(eid)
    assert latest is not None and latest.state == {"turn": 2}
    assert ns.load_checkpoint(latest.checkpoint_id, execution_id=eid) == wh.load_checkpoint(
        latest.checkpoint_id, execution_id=eid
    )
    assert ns.resume_plan(config, ["t0", "live", "new"]) == wh.resume_plan(config, ["t0", "live", "new"])
    assert list(ns.follow(eid, follow=False)) == list(wh.follow(eid, follow=False))
    assert ns.trajectories().collect().height == 3
    assert ns.trajectories().collect().equals(wh.trajectories().collect())
    # the metadata dict has its own name; `where` given a dict still means it, as before 0.2
    hard = ns.trajectories(metadata={"difficulty": "hard"}).collect().sort("group")
    assert hard.height == 2 and hard.equals(wh.trajectories(where={"difficulty": "hard"}).collect().sort("group"))
    assert hard.equals(ns.trajectories(where={"difficulty": "hard"}).collect().sort("group"))
    # both at once: the SQL condition and the metadata both hold
    both = ns.trajectories("reward > 0.6", metadata={"difficulty": "hard"}).collect()
    assert both["rewards"].to_list() == [1.0]


def test_simulations_namespace_answers_as_the_aliases(filled: tuple[warehouse.Warehouse, str]) -> None:
    wh, _ = filled
    runs = wh.simulations.runs()
    assert runs.height == 1 and runs.equals(wh.runs())
    run_id = runs["run_id"][0]
    assert [s["game_state"] for s in wh.simulations.snapshots(run_id)] == [{"s": 0}, {"s": 1}]
    assert wh.simulations.snapshots(run_id) == wh.snapshots(run_id)
    assert wh.run_recorder("config", started_at=T0).run_id == f"{run_id}_1"  # the alias makes a recorder too


def untimed(result: Any) -> Any:
    """A result dataclass without its wall-clock `seconds`."""
    return dataclasses.replace(result, seconds=0.0)


def test_maintenance_namespace_answers_as_the_aliases(filled: tuple[warehouse.Warehouse, str]) -> None:
    wh, _ = filled
    m = wh.maintenance
    planned = m.compact("executions", dry_run=True)
    assert untimed(planned) == untimed(wh.compact("executions", dry_run=True)) and planned.files_in >= 3
    later = datetime.now(UTC) + timedelta(days=30)
    expired = m.expire(timedelta(days=1), tables=["events"], dry_run=True, now=later)
    assert expired == wh.expire(timedelta(days=1), tables=["events"], dry_run=True, now=later) and expired.rows > 0
    vacuumed, again = (untimed(v(dry_run=True, now=later)) for v in (m.vacuum, wh.vacuum))
    # the orphan cutoff is never later than the current time, read afresh by each call
    assert dataclasses.replace(vacuumed, orphan_cutoff=again.orphan_cutoff) == again
    found = m.doctor()
    assert untimed(found) == untimed(wh.doctor()) and found.problems == []
    before = wh.version
    assert m.checkpoint_manifest() == before == wh.checkpoint()
    assert wh.log.listing().checkpoints[-1] == before
    assert wh.store is wh.engine.store and wh.log is wh.engine.log


def test_partition_dict_has_its_own_name_and_where_stays_an_alias(filled: tuple[warehouse.Warehouse, str]) -> None:
    wh, _ = filled
    agent = next(iter(wh.files("executions"))).partition["agent"]
    by_name = wh.files("executions", partition={"agent": agent})
    assert by_name and by_name == wh.files("executions", where={"agent": agent}) == wh.files(
        "executions", {"agent": agent}
    )
    assert wh.files("executions", partition={"agent": "nobody"}) == []
    scanned = wh.scan("executions", partition={"agent": agent}).collect()
    assert scanned.sort("execution_id").equals(
        wh.scan("executions", where={"agent": agent}).collect().sort("execution_id")
    )
    assert scanned.height == wh.scan("executions").collect().height > 3  # every execution has this agent
    with pytest.raises(warehouse.InvalidArgument, match="not both"):
        wh.scan("executions", {"agent": agent}, where={"agent": agent})


def test_sync_progress_callable_has_its_own_name(filled: tuple[warehouse.Warehouse, str], tmp_path: Any) -> None:
    wh, _ = filled
    seen: list[Any] = []
    result = wh.sync_to(str(tmp_path / "copy"), on_progress=seen.append)
    assert result.files > 0 and len(seen) == result.files
    old: list[Any] = []
    wh.sync_to(str(tmp_path / "copy2"), progress=old.append)  # its name before 0.2
    assert len(old) == len(seen)
    with pytest.raises(warehouse.InvalidArgument, match="not both"):
        wh.sync_to(str(tmp_path / "copy3"), on_progress=seen.append, progress=old.append)
    assert pl.DataFrame(wh.sql("select count(*) from executions").fetchall()).equals(
        pl.DataFrame(warehouse.open(str(tmp_path / "copy")).sql("select count(*) from executions").fetchall())
    )


# -- errors by kind --------------------------------------------------------------------------------
def test_a_closed_writer_raises_a_state_error(
    wh: warehouse.Warehouse, config: dict[str, Any], open_writer: Any
) -> None:
    w = open_writer(wh, **config)
    w.close()
    with pytest.raises(warehouse.WriterClosed) as caught:
        w.add_execution(task_id="t", benign_score=1.0)
    assert isinstance(caught.value, warehouse.StateError) and isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, warehouse.WarehouseError) and not isinstance(caught.value, ValueError)


def test_finishing_a_finished_execution_is_a_state_error(
    wh: warehouse.Warehouse, config: dict[str, Any], open_writer: Any
) -> None:
    ex = open_writer(wh, **config).start_execution("t")
    ex.finish(benign_score=1.0)
    with pytest.raises(warehouse.StateError, match="already completed"):
        ex.finish(benign_score=0.0)


def test_a_bad_grouping_or_partition_filter_is_a_bad_argument(wh: warehouse.Warehouse) -> None:
    with pytest.raises(warehouse.InvalidArgument, match="cannot group by 'colour'") as caught:
        wh.scores(by="colour")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(warehouse.InvalidArgument, match="matches no partition"):
        wh.maintenance.compact(partition="agent = 'nobody'", dry_run=True)
