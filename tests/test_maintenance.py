"""Compaction (`Warehouse.compact`, `warehouse compact`) and vacuum (`Warehouse.vacuum`, `warehouse vacuum`):
answers never change, nothing committed is lost or duplicated (also against concurrent writers and a
second compaction, in real processes), and storage is freed only of what no readable version needs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from processes import Children, watchdog

import warehouse
import warehouse.ops.compact as compaction
import warehouse.ops.maintenance as maintenance
from warehouse import ReadOnlyWarehouse, VersionNotFound, WarehouseError
from warehouse.core.schemas import catalog
from warehouse.engine.datafiles import write_data_file
from warehouse.manifest import RemovedFile, writer_info

UTC = UTC
WEEK = timedelta(days=7)
#: The run configurations of tests/procs/flush_writer.py, so that its appends land in these partitions.
CONFIG_A = {
    "dataset": {"type": "agentdojo", "config": {"suite": "workspace"}},
    "agent": {"type": "plain", "config": {}},
}
CONFIG_B = {
    "dataset": {"type": "agentdojo", "config": {"suite": "slack"}},
    "agent": {"type": "plain", "config": {}},
    "attack": {"type": "important_instructions", "config": {"n": 1}},
}
OTHER_AGENT = {"type": "react", "config": {"max_steps": 5}}


# -- helpers ---------------------------------------------------------------------------------------
def views(wh: warehouse.Warehouse) -> dict[str, list[str]]:
    """Every view's rows as a sorted list (a multiset), by view name."""
    names = [r[0] for r in wh.sql("select view_name from duckdb_views() where not internal order by 1").fetchall()]
    assert {
        "executions",
        "executions_all",
        "messages",
        "attacks",
        "events",
        "snapshots",
        "sessions",
        "configs",
        "scores",
        "raw_executions_live",
    } <= set(names)
    return {n: sorted(repr(r) for r in wh.sql(f"select * from {n}").fetchall()) for n in names}


def data_files(root: Path) -> set[str]:
    """Every file in the partition directories of a local warehouse, root-relative (not configs/*.yaml)."""
    out = set()
    for t in catalog().tables:
        out |= {p.relative_to(root).as_posix() for p in (root / t).glob("*=*/**/*") if p.is_file()}
    return out


def files_per_partition(wh: warehouse.Warehouse, table: str) -> dict[tuple, int]:
    out: dict[tuple, int] = {}
    for f in wh.files(table):
        key = tuple(sorted(f.partition.items()))
        out[key] = out.get(key, 0) + 1
    return out


def flush(w: warehouse.Writer, ids: list[str], *, score: float = 1.0) -> None:
    """One flush of finished executions with messages and attacks."""
    for eid in ids:
        w.add_execution(
            execution_id=eid,
            task_id=f"task-{eid[-1]}",
            benign_score=score,
            attack_score=1 - score,
            scores={"steps": 3.0, "f1": 0.5},
            advantages=[0.1, -0.2],
            metadata={"k": eid},
            usage={"input_tokens": 10, "output_tokens": 5},
            messages=[
                {"role": "user", "content": f"hello {eid}"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "ok"},
            ],
            attacks=[
                {"vector_id": "v2", "type": "injection", "content": "ignore"},
                {"vector_id": "v1", "type": "injection", "content": "obey"},
            ],
        )
    w.flush()


def seed(wh: warehouse.Warehouse, open_writer: Any, flushes: int = 4, per_flush: int = 3) -> None:
    """`flushes` flushes into each of CONFIG_A and CONFIG_B, ids descending (so that sorting shows)."""
    for cfg, tag in ((CONFIG_A, "a"), (CONFIG_B, "b")):
        w = open_writer(wh, **cfg)
        for f in range(flushes):
            flush(w, [f"{tag}-{flushes - f:03d}-{per_flush - i}" for i in range(per_flush)], score=float(f % 2))


def campaign(wh: warehouse.Warehouse, open_writer: Any, make_messages: Any) -> None:
    """Rows of every table, written through the real APIs: batch results, live executions (logs,
    spans, checkpoints, one still running), sessions and a simulation run."""
    seed(wh, open_writer)
    w = open_writer(wh, **CONFIG_A)
    done = w.start_execution("live-task", owner="alice", metadata={"attempt": 1})
    for step in (1, 2):
        done.log("info", f"step {step}", source="agent", attrs={"step": step})
        with done.span("search", {"q": "x"}):
            pass
        done.checkpoint({"messages": make_messages(turns=1), "step": step}, step=step)
    done.update(metadata={"progress": 0.5}, scores={"partial": 0.5})
    done.finish(benign_score=1.0, messages=make_messages(turns=1))
    w.flush()
    busy = w.start_execution("busy-task", owner="bob")
    busy.checkpoint({"step": 1}, step=1)
    busy.update(result="half way")
    busy.checkpoint({"step": 2}, step=2)
    sid = wh.sessions.save(make_messages(turns=1), config={"model": "m"}, meta={"title": "first"})
    wh.sessions.append(sid, [{"role": "user", "content": "and then?"}], meta={"n": 2})
    wh.sessions.save([{"role": "user", "content": "second session"}])
    rec = wh.run_recorder("maze", save_frequency=1, started_at="2025-01-02T03:04:05Z")
    for step in (1, 2, 3):
        rec.step(
            step,
            game_state={"pos": step},
            global_vars={"t": step},
            agent_vars={"a": {"hp": 10 - step}},
            messages=[{"role": "user", "content": f"move {step}"}],
        )
    rec.finish(4, game_state={"pos": 4})
    wh.refresh()


def assert_sorted(wh: warehouse.Warehouse, f: Any) -> None:
    sort_by = list(catalog().table(f.table).sort_by)
    t = pq.read_table(wh.store.full(f.path), columns=sort_by)
    order = pc.sort_indices(t, sort_keys=[(c, "ascending") for c in sort_by]).to_pylist()
    assert order == list(range(t.num_rows)), f"{f.path} is not sorted by {sort_by}"


def compacts(wh: warehouse.Warehouse) -> list[Any]:
    return [c for c in wh.log.commits() if c.operation == "compact"]


# -- compaction: answers unchanged, sorted, one commit per partition --------------------------------
@pytest.mark.slow
def test_compaction_leaves_every_view_unchanged_and_one_sorted_file_per_partition(
    wh, root, open_writer, make_messages
) -> None:
    campaign(wh, open_writer, make_messages)
    before = views(wh)
    small = {t: files_per_partition(wh, t) for t in catalog().tables}
    assert max(small["executions_live"].values()) >= 2 and max(small["events"].values()) >= 2
    assert max(small["snapshots"].values()) >= 2 and max(small["sessions"].values()) >= 2

    result = wh.compact()

    assert not result.conflicts and result.files_in > result.files_out > 0
    assert views(wh) == before
    assert views(warehouse.open(str(root))) == before
    for t in catalog().tables:
        after = files_per_partition(wh, t)
        assert set(after) == set(small[t]), t
        assert all(n == 1 for n in after.values()), (t, after)  # every partition had >= 2 small files, or 1
    compacted = {(p.table, tuple(sorted(p.partition.items()))) for p in result.compacted}
    assert compacted == {(t, k) for t in catalog().tables for k, n in small[t].items() if n >= 2}
    for p in result.compacted:
        [out] = wh.files(p.table, p.partition)
        assert out.rows == p.rows and p.files_out == 1 and p.version is not None
        assert_sorted(wh, out)
    assert wh.compact().partitions == ()  # nothing left to do


def test_one_commit_per_partition_removes_exactly_its_inputs_and_adds_its_outputs(wh, open_writer) -> None:
    seed(wh, open_writer)
    pre = dict(wh.snapshot.files)
    start = wh.version

    result = wh.compact(table=("executions", "messages"))

    assert wh.version == start + 4 and len(result.partitions) == 4
    commits = compacts(wh)
    assert [c.version for c in commits] == list(range(start + 1, start + 5)) == sorted(result.versions)
    for c in commits:
        [out] = c.add
        part = (out.table, tuple(sorted(out.partition.items())))
        inputs = [pre[r.path] for r in c.remove]
        assert {(f.table, tuple(sorted(f.partition.items()))) for f in inputs} == {part}
        assert {r.path for r in c.remove} == {
            f.path for f in pre.values() if (f.table, tuple(sorted(f.partition.items()))) == part
        }
        assert len(inputs) == 4 and out.rows == sum(f.rows for f in inputs)
        assert c.info["compact"] | {"planned_at_version": 0} == {
            "table": out.table,
            "partition": dict(out.partition),
            "planned_at_version": 0,
            "files_in": 4,
            "files_out": 1,
            "rows": out.rows,
            "target_file_size": 128 << 20,
        }
    assert sorted(c.add[0].rows for c in commits) == [12, 12, 36, 36]
    assert [h.operation for h in wh.history(4)] == ["compact"] * 4


@pytest.mark.slow
def test_compacted_rows_are_sorted_by_the_tables_sort_order(wh, open_writer) -> None:
    seed(wh, open_writer, flushes=5, per_flush=4)
    wh.compact()
    for t in ("executions", "messages", "attacks"):
        for f in wh.files(t):
            assert_sorted(wh, f)
    [f] = wh.files("executions", {"attack": "none"})
    ids = pq.read_table(wh.store.full(f.path), columns=["execution_id"]).column(0).to_pylist()
    assert ids == sorted(ids) and ids[0] == "a-001-1"
    [m] = wh.files("messages", {"attack": "none"})
    seq = pq.read_table(wh.store.full(m.path), columns=["execution_id", "seq"]).to_pylist()
    assert seq[:3] == [{"execution_id": "a-001-1", "seq": s} for s in range(3)]


def test_table_and_partition_filters_compact_only_what_they_match(wh, open_writer) -> None:
    seed(wh, open_writer)
    everything = {t: files_per_partition(wh, t) for t in ("executions", "messages", "attacks")}

    only = wh.compact(table="messages", partition={"attack": "none"})

    assert [(p.table, p.partition["attack"]) for p in only.partitions] == [("messages", "none")]
    assert files_per_partition(wh, "executions") == everything["executions"]
    assert files_per_partition(wh, "attacks") == everything["attacks"]
    assert sorted(files_per_partition(wh, "messages").values()) == [1, 4]

    by_agent = wh.compact(partition={"agent": "plain", "attack": "important_instructions"})
    assert {(p.table, p.partition["attack"]) for p in by_agent.partitions} == {
        ("executions", "important_instructions"),
        ("messages", "important_instructions"),
        ("attacks", "important_instructions"),
    }
    assert files_per_partition(wh, "executions") == {
        k: (1 if ("attack", "important_instructions") in k else 4) for k in everything["executions"]
    }


@pytest.mark.slow
def test_dry_run_writes_nothing_and_plans_what_the_real_run_does(wh, root, open_writer, snapshot_tree) -> None:
    seed(wh, open_writer)
    before, version = snapshot_tree(root), wh.version

    dry = wh.compact(dry_run=True)

    assert snapshot_tree(root) == before and wh.version == version
    assert dry.dry_run and {p.status for p in dry.partitions} == {"planned"} and dry.versions == []
    real = wh.compact()

    def key(r):
        return [(p.table, tuple(sorted(p.partition.items())), p.files_in, p.files_out, p.rows) for p in r.partitions]

    assert key(dry) == key(real)
    assert {p.status for p in real.partitions} == {"compacted"}


def test_partitions_with_too_few_small_files_and_large_files_are_left_alone(wh, open_writer) -> None:
    seed(wh, open_writer, flushes=3)
    sizes = sorted(f.bytes for f in wh.files("executions"))

    assert wh.compact(min_files=4).partitions == ()
    assert wh.compact(table="executions", target_file_size=sizes[0]).partitions == ()  # no file is below it
    # A target between two files' sizes: only files below it are inputs.
    with wh.writer(**CONFIG_A, flush_interval=None) as w:
        flush(w, [f"big-{uuid.uuid4().hex}" for i in range(300)])  # a fourth file, twice as large as any other
    big = max(wh.files("executions"), key=lambda f: f.bytes)
    assert big.bytes > 2 * max(sizes)  # so that three small files make fewer files of its size
    result = wh.compact(table="executions", target_file_size=big.bytes)
    assert big.path in wh.snapshot.files
    assert [(p.status, p.files_in) for p in result.partitions] == [("compacted", 3)] * 2


@pytest.mark.slow
def test_a_small_target_splits_a_partition_into_sorted_files_of_about_that_size(wh, open_writer) -> None:
    w = open_writer(wh, **CONFIG_A)
    for f in range(6):  # incompressible metadata: the rows, not the footers, make the bytes
        for i in range(20):
            w.add_execution(
                execution_id=f"x-{5 - f}-{i:02d}",
                task_id="t",
                benign_score=1.0,
                metadata={"blob": os.urandom(1500).hex()},
            )
        w.flush()
    before = views(wh)
    files = wh.files("executions")
    target = sum(f.bytes for f in files) // 3

    result = wh.compact(table="executions", target_file_size=target)

    [p] = result.partitions
    assert p.files_in == 6 and 2 <= p.files_out <= 3 and p.rows == 120
    out = wh.files("executions")
    assert len(out) == p.files_out and len(compacts(wh)) == 1, "several output files of one partition: one commit"
    assert all(f.bytes >= target for f in sorted(out, key=lambda f: f.bytes)[1:]), "only the last file is short"
    assert all(f.bytes < 2 * target for f in out)
    ranges = []
    for f in out:
        assert_sorted(wh, f)
        ids = pq.read_table(wh.store.full(f.path), columns=["execution_id"]).column(0).to_pylist()
        ranges.append((ids[0], ids[-1]))
    ranges.sort()
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:])), f"the files' key ranges overlap: {ranges}"
    assert views(wh) == before


@pytest.mark.slow
def test_files_written_before_a_column_existed_are_compacted_with_nulls(wh, open_writer) -> None:
    seed(wh, open_writer, flushes=2)
    # Replace one file by a copy without the columns added last (as an older version wrote it).
    old = wh.files("executions", {"attack": "none"})[0]
    t = pq.read_table(wh.store.full(old.path)).drop_columns(["owner", "result", "completions"])
    legacy = write_data_file(wh, "executions", dict(old.partition), t)
    wh.engine.commit(
        operation="import",
        writer=writer_info("test"),
        token=None,
        add=[legacy],
        remove=[RemovedFile("executions", old.path)],
    )
    assert "owner" not in pq.read_schema(wh.store.full(legacy.path)).names
    before = views(wh)

    wh.compact(table="executions")

    assert views(wh) == before
    [f] = wh.files("executions", {"attack": "none"})
    out = pq.read_table(wh.store.full(f.path))
    assert out.schema.names == catalog().table("executions").arrow.names
    assert out.column("owner").null_count == out.num_rows


@pytest.mark.slow
def test_partition_values_that_need_escaping_keep_their_values(wh, open_writer) -> None:
    w = open_writer(wh, dataset={"type": "suite ü/x", "config": {}}, agent={"type": "a=b%c", "config": {}})
    for f in range(3):
        flush(w, [f"odd-{f}"])
    before = views(wh)

    [p] = wh.compact(table="executions").partitions

    assert p.partition["dataset"] == "suite ü/x" and p.partition["agent"] == "a=b%c"
    [f] = wh.files("executions")
    assert "dataset=suite%20%C3%BC%2Fx/agent=a%3Db%25c/" in f.path
    assert pq.read_table(wh.store.full(f.path), columns=["dataset", "agent"]).to_pylist()[0] == {
        "dataset": "suite ü/x",
        "agent": "a=b%c",
    }
    assert views(wh) == before


def test_bad_arguments_raise_errors_naming_them(wh, open_writer) -> None:
    with pytest.raises(WarehouseError, match="unknown table 'nope'"):
        wh.compact(table="nope")
    with pytest.raises(WarehouseError, match="cannot filter partitions by 'model'"):
        wh.compact(partition={"model": "x"})
    with pytest.raises(WarehouseError, match="min_files must be an int of 2 or more"):
        wh.compact(min_files=1)
    with pytest.raises(WarehouseError, match="target_file_size must be a positive"):
        wh.compact(target_file_size=0)
    with pytest.raises(WarehouseError, match="retain must be a timedelta"):
        wh.vacuum(retain=timedelta(days=-1))
    seed(wh, open_writer, flushes=2)
    old = warehouse.open(wh.url, version=1)
    with pytest.raises(ReadOnlyWarehouse):
        old.compact()
    with pytest.raises(ReadOnlyWarehouse):
        old.vacuum()
    assert old.compact(dry_run=True).partitions == ()  # version 1 holds one file per partition


@pytest.mark.parametrize(
    "text, size",
    [("128MB", 128 << 20), ("512k", 512 << 10), ("1GiB", 1 << 30), ("4096", 4096), ("1.5 MB", 3 << 19), ("10b", 10)],
)
def test_sizes_parse(text: str, size: int) -> None:
    assert maintenance.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "0", "12 parsecs", "1e3"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(WarehouseError, match="bad size"):
        maintenance.parse_size(text)


def test_partition_filters_parse() -> None:
    assert maintenance.parse_partition("agent=plain, attack=none") == {"agent": "plain", "attack": "none"}
    for bad in ("agent", "agent=", "model=x"):
        with pytest.raises(WarehouseError):
            maintenance.parse_partition(bad)


# -- compaction against other commits ---------------------------------------------------------------
def test_rows_appended_while_compacting_are_kept_and_not_inputs(wh, root, open_writer, monkeypatch) -> None:
    seed(wh, open_writer, flushes=3)
    other = warehouse.open(str(root))
    real = compaction.commit_rewrite

    def append_then_commit(w_, plan, **kw):
        with other.writer(**CONFIG_A, flush_interval=None) as w:
            flush(w, ["late-1", "late-2"])
        return real(w_, plan, **kw)

    monkeypatch.setattr(compaction, "commit_rewrite", append_then_commit)
    result = wh.compact(table="executions", partition={"attack": "none"})

    assert [p.status for p in result.partitions] == ["compacted"]
    ids = [r[0] for r in wh.sql("select execution_id from executions where attack = 'none'").fetchall()]
    assert len(ids) == len(set(ids)) == 9 + 2 and {"late-1", "late-2"} <= set(ids)
    assert len(wh.files("executions", {"attack": "none"})) == 2  # the compacted file + the late flush


@pytest.mark.slow
def test_a_partition_compacted_meanwhile_is_planned_again_and_its_outputs_deleted(
    wh, root, open_writer, monkeypatch
) -> None:
    seed(wh, open_writer, flushes=3)
    before = views(wh)
    other = warehouse.open(str(root))
    real = compaction.commit_rewrite
    calls = []

    def race(w_, plan, **kw):
        if w_ is other.engine:
            return real(w_, plan, **kw)
        calls.append([a.path for a in plan.add])
        if len(calls) == 1:  # another compaction of the same partition wins the race
            assert other.compact(table="executions", partition={"attack": "none"}).compacted
        return real(w_, plan, **kw)

    monkeypatch.setattr(compaction, "commit_rewrite", race)
    result = wh.compact(table="executions", partition={"attack": "none"})

    [p] = result.partitions
    assert p.status == "unchanged" and p.version is None and "already removed" in p.error
    assert len(calls) == 1, "the second plan finds the other compaction's single output: nothing to do"
    assert views(wh) == before and len(compacts(wh)) == 1
    assert not (root / calls[0][0]).exists(), "the losing attempt's output, never committed, is deleted"
    removed = {r.path for c in wh.log.commits() for r in c.remove}
    assert data_files(root) == set(wh.snapshot.files) | removed


@pytest.mark.slow
def test_inputs_vacuumed_while_being_read_are_a_conflict_too(wh, root, open_writer, monkeypatch) -> None:
    seed(wh, open_writer, flushes=3)
    before = views(wh)
    other = warehouse.open(str(root))
    refresh = wh.engine.refresh
    raced = []

    def refresh_then_race() -> int:
        # Right after the compaction's own refresh, before it reads its inputs: another compaction
        # commits, and a vacuum deletes its inputs at once.
        version = refresh()
        if not raced:
            raced.append(version)
            other.compact(table="executions", partition={"attack": "none"})
            assert len(other.vacuum(retain=timedelta(0)).removed) == 3
        return version

    monkeypatch.setattr(wh.engine, "refresh", refresh_then_race)
    [p] = wh.compact(table="executions", partition={"attack": "none"}).partitions
    assert raced

    assert p.status == "unchanged" and "while it was being read" in p.error
    assert views(wh) == before and len(compacts(wh)) == 1


@pytest.mark.slow
def test_a_compaction_that_keeps_conflicting_gives_up_on_that_partition_only(
    wh, root, open_writer, monkeypatch
) -> None:
    seed(wh, open_writer, flushes=3)
    other = warehouse.open(str(root))
    real = compaction.commit_rewrite
    outputs: list[str] = []

    def race(w_, plan, **kw):
        if w_ is other.engine:
            return real(w_, plan, **kw)
        outputs.extend(a.path for a in plan.add)
        if plan.add[0].table == "executions" and plan.add[0].partition["attack"] == "none":
            with other.writer(**CONFIG_A, flush_interval=None) as w:  # so that a second plan has work to do
                flush(w, [f"late-{len(outputs)}"])
            other.compact(table="executions", partition={"attack": "none"})
            with other.writer(**CONFIG_A, flush_interval=None) as w:
                flush(w, [f"later-{len(outputs)}"])
        return real(w_, plan, **kw)

    monkeypatch.setattr(compaction, "commit_rewrite", race)
    result = wh.compact(table="executions")

    status = {p.partition["attack"]: p for p in result.partitions}
    assert status["none"].status == "conflict" and "gave up after 2 plans" in status["none"].error
    assert status["important_instructions"].status == "compacted"
    assert result.conflicts == [status["none"]]
    wh.refresh()
    ids = [r[0] for r in wh.sql("select execution_id from executions").fetchall()]
    assert len(ids) == len(set(ids)) == 18 + 4
    committed = set(wh.snapshot.files) | {r.path for c in wh.log.commits() for r in c.remove}
    assert [p for p in outputs if (root / p).exists() and p not in committed] == []


@pytest.mark.slow
def test_outputs_deleted_before_the_commit_are_never_committed(wh, root, open_writer, monkeypatch) -> None:
    seed(wh, open_writer, flushes=2)
    before, version = views(wh), wh.version
    exists = wh.store.exists
    deleted = []

    def deleted_meanwhile(rel: str) -> bool:
        # The compaction asks whether its freshly written output is still there: first delete it,
        # as a vacuum with a too short orphan window would.
        if not deleted and rel.endswith(".parquet") and rel not in wh.snapshot.files and (root / rel).is_file():
            os.unlink(root / rel)
            deleted.append(rel)
        return exists(rel)

    monkeypatch.setattr(wh.store, "exists", deleted_meanwhile)
    with pytest.raises(WarehouseError, match="its output (.+) was deleted before it could be committed") as err:
        wh.compact(table="executions")
    assert deleted and deleted[0] in str(err.value)
    assert wh.version == version and views(wh) == before


def test_appends_from_another_process_during_compaction_lose_nothing(wh, root, open_writer, children: Children) -> None:
    seed(wh, open_writer, flushes=3)
    compactor = children.start("compactor.py", root, "executions")
    appender = children.start("flush_writer.py", root, 9, 4, 2, 2, "a")
    with watchdog([compactor, appender], 120):
        assert children.line(compactor, "paused ") == "3 1"  # outputs written, nothing committed
        children.expect_line(appender, "ready")
        appender.stdin.write("go\n")
        appender.stdin.flush()
        for f in range(4):
            children.expect_line(appender, f"committed {f} ")
        children.expect_line(appender, "done")
        compactor.stdin.write("go\n")
        compactor.stdin.flush()
        done = json.loads(children.line(compactor, "done "))
    assert compactor.wait() == 0 and appender.wait() == 0, children.stderr(compactor)
    assert {d["status"] for d in done} == {"compacted"} and len(done) == 2

    fresh = warehouse.open(str(root))
    ids = [r[0] for r in fresh.sql("select execution_id from executions").fetchall()]
    assert len(ids) == len(set(ids)) == 2 * 9 + 4 * 2
    assert {f"p9-f{f}-{i}" for f in range(4) for i in range(2)} <= set(ids)
    msgs = fresh.sql(
        "select execution_id, count(*) from messages group by 1 having count(*) <> "
        "(case when execution_id like 'p9-%' then 2 else 3 end)"
    ).fetchall()
    assert msgs == []
    # The appender's files came after the compaction planned: they are not its inputs.
    assert len(fresh.files("executions", {"attack": "none"})) == 1 + 4


def test_two_compactions_at_once_lose_and_duplicate_nothing(wh, root, open_writer, children: Children) -> None:
    seed(wh, open_writer, flushes=3)
    before = views(wh)
    first, second = children.start("compactor.py", root, "all"), children.start("compactor.py", root, "all")
    with watchdog([first, second], 120):
        # Both have planned from the same snapshot and written their outputs for the same partition.
        assert children.line(first, "paused ") == children.line(second, "paused ") == "3 1"
        first.stdin.write("go\n")
        first.stdin.flush()
        won = json.loads(children.line(first, "done "))
        second.stdin.write("go\n")
        second.stdin.flush()
        lost = json.loads(children.line(second, "done "))
    assert first.wait() == 0 and second.wait() == 0, children.stderr(second)
    assert {d["status"] for d in won} == {"compacted"} and len(won) == 6
    assert {d["status"] for d in lost} == {"unchanged"}, lost  # conflicted, planned again: nothing left

    fresh = warehouse.open(str(root))
    assert views(fresh) == before
    assert len(compacts(fresh)) == 6
    assert all(n == 1 for t in ("executions", "messages", "attacks") for n in files_per_partition(fresh, t).values())
    removed = {r.path for c in fresh.log.commits() for r in c.remove}
    assert data_files(root) == set(fresh.snapshot.files) | removed, "the loser's outputs are deleted"


# -- vacuum ------------------------------------------------------------------------------------------
def age(path: Path, seconds: float) -> None:
    """Make `path` look last modified `seconds` ago."""
    t = time.time() - seconds
    os.utime(path, (t, t))


@pytest.mark.slow
def test_vacuum_deletes_removed_files_only_after_the_retention(wh, root, open_writer) -> None:
    seed(wh, open_writer)
    wh.compact()
    before = views(wh)
    removed = sorted(r.path for c in compacts(wh) for r in c.remove)
    assert removed
    now = datetime.now(UTC)

    for when in (now, now + WEEK - timedelta(minutes=1)):
        result = wh.vacuum(now=when)
        assert (result.removed, result.orphans, result.temp, result.files) == ((), (), (), 0)
        assert all((root / p).exists() for p in removed)

    result = wh.vacuum(now=now + WEEK + timedelta(minutes=1))

    assert list(result.removed) == removed and result.by_table == {
        "attacks": (8, 0),
        "executions": (8, 0),
        "messages": (8, 0),
    }
    assert result.bytes > 0 and result.cutoff > now
    assert not any((root / p).exists() for p in removed)
    assert all((root / p).exists() for p in wh.snapshot.files)
    assert views(wh) == before and views(warehouse.open(str(root))) == before
    assert wh.vacuum(now=now + 2 * WEEK).files == 0


@pytest.mark.slow
def test_vacuum_never_deletes_a_file_of_the_current_snapshot(wh, root, open_writer, make_messages) -> None:
    campaign(wh, open_writer, make_messages)
    before = views(wh)
    for p in data_files(root):
        age(root / p, 10 * 86400)

    result = wh.vacuum(retain=timedelta(0), now=datetime.now(UTC) + 4 * WEEK)

    assert result.files == 0  # nothing was ever removed, nothing is an orphan
    assert data_files(root) >= set(wh.snapshot.files)
    assert views(wh) == before


@pytest.mark.slow
def test_orphans_older_than_the_window_go_and_younger_ones_stay(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=2)
    # What a crashed writer leaves: data files written but never committed, and a torn temp file.
    old = [
        write_data_file(wh, "executions", dict(f.partition), pq.read_table(wh.store.full(f.path))).path
        for f in wh.files("executions")
    ]
    young = write_data_file(
        wh,
        "messages",
        dict(wh.files("messages")[0].partition),
        pq.read_table(wh.store.full(wh.files("messages")[0].path)),
    ).path
    torn = Path(wh.store.full(old[0])).parent / ".tmp-0123abcd"
    torn.write_bytes(b"half a parquet file")
    for p in old:
        age(root / p, 2 * 3600)
    age(torn, 2 * 3600)
    # Not orphans, whatever their age: configs, run claims, commits.
    keep = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in data_files(root)]
    keep += [root / f.path for f in wh.snapshot.files.values()]
    (root / "runs").mkdir()
    (root / "runs" / "run_x.json").write_text("{}")
    keep.append(root / "runs" / "run_x.json")
    for p in keep:
        age(p, 30 * 86400)
    before = views(wh)

    result = wh.vacuum()

    assert sorted(result.orphans) == sorted([*old, torn.relative_to(root).as_posix()])
    assert result.young_orphans == 1 and result.removed == ()
    assert (root / young).exists() and not any((root / p).exists() for p in old) and not torn.exists()
    assert all(p.exists() for p in keep)
    assert views(wh) == before
    # A `now` in the future does not shorten the window for files in flight: judged by the real time.
    assert wh.vacuum(now=datetime.now(UTC) + timedelta(hours=2)).orphans == ()
    # Once the window has passed, the young one goes too.
    age(root / young, 2 * 3600)
    assert wh.vacuum().orphans == (young,)


def test_a_file_written_inside_the_window_can_still_be_committed_after_a_vacuum(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=1)
    f = wh.files("executions")[0]
    t = pq.read_table(wh.store.full(f.path))
    i = t.schema.get_field_index("execution_id")
    rows = t.set_column(i, t.schema.field(i), pa.array([f"slow-{i}" for i in range(f.rows)]))  # keeps the field id
    slow = write_data_file(wh, "executions", dict(f.partition), rows)  # a slow writer's flush, not yet committed

    assert wh.vacuum().young_orphans == 1 and (root / slow.path).exists()
    wh.engine.commit(operation="append", writer=writer_info("slow"), token=None, add=[slow])
    assert {
        r[0] for r in wh.sql("select execution_id from executions where execution_id like 'slow-%'").fetchall()
    } == {f"slow-{i}" for i in range(f.rows)}


def test_a_file_committed_while_vacuum_runs_is_not_deleted(wh, root, open_writer, monkeypatch) -> None:
    seed(wh, open_writer, flushes=1)
    f = wh.files("executions")[0]
    late = write_data_file(wh, "executions", dict(f.partition), pq.read_table(wh.store.full(f.path)).slice(0, 0))
    age(root / late.path, 3 * 3600)  # older than the window: listed as an orphan
    other = warehouse.open(str(root))
    read_many = wh.log.read_many
    committed = []

    def commit_meanwhile(versions: list[int]) -> list:
        # Once the vacuum has read the log (and so listed `late` as an orphan), `late` is committed.
        out = read_many(versions)
        if not committed:
            committed.append(
                other.engine.commit(operation="append", writer=writer_info("late"), token=None, add=[late])
            )
        return out

    monkeypatch.setattr(wh.log, "read_many", commit_meanwhile)
    result = wh.vacuum()

    assert committed and result.orphans == () and (root / late.path).exists()
    assert late.path in warehouse.open(str(root)).snapshot.files


def test_vacuum_refuses_an_orphan_window_under_the_minimum(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=1)
    before = data_files(root)
    for window in (timedelta(0), timedelta(seconds=1), warehouse.manifest.MIN_ORPHAN_WINDOW - timedelta(seconds=1)):
        with pytest.raises(warehouse.OrphanWindowTooShort) as err:
            wh.vacuum(retain=timedelta(0), orphan_window=window)
        assert isinstance(err.value, ValueError)
        assert "is shorter than the minimum, 1h" in str(err.value)
    assert data_files(root) == before
    assert wh.vacuum(orphan_window=warehouse.manifest.MIN_ORPHAN_WINDOW).files == 0


def test_retain_zero_is_allowed_alike_by_the_api_and_the_cli(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=2)
    wh.compact()
    replaced = sorted(r.path for c in compacts(wh) for r in c.remove)
    res = cli("vacuum", "--url", str(root), "--retain", "0s", "-f", "json")
    assert res.returncode == 0, res.stderr
    assert sorted(r["path"] for r in json.loads(res.stdout) if r["kind"] == "removed") == replaced
    assert not any((root / p).exists() for p in replaced)
    assert wh.vacuum(retain=timedelta(0)).files == 0  # the API takes the same 0


def test_a_commit_refuses_a_data_file_older_than_the_deadline(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=1)
    f = wh.files("executions")[0]
    fresh = write_data_file(wh, "executions", dict(f.partition), pq.read_table(wh.store.full(f.path)).slice(0, 0))
    deadline = warehouse.manifest.COMMIT_DEADLINE.total_seconds()
    mono, wall = fresh.staged
    for staged in ((mono - deadline - 1, wall), (mono, wall - deadline - 1), (None, wall - deadline - 1)):
        old = dataclasses.replace(fresh, staged=staged)  # written longer ago, by either clock, than the deadline
        with pytest.raises(warehouse.StaleDataFile) as err:
            wh.log.commit(wh.snapshot, operation="append", writer=writer_info("slow"), token=None, add=[old])
        assert fresh.path in str(err.value) and "commit deadline (1800 s)" in str(err.value)
        assert isinstance(err.value, warehouse.CommitConflict)
    assert wh.log.versions()[-1] == wh.version  # nothing was committed
    assert wh.log.commit(wh.snapshot, operation="append", writer=writer_info("quick"), token=None, add=[fresh])


def test_a_flush_retried_after_the_deadline_writes_its_files_again(wh, root, open_writer, monkeypatch) -> None:
    w = open_writer(wh, **CONFIG_A)
    w.add_execution(execution_id="late-1", task_id="t", benign_score=1.0, messages=[{"role": "user", "content": "q"}])

    def unreachable(self, rel, data):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(warehouse.core.storage.Store, "put_if_absent", unreachable)
    with pytest.raises(OSError):
        w.flush()
    monkeypatch.undo()
    first = data_files(root)
    assert first and w.buffered_rows == 1
    # The store comes back long after: the failed flush's files are older than the commit deadline
    # (a vacuum may have taken them). Their clocks say so; the files themselves are left as they are.
    real_age, failed_at = warehouse.manifest.staged_age, time.monotonic()
    monkeypatch.setattr(
        warehouse.manifest.model,
        "staged_age",
        lambda s: real_age(s) + (2 * 3600 if s[0] is not None and s[0] < failed_at else 0),
    )
    version = w.flush()

    commit = wh.log.read(version)
    assert commit is not None and not {a.path for a in commit.add} & first  # written again, under new names
    assert wh.sql("select execution_id from executions").fetchall() == [("late-1",)]
    report = wh.doctor()
    assert report.healthy and {f.path for f in report.orphans} == first
    monkeypatch.undo()
    for p in first:
        age(root / p, 2 * 3600)
    assert set(wh.vacuum().orphans) == first
    assert wh.sql("select execution_id from executions").fetchall() == [("late-1",)] and wh.doctor().findings == []


@pytest.mark.slow
def test_a_compaction_that_outlives_the_deadline_commits_nothing_and_loses_nothing(
    wh, root, open_writer, monkeypatch
) -> None:
    seed(wh, open_writer)
    before, files = views(wh), set(wh.snapshot.files)
    real_age = warehouse.manifest.staged_age
    monkeypatch.setattr(warehouse.manifest.model, "staged_age", lambda s: real_age(s) + 2 * 3600)

    result = wh.compact()

    assert {p.status for p in result.partitions} == {"conflict"} and result.versions == []
    assert all("commit deadline" in p.error for p in result.partitions)
    assert set(wh.snapshot.files) == files and data_files(root) == files  # outputs deleted, inputs kept
    assert views(warehouse.open(str(root))) == before


def test_stale_manifest_temp_files_go_and_commits_stay(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=1)
    manifest = root / "_manifest"
    stale, fresh, probe = manifest / ".tmp-deadbeef", manifest / ".tmp-cafe", manifest / ".probe-0001"
    for p in (stale, fresh, probe):
        p.write_bytes(b"x")
    age(stale, 2 * 3600)
    age(probe, 2 * 3600)
    commits = sorted(p.name for p in manifest.iterdir() if not p.name.startswith("."))
    for p in manifest.iterdir():
        if not p.name.startswith("."):
            age(p, 30 * 86400)

    result = wh.vacuum()

    assert sorted(result.temp) == ["_manifest/.probe-0001", "_manifest/.tmp-deadbeef"]
    assert fresh.exists() and not stale.exists() and not probe.exists()
    assert sorted(p.name for p in manifest.iterdir() if not p.name.startswith(".")) == commits


def test_a_crashed_writers_data_files_are_removed_by_vacuum(tmp_path: Path, children: Children) -> None:
    root = tmp_path / "wh"
    warehouse.open(str(root), create=True)
    proc = children.start("crash_writer.py", root, "x", 3, 2, "before_commit", 2)
    with watchdog([proc], 60):
        children.expect_line(proc, "committed 1 ")
        children.expect_line(proc, "paused before_commit 2")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    wh = warehouse.open(str(root))
    debris = data_files(root) - set(wh.snapshot.files)
    assert debris, "the kill left no uncommitted data files"
    before = views(wh)

    assert wh.vacuum().orphans == () and data_files(root) - set(wh.snapshot.files) == debris  # inside the window
    for p in debris:
        age(root / p, 2 * 3600)
    result = wh.vacuum()

    assert set(result.orphans) == debris
    assert data_files(root) == set(wh.snapshot.files)
    assert views(warehouse.open(str(root))) == before


def test_vacuum_dry_run_deletes_nothing_and_lists_what_the_real_run_deletes(
    wh, root, open_writer, snapshot_tree
) -> None:
    seed(wh, open_writer, flushes=2)
    wh.compact()
    orphan = write_data_file(
        wh, "attacks", dict(wh.files("attacks")[0].partition), pq.read_table(wh.store.full(wh.files("attacks")[0].path))
    ).path
    age(root / orphan, 2 * 3600)
    later = datetime.now(UTC) + WEEK + timedelta(hours=1)
    before = snapshot_tree(root)

    dry = wh.vacuum(now=later, dry_run=True)

    assert snapshot_tree(root) == before
    assert dry.dry_run and len(dry.removed) == 12 and dry.orphans == (orphan,) and dry.folded is None
    real = wh.vacuum(now=later)
    assert (real.removed, real.orphans, real.bytes, real.readable_from) == (
        dry.removed,
        dry.orphans,
        dry.bytes,
        dry.readable_from,
    )


@pytest.mark.slow
def test_time_travel_to_a_vacuumed_version_fails_clearly_and_newer_versions_open(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=2)
    pre = wh.version
    old_rows = views(warehouse.open(str(root), version=pre))
    wh.compact()
    last_compact = wh.version
    with wh.writer(**CONFIG_A, flush_interval=None) as w:
        flush(w, ["after-1"])
    assert views(warehouse.open(str(root), version=pre)) == old_rows  # before vacuum: time travel works

    result = wh.vacuum(now=datetime.now(UTC) + WEEK + timedelta(hours=1))

    assert result.readable_from == last_compact
    for v in (1, pre, last_compact - 1):
        with pytest.raises(VersionNotFound) as exc:
            warehouse.open(str(root), version=v)
        message = str(exc.value)
        assert f"version {v} is no longer readable" in message and "7d" in message
        assert f"oldest readable version is {last_compact}" in message
    with pytest.raises(VersionNotFound, match="no longer readable"):
        warehouse.open(str(root), as_of=wh.log.read(pre).committed_at)
    for v in (last_compact, wh.version):
        travel = warehouse.open(str(root), version=v)
        assert travel.sql("select count(*) from executions").fetchall()[0][0] == 12 + (v == wh.version)
    # A later vacuum that deletes nothing new keeps the record.
    wh.vacuum(now=datetime.now(UTC) + 2 * WEEK)
    with pytest.raises(VersionNotFound):
        warehouse.open(str(root), version=pre)


def test_check_readable_names_the_version_and_the_retention(wh, open_writer) -> None:
    maintenance.check_readable(wh.store, 0)  # never vacuumed: every version is readable
    seed(wh, open_writer, flushes=2)
    wh.compact()
    wh.vacuum(retain=timedelta(hours=12), now=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(
        VersionNotFound,
        match=r"version 2 is no longer readable: vacuum at .* \(files removed from "
        r"the snapshot more than 12h before, the retention\)",
    ):
        maintenance.check_readable(wh.store, 2)
    maintenance.check_readable(wh.store, wh.version)


def test_vacuum_folds_only_commits_older_than_the_retention_and_a_dry_run_folds_none(wh, open_writer) -> None:
    seed(wh, open_writer, flushes=1)
    checkpoint = wh.checkpoint()
    with wh.writer(**CONFIG_A, flush_interval=None) as w:
        flush(w, ["after-1"])
    versions = wh.log.versions()
    assert checkpoint > 0 and versions == list(range(wh.version + 1))

    assert wh.vacuum(retain=timedelta(days=3), now=datetime.now(UTC) + timedelta(days=2)).folded == []
    assert wh.vacuum(dry_run=True, now=datetime(2030, 1, 1, tzinfo=UTC)).folded is None
    assert wh.log.versions() == versions  # neither the recent commits nor the dry run folded any

    result = wh.vacuum(retain=timedelta(days=3), now=datetime(2030, 1, 1, tzinfo=UTC))

    assert result.folded == list(range(checkpoint)) and wh.log.versions() == versions[checkpoint:]


@pytest.mark.slow
def test_vacuum_folds_commits_into_a_checkpoint_and_recent_versions_still_open(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=3)
    wh.compact()
    with wh.writer(**CONFIG_A, flush_interval=None) as w:
        flush(w, ["after-1"])
    checkpoint = wh.checkpoint()
    with wh.writer(**CONFIG_A, flush_interval=None) as w:
        flush(w, ["after-2"])
    before = views(wh)

    result = wh.vacuum(now=datetime.now(UTC) + WEEK + timedelta(hours=1))

    assert result.folded == list(range(checkpoint)), "every commit before the checkpoint is folded"
    fresh = warehouse.open(str(root))
    assert views(fresh) == before and fresh.version == wh.version
    for v in (checkpoint, wh.version):
        assert warehouse.open(str(root), version=v).sql("select count(*) from executions").fetchall() == [
            (19 + (v == wh.version),)
        ]
    with pytest.raises(VersionNotFound):
        warehouse.open(str(root), version=checkpoint - 1)
    # Later vacuums work from the checkpoint and the commits after it: nothing referenced goes.
    again = wh.vacuum(retain=timedelta(0), now=datetime.now(UTC) + 2 * WEEK)
    assert again.removed == () and again.orphans == ()
    assert views(warehouse.open(str(root))) == before


# -- S3 ----------------------------------------------------------------------------------------------
def test_compaction_and_vacuum_on_s3(wh, s3, s3_url: str, s3_options: dict, open_writer, monkeypatch) -> None:
    remote = warehouse.open(s3_url, storage_options=s3_options, create=True)
    seed(remote, open_writer, flushes=3)
    seed(wh, open_writer, flushes=3)
    before = views(remote)

    result = remote.compact()

    assert [(p.table, p.files_in, p.files_out, p.rows) for p in result.partitions] == [
        (p.table, p.files_in, p.files_out, p.rows) for p in wh.compact().partitions
    ]
    assert views(remote) == before
    assert views(warehouse.open(s3_url, storage_options=s3_options)) == before
    fs = s3.fs()
    prefix = s3_url.removeprefix("s3://")
    for f in remote.files("executions"):
        with fs.open(f"{prefix}/{f.path}", "rb") as fh:
            t = pq.read_table(fh, columns=["execution_id"])
        assert t.column(0).to_pylist() == sorted(t.column(0).to_pylist())
    removed = sorted(r.path for c in compacts(remote) for r in c.remove)
    orphan = write_data_file(
        remote,
        "executions",
        dict(remote.files("executions")[0].partition),
        pa.Table.from_batches([], schema=catalog().table("executions").arrow),
    ).path
    fs.pipe(f"{prefix}/_manifest/.tmp-stale", b"x")

    kept = remote.vacuum()  # everything is young on S3 (LastModified is now)
    assert kept.files == 0 and kept.young_orphans == 1

    # LastModified cannot be set back on S3: with no writer running, lift the minimum window (which
    # protects writers' files in flight) to let the orphan go now.
    monkeypatch.setattr(warehouse.manifest.model, "MIN_ORPHAN_WINDOW", timedelta(0))
    result = remote.vacuum(orphan_window=timedelta(0), now=datetime.now(UTC) + WEEK + timedelta(hours=1))

    assert list(result.removed) == removed and result.orphans == (orphan,) and result.temp == ("_manifest/.tmp-stale",)
    left = {p.removeprefix(prefix + "/") for p in fs.find(prefix)}
    assert not set(removed) & left and orphan not in left and "_manifest/.tmp-stale" not in left
    assert set(remote.snapshot.files) <= left and any(p.startswith("configs/") and p.endswith(".yaml") for p in left)
    assert views(warehouse.open(s3_url, storage_options=s3_options)) == before
    with pytest.raises(VersionNotFound, match="no longer readable"):
        warehouse.open(s3_url, storage_options=s3_options, version=3)


# -- CLI ---------------------------------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "warehouse", *args], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )


def test_cli_compact_dry_run_then_for_real(wh, root, open_writer, snapshot_tree) -> None:
    seed(wh, open_writer)
    url, before_tree, before = str(root), snapshot_tree(root), views(wh)

    dry = cli("compact", "--url", url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        "would compact" in dry.stdout and "dry run: would rewrite 24 files into at most 6 in 6 partitions" in dry.stdout
    )
    assert snapshot_tree(root) == before_tree

    one = cli("compact", "-u", url, "--table", "messages", "--where", "agent=plain,attack=none", "-f", "json")
    assert one.returncode == 0, one.stderr
    [row] = json.loads(one.stdout)
    assert (row["table"], row["attack"], row["files in"], row["files out"], row["rows"], row["status"]) == (
        "messages",
        "none",
        4,
        1,
        36,
        "compacted",
    )

    real = cli("compact", "--url", url, "--target-size", "64MB")
    assert real.returncode == 0, real.stderr
    assert "rewrote 20 files into 5 in 5 partitions (108 rows)" in real.stdout and "target 64.0 MB" in real.stdout
    assert views(warehouse.open(url)) == before
    again = cli("compact", "--url", url)
    assert again.returncode == 0 and "nothing to compact" in again.stdout


def test_cli_vacuum_dry_run_then_for_real(wh, root, open_writer) -> None:
    seed(wh, open_writer, flushes=2)
    wh.compact()
    orphan = write_data_file(
        wh,
        "executions",
        dict(wh.files("executions")[0].partition),
        pq.read_table(wh.store.full(wh.files("executions")[0].path)),
    ).path
    age(root / orphan, 3 * 3600)
    url = str(root)

    dry = cli("vacuum", "--url", url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete" in dry.stdout and "dry run: would delete 1 file" in dry.stdout and (root / orphan).exists()
    assert "0 removed before" in dry.stdout and "1 orphans" in dry.stdout

    as_json = cli("vacuum", "-u", url, "--orphan-window", "2h", "-f", "json")
    assert json.loads(as_json.stdout) == [{"kind": "orphan", "files": 1, "path": orphan}]
    assert not (root / orphan).exists()
    kept = cli("vacuum", "-u", url, "--retain", "30d", "--orphan-window", "90m")
    assert kept.returncode == 0 and "deleted 0 files" in kept.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["compact", "--target-size", "huge"], "bad size 'huge'"),
        (["compact", "--where", "model=x"], "cannot filter partitions by 'model'"),
        (["compact", "--table", "nope"], "unknown table 'nope'"),
        (["vacuum", "--retain", "7 weeks"], "bad duration '7 weeks'"),
        (["vacuum", "--orphan-window", "0s"], "orphan_window 0s is shorter than the minimum, 1h"),
        (["vacuum", "--orphan-window", "1s"], "orphan_window 1s is shorter than the minimum, 1h"),
        (["vacuum", "--retain", "-1s"], "bad duration '-1s'"),
    ],
)
def test_cli_errors_are_one_line(wh, root, args, message) -> None:
    res = cli(*args, "--url", str(root))
    assert res.returncode == 1
    assert "Traceback" not in res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_cli_compact_and_vacuum_have_help() -> None:
    res = cli("compact", "--help")
    assert res.returncode == 0 and "--target-size" in res.stdout and "--where" in res.stdout
    res = cli("vacuum", "--help")
    assert res.returncode == 0 and "--retain" in res.stdout and "--orphan-window" in res.stdout
