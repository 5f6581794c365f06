"""`warehouse sync SRC DST` / `Warehouse.sync_to`: local <-> S3 and S3 -> S3 against the real S3-API
server of `s3_server.py`; incremental, idempotent, resumable after `kill -9`, with writers on both sides;
and rewrites (compaction, expire, delete, doctor's repair) on either side or both: never a row twice,
never a deleted row back, and SyncDiverged where that cannot be done exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import AGENT, ATTACK, DATASET, build_messages
from faultproxy import FaultProxy
from s3_server import S3Endpoint
from test_s3 import T0, answers, run_cli, write_runs

import warehouse
from warehouse.engine.datafiles import write_data_file
from warehouse.manifest import RemovedFile, staging_clock, writer_info
from warehouse.ops.sync import Progress


def location(kind: str, s3: S3Endpoint, s3_url: str, tmp_path: Path, name: str) -> tuple[str, dict | None]:
    if kind == "local":
        return str(tmp_path / name), None
    return f"{s3_url}/{name}", s3.options()


def execution_ids(wh: warehouse.Warehouse) -> Counter:
    return Counter(r[0] for r in wh.sql("select execution_id from executions_all").fetchall())


@pytest.mark.parametrize("direction", ["local->s3", "s3->local", "s3->s3"])
def test_sync_makes_dst_answer_like_src_and_a_second_run_copies_nothing(
    s3: S3Endpoint, s3_url: str, tmp_path: Path, direction: str
) -> None:
    src_kind, dst_kind = direction.split("->")
    src_url, src_opts = location(src_kind, s3, s3_url, tmp_path, "src")
    dst_url, dst_opts = location(dst_kind, s3, s3_url, tmp_path, "dst")
    src = warehouse.open(src_url, storage_options=src_opts, create=True)
    write_runs(src, n=4, flushes=2)

    seen: list[Progress] = []
    threads: set[str] = set()

    def progress(p: Progress) -> None:
        seen.append(p)
        threads.add(threading.current_thread().name)

    result = src.sync_to(dst_url, storage_options=dst_opts, workers=4, progress=progress)
    n_files = len(src.snapshot.files)
    assert (result.files, result.bytes) == (n_files, sum(f.bytes for f in src.snapshot.files.values()))
    assert result.commits == [1] and result.configs == 2 and result.reused == 0
    assert (seen[-1].files_done, seen[-1].files_total) == (n_files, n_files)
    assert seen[-1].bytes_done == seen[-1].bytes_total == result.bytes
    assert [p.files_done for p in seen] == list(range(1, n_files + 1))
    assert len(threads) > 1, "files were not copied in parallel"

    dst = warehouse.open(dst_url, storage_options=dst_opts)
    assert answers(dst) == answers(src)
    assert [c.operation for c in dst.history()] == ["sync", "create"]
    # every row of SRC, and one ledger row (`imports`, kind sync) per file taken in
    assert dst.history()[0].rows_added == sum(f.rows for f in src.snapshot.files.values()) + n_files
    assert sorted(p for (p,) in dst.sql("select source from imports where kind = 'sync'").fetchall()) == sorted(
        src.snapshot.files
    )

    again = src.sync_to(dst_url, storage_options=dst_opts)
    assert again.up_to_date and again.commits == [] and again.files == 0 and again.configs == 0
    assert warehouse.open(dst_url, storage_options=dst_opts).version == 1


def test_sync_is_incremental_and_keeps_dst_own_rows(s3: S3Endpoint, s3_url: str, tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=2, flushes=1)
    dst_url = f"{s3_url}/dst"
    src.sync_to(dst_url, storage_options=s3.options())
    dst = warehouse.open(dst_url, storage_options=s3.options())
    with dst.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:  # DST's own results
        w.add_execution(execution_id="dst-only", task_id="t", benign_score=1.0)
    before = set(src.snapshot.files)
    with src.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
        w.add_execution(execution_id="src-new", task_id="t", benign_score=0.0)
    src.refresh()

    result = src.sync_to(dst_url, storage_options=s3.options())
    assert result.files == len(set(src.snapshot.files) - before) == 2  # executions + messages of one flush
    dst.refresh()
    ids = execution_ids(dst)
    assert ids == execution_ids(src) + Counter(["dst-only"])


def test_dry_run_copies_and_commits_nothing(s3: S3Endpoint, s3_url: str, tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=2, flushes=1)
    dst_url = f"{s3_url}/dst"
    plan = src.sync_to(dst_url, storage_options=s3.options(), dry_run=True)
    assert plan.dry_run and plan.files == len(src.snapshot.files) and plan.commits == []
    assert plan.tables["executions"]["rows"] == 4 and plan.configs == 2
    assert not s3.fs().exists(dst_url.removeprefix("s3://")), "a dry run must not even create DST"
    src.sync_to(dst_url, storage_options=s3.options())
    assert src.sync_to(dst_url, storage_options=s3.options(), dry_run=True).up_to_date


def test_sync_carries_over_a_compaction_in_src_without_duplicating_rows(
    s3: S3Endpoint, s3_url: str, tmp_path: Path
) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst_url = f"{s3_url}/dst"
    src.sync_to(dst_url, storage_options=s3.options())

    # Compact the two executions files of one partition in SRC into one (as maintenance would).
    olds = src.files("executions", {"agent": "tool_agent"})
    assert len(olds) == 2
    merged = pa.concat_tables([pq.read_table(src.store.full(f.path)) for f in olds])
    new = write_data_file(src, "executions", dict(olds[0].partition), merged)
    src.engine.commit(
        operation="compact",
        writer=writer_info("compactor"),
        token="compact:1",
        add=[new],
        remove=[RemovedFile(f.table, f.path) for f in olds],
    )

    result = src.sync_to(dst_url, storage_options=s3.options())
    assert (result.files, result.removed, len(result.commits)) == (1, 2, 1)
    dst = warehouse.open(dst_url, storage_options=s3.options())
    assert set(execution_ids(dst).values()) == {1}
    assert answers(dst) == answers(src)
    assert dst.history()[0].files_removed == 2


def test_sync_while_both_sides_are_written_loses_and_duplicates_nothing(
    s3: S3Endpoint, s3_url: str, tmp_path: Path
) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=4)
    dst_url = f"{s3_url}/dst"
    dst = warehouse.open(dst_url, storage_options=s3.options(), create=True)
    stop = threading.Event()
    written: dict[str, list[str]] = {"src": [], "dst": []}

    def keep_writing(wh: warehouse.Warehouse, side: str) -> None:
        with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
            i = 0
            while i < 3 or (not stop.is_set() and i < 10):  # bounded: at least 3 flushes, at most 10
                written[side].append(w.add_execution(execution_id=f"{side}-{i}", task_id="t", benign_score=1.0))
                w.flush()
                i += 1

    writers = [
        threading.Thread(target=keep_writing, args=(warehouse.open(str(tmp_path / "src")), "src")),
        threading.Thread(target=keep_writing, args=(warehouse.open(dst_url, storage_options=s3.options()), "dst")),
    ]
    for t in writers:
        t.start()
    try:
        src.sync_to(dst, batch_files=4)
    finally:
        stop.set()
        for t in writers:
            t.join()
    src.sync_to(dst)  # the rest of SRC's writes
    src.refresh()
    dst.refresh()
    ids = execution_ids(dst)
    assert set(ids.values()) == {1}
    assert ids == execution_ids(src) + Counter(written["dst"])
    assert len(written["src"]) >= 3 and len(written["dst"]) >= 3


N_KILL = 120


def test_sync_killed_with_kill_9_resumes_without_duplicates_or_visible_orphans(
    s3: S3Endpoint, s3_url: str, tmp_path: Path
) -> None:
    src_url = str(tmp_path / "src")
    src = warehouse.open(src_url, create=True)
    with src.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
        for i in range(N_KILL):  # small commits of 2 files each
            w.add_execution(
                execution_id=f"e-{i:03d}",
                task_id=f"t{i}",
                benign_score=float(i % 2),
                messages=[{"role": "user", "content": f"task {i}"}],
            )
            w.flush()
    src.refresh()
    dst_url = f"{s3_url}/dst"
    env = {**os.environ, **s3.env()}
    cmd = [sys.executable, "-m", "warehouse", "sync", src_url, dst_url, "--batch-files", "10", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fs = s3.fs()
    manifest = dst_url.removeprefix("s3://") + "/_manifest"
    deadline = time.monotonic() + 60
    try:
        # Kill it once its first batch is committed (version 1), in the middle of the rest.
        while time.monotonic() < deadline and proc.poll() is None:
            if fs.exists(f"{manifest}/00000000000000000001.json"):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "sync finished before it could be killed: make the source bigger"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()

    half = warehouse.open(dst_url, storage_options=s3.options())
    assert half.version >= 1
    partial = execution_ids(half)
    assert set(partial.values()) == {1} and len(partial) < N_KILL
    # Whole source commits only: every execution visible has its message.
    assert half.sql("select count(*) from messages").fetchall() == [(len(partial),)]

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "synced" in r.stdout
    done = warehouse.open(dst_url, storage_options=s3.options())
    assert execution_ids(done) == Counter(f"e-{i:03d}" for i in range(N_KILL))
    assert answers_small(done) == answers_small(src)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stderr
    assert warehouse.open(dst_url, storage_options=s3.options()).version == done.version


def answers_small(wh: warehouse.Warehouse) -> list[Any]:
    return [
        wh.sql("select execution_id, benign_score from executions order by 1").fetchall(),
        wh.sql("select execution_id, content from messages order by 1").fetchall(),
    ]


def test_cli_sync_dry_run_then_sync_then_up_to_date(s3: S3Endpoint, s3_url: str, tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=2, flushes=1)
    env = {**os.environ, **s3.env()}
    dst_url = f"{s3_url}/dst"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "warehouse", "sync", str(tmp_path / "src"), dst_url, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    as_json, as_table = run_cli(
        [
            ["sync", str(tmp_path / "src"), dst_url, "--dry-run", "--format", "json"],
            ["sync", str(tmp_path / "src"), dst_url, "--dry-run"],
        ],
        env,
    )
    assert as_json.returncode == 0, as_json.stderr
    assert {t["table"]: t["rows"] for t in json.loads(as_json.stdout)}["executions"] == 4
    assert "would be copied" in as_table.stdout and "nothing was written" in as_table.stdout
    r = cli()
    assert r.returncode == 0 and "synced" in r.stdout and "1 commit" in r.stdout, r.stderr
    r = cli()
    assert r.returncode == 0 and "up to date" in r.stdout


def test_sync_to_a_missing_bucket_fails_with_one_line_naming_it(s3: S3Endpoint, tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=1, flushes=1)
    dst_url = f"s3://no-such-bucket-{os.getpid()}/dst"
    with pytest.raises(warehouse.WarehouseError) as exc:
        src.sync_to(dst_url, storage_options=s3.options())
    assert dst_url in str(exc.value) and "does not exist" in str(exc.value)


def test_sync_through_a_faulty_network_copies_everything_once(s3: S3Endpoint, s3_url: str, tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=6, flushes=3)
    dst_url = f"{s3_url}/dst"
    with FaultProxy(s3.url, rate=0.2, seed=3) as proxy:
        result = src.sync_to(dst_url, storage_options=s3.options(proxy.url), batch_files=5)
        assert proxy.stats.failed >= 5
    dst = warehouse.open(dst_url, storage_options=s3.options())
    assert answers(dst) == answers(src)
    assert result.commits == list(range(1, dst.version + 1)) and len(result.commits) == 3


# -- rewrites on either side: never a row twice, never a deleted row back ----------------------------
def raw_counts(wh: warehouse.Warehouse) -> list[Any]:
    """Rows of the raw tables (a file taken in twice shows here even where a view would hide it)."""
    return [wh.sql(f"select count(*) from raw_{t}").fetchall()[0][0] for t in ("executions", "messages", "attacks")]


def assert_same(dst: warehouse.Warehouse, src: warehouse.Warehouse) -> None:
    src.refresh()
    dst.refresh()
    assert answers(dst) == answers(src)
    assert raw_counts(dst) == raw_counts(src)
    assert set(execution_ids(dst).values()) == {1}


def assert_up_to_date(src: warehouse.Warehouse, dst: warehouse.Warehouse) -> None:
    """A plain repeated sync copies nothing, removes nothing and commits nothing."""
    dst.refresh()
    before = dst.version
    again = src.sync_to(dst)
    assert again.up_to_date and again.commits == [] and again.files == 0
    assert dst.refresh() == before


def own_runs(wh: warehouse.Warehouse, prefix: str, flushes: int = 2) -> None:
    """Executions written to `wh` itself, in the configuration (partition) of write_runs' "a" runs."""
    with wh.writer(dataset=DATASET, agent=AGENT, attack=ATTACK, run_id=f"job-{prefix}", flush_interval=None) as w:
        for i in range(flushes):
            w.add_execution(
                execution_id=f"{prefix}-{i:03d}",
                task_id=f"user_task_{i}",
                benign_score=1.0,
                attack_score=0.0,
                started_at=T0,
                finished_at=T0 + timedelta(seconds=1),
                messages=build_messages(turns=1),
                attacks=[{"vector_id": "v0", "type": "str", "content": "x"}],
            )
            w.flush()


def new_files(wh: warehouse.Warehouse, before: set[str]) -> set[str]:
    wh.refresh()
    return set(wh.snapshot.files) - before


@pytest.mark.parametrize("dst_kind", ["local", "s3"])
def test_a_compaction_in_dst_is_not_undone_by_the_next_sync(
    s3: S3Endpoint, s3_url: str, tmp_path: Path, dst_kind: str
) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst_url, dst_opts = location(dst_kind, s3, s3_url, tmp_path, "dst")
    src.sync_to(dst_url, storage_options=dst_opts)
    dst = warehouse.open(dst_url, storage_options=dst_opts)
    assert dst.compact().files_in > 0

    # The files DST rewrote into fewer are not in its snapshot any more; they are not copied again.
    again = src.sync_to(dst)
    assert (again.files, again.removed, again.commits) == (0, 0, [])
    assert_same(dst, src)
    assert_up_to_date(src, dst)


@pytest.mark.parametrize("dst_kind", ["local", "s3"])
def test_src_compacting_what_dst_compacted_replaces_dst_files_exactly(
    s3: S3Endpoint, s3_url: str, tmp_path: Path, dst_kind: str
) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst_url, dst_opts = location(dst_kind, s3, s3_url, tmp_path, "dst")
    src.sync_to(dst_url, storage_options=dst_opts)
    dst = warehouse.open(dst_url, storage_options=dst_opts)
    before = set(dst.snapshot.files)
    dst.compact()
    dst_outputs = new_files(dst, before)
    before = set(src.snapshot.files)
    src.compact()
    src_outputs = new_files(src, before)
    assert dst_outputs and src_outputs

    result = src.sync_to(dst)
    assert result.files == len(src_outputs) and len(result.commits) == 1
    dst.refresh()
    assert not dst_outputs & set(dst.snapshot.files) and src_outputs <= set(dst.snapshot.files)
    assert result.replaced == len(dst_outputs - {p for p in dst_outputs if p.startswith("imports/")})
    assert_same(dst, src)
    assert_up_to_date(src, dst)


@pytest.mark.slow
def test_src_compacting_twice_after_dst_compacted_once_is_mirrored_exactly(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    dst.compact()
    src.compact()
    own_runs(src, "later")  # two more small files in a partition SRC compacted: compacted again with them
    src.compact()
    src.sync_to(dst)
    assert_same(dst, src)
    assert_up_to_date(src, dst)


def test_src_compacting_files_dst_compacted_with_its_own_rows_is_refused_and_commits_nothing(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    own_runs(dst, "dst-own")
    dst.compact()  # SRC's files and DST's own, of one partition, now in one file
    src.compact()
    version, before = dst.refresh(), answers(dst)

    for dry_run in (True, False):
        with pytest.raises(warehouse.SyncDiverged) as exc:
            src.sync_to(dst, dry_run=dry_run)
        msg = str(exc.value)
        assert src.url in msg and dst.url in msg and "/part-" in msg and "wrote itself" in msg
        assert "new, empty warehouse" in msg and "Nothing was committed" in msg
    assert dst.refresh() == version and answers(dst) == before

    r = subprocess.run(
        [sys.executable, "-m", "warehouse", "sync", src.url, dst.url], capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0 and "cannot sync" in r.stderr and "Traceback" not in r.stderr
    assert dst.refresh() == version


@pytest.mark.slow
def test_rows_dst_expired_or_deleted_stay_gone_after_sync(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    kept = src.sessions.save([{"role": "user", "content": "keep me"}])
    dropped = src.sessions.save([{"role": "user", "content": "delete me in DST"}])
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    # In DST only: executions finished before T0 + 1 min go (a file rewritten, not dropped whole),
    # and a session is deleted.
    gone = dst.expire(timedelta(minutes=2), tables=("executions",), now=T0 + timedelta(minutes=3))
    assert gone.rows_removed["executions"] == 2
    dst.sessions.delete(dropped)
    expected = sorted(execution_ids(dst))

    again = src.sync_to(dst)
    assert (again.files, again.commits) == (0, [])
    dst.refresh()
    assert sorted(execution_ids(dst)) == expected and len(expected) == len(execution_ids(src)) - 2
    assert set(dst.sessions.list()["id"]) == {kept} and set(src.sessions.list()["id"]) == {kept, dropped}
    assert_up_to_date(src, dst)


@pytest.mark.slow
def test_src_compacting_files_dst_expired_rows_from_is_refused(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    dst.expire(timedelta(minutes=2), tables=("executions",), now=T0 + timedelta(minutes=3))
    src.compact()  # would bring the rows DST expired back in its compacted files
    version, ids = dst.refresh(), execution_ids(dst)
    with pytest.raises(warehouse.SyncDiverged, match="would bring back rows that .* deleted"):
        src.sync_to(dst)
    assert dst.refresh() == version and execution_ids(dst) == ids


@pytest.mark.slow
def test_src_expiring_files_dst_compacted_is_mirrored(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    dst.compact()
    # SRC expires the first execution of each configuration: it rewrites the files of their first
    # flush, which DST's compacted files hold with the second's. They make way for SRC's files.
    src.expire(timedelta(minutes=2), tables=("executions",), now=T0 + timedelta(minutes=3))
    result = src.sync_to(dst)
    assert result.replaced > 0
    assert_same(dst, src)
    assert_up_to_date(src, dst)


def sync_as_before_the_ledger(src: warehouse.Warehouse, dst: warehouse.Warehouse) -> None:
    """What `sync` wrote before it kept a ledger: SRC's files copied, one `sync` commit naming SRC."""
    for f in src.snapshot.files.values():
        dst.store.write_bytes(f.path, src.store.read_bytes(f.path))
    for name in [n for n in src.store.list_names("configs") if n.endswith(".yaml")]:
        dst.store.write_bytes(f"configs/{name}", src.store.read_bytes(f"configs/{name}"))
    dst.engine.commit(
        operation="sync",
        writer=writer_info("old-sync"),
        token="sync:old",
        add=[replace(f, staged=staging_clock()) for f in src.snapshot.files.values()],
        info={"source": src.url, "source_versions": [1, src.version]},
    )


@pytest.mark.slow
def test_a_dst_synced_before_the_ledger_existed_keeps_syncing_without_duplicates(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    sync_as_before_the_ledger(src, dst)
    dst.compact()
    src.compact()
    # DST's log says what its old sync took in: nothing is copied twice, and SRC's compaction of the
    # files DST compacted too replaces DST's.
    first = src.sync_to(dst)
    assert first.replaced > 0
    assert_same(dst, src)
    assert {k for (k,) in dst.sql("select distinct kind from imports").fetchall()} == {"sync", "sync-removed"}
    # The ledger outlives DST's log: fold it, then SRC writes and compacts again.
    dst.checkpoint()
    dst.vacuum(retain=timedelta(0))
    assert dst.history()[-1].operation == "folded"
    own_runs(src, "after-fold")
    src.sync_to(dst)
    dst.compact()
    assert_up_to_date(src, dst)
    assert_same(dst, src)


@pytest.mark.slow
def test_a_re_added_execution_id_stays_one_row_through_compaction_on_both_sides(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    dst.compact()
    with src.writer(dataset=DATASET, agent=AGENT, attack=ATTACK, run_id="job-a", flush_interval=None) as w:
        w.add_execution(
            execution_id="a-001",
            task_id="user_task_1",
            benign_score=0.25,
            attack_score=1.0,
            messages=build_messages(turns=3),
        )  # replaces the first add of a-001 (a `superseded` row)
    src.sync_to(dst)
    assert_same(dst, src)
    assert dst.execution("a-001")["benign_score"] == 0.25
    src.compact()
    src.sync_to(dst)
    assert_same(dst, src)
    assert dst.sql("select count(*) from executions where execution_id = 'a-001'").fetchall() == [(1,)]


@pytest.mark.slow
def test_a_compaction_in_dst_while_a_sync_copies_makes_it_plan_again(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    src.compact()  # the next sync removes DST's copies of the files SRC compacted...
    compacted: list[Any] = []
    lock = threading.Lock()

    def progress(p: Progress) -> None:  # ...which DST compacts itself while that sync copies
        with lock:
            if not compacted:
                compacted.append(warehouse.open(str(tmp_path / "dst")).compact())

    result = src.sync_to(dst, progress=progress, workers=1)
    assert compacted[0].files_in > 0 and result.replaced > 0
    assert_same(dst, src)
    assert_up_to_date(src, dst)


@pytest.mark.slow
def test_two_warehouses_synced_both_ways_stay_equal_through_compaction(tmp_path: Path) -> None:
    a = warehouse.open(str(tmp_path / "a"), create=True)
    b = warehouse.open(str(tmp_path / "b"), create=True)
    write_runs(a, n=4, flushes=2)
    a.sync_to(b)
    own_runs(b, "b-own")
    b.sync_to(a)
    b.compact()  # B rewrites A's files and its own
    result = a.sync_to(b)  # nothing of A's (B has it all, rewritten) or of B's own (A took it from B) comes back
    assert (result.files, result.removed) == (0, 0)
    assert_same(b, a)
    b.sync_to(a)  # B's compaction carries over to A
    assert_same(a, b)
    # B records that A mirrored B's own rewrite (its ledger only: nothing to copy or remove)
    result = a.sync_to(b)
    assert (result.files, result.removed) == (0, 0)
    assert_up_to_date(a, b)
    assert_up_to_date(b, a)


@pytest.mark.slow
def test_src_compaction_folded_by_vacuum_after_dst_compacted_is_mirrored_exactly(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    dst.compact()
    src.compact()
    src.checkpoint()
    src.vacuum(retain=timedelta(0))  # SRC's log no longer says which files its compactions removed
    assert src.history()[-1].operation == "folded"
    taken = set(dst.sql("select source from imports where kind = 'sync'").fetchall())
    src.sync_to(dst)
    assert_same(dst, src)
    assert_up_to_date(src, dst)
    # (DST's own ledger files are never taken for files SRC removed in the folded commits)
    assert taken < set(dst.sql("select source from imports where kind = 'sync'").fetchall())


@pytest.mark.slow
def test_an_execution_id_added_in_both_warehouses_counts_once_after_syncing_either_way(tmp_path: Path) -> None:
    a = warehouse.open(str(tmp_path / "a"), create=True)
    b = warehouse.open(str(tmp_path / "b"), create=True)
    write_runs(a, n=2, flushes=1)
    for wh, score in ((b, 0.0), (a, 1.0)):  # a job with a fixed id run once on each side
        with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
            w.add_execution(
                execution_id="job42-task7",
                task_id="task7",
                benign_score=score,
                messages=[{"role": "user", "content": f"score {score}"}],
            )
    a.sync_to(b)  # A's add lands in B after B's own: it replaces it there, as any later add does
    assert b.sql("select benign_score from executions where execution_id = 'job42-task7'").fetchall() == [(1.0,)]
    assert b.execution("job42-task7")["messages"] == [{"role": "user", "content": "score 1.0"}]
    b.sync_to(a)  # B's add comes with the row that replaced it: it replaces nothing in A
    for wh in (a, b):
        wh.refresh()
        assert set(execution_ids(wh).values()) == {1}
        assert wh.sql("select benign_score from executions where execution_id = 'job42-task7'").fetchall() == [(1.0,)]
    assert answers(a) == answers(b)
    assert_up_to_date(a, b)
    assert_up_to_date(b, a)


@pytest.mark.slow
def test_a_dst_synced_before_the_ledger_mirrors_a_compaction_src_has_folded(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    sync_as_before_the_ledger(src, dst)
    src.compact()
    src.checkpoint()
    src.vacuum(retain=timedelta(0))  # which files the compaction removed is now only in DST's log
    result = src.sync_to(dst)
    assert result.removed > 0 and result.replaced == 0
    assert_same(dst, src)
    assert_up_to_date(src, dst)


@pytest.mark.slow
def test_a_synced_file_doctor_removed_as_damaged_in_dst_is_copied_again(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=2)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    src.sync_to(dst)
    damaged = dst.files("executions")[0]
    data = bytearray(Path(dst.store.full(damaged.path)).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(dst.store.full(damaged.path)).write_bytes(bytes(data[:-1]))  # torn: its rows cannot be trusted
    assert dst.doctor(repair=True).repair_version is not None
    assert damaged.path not in dst.snapshot.files
    # Not DST's decision (as a compaction or an expire in DST would be): SRC's copy comes back.
    result = src.sync_to(dst)
    assert (
        result.files == 1
        and Path(dst.store.full(damaged.path)).read_bytes() == Path(src.store.full(damaged.path)).read_bytes()
    )
    assert_same(dst, src)
    assert_up_to_date(src, dst)
    assert not dst.doctor().problems


def test_a_replaced_add_copied_again_after_doctor_replaces_nothing(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True)
    for score in (0.0, 1.0):  # the second add of job-1 replaces the first
        with src.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
            w.add_execution(execution_id="job-1", task_id="t", benign_score=score)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    own_runs(dst, "dst-own", flushes=1)  # (so that DST holds executions of its own: ids are checked)
    src.sync_to(dst)
    [first] = [
        f
        for f in dst.files("executions")
        if pq.read_table(dst.store.full(f.path), columns=["benign_score"]).column(0).to_pylist() == [0.0]
    ]
    Path(dst.store.full(first.path)).write_bytes(b"damaged")
    dst.doctor(repair=True)
    src.sync_to(dst)  # the first add's file comes back, and stays replaced
    assert first.path in dst.snapshot.files
    assert dst.sql("select benign_score from executions where execution_id = 'job-1'").fetchall() == [(1.0,)]
    assert_up_to_date(src, dst)


def test_a_src_file_vacuumed_while_being_copied_is_planned_again_not_a_crash(tmp_path: Path) -> None:
    # A compaction and a vacuum in SRC take a planned file before the sync reads it (the torture
    # harness's sync workers died of FileNotFoundError): the sync plans again from SRC's new snapshot.
    src = warehouse.open(str(tmp_path / "src"), create=True)
    write_runs(src, n=4, flushes=3)
    dst = warehouse.open(str(tmp_path / "dst"), create=True)
    other = warehouse.open(str(tmp_path / "src"))  # another process's handle, rewriting SRC meanwhile
    rewritten = []

    def compact_and_vacuum_src(p: Progress) -> None:
        if not rewritten:  # after the first file is copied, before the others are read
            rewritten.append(other.maintenance.compact())
            other.maintenance.vacuum(retain=timedelta(0))

    result = src.sync_to(dst, workers=1, on_progress=compact_and_vacuum_src)
    assert rewritten and rewritten[0].files_in > rewritten[0].files_out  # the source really was rewritten
    assert result.commits
    assert_same(dst, src)
    assert_up_to_date(src, dst)
