"""Manifest checkpoints: written every N commits by whichever writer lands there, loaded
by readers with only the later commits replayed, robust to damage and to crashes while written;
incremental refresh; folding old commits away (vacuum) and what time travel, history, refresh and
sync do afterwards.

Real files in `tmp_path`; real processes where processes matter (scripts in `tests/procs/`,
synchronised through pipes, never by sleeping). Most tests commit synthetic data files straight
through `Log.commit` (the manifest is what is tested; no data file is ever read).
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from processes import Children, watchdog

import warehouse
import warehouse.manifest.checkpoint as mc
from warehouse.core.storage import Store
from warehouse.engine.datafiles import write_data_file
from warehouse.manifest import (
    CHECKPOINT_INTERVAL,
    Commit,
    DataFile,
    Log,
    RemovedFile,
    Snapshot,
    commit_name,
    replay,
    writer_info,
)
from warehouse.ops.sync import is_ledger_file
from warehouse.warehouse import Warehouse

TABLES = ("executions", "messages", "events")
WRITER = writer_info("test-checkpoints")


# -- helpers -----------------------------------------------------------------------------------------
class CountingStore(Store):
    """A Store that records the names it reads and lists (to prove what a read touched)."""

    reads: list[str]
    lists: int

    def reset(self) -> None:
        self.reads, self.lists = [], 0

    def read_bytes(self, rel: str) -> bytes:
        self.reads.append(rel)
        return super().read_bytes(rel)

    def list_names(self, rel: str) -> list[str]:
        self.lists += 1
        return super().list_names(rel)


def counting_store(root: Path) -> CountingStore:
    base = Store.from_url(str(root))
    store = CountingStore(fs=base.fs, root=base.root, url=base.url)
    store.reset()
    return store


def new_log(root: Path, interval: int) -> Log:
    warehouse.open(str(root), create=True, checkpoint_interval=interval)
    return Log(Store.from_url(str(root)), checkpoint_interval=interval)


def data_file(n: int, table: str | None = None, stats: bool = True) -> DataFile:
    table = table or TABLES[n % len(TABLES)]
    part = {"dataset": "d", "agent": f"a{n % 3}", "attack": "none", "config_hash": f"{n % 2:08x}"}
    st_ = {
        "execution_id": {"min": f"e{n:05d}", "max": f"e{n:05d}z", "nulls": 0},
        "benign_score": {"min": 0.0, "max": 1.0, "nulls": n % 2},
    }
    return DataFile(
        table, f"{table}/agent=a{n % 3}/part-{n:06d}.parquet", part, n % 7 + 1, 1000 + n, st_ if stats and n % 4 else {}
    )


def commit(
    log: Log,
    snap: Snapshot,
    add: list[DataFile] = (),
    remove: list[str] = (),
    *,
    token: str | None = None,
    token_since: int | None = None,
    operation: str = "append",
) -> tuple[Snapshot, Commit]:
    """Commit through the log (a checkpoint is written if the version is a multiple of the interval)."""
    removes = [RemovedFile(snap.files[p].table, p) for p in remove]
    c = log.commit(
        snap, operation=operation, writer=WRITER, token=token, add=add, remove=removes, token_since=token_since
    )
    return replay([c], snap), c


def build(log: Log, commits: int, per_commit: int = 3, remove_every: int = 4, seed: int = 1) -> Snapshot:
    """`commits` commits after version 0: each adds `per_commit` files; every `remove_every`-th also
    removes two older files (a compaction's shape)."""
    rng = random.Random(seed)
    snap = log.snapshot()
    n = max((int(p.rsplit("-", 1)[1][:6]) for p in snap.files), default=0) + 1
    for i in range(commits):
        add = [data_file(n + j) for j in range(per_commit)]
        n += per_commit
        remove = (
            rng.sample(sorted(snap.files), 2) if i % remove_every == remove_every - 1 and len(snap.files) > 4 else []
        )
        snap, _ = commit(log, snap, add, remove)
    return snap


def from_log(log: Log, version: int | None = None) -> Snapshot:
    """The snapshot by replaying every commit file from 0 (the way before checkpoints)."""
    versions = log.versions()
    assert versions[0] == 0, "the log was folded"
    upto = versions[-1] if version is None else version
    return replay(log.read_many(list(range(upto + 1))))


def assert_same(a: Snapshot, b: Snapshot) -> None:
    """Equal snapshots, through every way of looking at one."""
    assert (a.version, a.committed_at) == (b.version, b.committed_at)
    assert a == b
    assert len(a.files) == len(b.files) == len(list(a.files)) == len(list(a.files.values()))
    assert dict(a.files) == dict(b.files)
    for t in TABLES:
        assert sorted(f.path for f in a.table_files(t)) == sorted(f.path for f in b.table_files(t))
        assert {f.path: f for f in a.table_files(t, {"agent": "a1"})} == {
            f.path: f for f in b.table_files(t, {"agent": "a1"})
        }
    for p in list(b.files)[:50]:
        assert p in a.files and a.files[p] == b.files[p]
        assert a.added_in(p) == b.added_in(p) >= 0
    assert "nope/part-x.parquet" not in a.files and a.added_in("nope/part-x.parquet") is None


def checkpoint_path(root: Path, version: int) -> Path:
    return root / mc.checkpoint_name(version)


def manifest_names(root: Path) -> list[str]:
    return sorted(os.listdir(root / "_manifest"))


# -- 1. written every N commits, read back equal to the log --------------------------------------------------
@pytest.mark.slow
def test_checkpoint_is_written_at_every_nth_commit_and_open_equals_the_full_replay(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    snap = build(log, 23)
    assert log.checkpoint_versions() == [5, 10, 15, 20]
    assert mc.read_hint(log.store) == 20
    for v in (5, 10, 15, 20):
        assert_same(mc.read_checkpoint(log.store, v), from_log(log, v))
    opened = warehouse.open(str(root))
    assert_same(opened.snapshot, from_log(log))
    assert_same(opened.snapshot, snap)
    # The default interval is 100 and open() without checkpoint_interval writes at that interval.
    assert CHECKPOINT_INTERVAL == 100 and Log(log.store).checkpoint_interval == 100


def test_open_reads_the_newest_checkpoint_and_only_the_commits_after_it(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=10)
    build(log, 27)
    store = counting_store(root)
    snap = Log(store).snapshot()
    assert store.reads == [mc.checkpoint_name(20), *(commit_name(v) for v in range(21, 28))]
    assert store.lists <= 1  # locally the listing is a plain directory read
    assert_same(snap, from_log(log))
    store.reset()
    old = Log(store).snapshot(version=14)
    assert store.reads == [mc.checkpoint_name(10), *(commit_name(v) for v in range(11, 15))]
    assert_same(old, from_log(log, 14))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans()), min_size=1, max_size=40),
    interval=st.integers(1, 7),
)
def test_checkpoint_plus_log_equals_full_replay_for_any_adds_and_removes(
    ops: list[tuple[int, int, bool]], interval: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "wh"
        log = new_log(root, interval)
        snap = log.snapshot()
        n = 0
        for n_add, n_remove, stats in ops:
            add = [data_file(n + j, stats=stats) for j in range(n_add)]
            n += n_add
            remove = sorted(snap.files)[:n_remove] if n_remove else []
            if add or remove:
                snap, _ = commit(log, snap, add, remove)
        latest = log.versions()[-1]
        assert log.checkpoint_versions() == list(range(interval, latest + 1, interval))
        assert_same(warehouse.open(str(root)).snapshot, from_log(log))
        for v in range(latest + 1):
            assert_same(log.snapshot(version=v), from_log(log, v))
        if latest >= 1:  # an explicit checkpoint at the latest version changes nothing either
            log.write_checkpoint(from_log(log))
            assert_same(mc.read_checkpoint(log.store, latest), from_log(log))


def test_snapshots_extended_commit_by_commit_stay_equal_to_the_log_across_folds_of_the_overlay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small overlay limit makes replay fold the changes into a new base often, from both kinds of base.
    monkeypatch.setattr("warehouse.manifest.snapshot.OVERLAY_LIMIT", 5)
    root = tmp_path / "wh"
    log = new_log(root, interval=7)
    snap = build(log, 30, remove_every=2)
    assert_same(snap, from_log(log))
    assert_same(Log(log.store).snapshot(), from_log(log))
    wh = warehouse.open(str(root))
    for _ in range(6):
        snap = build(log, 3, remove_every=1, seed=len(snap.files))
        wh.refresh()
        assert_same(wh.snapshot, from_log(log))


# -- 2. time travel across checkpoints ---------------------------------------------------------------------
def test_time_travel_by_version_and_time_across_checkpoints(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=4)
    build(log, 13)
    commits = log.read_many(log.versions())
    for c in commits:
        by_version = warehouse.open(str(root), version=c.version)
        by_time = warehouse.open(str(root), as_of=c.committed_at)
        assert by_version.read_only and by_time.read_only
        assert by_version.version == by_time.version == c.version
        assert_same(by_version.snapshot, from_log(log, c.version))
        assert_same(by_time.snapshot, by_version.snapshot)
        assert [h.version for h in by_version.history()] == list(range(c.version, -1, -1))
    between = commits[9].committed_at + (commits[10].committed_at - commits[9].committed_at) / 2
    assert warehouse.open(str(root), as_of=between).version == 9
    assert warehouse.open(str(root), as_of=datetime.now(UTC) + timedelta(days=1)).version == 13
    with pytest.raises(warehouse.VersionNotFound, match="did not exist yet"):
        warehouse.open(str(root), as_of=commits[0].committed_at - timedelta(seconds=1))
    for bad in (14, -1):
        with pytest.raises(warehouse.VersionNotFound, match="latest version is 13"):
            warehouse.open(str(root), version=bad)


def test_as_of_with_a_clock_that_went_backwards_never_skips_a_commit(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=3)
    snap = log.snapshot()
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    # Versions 1..7 at minutes 1, 2, 3, 2 (the clock went back), 5, 6, 7.
    for i, minute in enumerate((1, 2, 3, 2, 5, 6, 7)):
        c = Commit(snap.version + 1, t0 + timedelta(minutes=minute), "append", WRITER, f"t{i}", (data_file(i),))
        assert log.store.put_if_absent(commit_name(c.version), c.to_bytes())
        snap = replay([c], snap)
        if c.version % 3 == 0:
            log.write_checkpoint(snap)
    assert log.checkpoint_versions() == [3, 6]
    expected = {1: 1, 2: 2, 3: 4, 4: 4, 5: 5, 6: 6, 7: 7}  # at 2:30 the log had reached 2; at 3:00, 4 (2:00 < 3:00)
    for minute, version in expected.items():
        assert warehouse.open(str(root), as_of=t0 + timedelta(minutes=minute)).version == version
    assert warehouse.open(str(root), as_of=t0 + timedelta(minutes=2, seconds=30)).version == 2


# -- 3. damaged checkpoints and hints -------------------------------------------------------------------------
def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "bit flip":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes([data[mid] ^ 0x01]) + data[mid + 1 :])
    elif how == "garbage":
        path.write_bytes(b"PAR1" + os.urandom(len(data) - 8) + b"PAR1")
    elif how == "not ours":  # a valid Parquet file that is not a checkpoint
        pq.write_table(pa.table({"x": [1, 2, 3]}), str(path))
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated", "empty", "bit flip", "garbage", "not ours"])
def test_a_damaged_checkpoint_is_skipped_with_a_warning_and_the_snapshot_is_still_right(
    tmp_path: Path, how: str
) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 17)
    expected = from_log(log)
    damage(checkpoint_path(root, 15), how)
    with pytest.warns(mc.CheckpointWarning, match=r"00000000000000000015\.checkpoint\.parquet is unreadable"):
        wh = warehouse.open(str(root))
    assert_same(wh.snapshot, expected)
    with pytest.warns(mc.CheckpointWarning):
        assert_same(warehouse.open(str(root), version=15).snapshot, from_log(log, 15))
    # Every checkpoint damaged: the whole log is replayed.
    for v in (5, 10):
        damage(checkpoint_path(root, v), how)
    with pytest.warns(mc.CheckpointWarning):
        assert_same(warehouse.open(str(root)).snapshot, expected)
    with pytest.raises(mc.CorruptCheckpoint):
        mc.read_checkpoint(log.store, 10)


def test_a_checkpoint_of_a_newer_format_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    monkeypatch.setattr(mc, "CHECKPOINT_FORMAT", 2)
    build(log, 6)  # checkpoint 5, written "by a newer library"
    monkeypatch.setattr(mc, "CHECKPOINT_FORMAT", 1)
    with pytest.warns(mc.CheckpointWarning, match="checkpoint format 2"):
        assert_same(warehouse.open(str(root)).snapshot, from_log(log))


@pytest.mark.parametrize(
    "hint", [None, b"", b"{not json", b'{"version": 999}', b'{"version": 5}', b'{"version": "x"}', b"[1, 2]"]
)
def test_a_stale_missing_or_garbage_last_checkpoint_hint_is_harmless(tmp_path: Path, hint: bytes | None) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 12)
    hint_path = root / mc.LAST_CHECKPOINT
    if hint is None:
        hint_path.unlink()
    else:
        hint_path.write_bytes(hint)
    store = counting_store(root)
    assert_same(Log(store).snapshot(), from_log(log))
    assert store.reads[0] == mc.checkpoint_name(10)  # found by listing, whatever the hint says
    build(log, 3)  # the next checkpoint rewrites the hint
    assert mc.read_hint(log.store) == 15
    assert_same(warehouse.open(str(root)).snapshot, from_log(log))


# -- 4. writers and crashes -----------------------------------------------------------------------------------
def test_checkpoints_are_written_by_whichever_process_lands_the_version(tmp_path: Path, children: Children) -> None:
    """First the two writers take turns, three commits each (so each lands a checkpoint version,
    whatever the scheduler does), then they race for the remaining versions."""
    root = tmp_path / "wh"
    warehouse.open(str(root), create=True)
    interval, flushes, turns = 3, 12, 2
    procs = [children.start("checkpoint_writer.py", root, f"p{i}", interval, flushes, "none", "step") for i in range(2)]
    with watchdog(procs, 120):
        for p in procs:
            children.expect_line(p, "ready")
        first: dict[int, int] = {}
        for _ in range(turns):
            for p in procs:
                for _ in range(interval):
                    p.stdin.write("one\n")
                    p.stdin.flush()
                    first[int(children.line(p, "committed").split()[1])] = p.pid
        for p in procs:
            p.stdin.write("rest\n")
            p.stdin.flush()
        outputs = [p.communicate()[0] for p in procs]
    for p in procs:
        assert p.returncode == 0, children.stderr(p)
    landed = {
        int(line.split()[2]): p.pid
        for p, out in zip(procs, outputs)
        for line in out.splitlines()
        if line.startswith("committed")
    }
    landed.update(first)
    assert sorted(landed) == list(range(1, 2 * flushes + 1))
    log = Log(Store.from_url(str(root)))
    assert log.checkpoint_versions() == list(range(interval, 2 * flushes + 1, interval))
    for v in log.checkpoint_versions():
        ck = mc.load(log.store, v)
        assert ck.meta["writer"]["pid"] == landed[v], f"checkpoint {v} was not written by the process that committed it"
        assert_same(ck.snapshot(), from_log(log, v))
    assert [landed[v] for v in (3, 6, 9, 12)] == [procs[0].pid, procs[1].pid] * 2
    wh = warehouse.open(str(root))
    assert Counter(r[0].split("-")[0] for r in wh.sql("select execution_id from executions").fetchall()) == {
        "p0": flushes,
        "p1": flushes,
    }


def test_two_processes_writing_the_same_checkpoint_at_once_create_it_once(tmp_path: Path, children: Children) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=0)
    build(log, 40, per_commit=20)
    procs = [children.start("checkpoint_race.py", root) for _ in range(3)]
    with watchdog(procs, 120):
        for v in (10, 20, 30, 40):
            for p in procs:
                p.stdin.write(f"prep {v}\n")
                p.stdin.flush()
            for p in procs:
                assert children.line(p, "ready") == str(v)
            for p in procs:  # every process has its snapshot ready: the writes start together
                p.stdin.write("go\n")
                p.stdin.flush()
            created = [children.line(p, f"created {v}") for p in procs]
            assert sorted(created) == ["False", "False", "True"], f"checkpoint {v}: {created}"
            assert_same(mc.read_checkpoint(log.store, v), from_log(log, v))
        for p in procs:
            p.stdin.write("quit\n")
            p.stdin.flush()
            p.wait()
    assert not [n for n in manifest_names(root) if n.startswith(".tmp-")]
    assert_same(warehouse.open(str(root)).snapshot, from_log(log))


@pytest.mark.parametrize("mode", ["before_write", "mid_write", "before_link", "before_hint"])
def test_a_writer_killed_while_writing_a_checkpoint_leaves_a_warehouse_that_opens_right(
    tmp_path: Path, children: Children, mode: str
) -> None:
    root = tmp_path / "wh"
    warehouse.open(str(root), create=True)
    proc = children.start("checkpoint_writer.py", root, "k", 4, 10, mode)
    with watchdog([proc], 120):
        children.expect_line(proc, "ready")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        for n in (1, 2, 3):
            assert children.line(proc, "committed") == f"{n} {n}"
        paused = children.line(proc, f"paused {mode}")
        proc.kill()
        proc.wait()
    assert "00000000000000000004" in paused or paused == "4"
    log = Log(Store.from_url(str(root)))
    assert log.versions() == [0, 1, 2, 3, 4]  # commit 4 landed before its checkpoint was attempted
    on_disk = manifest_names(root)
    assert (mc.checkpoint_name(4).split("/")[1] in on_disk) == (mode == "before_hint")
    if mode in ("mid_write", "before_link"):
        assert [n for n in on_disk if n.startswith(".tmp-")], "the killed write left its temp file"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing damaged is ever read: not even a warning
        wh = warehouse.open(str(root))
    assert_same(wh.snapshot, from_log(log))
    assert wh.sql("select count(*) from executions").fetchall() == [(4,)]
    # Writing goes on; the next checkpoint is written; an explicit one fills the gap.
    with wh.writer(
        dataset={"type": "agentdojo", "config": {}}, agent={"type": "checkpointer", "config": {}}, flush_interval=None
    ) as w:
        for n in range(5, 9):
            w.add_execution(task_id="t", execution_id=f"after-{n}", benign_score=0.0)
            w.flush()
    assert warehouse.open(str(root), checkpoint_interval=4).version == 8
    assert Log(log.store).snapshot().version == 8
    assert_same(warehouse.open(str(root)).snapshot, from_log(log))


def test_a_failing_checkpoint_never_fails_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=2)

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(mc, "encode", broken)
    with caplog.at_level(logging.WARNING, logger="warehouse.manifest"):
        snap = build(log, 3)
    assert snap.version == 3 and log.versions() == [0, 1, 2, 3] and log.checkpoint_versions() == []
    assert "could not write the checkpoint of version 2" in caplog.text and "disk full" in caplog.text
    monkeypatch.undo()
    assert_same(warehouse.open(str(root)).snapshot, from_log(log))


def test_explicit_checkpoint_at_the_current_version(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=0)
    build(log, 7)
    wh = warehouse.open(str(root), checkpoint_interval=0)
    assert log.checkpoint_versions() == []
    build(log, 2)  # written by another process meanwhile: checkpoint() refreshes first
    assert wh.checkpoint() == 9
    assert log.checkpoint_versions() == [9] and mc.read_hint(log.store) == 9
    assert wh.checkpoint() == 9 and log.checkpoint_versions() == [9]  # already there: nothing written
    assert_same(mc.read_checkpoint(log.store, 9), from_log(log))
    with pytest.raises(warehouse.ReadOnlyWarehouse):
        warehouse.open(str(root), version=3).checkpoint()


# -- 5. refresh ---------------------------------------------------------------------------------------------
def test_refresh_reads_only_the_new_commits(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 12)
    store = counting_store(root)
    wh = Warehouse(store, Log(store).snapshot(), read_only=False)
    store.reset()
    assert wh.refresh() == 12
    # Nothing new: one probe, and the hint, which tells "not yet made" from "folded by vacuum".
    assert store.reads == [commit_name(13), mc.LAST_CHECKPOINT] and store.lists == 0
    build(log, 3)  # version 15 is a checkpoint: the refresh still only reads the 3 commits
    store.reset()
    assert wh.refresh() == 15
    assert store.reads == [*(commit_name(v) for v in (13, 14, 15, 16)), mc.LAST_CHECKPOINT] and store.lists == 0
    assert_same(wh.snapshot, from_log(log))
    build(log, 1)
    store.reset()
    version, new = wh.engine.refresh_commits()
    assert (version, [c.version for c in new]) == (16, [16])
    assert store.reads == [commit_name(16), commit_name(17), mc.LAST_CHECKPOINT]


def test_refresh_far_behind_lists_once_and_catches_up_from_a_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 3)
    store = counting_store(root)
    wh = Warehouse(store, Log(store).snapshot(), read_only=False, checkpoint_interval=5)
    build(log, 30)
    store.reset()
    assert wh.refresh() == 33  # rebuilt from checkpoint 30 once past the probes
    assert mc.checkpoint_name(30) in store.reads
    assert len([r for r in store.reads if r.endswith(".json")]) < 20
    assert_same(wh.snapshot, from_log(log))
    # Engine.refresh_commits returns every new commit (follow() needs them): it reads them all.
    follower = Warehouse(store, Log(store).snapshot(version=3), read_only=False)
    build(log, 2)
    version, new = follower.engine.refresh_commits()
    assert version == 35 and [c.version for c in new] == list(range(4, 36))
    assert_same(follower.snapshot, from_log(log))


# -- 6. folding commits into checkpoints ---------------------------------------------------------------------
def fold_all(log: Log) -> list[int]:
    return log.fold_commits(older_than=datetime.now(UTC) + timedelta(seconds=5))


def test_fold_commits_deletes_what_the_newest_checkpoint_covers_and_everything_still_opens(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 17)
    expected = {v: from_log(log, v) for v in range(18)}
    reader = warehouse.open(str(root))
    old_process = warehouse.open(str(root))  # stays at version 17 while commits are folded and added
    behind = Warehouse(Store.from_url(str(root)), log.snapshot(version=8), read_only=False)

    assert fold_all(log) == list(range(15))
    assert log.versions() == [15, 16, 17] and log.checkpoint_versions() == [15]
    assert fold_all(log) == []  # nothing more to fold

    wh = warehouse.open(str(root))
    assert_same(wh.snapshot, expected[17])
    assert_same(warehouse.open(str(root), version=15).snapshot, expected[15])
    assert_same(warehouse.open(str(root), version=16).snapshot, expected[16])
    with pytest.raises(
        warehouse.VersionNotFound,
        match="version 5 was folded into checkpoint 15 by vacuum.*the oldest version you can open is 15",
    ):
        warehouse.open(str(root), version=5)
    with pytest.raises(warehouse.VersionNotFound, match="oldest version you can open is 15"):
        warehouse.open(str(root), as_of=log.read(15).committed_at - timedelta(microseconds=1))
    assert warehouse.open(str(root), as_of=log.read(16).committed_at).version == 16

    history = wh.history()
    assert [h.version for h in history] == [17, 16, 15, 14]
    assert history[-1].operation == "folded" and history[-1].files_added == 0
    assert history[-1].committed_at == expected[14].committed_at
    assert [h.version for h in wh.history(limit=2)] == [17, 16]

    snap = build(log, 6)  # 23 (checkpoint 20 written from a snapshot loaded from checkpoint 15)
    assert log.checkpoint_versions() == [15, 20]
    assert reader.refresh() == old_process.engine.refresh_commits()[0] == 23
    assert_same(reader.snapshot, snap)
    assert behind.refresh() == 23  # its next commit (9) was folded away: rebuilt from a checkpoint
    assert_same(behind.snapshot, snap)
    assert fold_all(log) == [15, 16, 17, 18, 19]
    assert log.checkpoint_versions() == [20] and log.versions() == [20, 21, 22, 23]
    assert_same(warehouse.open(str(root)).snapshot, snap)


def test_fold_commits_keeps_commits_newer_than_older_than_and_only_folds_a_prefix(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 12)
    cut = log.read(4).committed_at + (log.read(5).committed_at - log.read(4).committed_at) / 2
    assert log.fold_commits(older_than=cut) == [0, 1, 2, 3, 4]
    assert log.versions()[0] == 5 and log.checkpoint_versions() == [5, 10]
    assert_same(
        warehouse.open(str(root), version=7).snapshot, replay(log.read_many([6, 7]), mc.read_checkpoint(log.store, 5))
    )
    assert fold_all(log) == [5, 6, 7, 8, 9]
    assert log.checkpoint_versions() == [10]  # checkpoint 5 could only open version 5 now: deleted


def test_fold_refuses_a_checkpoint_that_disagrees_with_the_log(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=0)
    build(log, 12)
    wrong = replay(
        [Commit(12, log.read(12).committed_at, "append", WRITER, "x", (data_file(999),))], from_log(log, 11)
    )  # what version 12 would be with another file
    log.write_checkpoint(wrong)
    assert log.verify_checkpoint(12)
    with pytest.warns(mc.CheckpointWarning, match="does not agree with the log"):
        assert fold_all(log) == []
    assert log.versions() == list(range(13))
    (root / mc.checkpoint_name(12)).unlink()
    log.write_checkpoint(from_log(log))
    assert log.verify_checkpoint(12) == []
    assert fold_all(log) == list(range(12))


def leftover(log: Log, version: int, token: str, n: int) -> DataFile:
    """A commit file at a folded version, as a writer with a snapshot older than the fold would
    create it (and leave it, if killed before taking it back)."""
    f = data_file(n)
    c = Commit(version, datetime.now(UTC), "append", WRITER, token, (f,))
    assert log.store.put_if_absent(commit_name(version), c.to_bytes()), "the folded name is free again"
    return f


def test_a_writer_whose_snapshot_is_older_than_a_fold_commits_after_the_newest_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    stale = build(log, 3)
    build(log, 9)
    assert fold_all(log) == list(range(10)) and log.versions() == [10, 11, 12]
    f = data_file(900)
    with caplog.at_level(logging.WARNING, logger="warehouse.manifest"):
        c = log.commit(stale, operation="append", writer=WRITER, token="stale:1", add=[f])
    assert c.version == 13 and "had been folded" in caplog.text  # not 4, where no reader would look
    assert log.versions() == [10, 11, 12, 13]
    snap = warehouse.open(str(root)).snapshot
    assert f.path in snap.files and len(snap.files) == len(Log(log.store).snapshot(version=12).files) + 1
    # A file to remove that the newest snapshot no longer has is a conflict, as always.
    gone = sorted(set(stale.files) - set(snap.files))[0]
    with pytest.raises(warehouse.CommitConflict, match="not in version"):
        log.commit(stale, operation="compact", writer=WRITER, token=None, remove=[RemovedFile("executions", gone)])
    assert log.versions() == [10, 11, 12, 13]


def test_a_stale_writer_stepping_over_a_leftover_in_the_folded_range_still_lands_on_top(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    stale = build(log, 3)
    build(log, 9)
    fold_all(log)
    left = leftover(log, 4, "crashed:1", 901)  # another stale writer's, killed before taking it back
    wh = Warehouse(log.store, stale, read_only=False, checkpoint_interval=5)
    f = data_file(902)
    c = wh.engine.commit(operation="append", writer=WRITER, token="stale:2", add=[f])
    assert c.version == 13 and not (root / commit_name(5)).exists()
    expected = Log(log.store).snapshot()
    assert f.path in expected.files and left.path not in expected.files
    assert_same(wh.snapshot, expected)
    # A reader behind the fold steps onto the leftover, then finds the fold: it reloads.
    reader = Warehouse(log.store, stale, read_only=False)
    assert reader.refresh() == 13
    assert_same(reader.snapshot, expected)
    # The leftover's token does not count as committed: it is not in the log.
    assert log.find_token("crashed:1", stale.version, 13) is None


def test_a_token_of_a_folded_commit_is_still_found(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    snap = build(log, 2)
    stale = snap
    snap, first = commit(log, snap, [data_file(500)], token="w:1")  # version 3; its acknowledgement is "lost"
    snap = build(log, 9)
    assert fold_all(log) == list(range(10))
    again = log.commit(
        snap, operation="append", writer=WRITER, token="w:1", add=[data_file(500)], token_since=stale.version
    )
    assert (again.version, again.token, again.committed_at) == (3, "w:1", first.committed_at)
    assert again.info == {"folded_into": 10}
    assert log.versions()[-1] == snap.version  # nothing committed twice
    assert log.find_token("w:2", stale.version, snap.version) is None
    assert log.operations([3, 11]) == {3: ("append", {}), 11: ("append", {})}


def test_opening_a_warehouse_whose_first_commits_were_folded(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 5)
    expected = from_log(log)
    fold_all(log)
    assert manifest_names(root) == sorted(
        [mc.checkpoint_name(5).split("/")[1], "00000000000000000005.json", "_last_checkpoint"]
    )
    wh = warehouse.open(str(root))  # not "no warehouse": its checkpoint is there
    assert_same(wh.snapshot, expected)
    assert warehouse.open(str(root), create=True).version == 5
    damage(checkpoint_path(root, 5), "truncated")
    with (
        pytest.warns(mc.CheckpointWarning),
        pytest.raises(warehouse.CorruptCommit, match="unreadable and the commits before it were folded"),
    ):
        warehouse.open(str(root))


@pytest.mark.slow
def test_sync_from_a_source_whose_commits_were_folded(tmp_path: Path) -> None:
    src = warehouse.open(str(tmp_path / "src"), create=True, checkpoint_interval=3)
    dataset, agent = {"type": "agentdojo", "config": {}}, {"type": "folder", "config": {}}

    def flush(prefix: str, n: int) -> None:
        with src.writer(dataset=dataset, agent=agent, flush_interval=None) as w:
            for i in range(n):
                w.add_execution(
                    task_id="t",
                    execution_id=f"{prefix}-{i}",
                    benign_score=1.0,
                    messages=[{"role": "user", "content": f"{prefix} {i}"}],
                )
                w.flush()

    flush("a", 4)
    dst_url = str(tmp_path / "dst")
    src.sync_to(dst_url)
    flush("b", 3)
    # SRC compacts the first two executions files (as maintenance would), then everything is folded.
    olds = src.files("executions")[:2]
    table = pa.concat_tables([pq.read_table(src.store.full(f.path)) for f in olds])
    new = write_data_file(src, "executions", dict(olds[0].partition), table)
    src.engine.commit(
        operation="compact",
        writer=WRITER,
        token="compact:1",
        add=[new],
        remove=[RemovedFile(f.table, f.path) for f in olds],
    )
    src.checkpoint()
    assert fold_all(src.log) and src.log.versions()[0] == src.version
    result = src.sync_to(dst_url)
    assert result.removed == 2 and result.files >= 1
    dst = warehouse.open(dst_url)
    ids = Counter(r[0] for r in dst.sql("select execution_id from executions").fetchall())
    assert ids == Counter(r[0] for r in src.sql("select execution_id from executions").fetchall())
    assert set(ids.values()) == {1} and len(ids) == 7
    assert src.sync_to(dst_url).up_to_date
    # A fresh DST gets everything, in commits of whole source flushes.
    fresh = src.sync_to(str(tmp_path / "fresh"))
    assert fresh.files == len(src.snapshot.files) and fresh.removed == 0
    taken = warehouse.open(str(tmp_path / "fresh")).snapshot.files.values()
    assert sorted(f.path for f in taken if not is_ledger_file(f)) == sorted(src.snapshot.files)  # (and its ledger)


# -- 7. on S3 -----------------------------------------------------------------------------------------------
def test_checkpoints_refresh_and_folding_on_s3(s3: Any, s3_url: str) -> None:
    url = f"{s3_url}/wh"
    warehouse.open(url, storage_options=s3.options(), create=True)
    store = Store.from_url(url, s3.options())
    log = Log(store, checkpoint_interval=4)
    snap = build(log, 9)
    assert log.checkpoint_versions() == [4, 8] and mc.read_hint(store) == 8
    wh = warehouse.open(url, storage_options=s3.options())
    assert_same(wh.snapshot, from_log(log))
    snap = build(log, 2)
    assert wh.refresh() == 11
    assert_same(wh.snapshot, snap)
    assert_same(warehouse.open(url, storage_options=s3.options(), version=6).snapshot, from_log(log, 6))
    assert fold_all(log) == list(range(8))
    assert log.versions() == [8, 9, 10, 11]
    assert_same(warehouse.open(url, storage_options=s3.options()).snapshot, snap)
    with pytest.raises(warehouse.VersionNotFound, match="oldest version you can open is 8"):
        warehouse.open(url, storage_options=s3.options(), version=6)
    snap = build(log, 1)
    assert wh.refresh() == 12
    assert_same(wh.snapshot, snap)


class _ListsBeforeFolds(Log):
    """A log whose first listings were each taken just before a vacuum folded commits into a checkpoint
    (the interleaving a sync or vacuum meets when other processes vacuum between its listing and its
    reads): after the first listing the log is folded, after the second more commits and a checkpoint
    land and it is folded again."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.listings = 0

    def listing(self):  # type: ignore[no-untyped-def]
        listing = super().listing()
        self.listings += 1
        if self.listings == 2:
            build(Log(self.store, checkpoint_interval=5), 5)
        if self.listings <= 2:
            fold_all(Log(self.store))
        return listing


def test_commits_read_while_vacuums_fold_list_again_until_the_fold_stops(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    log = new_log(root, interval=5)
    build(log, 12)
    racing = _ListsBeforeFolds(Store.from_url(str(root)))
    # The first listing shows commits 0..12, then 0..9 are folded away; the second shows 10..17,
    # then 10..14 are folded: reading must not fail (it raised CorruptCommit "the log has a gap:
    # restore it from a backup"); the commits still in the log come back.
    assert [c.version for c in racing.commits()] == [15, 16, 17]
    assert racing.listings == 3
