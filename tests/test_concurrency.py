"""Many writers at once: processes, threads, `kill -9`, lost acknowledgements, racing creators.

Every test here uses real processes (scripts in `tests/procs/`, run with this interpreter) or real
threads on real files in `tmp_path`. Processes are synchronised through pipes: each child prints
`ready` and blocks on stdin until the test sends `go`; kills land at points a child announces on
stdout. Nothing waits on a sleep.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

import warehouse
from warehouse.core.config import RunConfig
from warehouse.core.schemas import catalog
from warehouse.engine.datafiles import write_data_file
from warehouse.manifest import writer_info

COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


# -- helpers ---------------------------------------------------------------------------------------
from processes import Children, watchdog  # noqa: E402


def manifest_versions(root: Path) -> list[int]:
    """Every commit version on disk, from a plain listing of `_manifest/`."""
    return sorted(int(m.group(1)) for name in os.listdir(root / "_manifest") if (m := COMMIT_FILE.match(name)))


def read_commit(root: Path, version: int) -> dict:
    return json.loads((root / "_manifest" / f"{version:020d}.json").read_bytes())


def assert_log_is_appends(root: Path, first: int, last: int) -> list[dict]:
    """Commits first..last exist, are appends, and carry pairwise distinct idempotency tokens."""
    commits = [read_commit(root, v) for v in range(first, last + 1)]
    assert [c["version"] for c in commits] == list(range(first, last + 1))
    assert {c["operation"] for c in commits} == {"append"}
    tokens = [c["token"] for c in commits]
    assert None not in tokens
    assert [t for t, n in Counter(tokens).items() if n > 1] == []
    return commits


def data_files_on_disk(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.parquet") if "_manifest" not in p.parts}


# -- 1. many processes, one warehouse ------------------------------------------------------------------
def test_four_processes_fifty_flushes_lose_nothing(
    tmp_path: Path, children: Children, capsys: pytest.CaptureFixture
) -> None:
    n_procs, flushes, per_flush, n_messages = 4, 50, 10, 2
    root = tmp_path / "wh"
    warehouse.open(str(root), create=True)

    started = time.perf_counter()
    # Two run configurations, each written by two processes (configs a/b are in procs/flush_writer.py).
    procs = [
        children.start("flush_writer.py", root, p, flushes, per_flush, n_messages, "ab"[p % 2]) for p in range(n_procs)
    ]
    with watchdog(procs, 120):
        for p in procs:
            children.expect_line(p, "ready")
        go = time.perf_counter()
        for p in procs:  # the barrier: every process is loaded and waiting; release them together
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate()[0] for p in procs]
        wall = time.perf_counter() - go
    total = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n[test_four_processes_fifty_flushes_lose_nothing] {n_procs} processes x {flushes} flushes: "
            f"{wall:.2f} s wall from 'go' to the last exit ({total:.2f} s including interpreter start-up)"
        )
    for p in procs:
        assert p.returncode == 0, children.stderr(p)

    # Each process acknowledged each of its flushes with a distinct version ...
    acked: dict[int, int] = {}  # version -> pid of the process that acknowledged it
    for p, out in zip(procs, outputs):
        lines = out.splitlines()
        assert lines[-1] == "done"
        commits = [line.split() for line in lines if line.startswith("committed")]
        assert [int(c[1]) for c in commits] == list(range(flushes))
        for _, _, version in commits:
            assert int(version) not in acked, f"version {version} acknowledged twice"
            acked[int(version)] = p.pid
    assert sorted(acked) == list(range(1, n_procs * flushes + 1))

    # ... and the log is exactly versions 0..200, each an append by the process that acknowledged it.
    assert manifest_versions(root) == list(range(n_procs * flushes + 1))
    assert read_commit(root, 0)["operation"] == "create"
    commits = assert_log_is_appends(root, 1, n_procs * flushes)
    for c in commits:
        assert c["writer"]["pid"] == acked[c["version"]]
        assert {a["table"] for a in c["add"]} >= {"executions", "messages"}
    # The processes really overlapped: run one after another, the writer would change only 3 times.
    pids = [c["writer"]["pid"] for c in commits]
    switches = sum(a != b for a, b in zip(pids, pids[1:]))
    assert switches > n_procs - 1, f"commits were not interleaved ({switches} writer switches)"

    wh = warehouse.open(str(root))
    assert wh.version == n_procs * flushes
    expected = {f"p{p}-f{f}-{i}" for p in range(n_procs) for f in range(flushes) for i in range(per_flush)}
    counts = dict(wh.sql("select execution_id, count(*) from executions group by execution_id").fetchall())
    assert set(counts) == expected
    assert {n for n in counts.values()} == {1}
    per_execution = wh.sql(
        "select execution_id, count(*), count(distinct seq) from messages group by execution_id"
    ).fetchall()
    assert {eid for eid, _, _ in per_execution} == expected
    assert {(n, d) for _, n, d in per_execution} == {(n_messages, n_messages)}
    assert wh.sql("select count(*) from messages where not starts_with(content, execution_id || ' ')").fetchall() == [
        (0,)
    ]
    assert wh.sql("select count(*) from configs").fetchall() == [(2,)]


# -- 2. kill -9 at any moment -----------------------------------------------------------------------------
PER_FLUSH, MESSAGES = 20, 3
# (tag, mode, n): for `free`, kill right after reading the n-th acknowledgement (the writer is already
# busy with the next flush, at whatever point it reached); otherwise flush n pauses at `mode` and the
# kill lands exactly there (see procs/crash_writer.py).
KILL_ROUNDS = [
    ("r1", "free", 1),
    ("r2", "after_data_file", 2),
    ("r3", "free", 3),
    ("r4", "before_commit", 1),
    ("r5", "before_link", 2),
    ("r6", "after_commit", 2),
    ("r7", "free", 2),
    ("r8", "free", 4),
]


def flushes_present(wh: warehouse.Warehouse) -> dict[tuple[str, int], tuple[int, int, int]]:
    """(tag, flush) -> (executions, distinct execution ids, messages) visible in the views."""
    pattern = r"^(.+)-f(\d+)-\d+$"
    executions = wh.sql(f"""
        select regexp_extract(execution_id, '{pattern}', 1), cast(regexp_extract(execution_id, '{pattern}', 2) as int),
               count(*), count(distinct execution_id)
        from executions group by all""").fetchall()
    messages = dict(
        ((t, f), n)
        for t, f, n in wh.sql(f"""
        select regexp_extract(execution_id, '{pattern}', 1), cast(regexp_extract(execution_id, '{pattern}', 2) as int),
               count(*)
        from messages group by all""").fetchall()
    )
    out = {(t, f): (n, d, messages.pop((t, f), 0)) for t, f, n, d in executions}
    assert messages == {}, f"messages without their executions: {messages}"
    return out


def test_writer_killed_mid_write_leaves_only_whole_flushes(tmp_path: Path, children: Children) -> None:
    root = tmp_path / "wh"
    warehouse.open(str(root), create=True)
    whole = (PER_FLUSH, PER_FLUSH, PER_FLUSH * MESSAGES)
    all_present: dict[tuple[str, int], tuple[int, int, int]] = {}

    for tag, mode, n in KILL_ROUNDS:
        proc = children.start("crash_writer.py", root, tag, PER_FLUSH, MESSAGES, mode, n)
        acked: list[int] = []
        with watchdog([proc], 60):
            while True:
                line = children.expect_line(proc, "")
                assert line, f"round {tag}: the writer exited on its own; stderr:\n{children.stderr(proc)}"
                word, *rest = line.split()
                if word == "committed":
                    acked.append(int(rest[0]))
                    if mode == "free" and len(acked) == n:
                        break
                else:
                    assert word == "paused" and rest == [mode, str(n)], line
                    break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL

        # After each crash the warehouse opens, and this round's flushes are each whole or absent.
        wh = warehouse.open(str(root))
        present = {f: counts for (t, f), counts in flushes_present(wh).items() if t == tag}
        for f, counts in present.items():
            assert counts == whole, f"round {tag} ({mode}): flush {f} is partial: {counts}, expected {whole}"
        if mode == "free":
            assert acked == list(range(1, n + 1))
            # What was acknowledged is there. The writer keeps flushing until the kill lands (on a
            # loaded machine that may be a flush or two later): those are whole, in order, no gap.
            extra = sorted(set(present) - set(acked))
            assert set(acked) <= set(present) and extra == list(range(n + 1, n + 1 + len(extra))), (
                tag,
                sorted(present),
            )
        else:
            assert acked == list(range(1, n))
            # A flush killed before its commit file exists is absent; one killed after it is whole.
            expected = set(acked) | ({n} if mode == "after_commit" else set())
            assert set(present) == expected, (tag, mode, sorted(present))
        all_present.update({(tag, f): c for f, c in present.items()})

    # The views show exactly the whole flushes, and the log is one contiguous append per flush.
    wh = warehouse.open(str(root))
    assert flushes_present(wh) == all_present
    last = len(all_present)
    assert manifest_versions(root) == list(range(last + 1))
    assert wh.version == last
    assert_log_is_appends(root, 1, last)

    # The killed flushes left real debris: orphan data files (never visible) and an unlinked commit temp file.
    referenced = {f.path for f in wh.snapshot.files.values()}
    orphans = data_files_on_disk(root) - referenced
    assert orphans, "no orphan data files: the kills never landed between writing data and committing"
    assert referenced <= data_files_on_disk(root)
    assert any(name.startswith(".tmp-") for name in os.listdir(root / "_manifest"))

    # A new writer commits on top of all that, as the next version.
    with wh.writer(dataset="agentdojo", agent="after-crash", flush_interval=None) as w:
        for i in range(PER_FLUSH):
            w.add_execution(
                task_id="t",
                execution_id=f"after-f1-{i}",
                messages=[{"role": "user", "content": str(j)} for j in range(MESSAGES)],
            )
        assert w.flush() == last + 1
    fresh = warehouse.open(str(root))
    assert fresh.version == last + 1
    assert manifest_versions(root) == list(range(last + 2))
    assert flushes_present(fresh) == {**all_present, ("after", 1): whole}


# -- 3. threads sharing one writer -----------------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_threads_share_one_writer(tmp_path: Path) -> None:
    n_threads, per_thread, flush_rows = 8, 100, 8
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    start = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(t: int, w: warehouse.Writer) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                eid = f"t{t}-{i}"
                w.add_execution(
                    task_id=f"task-{i}",
                    execution_id=eid,
                    messages=[{"role": "user", "content": f"{eid} q"}, {"role": "assistant", "content": f"{eid} a"}],
                )
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    # A short flush_interval adds the writer's own background flusher to the contention.
    with wh.writer(dataset="agentdojo", agent="threaded", flush_rows=flush_rows, flush_interval=0.02) as w:
        threads = [threading.Thread(target=work, args=(t, w)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert errors == []
    assert w.buffered_rows == 0

    fresh = warehouse.open(str(root))
    expected = {f"t{t}-{i}" for t in range(n_threads) for i in range(per_thread)}
    counts = dict(fresh.sql("select execution_id, count(*) from executions group by execution_id").fetchall())
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert fresh.sql("select count(*), count(distinct (execution_id, seq)) from messages").fetchall() == [
        (2 * len(expected),) * 2
    ]
    assert fresh.sql(
        "select count(*) from messages where not starts_with(content, execution_id || ' ')"
    ).fetchall() == [(0,)]

    versions = manifest_versions(root)
    assert versions == list(range(len(versions)))
    commits = assert_log_is_appends(root, 1, versions[-1])
    assert sum(a["rows"] for c in commits for a in c["add"] if a["table"] == "executions") == len(expected)
    assert len(commits) >= len(expected) // (n_threads * flush_rows)  # it really flushed many times


# -- 4. idempotent commits ------------------------------------------------------------------------------------
def test_lost_commit_acknowledgement_is_not_committed_twice(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    partition = RunConfig.of("agentdojo", "plain").partition
    row = {**partition, "execution_id": "lost-ack-1", "task_id": "t", "status": "completed", "revision": 0}
    data = write_data_file(
        wh, "executions", partition, pa.Table.from_pylist([row], schema=catalog().table("executions").arrow)
    )
    writer = writer_info("lost-ack-writer")
    token = "lost-ack-writer:1"
    before = wh.version
    stale = wh.snapshot

    first = wh.log.commit(stale, operation="append", writer=writer, token=token, add=[data])
    assert first.version == before + 1
    # The acknowledgement is "lost": the caller does not know `first` happened, and meanwhile another
    # writer commits, so the retry starts from a newer snapshot.
    with wh.writer(dataset="agentdojo", agent="other", flush_interval=None) as w:
        w.add_execution(task_id="t", execution_id="other-1")
    on_disk = manifest_versions(root)
    assert on_disk == [0, 1, 2]

    # Retry from the latest snapshot: the token is found among the commits after `before`.
    latest = wh.log.snapshot()
    assert latest.version == 2
    again = wh.log.commit(latest, operation="append", writer=writer, token=token, add=[data], token_since=before)
    assert (again.version, again.token, [a.path for a in again.add]) == (first.version, token, [data.path])
    assert manifest_versions(root) == on_disk

    # Retry from the snapshot the lost commit was made from: the taken version turns out to hold the token.
    again = wh.log.commit(stale, operation="append", writer=writer, token=token, add=[data], token_since=before)
    assert (again.version, again.token, [a.path for a in again.add]) == (first.version, token, [data.path])
    assert manifest_versions(root) == on_disk

    fresh = warehouse.open(str(root))
    assert fresh.version == 2
    assert [c.version for c in fresh.history() if c.writer.get("writer_id") == "lost-ack-writer"] == [first.version]
    assert fresh.sql("select count(*) from executions where execution_id = 'lost-ack-1'").fetchall() == [(1,)]


# -- 5. racing creators ----------------------------------------------------------------------------------------
def test_two_processes_creating_same_warehouse_race(tmp_path: Path, children: Children) -> None:
    n_procs = 5
    # Several roots raced in turn by the same processes; each root's parents do not exist yet either.
    roots = [tmp_path / f"race{i}" / "nested" / "wh" for i in range(4)]
    procs = [children.start("open_create.py", *roots) for _ in range(n_procs)]
    with watchdog(procs, 60):
        for p in procs:
            children.expect_line(p, "ready")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate()[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, children.stderr(p)
        assert out.splitlines() == [f"opened {i} 0" for i in range(len(roots))], out

    pids = {p.pid for p in procs}
    for root in roots:
        assert os.listdir(root) == ["_manifest"]
        assert os.listdir(root / "_manifest") == [f"{0:020d}.json"]  # one commit 0, no temp files left
        commit = read_commit(root, 0)
        assert commit["operation"] == "create" and commit["format_version"] == 1
        assert commit["writer"]["pid"] in pids
        assert warehouse.open(str(root)).version == 0
