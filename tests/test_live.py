"""Live executions: status revisions, logs and spans, checkpoints, resume after kill -9, follow/tail,
asyncio use, trajectories. Real files, real processes; nothing waits on a sleep."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from processes import Children

import warehouse
from warehouse.write import flushing as flushing_module

REPO = Path(__file__).resolve().parents[1]
LIVE_CONFIG = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "live", "config": {}}}


def executions(wh: warehouse.Warehouse, view: str = "executions") -> list[dict[str, Any]]:
    wh.refresh()
    return wh.engine.records(
        f"select execution_id, task_id, status, revision, error, metadata, owner, benign_score "
        f"from {view} order by execution_id, revision"
    )


# -- status revisions ------------------------------------------------------------------------------
@pytest.mark.slow
def test_live_execution_shows_running_then_only_its_final_revision(wh, config, open_writer, make_messages) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1", owner="agent-7", metadata={"difficulty": "hard"})
    w.flush()
    [row] = executions(wh)
    assert (row["status"], row["revision"], row["owner"]) == ("running", 1, "agent-7")

    assert ex.update(metadata={"progress": 0.5}, scores={"partial": 0.25}) == 2
    w.flush()
    [row] = executions(wh)
    assert row["revision"] == 2 and json.loads(row["metadata"]) == {"difficulty": "hard", "progress": 0.5}

    assert wh.sql("select count(*) from scores").fetchall() == [(0,)]  # scores count finished executions only
    assert wh.scores(by=[]).fetchall()[0][0] == 0
    ex.finish(benign_score=1.0, attack_score=0.0, messages=make_messages(), usage={"input_tokens": 10, "cost": 0.01})
    w.flush()
    assert wh.sql("select n, utility, asr from scores").fetchall() == [(1, 1.0, 0.0)]
    assert wh.scores(by=["agent"], where="task_id = 't1' or task_id = 'x'").fetchall()[0][1] == 1
    [row] = executions(wh)
    assert (row["status"], row["revision"], row["benign_score"]) == ("completed", 3, 1.0)
    assert json.loads(row["metadata"]) == {"difficulty": "hard", "progress": 0.5}  # kept from the updates
    assert [r["status"] for r in executions(wh, "executions_all")] == ["running", "running", "completed"]
    full = wh.execution(ex.execution_id)
    assert full["messages"] == make_messages() and full["scores"] == {"partial": 0.25} and full["cost"] == 0.01


def test_batch_rows_and_live_rows_mix_in_one_view(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    batch = [w.add_execution(task_id=f"b{i}", benign_score=1.0) for i in range(3)]
    w.start_execution("live-running")
    done = w.start_execution("live-done")
    done.finish(benign_score=0.0)
    w.flush()
    other = open_writer(wh, **LIVE_CONFIG)  # another partition, with only final rows
    other.add_execution(task_id="x", benign_score=0.5)
    other.flush()
    rows = {r["task_id"]: r for r in executions(wh)}
    assert sorted(rows) == ["b0", "b1", "b2", "live-done", "live-running", "x"]
    assert {rows[f"b{i}"]["execution_id"] for i in range(3)} == set(batch)
    assert rows["live-running"]["status"] == "running" and rows["live-done"]["status"] == "completed"
    assert wh.sql("select count(*) from executions where agent = 'live'").fetchall() == [(1,)]
    # every revision: 3 batch rows, 1 of live-running, 2 of live-done (running, completed), 1 in the other partition
    assert wh.sql("select count(*) from executions_all").fetchall() == [(7,)]
    assert wh.sql("select count(*) from executions_all where status = 'running'").fetchall() == [(2,)]


def test_failing_inside_the_context_manager_fails_the_execution(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    with pytest.raises(RuntimeError), w.start_execution("t-err") as ex:
        raise RuntimeError("tool crashed")
    with w.start_execution("t-ok") as ok:
        ok.log("info", "fine")
    w.flush()
    rows = {r["task_id"]: r for r in executions(wh)}
    assert rows["t-err"]["status"] == "failed" and rows["t-err"]["error"] == "RuntimeError: tool crashed"
    assert rows["t-ok"]["status"] == "completed"
    with pytest.raises(warehouse.WarehouseError, match="already failed"):
        ex.finish(benign_score=1.0)
    with pytest.raises(warehouse.WarehouseError, match="already completed"):
        ok.update(metadata={"x": 1})


def test_bad_result_values_raise_and_leave_the_execution_running(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1")
    with pytest.raises(warehouse.InvalidRecord, match="benign_score"):
        ex.finish(benign_score=float("nan"))
    with pytest.raises(warehouse.InvalidRecord, match="metadata"):
        ex.update(metadata={"x": object()})
    assert ex.status == "running" and ex.revision == 1
    ex.finish(benign_score=1.0)
    w.flush()
    assert [(r["status"], r["revision"]) for r in executions(wh)] == [("completed", 2)]
    with pytest.raises(warehouse.InvalidRecord, match="task_id"):
        w.start_execution("")
    with pytest.raises(warehouse.InvalidRecord, match="event_limit"):
        wh.writer(**config, event_limit=0, flush_interval=None)


# -- events ------------------------------------------------------------------------------------------
def events(wh: warehouse.Warehouse, execution_id: str) -> list[dict[str, Any]]:
    return list(wh.follow(execution_id, follow=False))


def test_logs_and_spans_become_ordered_events_with_durations(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1")
    ex.log("info", "calling search", source="agent-callback", attrs={"query": "unread"})
    with ex.span("tool:search", attrs={"page": 1}) as outer, ex.span("http:get") as inner:
        ex.log("debug", "GET /emails")
    with pytest.raises(KeyError), ex.span("tool:send"):
        raise KeyError("no such recipient")
    ex.finish(benign_score=1.0)
    w.flush()
    evs = events(wh, ex.execution_id)
    assert [(e["kind"], e["name"] or e["message"]) for e in evs] == [
        ("status", "running"),
        ("log", "calling search"),
        ("tool_start", "tool:search"),
        ("tool_start", "http:get"),
        ("log", "GET /emails"),
        ("tool_end", "http:get"),
        ("tool_end", "tool:search"),
        ("tool_start", "tool:send"),
        ("tool_error", "tool:send"),
        ("status", "completed"),
    ]
    by = {(e["kind"], e["name"]): e for e in evs}
    assert by[("tool_start", "http:get")]["parent_span_id"] == outer.span_id
    assert by[("tool_end", "http:get")]["span_id"] == inner.span_id
    assert evs[4]["parent_span_id"] == inner.span_id  # a log inside a span points at it
    assert by[("tool_start", "tool:search")]["parent_span_id"] is None
    assert by[("tool_end", "tool:search")]["duration_ms"] >= by[("tool_end", "http:get")]["duration_ms"] >= 0
    assert by[("tool_error", "tool:send")]["message"] == "KeyError: 'no such recipient'"
    assert by[("tool_error", "tool:send")]["level"] == "error"
    assert json.loads(evs[1]["attributes"]) == {"query": "unread"} and evs[1]["source"] == "agent-callback"
    assert len({e["trace_id"] for e in evs}) == 1 and evs[0]["trace_id"] == ex.trace_id


def test_long_messages_and_attributes_are_cut_with_marker_and_length(wh, config, open_writer) -> None:
    w = open_writer(wh, **config, event_limit=100)
    ex = w.start_execution("t1")
    ex.log("info", "é" * 250)
    ex.log("info", "short", attrs={"blob": "x" * 500})
    ex.log("info", "exactly", attrs={"k": "y" * 80})  # under the limit: kept whole
    w.flush()
    logs = [e for e in events(wh, ex.execution_id) if e["kind"] == "log"]
    assert logs[0]["message"] == "é" * 100 + "…[truncated: 250 chars]" and logs[0]["message_length"] == 250
    cut = json.loads(logs[1]["attributes"])
    assert cut["_truncated"] is True and cut["_length"] == logs[1]["attributes_length"] == len(
        json.dumps({"blob": "x" * 500}, separators=(",", ":"))
    )
    assert cut["_preview"].startswith('{"blob":"xxx') and len(cut["_preview"]) == 100
    assert logs[2]["attributes_length"] is None and json.loads(logs[2]["attributes"]) == {"k": "y" * 80}


def test_logging_never_raises_and_reports_drops_on_close(wh, config, open_writer, caplog) -> None:
    w = open_writer(wh, **config, max_buffered_events=5)
    ex = w.start_execution("t1")  # its status event is the 1st buffered event
    ex.log("info", "odd attrs", attrs={"obj": object(), 3: {1, 2}})  # not JSON: kept as text
    ex.log("info", "bad \udc80 surrogate")  # cannot be stored: dropped, not raised
    ex.log(None, 12345)  # odd level and message types are coerced
    for i in range(10):
        ex.log("info", f"line {i}")  # the buffer holds 5 events: the rest are dropped
    dropped = w.dropped_events
    assert sum(dropped.values()) == 1 + 8 and any("max_buffered_events" in r for r in dropped)
    w.flush()
    w.close()
    ex.log("info", "after close")  # still does not raise
    with caplog.at_level(logging.WARNING, logger="warehouse"):
        w2 = wh.writer(**config, flush_interval=None)
        w2.start_execution("t2").log("info", "\udc80")
        w2.close()
    assert "dropped 1 event" in caplog.text
    logs = [e for e in events(wh, ex.execution_id) if e["kind"] == "log"]
    assert [e["message"] for e in logs] == ["odd attrs", "12345", "line 0", "line 1"]
    assert "object object" in json.loads(logs[0]["attributes"])["obj"] and logs[1]["level"] is None


# -- checkpoints and resume ----------------------------------------------------------------------
def test_checkpoint_is_durable_when_it_returns(wh, root, config, open_writer) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1", owner="agent-7")
    state = {"messages": [{"role": "user", "content": "Réunion 🙂"}], "env": {"x": [1, 2.5, None]}}
    cid = ex.checkpoint(state, step=3, thread_id="th-1")
    other = warehouse.open(str(root))  # another reader, the writer still open
    cp = other.latest_checkpoint(ex.execution_id, owner="agent-7")
    assert (cp.checkpoint_id, cp.state, cp.step, cp.thread_id, cp.owner) == (cid, state, 3, "th-1", "agent-7")
    assert other.sql("select status from executions").fetchall() == [("running",)]
    ex.checkpoint({"step": 4}, step=4)
    ex.checkpoint({"step": 5}, step=5)
    assert [c.step for c in wh.checkpoints(ex.execution_id)] == [3, 4, 5]
    assert wh.latest_checkpoint(ex.execution_id).state == {"step": 5}


def test_checkpoint_bad_input_and_ownership(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1", owner="agent-7")
    version = wh.version
    with pytest.raises(warehouse.InvalidRecord, match="state is not JSON-serialisable"):
        ex.checkpoint({"env": object()}, step=1)
    with pytest.raises(warehouse.InvalidRecord, match="state"):
        ex.checkpoint({"x": float("inf")}, step=1)
    with pytest.raises(warehouse.InvalidRecord, match="state is required"):
        ex.checkpoint(None)
    assert wh.version == version  # nothing committed by a refused checkpoint
    ex.checkpoint({"ok": True}, step=1)
    with pytest.raises(warehouse.PermissionDenied, match="agent-7"):
        wh.latest_checkpoint(ex.execution_id, owner="agent-8")
    with pytest.raises(warehouse.ExecutionNotFound):
        wh.latest_checkpoint("no-such-execution")
    with pytest.raises(warehouse.ExecutionNotFound):
        wh.checkpoints("no-such-execution")
    ex2 = w.start_execution("t2")
    w.flush()
    assert wh.latest_checkpoint(ex2.execution_id) is None and wh.checkpoints(ex2.execution_id) == []


def test_resume_plan_counts_runs_and_retries_failed(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    for _ in range(2):
        w.add_execution(task_id="done", benign_score=1.0)
    w.add_execution(task_id="flaky", benign_score=1.0)
    w.add_execution(task_id="flaky", error="rate limited")
    interrupted = w.start_execution("cut")
    interrupted.checkpoint({"turn": 2}, step=2)
    w.flush()
    other = open_writer(wh, **LIVE_CONFIG)  # the same task under another config does not count
    other.add_execution(task_id="fresh", benign_score=1.0)
    other.flush()

    plan = {p.task_id: p for p in wh.resume_plan(config, ["done", "flaky", "cut", "fresh"], runs=2)}
    assert (plan["done"].completed, plan["done"].runs_needed, plan["done"].done) == (2, 0, True)
    assert (plan["flaky"].completed, plan["flaky"].failed, plan["flaky"].runs_needed) == (1, 1, 1)
    assert plan["cut"].running == (interrupted.execution_id,) and plan["cut"].runs_needed == 2
    assert plan["cut"].resume_execution_id == interrupted.execution_id and plan["cut"].checkpoint.state == {"turn": 2}
    assert plan["fresh"].runs_needed == 2
    no_retry = {
        p.task_id: p for p in wh.resume_plan(warehouse.RunConfig.of(**config), ["flaky"], runs=2, retry_failed=False)
    }
    assert no_retry["flaky"].runs_needed == 0
    by_hash = wh.resume_plan(warehouse.RunConfig.of(**config).hash, ["done"], runs=3)
    assert by_hash[0].runs_needed == 1
    with pytest.raises(warehouse.WarehouseError, match="runs"):
        wh.resume_plan(config, ["done"], runs=0)


def test_killed_execution_resumes_from_its_last_checkpoint(root, wh, children: Children) -> None:
    proc = children.start("live_crash.py", root, "agent-7", 3)
    for step in (1, 2, 3):
        line = children.expect_line(proc, f"checkpointed {step} ")
    execution_id = line.split()[2]
    children.expect_line(proc, "waiting")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    wh.refresh()
    [row] = executions(wh)
    assert (row["execution_id"], row["status"]) == (execution_id, "running")
    cp = wh.latest_checkpoint(execution_id, owner="agent-7")
    assert cp.step == 3 and cp.state == {"messages": [{"role": "user", "content": "turn 3"}], "env": {"step": 3}}
    [plan] = wh.resume_plan(LIVE_CONFIG, ["t-crash"])
    assert plan.resume_execution_id == execution_id and plan.checkpoint == cp
    assert [e["message"] for e in events(wh, execution_id) if e["kind"] == "log"] == ["step 1", "step 2", "step 3"]

    with wh.writer(**LIVE_CONFIG, flush_interval=None) as w:
        with pytest.raises(warehouse.PermissionDenied):
            w.resume_execution(execution_id, owner="agent-8")
        ex = w.resume_execution(execution_id, owner="agent-7")
        assert ex.revision == 1 and ex.task_id == "t-crash"
        ex.checkpoint({"env": {"step": 4}}, step=4)
        ex.finish(benign_score=1.0, metadata={"resumed": True})
    [row] = executions(wh)
    assert (row["execution_id"], row["status"], row["revision"]) == (execution_id, "completed", 2)
    assert json.loads(row["metadata"]) == {"attempt": 1, "resumed": True}
    assert wh.resume_plan(LIVE_CONFIG, ["t-crash"])[0].done
    with wh.writer(**LIVE_CONFIG, flush_interval=None) as w:
        with pytest.raises(warehouse.WarehouseError, match="already completed"):
            w.resume_execution(execution_id)
        with pytest.raises(warehouse.ExecutionNotFound):
            w.resume_execution("nope")
    with (
        wh.writer(dataset="other", agent="x", flush_interval=None) as w,
        pytest.raises(warehouse.WarehouseError, match="belongs to config"),
    ):
        w.resume_execution(execution_id)


# -- follow / tail -----------------------------------------------------------------------------------
def test_follow_yields_events_as_other_writers_commit_them(root, wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1")
    ex.log("info", "first")
    w.flush()
    reader = warehouse.open(str(root))
    stream = reader.follow(ex.execution_id, follow=True, poll_interval=0.01, timeout=60)
    assert [next(stream)["name"], next(stream)["message"]] == ["running", "first"]
    ex.log("warn", "second")
    unrelated = w.start_execution("t2")
    unrelated.log("info", "not followed")
    w.flush()
    assert next(stream)["message"] == "second"  # blocks until the commit is seen; t2's events are skipped
    ex.finish(benign_score=1.0)
    w.flush()
    e = next(stream)
    assert (e["kind"], e["name"]) == ("status", "completed")
    stream.close()
    assert [e["message"] for e in reader.follow(last=2, follow=False)] == ["not followed", None]


def test_tail_command_prints_events(root, wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1")
    ex.log("error", "search failed", attrs={"code": 500})
    with ex.span("tool:search"):
        pass
    w.flush()
    env = {**os.environ, "WAREHOUSE_URL": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", "warehouse", "tail", "-e", ex.execution_id[-10:], "--format", "jsonl"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr  # a unique suffix of the id will do, as for `show`
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["kind"] for x in lines] == ["status", "log", "tool_start", "tool_end"]
    out = subprocess.run(
        [sys.executable, "-m", "warehouse", "tail", "-n", "2"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert (
        out.returncode == 0
        and "tool_start" in out.stdout
        and "tool_end" in out.stdout
        and "search failed" not in out.stdout
    )
    out = subprocess.run(
        [sys.executable, "-m", "warehouse", "tail", "-u", str(root / "nowhere")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 1 and "no warehouse" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "warehouse", "tail", "-e", "zzz"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert out.returncode == 1 and "no execution with id 'zzz'" in out.stderr


# -- asyncio --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_async_writer_many_tasks_never_commit_on_the_event_loop(wh, config) -> None:
    loop_threads: set[int] = set()
    io_threads: list[int] = []
    real_commit, real_write = wh.engine.commit, flushing_module.write_data_file

    def spy_commit(**kw: Any):
        io_threads.append(threading.get_ident())
        return real_commit(**kw)

    def spy_write(*a: Any, **kw: Any):
        io_threads.append(threading.get_ident())
        return real_write(*a, **kw)

    wh.engine.commit = spy_commit  # a spy: records the calling thread, then does the real commit
    flushing_module.write_data_file = spy_write
    try:

        async def agent(w: Any, i: int) -> str:
            loop_threads.add(threading.get_ident())
            async with w.start_execution(f"task-{i % 20}", owner=f"agent-{i}") as ex:
                ex.log("info", f"start {i}")
                async with ex.span("tool:search", attrs={"i": i}):
                    await asyncio.sleep(0)  # let the other tasks interleave here
                ex.update(metadata={"i": i})
                if i % 10 == 0:
                    await ex.checkpoint({"i": i}, step=1)
                ex.finish(benign_score=float(i % 2), messages=[{"role": "user", "content": f"q{i}"}])
            return ex.execution_id

        async def main() -> list[str]:
            async with wh.async_writer(**config, flush_rows=50, flush_interval=0.05) as w:
                ids = await asyncio.gather(*(agent(w, i) for i in range(300)))
                assert w.dropped_events == {}
            return ids

        ids = asyncio.run(main())
    finally:
        flushing_module.write_data_file = real_write
        del wh.engine.commit
    assert io_threads and not loop_threads & set(io_threads)
    wh.refresh()
    assert wh.sql(
        "select count(*), count(distinct execution_id), sum(benign_score) from executions where status = 'completed'"
    ).fetchall() == [(300, 300, 150.0)]
    assert sorted(r[0] for r in wh.sql("select execution_id from executions").fetchall()) == sorted(ids)
    assert wh.sql("select count(*) from events").fetchall() == [(300 * 5,)]
    assert wh.sql("select count(*) from snapshots").fetchall() == [(30,)]
    assert wh.sql("select count(*) from messages").fetchall() == [(300,)]


# -- trajectories -----------------------------------------------------------------------------------
def test_trajectories_filter_by_metadata_and_aggregate_by_group(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    expected: dict[int, list[float]] = {}
    for g in range(4):
        for r in range(3):
            reward = (g * 3 + r) % 5 / 4
            expected.setdefault(g, []).append(reward)
            w.add_trajectory(
                messages=[{"role": "user", "content": f"q{g}"}, {"role": "assistant", "content": "a"}],
                completions=[{"id": f"cmpl-{g}-{r}", "choices": [{"message": {"content": "a"}}]}],
                rewards=reward,
                group=g,
                replica=r,
                advantages=reward - 0.5,
                metadata={"task_id": f"gsm8k_{g:03d}", "difficulty": "hard" if g % 2 else "easy", "bbox": [1, 2, 3, 4]},
            )
    w.add_execution(task_id="not-a-trajectory", benign_score=1.0)
    w.flush()
    lf = wh.trajectories()
    df = lf.collect()
    assert df.height == 12 and set(df["task_id"]) == {f"gsm8k_{g:03d}" for g in range(4)}
    assert df.filter(pl.col("group") == "1").sort("replica")["advantages"].to_list() == [[r - 0.5] for r in expected[1]]
    hard = wh.trajectories(where={"difficulty": "hard"}, metadata_keys=["difficulty", "bbox"]).collect()
    assert hard.height == 6 and set(hard["difficulty"]) == {"hard"} and hard["bbox"][0] == "[1,2,3,4]"
    means = dict(lf.group_by("group").agg(pl.col("rewards").mean()).collect().iter_rows())
    assert means == pytest.approx({str(g): sum(v) / 3 for g, v in expected.items()})
    first = wh.trajectories(with_messages=True).filter(pl.col("group") == "2").collect()
    assert [m["content"] for m in first["messages"][0]] == ["q2", "a"]
    assert json.loads(first["completions"][0])[0]["id"].startswith("cmpl-2-")
    with pytest.raises(warehouse.InvalidRecord, match="rewards"):
        w.add_trajectory(rewards=float("nan"))


# -- the same on S3 ---------------------------------------------------------------------------------
def test_live_execution_checkpoint_resume_and_follow_on_s3(s3_url, s3_options, config) -> None:
    wh = warehouse.open(s3_url, create=True, storage_options=s3_options)
    with wh.writer(**config, flush_interval=None) as w:
        ex = w.start_execution("t1", owner="agent-7")
        with ex.span("tool:search"):
            ex.log("info", "searching", attrs={"q": "unread"})
        ex.checkpoint({"turn": 1}, step=1)  # durable: committed to the bucket before it returns
        reader = warehouse.open(s3_url, storage_options=s3_options)
        assert reader.latest_checkpoint(ex.execution_id, owner="agent-7").state == {"turn": 1}
        assert reader.sql("select status from executions").fetchall() == [("running",)]
        stream = reader.follow(ex.execution_id, poll_interval=0.01, timeout=60)
        assert [e["kind"] for e in (next(stream), next(stream), next(stream), next(stream))] == [
            "status",
            "tool_start",
            "log",
            "tool_end",
        ]
    with wh.writer(**config, flush_interval=None) as w2:
        w2.resume_execution(ex.execution_id, owner="agent-7").finish(benign_score=1.0)
    e = next(stream)
    assert (e["kind"], e["name"], e["message"]) == ("status", "running", "resumed at revision 1")
    assert (next(stream)["name"]) == "completed"
    stream.close()
    reader.refresh()
    assert reader.sql("select status, revision from executions").fetchall() == [("completed", 2)]


def test_checkpoint_and_event_lookups_open_only_the_files_that_can_hold_the_id(wh, root, config, open_writer) -> None:
    w = open_writer(wh, **config)
    exs = []
    for i in range(3):
        exs.append(ex := w.start_execution(f"t{i}"))
        ex.log("info", f"hello {i}")
        ex.checkpoint({"i": i}, step=i)  # one commit each: one snapshots file and one events file per execution
    keep = {
        f.path
        for f in wh.files("snapshots") + wh.files("events")
        if f.stats["execution_id"]["min"] <= exs[1].execution_id <= f.stats["execution_id"]["max"]
    }
    assert len(keep) == 2  # the manifest's min/max of execution_id single out one file per table
    for f in wh.files("snapshots") + wh.files("events"):
        if f.path not in keep:
            (root / f.path).write_bytes(b"not parquet")  # reading any other file would now fail
    assert wh.latest_checkpoint(exs[1].execution_id).state == {"i": 1}
    assert [c.step for c in wh.checkpoints(exs[1].execution_id)] == [1]
    assert [e["message"] for e in wh.follow(exs[1].execution_id, follow=False) if e["kind"] == "log"] == ["hello 1"]
    with pytest.raises(duckdb.InvalidInputException, match="too small to be a Parquet file") as err:
        wh.sql("select count(*) from snapshots").fetchall()  # the garbling is real
    assert any(f.path in str(err.value) for f in wh.files("snapshots") if f.path not in keep)


def test_latest_checkpoint_reads_only_the_newest_file(wh, root, config, open_writer) -> None:
    w = open_writer(wh, **config)
    ex = w.start_execution("t1")
    for step in range(5):
        ex.checkpoint({"step": step}, step=step)  # one snapshots file per checkpoint
    files = sorted(wh.files("snapshots"), key=lambda f: f.stats["created_at"]["max"])
    for f in files[:-1]:
        (root / f.path).write_bytes(b"not parquet")  # reading an older checkpoint's file would fail
    assert wh.latest_checkpoint(ex.execution_id).state == {"step": 4}


def test_load_checkpoint_by_id(wh, config, open_writer) -> None:
    w = open_writer(wh, **config)
    a = w.start_execution("t1", owner="agent-7")
    b = w.start_execution("t2")
    generated = a.checkpoint({"n": 0}, step=0)
    a.checkpoint({"n": 1}, step=1, checkpoint_id="turn_1")
    b.checkpoint({"n": 2}, step=1, checkpoint_id="turn_1")  # caller-given ids may repeat across executions
    assert wh.load_checkpoint(generated).state == {"n": 0}
    assert wh.load_checkpoint("turn_1", execution_id=a.execution_id, owner="agent-7").state == {"n": 1}
    assert wh.load_checkpoint("turn_1", execution_id=b.execution_id).state == {"n": 2}
    with pytest.raises(warehouse.CheckpointNotFound, match="several executions"):
        wh.load_checkpoint("turn_1")
    with pytest.raises(warehouse.CheckpointNotFound, match="turn_9"):
        wh.load_checkpoint("turn_9", execution_id=a.execution_id)
    with pytest.raises(warehouse.PermissionDenied):
        wh.load_checkpoint(generated, owner="agent-8")
