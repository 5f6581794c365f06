"""Execution ids are keys: an id added again replaces its earlier add in every view, function and
export, across writers, processes, imports, WAL recovery, compaction and time travel."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest

import warehouse
from warehouse.core.schemas import catalog
from warehouse.engine import reader
from warehouse.manifest import DataFile, writer_info
from warehouse.read import analytics

RUN = {"dataset": "ds", "agent": "ag", "attack": {"type": "inj", "config": {}}}


def retried_job(wh: warehouse.Warehouse, attempts: int = 2) -> None:
    """The same job run `attempts` times with deterministic execution ids, one writer per attempt."""
    for attempt in range(attempts):
        with wh.writer(**RUN, flush_interval=None) as w:
            w.add_execution(
                execution_id="job42-task7",
                task_id="task7",
                benign_score=1.0,
                attack_score=float(attempt),
                messages=[{"role": "user", "content": f"attempt {attempt}"}],
                attacks=[{"vector_id": "v0", "content": f"injection {attempt}"}],
            )


def assert_one_add_per_id(wh: warehouse.Warehouse) -> None:
    """Each id shows once, and its messages and attacks are those of the add that shows."""
    n, distinct = wh.sql("select count(*), count(distinct execution_id) from executions").fetchall()[0]
    assert n == distinct
    stray = wh.sql(
        "select count(*) from messages m where not exists (select 1 from executions e "
        "where e.execution_id = m.execution_id and e.write_id = m.write_id)"
    ).fetchall()[0][0]
    assert stray == 0
    stray = wh.sql(
        "select count(*) from attacks a where not exists (select 1 from executions e "
        "where e.execution_id = a.execution_id and e.write_id = a.write_id)"
    ).fetchall()[0][0]
    assert stray == 0
    lf = wh.scan("executions").collect()
    assert lf.height == n and lf["execution_id"].n_unique() == n
    assert wh.scan("messages").collect().height == wh.sql("select count(*) from messages").fetchall()[0][0]


@pytest.mark.slow
def test_a_retried_job_with_fixed_ids_counts_each_execution_once(wh):
    retried_job(wh)
    assert wh.sql("select count(*) from executions").fetchall()[0][0] == 1
    ((n, asr),) = wh.sql("select n, asr from scores").fetchall()
    assert (n, asr) == (1, 1.0)  # the second attempt replaced the first
    ex = wh.execution("job42-task7")
    assert ex["attack_score"] == 1.0
    assert ex["messages"] == [{"role": "user", "content": "attempt 1"}]
    assert [a["content"] for a in ex["attacks"]] == ["injection 1"]
    assert analytics.attack_success_rates(wh, by=["agent"])["n"].to_list() == [1]
    assert_one_add_per_id(wh)


@pytest.mark.slow
def test_an_id_added_twice_in_one_writer_keeps_the_later_add(wh, open_writer):
    w = open_writer(wh, **RUN)
    w.add_execution(
        execution_id="x",
        task_id="t",
        benign_score=0.0,
        messages=[{"role": "user", "content": "first a"}, {"role": "user", "content": "first b"}],
    )
    w.add_execution(execution_id="x", task_id="t", benign_score=1.0, messages=[{"role": "user", "content": "second"}])
    w.flush()
    assert wh.sql("select benign_score from executions").fetchall() == [(1.0,)]
    assert wh.execution("x")["messages"] == [{"role": "user", "content": "second"}]
    # ... and again in the next flush of the same writer
    w.add_execution(execution_id="x", task_id="t", benign_score=0.5)
    w.flush()
    assert wh.sql("select benign_score from executions").fetchall() == [(0.5,)]
    assert wh.execution("x")["messages"] == []
    assert_one_add_per_id(wh)


def test_generated_ids_never_pay_for_the_key(wh, open_writer):
    w = open_writer(wh, **RUN)
    for i in range(50):
        w.add_execution(task_id=f"t{i}", benign_score=1.0, messages=[{"role": "user", "content": "hi"}])
    w.flush()
    w.add_execution(task_id="t", benign_score=1.0)
    w.flush()
    assert not wh.snapshot.table_files("superseded")
    assert wh.sql("select count(*) from executions").fetchall()[0][0] == 51
    assert wh.sql("select count(*) from superseded").fetchall()[0][0] == 0


def test_the_same_ids_from_concurrent_processes_show_one_add_each(tmp_path, children):
    root = tmp_path / "wh"
    warehouse.open(str(root), create=True)
    procs = [children.start("keyed_writer.py", root, p, 5, 20, "ab"[p % 2]) for p in range(4)]
    for p in procs:
        children.expect_line(p, "ready")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        for r in range(5):
            children.expect_line(p, f"committed {r} ")
        children.expect_line(p, "done")
    wh = warehouse.open(str(root))
    assert wh.sql("select count(*) from executions").fetchall()[0][0] == 20
    assert_one_add_per_id(wh)
    # The add that shows is the last one committed: the commit that carries its rows
    # supersedes every earlier add of every one of its ids.
    shown = dict(wh.sql("select execution_id, json_extract_string(metadata, '$.tag') from executions").fetchall())
    tags = set(shown.values())
    assert len(tags) == 1, tags  # the last commit added all twenty ids at once
    assert {m[0].split()[0] for m in wh.sql("select content from messages").fetchall()} == tags
    (n,) = wh.sql("select sum(n) from scores").fetchall()[0]
    assert n == 20


@pytest.mark.slow
def test_time_travel_shows_the_add_that_was_current_then(wh):
    retried_job(wh, attempts=1)
    before = wh.version
    retried_job(wh, attempts=2)
    old = warehouse.open(wh.url, version=before)
    assert old.execution("job42-task7")["messages"] == [{"role": "user", "content": "attempt 0"}]
    assert wh.execution("job42-task7")["messages"] == [{"role": "user", "content": "attempt 1"}]


@pytest.mark.slow
def test_compaction_and_expire_keep_one_add_per_id(wh):
    for _ in range(3):
        retried_job(wh)
    assert wh.sql("select attack_score from executions").fetchall() == [(1.0,)]
    result = wh.compact()
    assert any(p.status == "compacted" for p in result.partitions)
    assert wh.sql("select attack_score from executions").fetchall() == [(1.0,)]
    # Compaction left the superseded adds' rows out of its outputs, so readers skip the anti-join.
    assert [sum(f.rows for f in wh.files(t)) for t in ("executions", "messages", "attacks")] == [1, 1, 1]
    assert "anti join" not in reader.keyed_table_sql(
        wh.store, catalog().table("executions"), wh.snapshot, wh.snapshot.table_files("superseded")
    )
    assert wh.execution("job42-task7")["messages"] == [{"role": "user", "content": "attempt 1"}]
    assert_one_add_per_id(wh)
    retried_job(wh, attempts=1)  # after compaction, the compacted rows are found and replaced too
    assert wh.sql("select attack_score from executions").fetchall() == [(0.0,)]
    assert_one_add_per_id(wh)


@pytest.mark.slow
def test_a_live_execution_with_a_given_id_replaces_the_earlier_run(wh, open_writer):
    w = open_writer(wh, **RUN)
    w.add_execution(execution_id="run-1", task_id="t", attack_score=0.0, messages=[{"role": "user", "content": "old"}])
    w.flush()
    ex = w.start_execution("t", execution_id="run-1")
    w.flush()
    ex.finish(attack_score=1.0, messages=[{"role": "user", "content": "new"}])
    w.flush()
    assert wh.sql("select status, attack_score from executions").fetchall() == [("completed", 1.0)]
    assert wh.execution("run-1")["messages"] == [{"role": "user", "content": "new"}]
    assert_one_add_per_id(wh)


def test_wal_recovery_replaces_earlier_adds_too(wh, tmp_path, children):
    config = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "walled", "config": {}}}  # wal_writer's
    with wh.writer(**config, flush_interval=None) as w:
        w.add_execution(
            execution_id="crash-0", task_id="t", benign_score=0.0, messages=[{"role": "user", "content": "old"}]
        )
    wal = tmp_path / "wal"
    # A writer that logs `crash-0` (and crash-1) to its WAL and is killed (-9) before any flush.
    p = children.start("wal_writer.py", wh.url, wal, "crash", "unflushed", 2)
    children.expect_line(p, "opened")
    for eid in ("crash-0", "crash-1", "crash-live"):
        children.expect_line(p, f"added {eid}")
    children.expect_line(p, "waiting")
    p.kill()
    p.wait()
    with wh.writer(**config, wal=wal, flush_interval=None):
        pass  # opening the WAL commits the crashed writer's records
    wh.refresh()
    assert wh.sql("select count(*) from executions where execution_id = 'crash-0'").fetchall()[0][0] == 1
    assert wh.execution("crash-0")["messages"][0]["content"] == "crash-0 q"
    assert_one_add_per_id(wh)


@pytest.mark.slow
def test_importing_the_same_execution_ids_from_another_folder_replaces_them(wh, tmp_path):
    from legacy_fixtures import write_legacy_tree

    src1 = write_legacy_tree(tmp_path / "a", 3)["root"]
    wh.import_("legacy", src1)
    ids = sorted(r[0] for r in wh.sql("select execution_id from executions").fetchall())
    # The same results copied elsewhere with one score changed: a new source with the same ids.
    src2 = tmp_path / "b"
    import shutil

    shutil.copytree(src1, src2)
    for f in sorted(src2.rglob("*.json")):
        doc = json.loads(f.read_text())
        doc["results"]["benign_score"] = 0.25
        f.write_text(json.dumps(doc))
    report = wh.import_("legacy", src2)
    assert not report.failed
    assert sorted(r[0] for r in wh.sql("select execution_id from executions").fetchall()) == ids
    assert {r[0] for r in wh.sql("select benign_score from executions").fetchall()} == {0.25}
    assert_one_add_per_id(wh)


@pytest.mark.slow
def test_exports_hold_one_row_per_id(wh, tmp_path):
    retried_job(wh)
    pq_out, delta_out = tmp_path / "pq", tmp_path / "delta"
    wh.export("parquet", str(pq_out))
    wh.export("delta", str(delta_out))
    plain = duckdb.sql(
        f"select count(*), max(attack_score) from read_parquet('{pq_out}/executions/**/*.parquet')"
    ).fetchall()[0]
    assert plain == (1, 1.0)
    from deltalake import DeltaTable

    assert DeltaTable(str(delta_out / "executions")).to_pyarrow_table().num_rows == 1
    assert DeltaTable(str(delta_out / "messages")).to_pyarrow_table().column("content").to_pylist() == ["attempt 1"]
    # an id superseded after the export: the exported file goes again, without it
    retried_job(wh, attempts=1)
    wh.export("parquet", str(pq_out))
    wh.export("delta", str(delta_out))
    plain = duckdb.sql(
        f"select count(*), max(attack_score) from read_parquet('{pq_out}/executions/**/*.parquet')"
    ).fetchall()[0]
    assert plain == (1, 0.0)
    t = DeltaTable(str(delta_out / "executions")).to_pyarrow_table()
    assert (t.num_rows, t.column("attack_score").to_pylist()) == (1, [0.0])
    legacy = tmp_path / "legacy"
    wh.export("legacy", str(legacy))
    lines = (legacy / "index.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_rows_written_before_ids_were_keys_are_replaced_too(wh):
    """A data file without the write_id column (written by an earlier version) is found and its
    row superseded like any other."""
    with wh.writer(**RUN, flush_interval=None) as w:
        w.add_execution(
            execution_id="old-1", task_id="t", benign_score=0.0, messages=[{"role": "user", "content": "old"}]
        )
    old = wh.snapshot.table_files("executions")[0]
    t = pq.read_table(wh.store.full(old.path)).drop_columns(["write_id"])
    path = old.path.replace(".parquet", "-old.parquet")
    pq.write_table(t, wh.store.full(path))
    stats = {k: v for k, v in old.stats.items() if k not in ("write_id", "execution_id")}
    msgs = wh.snapshot.table_files("messages")[0]
    mt = pq.read_table(wh.store.full(msgs.path)).drop_columns(["write_id"])
    mpath = msgs.path.replace(".parquet", "-old.parquet")
    pq.write_table(mt, wh.store.full(mpath))
    from warehouse.manifest import RemovedFile

    wh.engine.commit(
        operation="repair",
        writer=writer_info("test"),
        token=None,
        add=[
            DataFile("executions", path, old.partition, old.rows, old.bytes, stats),
            DataFile("messages", mpath, msgs.partition, msgs.rows, msgs.bytes, {}),
        ],
        remove=[RemovedFile("executions", old.path), RemovedFile("messages", msgs.path)],
    )
    assert wh.sql("select write_id from executions").fetchall() == [(None,)]
    with wh.writer(**RUN, flush_interval=None) as w:
        w.add_execution(
            execution_id="old-1", task_id="t", benign_score=1.0, messages=[{"role": "user", "content": "new"}]
        )
    assert wh.sql("select benign_score from executions").fetchall() == [(1.0,)]
    assert wh.execution("old-1")["messages"] == [{"role": "user", "content": "new"}]
