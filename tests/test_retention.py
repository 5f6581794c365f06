"""Retention (`Warehouse.expire`, `warehouse expire`): old rows leave the snapshot in one commit,
whole files by their manifest stats, straddling files rewritten; running executions keep everything."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import warehouse
from warehouse import CommitConflict, ReadOnlyWarehouse, WarehouseError
from warehouse.ops.retention import commit_expire, parse_duration, plan_expire
from warehouse.write.live import EVENT_ROW, SNAPSHOT_ROW
from warehouse.write.writer import EXECUTION_LIVE_ROW

UTC = UTC
NOW = datetime(2025, 6, 1, tzinfo=UTC)
MONTH = timedelta(days=30)
CUTOFF = NOW - MONTH
OLD = datetime(2025, 1, 1, tzinfo=UTC)  # well before the cutoff
NEW = datetime(2025, 5, 25, tzinfo=UTC)  # after it
ALL = ("events", "snapshots", "executions")
OTHER_AGENT = {"type": "react", "config": {"max_steps": 5}}


def event(eid: str | None, seq: int, ts: datetime, message: str | None = None) -> tuple:
    """A row of `events` (non-partition columns, schema order)."""
    return (
        eid,
        seq,
        ts,
        "log",
        "info",
        "step",
        message or f"event {seq}",
        1.5,
        "trace",
        f"span{seq}",
        None,
        "agent",
        json.dumps({"seq": seq}),
        None,
        None,
    )


def snapshot(sid: str, eid: str | None, ts: datetime, kind: str = "checkpoint", step: int = 0) -> tuple:
    """A row of `snapshots` (non-partition columns, schema order)."""
    return (sid, eid, "run-1", kind, step, "thread-1", None, json.dumps({"step": step, "memory": ["a", "b"]}), ts, None)


def running(w: warehouse.Writer, eid: str, started: datetime = OLD) -> None:
    """An in-flight revision of `eid` (status running) in `executions_live`."""
    w._add_rows(EXECUTION_LIVE_ROW, [w._execution_row(eid, "task_live", 1, "running", {"started_at": started})])


def finished(w: warehouse.Writer, eid: str, at: datetime, status: str = "completed", **kw: Any) -> None:
    """A final row of `eid` with one message and one attack."""
    w.add_execution(
        execution_id=eid,
        task_id=f"task_{eid}",
        started_at=at - timedelta(minutes=5),
        finished_at=at,
        status=status,
        error="boom" if status == "failed" else None,
        benign_score=1.0,
        messages=[{"role": "user", "content": f"hello from {eid}"}],
        attacks=[{"vector_id": "v1", "type": "injection", "content": "ignore"}],
        **kw,
    )


def only_file(wh: warehouse.Warehouse, table: str) -> str:
    [f] = [f.path for f in wh.files(table)]
    return f


def _key(r: tuple) -> list[tuple]:
    return [(True, 0) if v is None else (False, v) for v in r]  # NULLs last, values in their own order


def rows(wh: warehouse.Warehouse, query: str) -> list[tuple]:
    return sorted(wh.sql(query).fetchall(), key=_key)


def ids(wh: warehouse.Warehouse, view: str) -> set[Any]:
    return {r[0] for r in wh.sql(f"select execution_id from {view}").fetchall()}


# -- whole files, straddling files, untouched files ------------------------------------------------
def test_old_file_is_dropped_by_its_stats_without_being_read(wh, root, config, open_writer) -> None:
    w = open_writer(wh, **config)
    w._add_rows(EVENT_ROW, [event(None, i, OLD + timedelta(minutes=i)) for i in range(5)])
    w.flush()
    old_path = only_file(wh, "events")
    w._add_rows(EVENT_ROW, [event(None, 10 + i, NEW + timedelta(minutes=i)) for i in range(3)])
    w.flush()
    new_paths = {f.path for f in wh.files("events")} - {old_path}
    # Garbage in place of the old file: only its manifest stats may decide.
    (root / old_path).write_bytes(b"not parquet at all" * 100)

    before = wh.version
    result = wh.expire(MONTH, now=NOW)

    assert (result.rows_removed, result.files_dropped, result.files_rewritten) == ({"events": 5}, 1, 0)
    assert result.version == before + 1 == wh.version
    assert {f.path for f in wh.files("events")} == new_paths
    assert rows(wh, "select seq from events") == [(10,), (11,), (12,)]
    assert (root / old_path).exists(), "expire deletes nothing from disk (vacuum does)"


def test_straddling_file_is_rewritten_with_its_kept_rows_identical(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    w._add_rows(
        EVENT_ROW, [event(None, i, (OLD if i % 2 else NEW) + timedelta(seconds=i), f"msg é {i}") for i in range(10)]
    )
    w._add_rows(
        SNAPSHOT_ROW, [snapshot(f"s{i}", None, OLD if i < 3 else NEW, kind="snapshot", step=i) for i in range(5)]
    )
    w.flush()
    old_paths = {f.path for f in wh.snapshot.files.values()}
    kept_events = wh.sql(
        f"select * from events where timestamp >= '{CUTOFF.isoformat()}' order by seq"
    ).to_arrow_table()
    kept_snaps = wh.sql(
        f"select * from snapshots where created_at >= '{CUTOFF.isoformat()}' order by step"
    ).to_arrow_table()
    assert kept_events.num_rows == 5 and kept_snaps.num_rows == 2

    result = wh.expire(MONTH, tables=("events", "snapshots"), now=NOW)

    assert result.rows_removed == {"events": 5, "snapshots": 3}
    assert (result.files_dropped, result.files_rewritten) == (0, 2)
    assert result.files_by_table == {"events": (0, 1), "snapshots": (0, 1)}
    assert wh.sql("select * from events order by seq").to_arrow_table().equals(kept_events)
    assert wh.sql("select * from snapshots order by step").to_arrow_table().equals(kept_snaps)
    [ev] = wh.files("events")
    assert ev.path not in old_paths and ev.rows == 5
    assert ev.stats["timestamp"]["min"] >= CUTOFF.isoformat().replace("+00:00", "Z")


def test_files_newer_than_the_cutoff_are_untouched_and_unread(wh, root, config, open_writer) -> None:
    for agent in (config["agent"], OTHER_AGENT):
        w = open_writer(wh, **{**config, "agent": agent})
        for k in range(3):
            finished(w, f"{agent['type']}-{k}", NEW)
            w._add_rows(EVENT_ROW, [event(None, i, CUTOFF + timedelta(hours=k)) for i in range(4)])  # not older
            w._add_rows(SNAPSHOT_ROW, [snapshot(f"{agent['type']}-{k}", None, NEW)])
            w.flush()
    paths, version = set(wh.snapshot.files), wh.version
    for p in paths:  # their stats decide: not one of them is opened
        (root / p).write_bytes(b"garbage")

    result = wh.expire(MONTH, tables=ALL, now=NOW)

    assert result.version is None and result.rows == 0 and result.rows_removed == {}
    assert wh.version == version and set(wh.snapshot.files) == paths


# -- running executions ----------------------------------------------------------------------------
def test_running_executions_keep_their_rows_events_and_checkpoints(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    running(w, "run-1")
    finished(w, "done-1", OLD)
    running(w, "done-live")  # a live execution that has finished since: not running any more
    finished(w, "done-live", OLD + timedelta(hours=1))
    w.flush()
    # One file per table holding old rows of all three plus rows without an execution.
    w._add_rows(
        EVENT_ROW,
        [
            event("run-1", 0, OLD),
            event("run-1", 1, OLD),
            event("done-1", 2, OLD),
            event("done-live", 3, OLD),
            event(None, 4, OLD),
        ],
    )
    w._add_rows(
        SNAPSHOT_ROW,
        [
            snapshot("cp-run", "run-1", OLD, step=1),
            snapshot("cp-done", "done-1", OLD),
            snapshot("sim", None, OLD, kind="snapshot"),
        ],
    )
    w.flush()
    w._add_rows(EVENT_ROW, [event("run-1", 5, OLD)])  # a file of the running execution alone
    w.flush()

    result = wh.expire(MONTH, tables=ALL, now=NOW)

    assert rows(wh, "select execution_id, seq from events") == [("run-1", 0), ("run-1", 1), ("run-1", 5)]
    assert rows(wh, "select snapshot_id from snapshots") == [("cp-run",)]
    assert rows(wh, "select execution_id, status from executions") == [("run-1", "running")]
    assert ids(wh, "raw_executions_live") == {"run-1"}
    assert ids(wh, "messages") == set() and ids(wh, "attacks") == set()
    assert result.executions_expired == 2
    assert result.rows_removed == {
        "attacks": 2,
        "events": 3,
        "executions": 2,
        "executions_live": 1,
        "messages": 2,
        "snapshots": 2,
    }
    # It can still be resumed from its checkpoint: the state is intact.
    [(state,)] = wh.sql("select state from snapshots where snapshot_id = 'cp-run'").fetchall()
    assert json.loads(state) == {"step": 1, "memory": ["a", "b"]}


def test_a_running_execution_elsewhere_does_not_stop_old_files_being_dropped_unread(
    wh, root, config, open_writer
) -> None:
    busy = open_writer(wh, **{**config, "agent": OTHER_AGENT})
    running(busy, "run-1")
    busy._add_rows(EVENT_ROW, [event("run-1", 0, OLD)])
    busy.flush()
    w = open_writer(wh, **config)
    w._add_rows(EVENT_ROW, [event("old-1", i, OLD) for i in range(3)])
    w.flush()
    [old] = [f for f in wh.files("events") if f.partition["agent"] == "tool_agent"]
    (root / old.path).write_bytes(b"garbage")

    result = wh.expire(MONTH, now=NOW)

    assert result.rows_removed == {"events": 3} and result.files_dropped == 1
    assert rows(wh, "select execution_id, seq from events") == [("run-1", 0)]


# -- executions: cascade and statuses --------------------------------------------------------------
def test_expiring_executions_cascades_to_the_rows_of_those_ids_only(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    finished(w, "gone", OLD)
    finished(w, "kept", NEW)
    running(w, "gone")
    running(w, "kept")
    w._add_rows(EVENT_ROW, [event("gone", 0, NEW), event("kept", 1, OLD), event("kept", 2, NEW), event(None, 3, OLD)])
    w._add_rows(SNAPSHOT_ROW, [snapshot("cp-gone", "gone", NEW), snapshot("cp-kept", "kept", OLD)])
    w.flush()
    other = open_writer(wh, **{**config, "agent": OTHER_AGENT})
    finished(other, "other", NEW)
    other.flush()

    result = wh.expire(MONTH, tables=("executions",), now=NOW)

    # Every row of "gone", whatever its own age; the old event of "kept" stays (events not expired).
    for view in ("executions", "executions_all", "raw_executions_live", "messages", "attacks", "events", "snapshots"):
        assert "gone" not in ids(wh, view), view
    assert ids(wh, "executions") == {"kept", "other"}
    assert rows(wh, "select execution_id, seq from events") == [("kept", 1), ("kept", 2), (None, 3)]
    assert rows(wh, "select snapshot_id from snapshots") == [("cp-kept",)]
    assert ids(wh, "messages") == ids(wh, "attacks") == {"kept", "other"}
    assert result.executions_expired == 1
    assert result.rows_removed == {
        "attacks": 1,
        "events": 1,
        "executions": 1,
        "executions_live": 1,
        "messages": 1,
        "snapshots": 1,
    }
    [other_file] = [f for f in wh.files("executions") if f.partition["agent"] == "react"]
    assert other_file.path in {f.path for f in wh.snapshot.files.values()}


def test_statuses_choose_which_executions_go(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    finished(w, "ok", OLD, status="completed")
    finished(w, "bad", OLD, status="failed")
    w._add_rows(EVENT_ROW, [event("ok", 0, OLD), event("bad", 1, OLD), event(None, 2, OLD)])
    w.flush()

    events_only = wh.expire(MONTH, tables="events", statuses="failed", now=NOW)
    # The logs of completed executions stay; failed ones' and unattached ones go.
    assert events_only.rows_removed == {"events": 2}
    assert rows(wh, "select execution_id from events") == [("ok",)]

    result = wh.expire(MONTH, tables=("executions",), statuses=("failed",), now=NOW)
    assert result.executions_expired == 1
    assert ids(wh, "executions") == ids(wh, "messages") == {"ok"}
    assert rows(wh, "select execution_id, status from executions") == [("ok", "completed")]


def test_an_execution_with_one_recent_final_row_is_kept_whole(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    finished(w, "twice", OLD)
    w.flush()
    finished(w, "twice", NEW)  # the same id written again, recently (e.g. a re-run): it replaces the old add
    w.flush()
    result = wh.expire(MONTH, tables=("executions",), now=NOW)
    assert result.rows == 0 and result.version is None
    assert wh.sql("select count(*), min(finished_at) from executions").fetchall() == [(1, NEW)]


# -- commits, dry runs, time travel ----------------------------------------------------------------
def _mixed(wh: warehouse.Warehouse, config: dict[str, Any], open_writer: Callable[..., warehouse.Writer]) -> None:
    """Old and new rows of several tables, in two partitions and several files each."""
    for agent in (config["agent"], OTHER_AGENT):
        w = open_writer(wh, **{**config, "agent": agent})
        a = agent["type"]
        for k, at in enumerate((OLD, NEW)):
            finished(w, f"{a}-{k}", at)
            running(w, f"{a}-run-{k}")
            w._add_rows(
                EVENT_ROW,
                [event(f"{a}-{k}", i, at) for i in range(3)] + [event(f"{a}-run-{k}", 10 + i, OLD) for i in range(2)],
            )
            w._add_rows(
                SNAPSHOT_ROW, [snapshot(f"{a}-cp-{k}", f"{a}-{k}", at), snapshot(f"{a}-rcp-{k}", f"{a}-run-{k}", OLD)]
            )
            w.flush()
        w._add_rows(EVENT_ROW, [event(None, 100 + i, OLD if i % 2 else NEW) for i in range(6)])
        w.flush()


def test_one_call_makes_one_commit_recording_what_it_expired(wh, config, open_writer) -> None:
    _mixed(wh, config, open_writer)
    before = wh.version
    result = wh.expire(MONTH, tables=ALL, now=NOW)
    assert wh.version == result.version == before + 1
    [last] = wh.history(limit=1)
    assert last.operation == "delete" and last.files_removed == result.files_dropped + result.files_rewritten
    assert last.files_added == result.files_rewritten
    commit = wh.log.read(result.version)
    info = commit.info["expire"]
    assert info["cutoff"] == "2025-05-02T00:00:00Z" and info["tables"] == list(ALL)
    assert info["rows_removed"] == dict(result.rows_removed) and info["executions_expired"] == 2
    assert set(last.tables) == {"events", "snapshots", "executions", "messages", "attacks"}


def test_dry_run_changes_nothing_and_reports_what_the_real_run_removes(
    wh, root, config, open_writer, snapshot_tree
) -> None:
    _mixed(wh, config, open_writer)
    before_tree, before = snapshot_tree(root), wh.version
    dry = wh.expire(MONTH, tables=ALL, now=NOW, dry_run=True)
    assert snapshot_tree(root) == before_tree and wh.refresh() == before
    assert dry.dry_run and dry.version is None and dry.rows > 0

    real = wh.expire(MONTH, tables=ALL, now=NOW)
    assert not real.dry_run and real.version == before + 1
    for f in ("cutoff", "rows_removed", "files_dropped", "files_rewritten", "executions_expired", "files_by_table"):
        assert getattr(dry, f) == getattr(real, f), f


@pytest.mark.slow
def test_time_travel_still_sees_the_expired_rows(wh, root, config, open_writer) -> None:
    _mixed(wh, config, open_writer)
    before = wh.version
    counts = {
        v: wh.sql(f"select count(*) from {v}").fetchall()[0][0]
        for v in ("executions", "messages", "attacks", "events", "snapshots", "raw_executions_live")
    }
    wh.expire(MONTH, tables=ALL, now=NOW)
    past = warehouse.open(str(root), version=before)
    assert {v: past.sql(f"select count(*) from {v}").fetchall()[0][0] for v in counts} == counts
    assert wh.sql("select count(*) from events").fetchall()[0][0] < counts["events"]


@pytest.mark.slow
def test_every_view_answers_like_a_python_reference_after_expire(wh, config, open_writer) -> None:
    rng = random.Random(7)
    written: dict[str, list[dict[str, Any]]] = {t: [] for t in ("final", "live", "events", "snapshots")}
    for agent in (config["agent"], OTHER_AGENT):
        w = open_writer(wh, **{**config, "agent": agent})
        part = agent["type"]
        for flush in range(4):
            for j in range(6):
                eid = f"{part}-{flush}-{j}"
                kind = rng.choice(["final", "final", "running", "live-then-final", "none"])
                if kind in ("running", "live-then-final"):
                    running(w, eid)
                    written["live"].append({"eid": eid, "part": part})
                if kind in ("final", "live-then-final"):
                    at = rng.choice([OLD, NEW, CUTOFF, CUTOFF - timedelta(microseconds=1)])
                    status = rng.choice(["completed", "failed"])
                    finished(w, eid, at, status=status)
                    written["final"].append({"eid": eid, "part": part, "at": at, "status": status})
                for _ in range(rng.randint(0, 3)):
                    ts = rng.choice([OLD, NEW, CUTOFF, CUTOFF - timedelta(microseconds=1)])
                    e = None if rng.random() < 0.2 else eid
                    seq = len(written["events"])
                    w._add_rows(EVENT_ROW, [event(e, seq, ts)])
                    written["events"].append({"eid": e, "seq": seq, "ts": ts})
                if rng.random() < 0.5:
                    ts = rng.choice([OLD, NEW])
                    sid = f"cp-{eid}"
                    w._add_rows(SNAPSHOT_ROW, [snapshot(sid, eid, ts)])
                    written["snapshots"].append({"eid": eid, "sid": sid, "ts": ts})
            w.flush()

    tables, statuses = ("events", "snapshots", "executions"), ("failed",)
    result = wh.expire(MONTH, tables=tables, statuses=statuses, now=NOW)

    finals = {r["eid"]: r for r in written["final"]}
    run = {r["eid"] for r in written["live"]} - set(finals)
    gone = {e for e, r in finals.items() if r["status"] in statuses and r["at"] < CUTOFF}
    protected = run | {e for e, r in finals.items() if r["status"] not in statuses}
    assert gone and run and protected - run  # the data exercises every rule

    def stays(eid: str | None, ts: datetime) -> bool:
        return eid not in gone and (ts >= CUTOFF or eid in protected)

    assert ids(wh, "executions") == (set(finals) - gone) | run
    assert rows(wh, "select execution_id from executions_all") == sorted(
        [(e,) for e in finals if e not in gone] + [(r["eid"],) for r in written["live"] if r["eid"] not in gone],
        key=_key,
    )
    assert ids(wh, "raw_executions_live") == {r["eid"] for r in written["live"]} - gone
    assert ids(wh, "messages") == ids(wh, "attacks") == set(finals) - gone
    assert rows(wh, "select seq from events") == sorted(
        ((r["seq"],) for r in written["events"] if stays(r["eid"], r["ts"])), key=_key
    )
    assert rows(wh, "select snapshot_id from snapshots") == sorted(
        ((r["sid"],) for r in written["snapshots"] if stays(r["eid"], r["ts"])), key=_key
    )
    assert wh.sql("select sum(n) from scores").fetchall() == [(len(set(finals) - gone),)]  # finished ones
    assert result.executions_expired == len(gone)
    assert result.rows_removed["executions"] == len(gone)


def test_expire_on_s3_removes_what_it_removes_on_disk(wh, config, open_writer, s3_url: str, s3_options: dict) -> None:
    remote = warehouse.open(s3_url, storage_options=s3_options, create=True)
    for target in (wh, remote):
        _mixed(target, config, open_writer)
    local_result = wh.expire(MONTH, tables=ALL, now=NOW)
    remote_result = remote.expire(MONTH, tables=ALL, now=NOW)
    assert (remote_result.rows_removed, remote_result.files_by_table) == (
        local_result.rows_removed,
        local_result.files_by_table,
    )
    for view, key in (
        ("events", "execution_id, seq"),
        ("snapshots", "snapshot_id"),
        ("executions", "execution_id"),
        ("messages", "execution_id, seq"),
        ("raw_executions_live", "execution_id"),
    ):
        q = f"select {key} from {view}"
        assert rows(remote, q) == rows(wh, q), view


# -- concurrency -----------------------------------------------------------------------------------
def test_rows_committed_between_planning_and_commit_are_kept(wh, root, config, open_writer) -> None:
    w = open_writer(wh, **config)
    w._add_rows(EVENT_ROW, [event(None, i, OLD if i < 3 else NEW) for i in range(6)])
    w.flush()
    plan = plan_expire(wh, MONTH, tables=ALL, now=NOW)  # writes the rewritten file, commits nothing

    other = warehouse.open(str(root))
    late = open_writer(other, **config)
    late._add_rows(EVENT_ROW, [event("late", 100 + i, OLD) for i in range(4)])  # old, yet committed after the plan
    finished(late, "late", OLD)
    late.flush()

    result = commit_expire(wh, plan)

    assert result.version == other.version + 1 == wh.version
    assert rows(wh, "select seq from events") == [(3,), (4,), (5,), (100,), (101,), (102,), (103,)]
    assert ids(wh, "executions") == ids(wh, "messages") == {"late"}


def test_a_stale_plan_conflicts_and_expire_plans_again_from_the_latest_snapshot(wh, root, config, open_writer) -> None:
    w = open_writer(wh, **config)
    w._add_rows(EVENT_ROW, [event(None, i, OLD if i < 3 else NEW) for i in range(6)])
    w.flush()
    plan = plan_expire(wh, MONTH, now=NOW)
    rival = warehouse.open(str(root))
    assert rival.expire(MONTH, now=NOW).rows == 3

    with pytest.raises(CommitConflict, match="already removed"):
        commit_expire(wh, plan)
    # expire() refreshes first: nothing old is left, so nothing is committed.
    again = wh.expire(MONTH, now=NOW)
    assert again.rows == 0 and again.version is None and wh.version == rival.version
    assert rows(wh, "select seq from events") == [(3,), (4,), (5,)]


def test_a_dry_run_plan_cannot_be_committed(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    w._add_rows(EVENT_ROW, [event(None, 0, OLD), event(None, 1, NEW)])
    w.flush()
    plan = plan_expire(wh, MONTH, now=NOW, dry_run=True)
    with pytest.raises(WarehouseError, match="dry-run"):
        commit_expire(wh, plan)
    assert wh.sql("select count(*) from events").fetchall() == [(2,)]


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"older_than": timedelta(0)}, "positive timedelta"),
        ({"older_than": timedelta(days=-1)}, "positive timedelta"),
        ({"older_than": 30}, "positive timedelta"),
        (
            {"tables": ("sessions",)},
            "'sessions' (sessions have their own delete); choose from events, snapshots, executions",
        ),
        ({"tables": ("events", "logs")}, "'logs'"),
        ({"tables": ()}, "no table given"),
        ({"statuses": ("running",)}, "'running' (running executions are never expired); choose from completed, failed"),
        ({"statuses": "done"}, "'done'"),
        ({"now": "yesterday"}, "now must be a datetime"),
    ],
)
def test_bad_arguments_raise_a_warehouse_error_naming_them(wh, kwargs, message) -> None:
    kwargs = {"older_than": MONTH, **kwargs}
    with pytest.raises(WarehouseError) as exc:
        wh.expire(**kwargs)
    assert message in str(exc.value)
    assert wh.refresh() == 0


def test_a_time_travel_snapshot_can_only_dry_run(wh, root, config, open_writer) -> None:
    w = open_writer(wh, **config)
    w._add_rows(EVENT_ROW, [event(None, 0, OLD)])
    w.flush()
    past = warehouse.open(str(root), version=1)
    assert past.expire(MONTH, now=NOW, dry_run=True).rows_removed == {"events": 1}
    with pytest.raises(ReadOnlyWarehouse):
        past.expire(MONTH, now=NOW)


@pytest.mark.parametrize(
    "text, age",
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("3600s", timedelta(hours=1)),
        (" 1.5d ", timedelta(hours=36)),
    ],
)
def test_durations_parse(text: str, age: timedelta) -> None:
    assert parse_duration(text) == age


@pytest.mark.parametrize("text", ["30", "d", "30x", "-1d", "0d", "1d2h", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(WarehouseError, match="bad duration"):
        parse_duration(text)


# -- CLI -------------------------------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "warehouse", *args], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )


def test_cli_expire_dry_run_then_for_real(wh, root, config, open_writer, snapshot_tree) -> None:
    w = open_writer(wh, **config)
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)  # older than 30 days whenever the test runs
    finished(w, "old", long_ago)
    running(w, "busy", long_ago)
    w._add_rows(
        EVENT_ROW,
        [
            event("old", 0, long_ago),
            event("busy", 1, long_ago),
            event(None, 2, long_ago),
            event(None, 3, datetime.now(UTC)),
        ],
    )
    w.flush()
    url, before = str(root), snapshot_tree(root)

    dry = cli("expire", "--url", url, "--older-than", "30d", "--tables", "events,executions", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove" in dry.stdout and "dry run: 5 rows of 1 execution would be removed" in dry.stdout
    assert "messages" in dry.stdout and snapshot_tree(root) == before

    as_json = cli(
        "expire", "-u", url, "--older-than", "30d", "--tables", "events,executions", "--dry-run", "-f", "json"
    )
    assert json.loads(as_json.stdout) == [
        {"table": "attacks", "rows": 1, "files dropped": 1, "files rewritten": 0},
        {"table": "events", "rows": 2, "files dropped": 0, "files rewritten": 1},
        {"table": "executions", "rows": 1, "files dropped": 1, "files rewritten": 0},
        {"table": "messages", "rows": 1, "files dropped": 1, "files rewritten": 0},
    ]

    real = cli("expire", "--url", url, "--older-than", "30d", "--tables", "events,executions")
    assert real.returncode == 0, real.stderr
    assert "removed 5 rows of 1 execution in version 2" in real.stdout
    after = warehouse.open(url)
    assert rows(after, "select execution_id, seq from events") == [("busy", 1), (None, 3)]
    assert ids(after, "executions") == {"busy"}

    again = cli("expire", "--url", url, "--older-than", "30d")
    assert again.returncode == 0 and "nothing older than" in again.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--older-than", "30x"], "bad duration '30x'"),
        (["--older-than", "30d", "--tables", "events,sessions"], "'sessions'"),
        (["--older-than", "30d", "--statuses", "running"], "'running'"),
    ],
)
def test_cli_expire_errors_are_one_line(wh, root, args, message) -> None:
    res = cli("expire", "--url", str(root), *args)
    assert res.returncode == 1
    assert "Traceback" not in res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_cli_expire_has_help() -> None:
    res = cli("expire", "--help")
    assert res.returncode == 0 and "--older-than" in res.stdout and "--dry-run" in res.stdout
