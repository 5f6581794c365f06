"""The writer's write-ahead log: every acknowledged record survives `kill -9` and is committed exactly once.

Writer processes (tests/procs/wal_writer.py) are killed with SIGKILL at points they announce on
stdout: with records never flushed, during a flush before its commit, after its commit landed but
before its WAL segment was deleted, in the middle of appending a WAL line, and in the middle of
recovering another writer's WAL. The next writer opened on the same WAL directory must commit every
acknowledged record exactly once (rows are counted by execution_id).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from processes import Children, watchdog

import warehouse
from warehouse.core.storage import Store
from warehouse.write import wal as wal_module
from warehouse.write.wal import WalError, WalLocked

CONFIG = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "walled", "config": {}}}
N = 12


# -- helpers ---------------------------------------------------------------------------------------
def run_until_kill(
    children: Children, root: Any, wal: Path, tag: str, mode: str, n: int = N, options: dict | None = None
) -> tuple[list[str], subprocess.Popen, list[str]]:
    """Start a WAL writer, read what it acknowledged until its kill point, kill -9 it.
    Returns (acknowledged execution ids, the process, other lines it printed)."""
    args = [root, wal, tag, mode, n] + ([json.dumps(options)] if options else [])
    proc = children.start("wal_writer.py", *args)
    acked, said = [], []
    with watchdog([proc], 90):
        while True:
            line = children.expect_line(proc, "")
            assert line, f"{tag}: the writer exited on its own; stderr:\n{children.stderr(proc)}"
            word, *rest = line.split()
            if word == "added":
                acked.append(rest[0])
            elif word in ("opened", "recovered"):
                said.append(line.strip())
            else:
                assert line.strip() in ("waiting", f"paused {mode}"), line
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return acked, proc, said


def execution_counts(wh: warehouse.Warehouse) -> Counter[str]:
    """Final rows (table `executions`, as stored: no de-duplication) per execution id."""
    wh.refresh()
    return Counter(dict(wh.sql("select execution_id, count(*) from raw_executions group by 1").fetchall()))


def assert_each_once(wh: warehouse.Warehouse, ids: list[str]) -> None:
    counts = execution_counts(wh)
    assert {i: counts.get(i, 0) for i in ids} == {i: 1 for i in ids}
    messages = dict(wh.sql("select execution_id, count(*) from raw_messages group by 1").fetchall())
    assert {i: messages.get(i, 0) for i in ids if not i.endswith("-live")} == {
        i: 2 for i in ids if not i.endswith("-live")
    }
    tokens = [c.token for c in wh.log.commits()]
    assert [t for t, k in Counter(tokens).items() if k > 1] == [], "a token was committed twice"


def live_revisions(wh: warehouse.Warehouse, eid: str) -> tuple[list[int], int]:
    """(in-flight revisions, log events) recorded for a live execution."""
    revs = [
        r
        for (r,) in wh.sql(
            "select revision from raw_executions_live where execution_id = ? order by 1", [eid]
        ).fetchall()
    ]
    ((logs,),) = wh.sql("select count(*) from raw_events where execution_id = ? and kind = 'log'", [eid]).fetchall()
    return revs, logs


def kinds_of_trouble(wh: warehouse.Warehouse) -> set[str]:
    """What doctor finds besides orphans (a killed flush leaves its data files behind)."""
    return {f.kind for f in wh.doctor().findings if f.severity != "orphan"}


def segments(wal: Path) -> list[str]:
    return sorted(p.name for p in wal.iterdir() if p.name != "LOCK")


def recover(wh: warehouse.Warehouse, wal: Path, **config: Any) -> list[int]:
    """Open (and close) a writer on `wal`: the versions its recovery committed or found."""
    w = wh.writer(**(config or CONFIG), flush_interval=None, wal=wal)
    versions = [c.version for c in w._wal.recovered]
    w.close()
    return versions


def add(w: warehouse.Writer, eid: str) -> None:
    """One execution with two messages, as the writer processes add them."""
    w.add_execution(
        task_id="t",
        execution_id=eid,
        messages=[{"role": "user", "content": f"{eid} q"}, {"role": "assistant", "content": f"{eid} a"}],
    )


def abandon(w: warehouse.Writer) -> None:
    """What a crash does to a writer, in-process: its buffers are gone, its WAL files and lock released."""
    w._wal._release()
    w._closed = True


# -- kill -9 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["unflushed", "before_commit", "after_commit", "torn"])
def test_killed_writer_acknowledged_records_are_committed_exactly_once(
    tmp_path: Path, children: Children, mode: str
) -> None:
    root, wal = tmp_path / "wh", tmp_path / "wal"
    warehouse.open(str(root), create=True)
    acked, proc, _ = run_until_kill(children, root, wal, "k", mode)
    expected_acked = N * (2 if mode == "after_commit" else 1) + 1
    assert len(acked) == expected_acked and "k-torn" not in acked
    before = warehouse.open(str(root))
    if mode == "after_commit":  # the crashed writer's own commit holds the first N and the live execution
        assert set(execution_counts(before)) == {f"k-{i}" for i in range(N)} | {"k-live"}
        assert len(segments(wal)) == 2  # the committed batch's segment, not yet deleted, and the late records'
    else:
        assert execution_counts(before) == Counter()

    recovered = recover(before, wal)
    wh = warehouse.open(str(root))
    assert_each_once(wh, acked)
    assert set(execution_counts(wh)) == set(acked), "a record that was never acknowledged was committed"
    assert live_revisions(wh, "k-live") == ([1, 2], 1)
    assert wh.sql("select status from executions where execution_id = 'k-live'").fetchall() == [("completed",)]
    assert wh.sql("select count(*) from raw_configs").fetchall() == [(1,)]
    assert segments(wal) == []
    assert kinds_of_trouble(wh) == set()
    # The recovered batch is committed with the token the crashed writer's batch had (or would have had).
    [made] = [c for c in wh.log.commits() if c.info.get("wal")]
    source = made.info["wal"]
    assert made.token == f"{source['writer_id']}:{source['seq']}" and made.version in recovered
    assert source["seq"] == (2 if mode == "after_commit" else 1)
    assert made.writer["pid"] == os.getpid() and proc.pid != os.getpid()


def test_a_chain_of_killed_writers_and_recoveries_loses_and_repeats_nothing(tmp_path: Path, children: Children) -> None:
    root, wal = tmp_path / "wh", tmp_path / "wal"
    warehouse.open(str(root), create=True)
    acked: list[str] = []
    # r2 recovers r1's unflushed records when it opens; r3 recovers r2's (whose last flush committed
    # without deleting its segment) and is killed after its recovery commit, before deleting the
    # segment; r4 must find that commit and not make another.
    for tag, mode in [("r1", "unflushed"), ("r2", "after_commit"), ("r3", "recovering"), ("r4", "torn")]:
        ids, _, said = run_until_kill(children, root, wal, tag, mode)
        acked += ids
        if mode == "recovering":
            assert said[-1].startswith("recovered ")
    recover(warehouse.open(str(root)), wal)
    wh = warehouse.open(str(root))
    assert_each_once(wh, acked)
    assert set(execution_counts(wh)) == set(acked)
    assert segments(wal) == []
    assert kinds_of_trouble(wh) == set()


def test_two_writers_on_one_wal_directory_is_a_clear_error(
    tmp_path: Path, children: Children, wh: warehouse.Warehouse
) -> None:
    wal = tmp_path / "wal"
    proc = children.start("wal_writer.py", wh.url, wal, "p", "unflushed", 3)
    with watchdog([proc], 60):
        children.line(proc, "opened")
        for _ in range(4):
            children.line(proc, "added")
        children.expect_line(proc, "waiting")
        with pytest.raises(WalLocked) as err:
            wh.writer(**CONFIG, flush_interval=None, wal=wal)
        message = str(err.value)
        assert str(wal) in message and f"pid {proc.pid}" in message and "one writer at a time" in message
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # The OS released the dead holder's lock: the next writer takes the directory and recovers.
    assert len(recover(wh, wal)) == 1
    assert_each_once(wh, ["p-0", "p-1", "p-2", "p-live"])

    # Within one process too (the lock is per open file, not per process).
    with wh.writer(**CONFIG, flush_interval=None, wal=wal) as w:
        with pytest.raises(WalLocked):
            wh.writer(**CONFIG, flush_interval=None, wal=wal)
        add(w, "same-process")
    with wh.writer(**CONFIG, flush_interval=None, wal=wal):  # closed: free again
        pass


def test_wal_recovers_into_an_s3_warehouse(tmp_path: Path, children: Children, s3_url: str, s3_options: dict) -> None:
    warehouse.open(s3_url, storage_options=s3_options, create=True)
    wal = tmp_path / "wal"  # the WAL itself is always local
    acked, _, _ = run_until_kill(children, s3_url, wal, "s3", "after_commit", 5, options=s3_options)
    remote = warehouse.open(s3_url, storage_options=s3_options)
    assert len(execution_counts(remote)) == 6  # the crashed writer's commit: 5 and the live execution
    recovered = recover(remote, wal)
    assert len(recovered) == 2  # the committed batch found by its token, the late records committed now
    wh = warehouse.open(s3_url, storage_options=s3_options)
    assert_each_once(wh, acked)
    assert set(execution_counts(wh)) == set(acked) and len(acked) == 11
    assert segments(wal) == []


# -- in-process behaviour ------------------------------------------------------------------------------
def varied_records(w: warehouse.Writer, tz: timezone) -> None:
    t0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=tz)
    w.add_execution(
        task_id="ünïcode-task",
        execution_id="v-1",
        messages=[
            {"role": "system", "content": "Réponds en français 🙂"},
            {"role": "user", "content": [{"type": "text", "text": 'line\nbreak \u2028 and "quotes"'}], "timestamp": t0},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
            {
                "role": "tool",
                "tool_call_id": "c1",
                "name": "f",
                "content": "42",
                "tokens": 3,
                "step": 1,
                "metadata": {"k": [1, 2.5, None]},
            },
        ],
        usage={"input_tokens": 2**40, "output_tokens": 7, "cost": 0.1 + 0.2},
        benign_score=1.0,
        attack_score=0.0,
        attacks=[{"vector_id": "v1", "type": "inject", "content": "ignore all", "metadata": {"x": 1}}],
        metadata={"difficulty": "hard", "nested": {"list": [1, "two"]}},
        started_at=t0,
        finished_at=t0 + timedelta(seconds=1.5),
        model="m",
        scores={"f1": 0.25, "exact": 1.0},
        sample=3,
        group="g",
        reward=-1.5,
        advantages=[0.1, -0.2, 1e-300],
        trace_id="tr",
        span_id="sp",
    )
    w.add_execution(task_id="t2", execution_id="v-2", status="failed", error="Boom: ✗", finished_at=t0)
    w.add_trajectory(
        messages=[{"role": "user", "content": "hi"}],
        completions=[{"text": "c"}],
        rewards=0.5,
        group=7,
        replica=1,
        advantages=0.3,
        metadata={"task_id": "traj"},
        execution_id="v-3",
    )
    ex = w.start_execution("live", execution_id="v-live", started_at=t0, metadata={"a": 1}, trace_id="tr-live")
    ex.update(scores={"progress": 0.5}, usage={"input_tokens": 10})
    ex.fail(ValueError("nope"), messages=[{"role": "user", "content": "x"}])


# table -> (order, columns left out: the writer's clock, where no explicit time was given)
TABLES = {  # table: (order, columns that differ between two runs: clocks, and write ids, which name each add)
    "raw_executions": ("execution_id, revision", "finished_at, duration_ms, write_id"),
    "raw_executions_live": ("execution_id, revision", "write_id"),
    "raw_messages": ("execution_id, seq", "write_id"),
    "raw_attacks": ("execution_id, vector_id", "write_id"),
    "raw_events": ("execution_id, seq", "timestamp"),
}


@pytest.mark.slow
def test_recovered_rows_are_exactly_what_a_flush_would_have_written(tmp_path: Path) -> None:
    tz = timezone(timedelta(hours=-5, minutes=-30))
    plain = warehouse.open(str(tmp_path / "plain"), create=True)
    with plain.writer(**CONFIG, flush_interval=None) as w:
        varied_records(w, tz)
    walled = warehouse.open(str(tmp_path / "walled"), create=True)
    w = walled.writer(**CONFIG, flush_interval=None, wal=tmp_path / "wal")
    varied_records(w, tz)
    abandon(w)
    assert execution_counts(walled) == Counter()
    recover(walled, tmp_path / "wal")
    walled.refresh()
    for table, (order, clock) in TABLES.items():
        q = f"select * {f'exclude ({clock})' if clock else ''} from {table} order by {order}"
        rows = plain.sql(q).fetchall()
        assert rows and walled.sql(q).fetchall() == rows, table
    q = "select execution_id, finished_at, duration_ms from raw_executions where execution_id in ('v-1', 'v-2') order by 1"
    assert walled.sql(q).fetchall() == plain.sql(q).fetchall()


def test_each_flush_deletes_its_segment_and_close_leaves_an_empty_wal(tmp_path: Path, wh: warehouse.Warehouse) -> None:
    wal = tmp_path / "wal"
    with wh.writer(**CONFIG, flush_interval=None, wal=wal) as w:
        assert len(segments(wal)) == 1  # the open segment (a header only)
        add(w, "a")
        w.flush()
        assert [int(s.split("-")[1].split(".")[0]) for s in segments(wal)] == [2]
        add(w, "b")
        [seg] = wal_module.read_dir(wal)
        assert (seg.seq, seg.take, len(seg.records), seg.torn_bytes) == (2, None, 1, 0)
    assert segments(wal) == []
    assert_each_once(wh, ["a", "b"])


def test_a_commit_that_fails_leaves_the_records_in_the_wal_for_the_next_writer(
    tmp_path: Path, wh: warehouse.Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = tmp_path / "wal"
    w = wh.writer(**CONFIG, flush_interval=None, wal=wal)
    add(w, "x")

    def refuse(self, rel, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Store, "put_if_absent", refuse)
    with pytest.raises(OSError):
        w.close()
    monkeypatch.undo()
    assert [s.take is not None for s in wal_module.read_dir(wal)] == [True]
    assert recover(wh, wal) == [1]
    assert_each_once(wh, ["x"])


def test_wal_of_another_run_configuration_is_committed_under_its_own(tmp_path: Path, wh: warehouse.Warehouse) -> None:
    wal = tmp_path / "wal"
    w = wh.writer(dataset="agentdojo", agent="first", flush_interval=None, wal=wal)
    add(w, "first-1")
    abandon(w)
    recover(wh, wal, dataset="agentdojo", agent="second")
    wh.refresh()
    assert wh.sql("select agent, count(*) from executions group by 1").fetchall() == [("first", 1)]
    assert sorted(wh.sql("select agent_type from configs").fetchall()) == [("first",)]


def test_wal_of_another_warehouse_is_refused_and_kept(tmp_path: Path, wh: warehouse.Warehouse) -> None:
    wal = tmp_path / "wal"
    w = wh.writer(**CONFIG, flush_interval=None, wal=wal)
    add(w, "mine")
    abandon(w)
    other = warehouse.open(str(tmp_path / "other"), create=True)
    with pytest.raises(WalError) as err:
        other.writer(**CONFIG, flush_interval=None, wal=wal)
    assert wh.url in str(err.value) and "1 unflushed record" in str(err.value)
    assert other.refresh() == 0 and len(segments(wal)) == 1
    recover(wh, wal)  # the right warehouse takes them, and the directory is free again
    assert_each_once(wh, ["mine"])


def test_bad_wal_sync_policy_is_refused(tmp_path: Path, wh: warehouse.Warehouse) -> None:
    with pytest.raises(WalError, match="wal_sync must be one of always, flush, never"):
        wh.writer(**CONFIG, wal=tmp_path / "wal", wal_sync="sometimes")
    with wh.writer(**CONFIG, flush_interval=None, wal=tmp_path / "wal", wal_sync="always") as w:  # not left locked
        add(w, "ok")
    assert_each_once(wh, ["ok"])


def test_async_writer_passes_the_wal_through(tmp_path: Path, wh: warehouse.Warehouse) -> None:
    wal = tmp_path / "wal"
    w = wh.writer(**CONFIG, flush_interval=None, wal=wal)
    add(w, "before-crash")
    abandon(w)

    async def main() -> None:
        async with wh.async_writer(**CONFIG, wal=wal, wal_sync="never") as aw:
            assert [c.version for c in aw.writer._wal.recovered] == [1]
            aw.add_execution(
                task_id="t",
                execution_id="async-1",
                messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            )

    asyncio.run(main())
    assert_each_once(wh, ["before-crash", "async-1"])
    assert segments(wal) == []


# -- damage that is not a crash's torn tail ------------------------------------------------------------
def killed_with_twenty(children: Children, tmp_path: Path) -> tuple[Path, Path, list[str], Path]:
    """A real writer process with 20 acknowledged executions (and a live one) in its WAL, killed with
    kill -9 before any flush: (warehouse root, WAL directory, acknowledged ids, the segment file)."""
    root, wal = tmp_path / "wh", tmp_path / "wal"
    warehouse.open(str(root), create=True)
    acked, _, _ = run_until_kill(children, root, wal, "d", "unflushed", 20)
    [segment] = [wal / name for name in segments(wal)]
    return root, wal, acked, segment


def damage_line(segment: Path, index: int) -> bytes:
    """Prefix line `index` (0-based) of `segment` with `#`, as a bad disk block or a stray edit
    would; returns the damaged file's bytes."""
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[index] = b"#" + lines[index]
    segment.write_bytes(b"".join(lines))
    return segment.read_bytes()


def test_a_damaged_middle_line_loses_only_its_record_and_the_segment_is_kept_aside(
    tmp_path: Path, children: Children, caplog: pytest.LogCaptureFixture
) -> None:
    root, wal, acked, segment = killed_with_twenty(children, tmp_path)
    assert len(acked) == 21
    damaged = damage_line(segment, 3)  # line 4: the third execution, d-2

    wh = warehouse.open(str(root))
    with pytest.raises(WalError) as err:
        wh.writer(**CONFIG, flush_interval=None, wal=wal)
    message = str(err.value)
    assert f"segment {segment.name}: line 4 (JSONDecodeError" in message
    kept = wal / "damaged" / segment.name
    records = len(damaged.splitlines()) - 2  # every line but the header and the damaged one
    assert str(kept) in message and f"its {records} readable record(s) are in version 1" in message

    # Every intact record was committed once; only the damaged line's execution is missing.
    assert_each_once(wh, [i for i in acked if i != "d-2"])
    assert set(execution_counts(wh)) == set(acked) - {"d-2"}
    # The segment is kept byte for byte, out of recovery's way; nothing is left to recover.
    assert kept.read_bytes() == damaged and segments(wal) == ["damaged"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="warehouse"):
        assert recover(wh, wal) == []
    assert f"1 damaged segment(s) set aside in {wal / 'damaged'} await a decision: {segment.name}" in caplog.text
    assert kept.read_bytes() == damaged
    assert set(execution_counts(warehouse.open(str(root)))) == set(acked) - {"d-2"}


def test_a_damaged_header_keeps_the_whole_segment_and_says_so(tmp_path: Path, children: Children) -> None:
    root, wal, acked, segment = killed_with_twenty(children, tmp_path)
    damaged = damage_line(segment, 0)

    wh = warehouse.open(str(root))
    with pytest.raises(WalError) as err:
        wh.writer(**CONFIG, flush_interval=None, wal=wal)
    message = str(err.value)
    assert not segment.exists()  # moved, not left in place
    assert f"segment {segment.name}: line 1 (JSONDecodeError" in message
    records = len(damaged.splitlines()) - 1
    assert f"{records} record line(s) after it could not be placed without the header" in message
    assert (wal / "damaged" / segment.name).read_bytes() == damaged
    assert execution_counts(wh) == Counter() and wh.version == 0  # nothing guessed, nothing deleted


def test_a_damaged_last_whole_line_is_damage_not_a_torn_tail(tmp_path: Path, children: Children) -> None:
    root, wal, acked, segment = killed_with_twenty(children, tmp_path)
    lines = segment.read_bytes().splitlines(keepends=True)
    damaged = damage_line(segment, len(lines) - 1)  # the live execution's finish: ends with a newline

    wh = warehouse.open(str(root))
    with pytest.raises(WalError, match=f"line {len(lines)} "):
        wh.writer(**CONFIG, flush_interval=None, wal=wal)
    assert set(execution_counts(wh)) == set(acked)  # the live execution's earlier revision is there
    assert (wal / "damaged" / segment.name).read_bytes() == damaged


def test_a_record_whose_values_do_not_fit_its_table_is_set_aside_with_its_line(
    tmp_path: Path, children: Children
) -> None:
    root, wal, acked, segment = killed_with_twenty(children, tmp_path)
    lines = segment.read_bytes().splitlines(keepends=True)
    # Valid JSON, wrong type: a bit flip that turned a score into text.
    line = json.loads(lines[5])
    executions = dict(line[1])["executions"]
    columns = json.loads(lines[0])[1]["columns"]["executions"]
    executions[0][columns.index("benign_score")] = "1.0x"
    lines[5] = json.dumps(line).encode() + b"\n"
    segment.write_bytes(b"".join(lines))

    wh = warehouse.open(str(root))
    with pytest.raises(WalError) as err:
        wh.writer(**CONFIG, flush_interval=None, wal=wal)
    assert "line 6 (values that do not fit the table" in str(err.value)
    assert set(execution_counts(wh)) == set(acked) - {"d-4"}
    assert (wal / "damaged" / segment.name).exists()


def test_a_damaged_segment_whose_batch_was_committed_is_deleted_losing_nothing(
    tmp_path: Path, children: Children
) -> None:
    root, wal = tmp_path / "wh", tmp_path / "wal"
    warehouse.open(str(root), create=True)
    acked, _, _ = run_until_kill(children, root, wal, "c", "after_commit", 6)
    committed = [wal / n for n in segments(wal) if n.endswith("00000001.wal")]
    [segment] = committed
    damage_line(segment, 2)

    wh = warehouse.open(str(root))
    recover(wh, wal)  # no error: the damaged segment's batch is in version 1, every record of it
    assert_each_once(wh, acked)
    assert segments(wal) == []
