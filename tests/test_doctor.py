"""Doctor: every kind of damage is detected and named, repair only ever adds one commit, and afterwards
doctor is clean (orphans aside) and every query works again. The CLI runs as a real process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import warehouse
from warehouse.core.errors import CorruptCommit
from warehouse.manifest import Snapshot
from warehouse.ops import doctor

CONFIG = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "plain", "config": {}}}
FLUSHES, PER_FLUSH = 3, 4


def build(url: str, **options: Any) -> warehouse.Warehouse:
    """Versions 1..3: one flush each of 4 executions with 2 messages (executions, messages, configs in flush 1)."""
    wh = warehouse.open(url, create=True, **options)
    with wh.writer(**CONFIG, flush_interval=None) as w:
        for f in range(FLUSHES):
            for i in range(PER_FLUSH):
                w.add_execution(
                    task_id="t",
                    execution_id=f"f{f}-{i}",
                    benign_score=1.0,
                    messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                )
            w.flush()
    assert wh.version == FLUSHES
    return wh


def commit_path(root: Path, version: int) -> Path:
    return root / "_manifest" / f"{version:020d}.json"


def edit_commit(root: Path, version: int, change) -> None:
    p = commit_path(root, version)
    doc = json.loads(p.read_bytes())
    change(doc)
    p.write_text(json.dumps(doc))


def data_file(wh: warehouse.Warehouse, version: int, table: str = "executions") -> str:
    """The path of `table`'s file added by commit `version`."""
    [f] = [a for a in wh.log.read(version).add if a.table == table]
    return f.path


def kinds(report: doctor.DoctorReport, severity: str | None = None) -> list[str]:
    return [f.kind for f in report.findings if severity is None or f.severity == severity]


def every_view_works(wh: warehouse.Warehouse) -> dict[str, int]:
    """Row counts of every view (a query that hits a missing or broken file raises)."""
    wh.refresh()
    views = [v for (v,) in wh.sql("select view_name from duckdb_views() where not internal order by 1").fetchall()]
    assert "executions" in views and "scores" in views
    return {v: wh.sql(f"select count(*) from {v}").fetchall()[0][0] for v in views}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse", *args], capture_output=True, text=True, timeout=300)


# -- a healthy warehouse -----------------------------------------------------------------------------
def test_healthy_warehouse_gets_a_clean_report(root: Path) -> None:
    wh = build(str(root))
    report = wh.doctor()
    assert report.findings == [] and report.notes == []
    assert report.healthy and report.exit_code == 0
    assert (report.version, report.commits_checked) == (FLUSHES, FLUSHES + 1)
    assert report.files_checked == len(wh.snapshot.files) == 2 * FLUSHES + 1
    assert wh.doctor(repair=True).repair_version is None and wh.refresh() == FLUSHES  # nothing to repair: no commit


# -- the log ---------------------------------------------------------------------------------------------
def test_truncated_commit_is_named_with_what_to_do_and_never_repaired(root: Path) -> None:
    build(str(root))
    p = commit_path(root, 2)
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(CorruptCommit):
        warehouse.open(str(root))
    report = doctor.run(str(root), repair=True)
    [f] = report.problems
    assert (f.kind, f.version, f.path) == ("corrupt-commit", 2, "_manifest/00000000000000000002.json")
    assert "is not a valid commit" in f.message and "has 40 bytes" in f.message
    assert "restore it from a backup" in f.fix and "replica" in f.fix
    assert report.exit_code == 1 and report.repair_version is None
    assert any("no repair" in n for n in report.notes)
    # The files only commit 2 added now look never committed: doctor says not to vacuum them.
    assert sorted(kinds(report, "orphan")) == ["orphan", "orphan"]
    assert all("damaged commit" in f.message for f in report.orphans)
    assert sorted(os.listdir(root / "_manifest")) == [f"{v:020d}.json" for v in range(FLUSHES + 1)]


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda d: d.update(version=7), "claims version 7"),
        (lambda d: d.update(version="two"), "ValueError"),
        (lambda d: d.pop("committed_at"), "KeyError"),
        (lambda d: d["add"][0].update(rows="many"), "ValueError"),
    ],
)
def test_hand_edited_commit_that_no_longer_parses_is_named(root: Path, edit, says: str) -> None:
    build(str(root))
    edit_commit(root, 1, edit)
    report = doctor.run(str(root))
    [f] = report.problems
    assert (f.kind, f.version) == ("corrupt-commit", 1) and says in f.message, f.message
    assert report.exit_code == 1


def test_missing_commit_is_a_gap_in_the_log(root: Path) -> None:
    build(str(root))
    commit_path(root, 2).unlink()
    report = doctor.run(str(root))
    assert [(f.kind, f.version) for f in report.problems] == [("missing-commit", 2)]
    assert "gap" in report.problems[0].message


def test_clock_going_backwards_is_a_warning_and_time_travel_stays_sensible(root: Path) -> None:
    wh = build(str(root))
    times = {c.version: c.committed_at for c in wh.log.commits()}
    assert times[0] < times[1]
    early = times[0] + (times[1] - times[0]) / 2  # commit 2 claims a time before commit 1's
    edit_commit(root, 2, lambda d: d.update(committed_at=early.isoformat().replace("+00:00", "Z")))
    report = doctor.run(str(root))
    assert report.healthy and report.exit_code == 0
    [f] = report.warnings
    assert (f.kind, f.version) == ("clock-backwards", 2) and "earlier than commit 1" in f.message
    assert "ordered by version" in f.fix
    # as_of treats the clock as standing still: commit 2 counts as made at commit 1's time.
    assert warehouse.open(str(root), as_of=times[1]).version == 2
    assert warehouse.open(str(root), as_of=times[1] - timedelta(microseconds=1)).version == 0
    assert warehouse.open(str(root), as_of=times[3]).version == 3
    assert warehouse.open(str(root), as_of=early).version == 0
    with pytest.raises(warehouse.VersionNotFound):
        warehouse.open(str(root), as_of=times[0] - timedelta(seconds=1))


# -- data files -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_missing_wrong_size_wrong_rows_and_unreadable_files_are_detected_and_repaired_in_one_commit(root: Path) -> None:
    wh = build(str(root))
    before = every_view_works(wh)
    missing, resized, garbled = data_file(wh, 1, "messages"), data_file(wh, 2), data_file(wh, 3, "messages")
    (root / missing).unlink()
    other = pq.read_table(root / data_file(wh, 1))
    pq.write_table(other.slice(0, 1), root / resized)  # another file written over it: other size, other rows
    size = (root / garbled).stat().st_size
    (root / garbled).write_bytes(b"\0" * size)
    recount = data_file(wh, 3)  # a hand-edited commit: the file is intact, its recorded row count is not
    edit_commit(root, 3, lambda d: next(a for a in d["add"] if a["path"] == recount).update(rows=99))
    wh = warehouse.open(str(root))
    with pytest.raises(duckdb.IOException, match=re.escape(missing)):  # DuckDB's own error, passed through
        wh.sql("select count(*) from messages").fetchall()

    report = wh.doctor()
    found = {f.path: f for f in report.problems}
    assert {p: f.kind for p, f in found.items()} == {
        missing: "missing-file",
        resized: "wrong-size",
        garbled: "unreadable-file",
        recount: "wrong-rows",
    }
    assert "not in storage" in found[missing].message
    assert f"records {size}" not in found[resized].message and "bytes; the manifest records" in found[resized].message
    assert "holds 4 rows; the manifest records 99" in found[recount].message
    assert "footer cannot be read" in found[garbled].message
    assert all("doctor --repair" in f.fix for f in report.problems) and report.exit_code == 1

    report = wh.doctor(repair=True)
    assert report.healthy and report.repair_version == FLUSHES + 1 and len(report.repaired) == 4
    assert wh.version == FLUSHES + 1
    commit = wh.log.read(FLUSHES + 1)
    assert commit.operation == "repair" and len(commit.remove) == 4
    actions = {f["path"]: f["action"] for f in commit.info["doctor"]["files"]}
    assert actions == {missing: "removed", resized: "removed", garbled: "removed", recount: "re-recorded"}
    [again] = commit.add
    assert (again.path, again.rows) == (recount, 4)
    # History is untouched: the old commits are still there, byte for byte the edited ones.
    assert json.loads(commit_path(root, 3).read_bytes())["version"] == 3

    fresh = warehouse.open(str(root))
    assert fresh.doctor().findings == []
    after = every_view_works(fresh)
    # The re-recorded file's rows stay; the removed files' rows are gone (2 message files, 1 executions file).
    assert after["raw_executions"] == before["raw_executions"] - PER_FLUSH
    assert after["raw_messages"] == before["raw_messages"] - 2 * 2 * PER_FLUSH


def test_orphans_and_temp_files_are_reported_not_problems_and_vacuum_removes_them(root: Path) -> None:
    wh = build(str(root))
    partition_dir = (root / data_file(wh, 1)).parent
    orphan = partition_dir / "part-0123456789abcdef0123456789abcdef.parquet"
    pq.write_table(pa.table({"x": [1]}), orphan)
    (partition_dir / ".tmp-abc").write_bytes(b"half a file")
    (root / "_manifest" / ".tmp-def").write_bytes(b"{")
    report = wh.doctor(repair=True)
    assert report.healthy and report.exit_code == 0 and report.repair_version is None
    assert sorted(kinds(report)) == ["orphan", "orphan", "temp-file"]
    assert {f.path for f in report.orphans} == {
        orphan.relative_to(root).as_posix(),
        (partition_dir / ".tmp-abc").relative_to(root).as_posix(),
        "_manifest/.tmp-def",
    }
    assert all("warehouse vacuum" in f.fix for f in report.orphans)
    assert wh.version == FLUSHES  # orphans are never repaired
    for p in (orphan, partition_dir / ".tmp-abc", root / "_manifest" / ".tmp-def"):
        t = time.time() - 2 * 3600  # older than vacuum's window
        os.utime(p, (t, t))
    wh.vacuum()
    assert wh.doctor().findings == []


# -- checkpoints -----------------------------------------------------------------------------------------
def test_checkpoints_are_compared_with_a_replay_of_the_log(root: Path) -> None:
    wh = build(str(root))
    assert wh.checkpoint() == FLUSHES
    report = wh.doctor()
    assert report.findings == [] and report.checkpoints_checked == 1

    # A checkpoint at version 2 holding version 1's files (a bug, or a bad restore).
    at1, c2 = wh.log.snapshot(1), wh.log.read(2)
    assert wh.log.write_checkpoint(Snapshot(2, c2.committed_at, at1.files))
    report = wh.doctor()
    [f] = report.problems
    assert (f.kind, f.version) == ("checkpoint-mismatch", 2)
    assert "2 file(s) missing from the checkpoint" in f.message and "move" in f.fix
    assert report.checkpoints_checked == 2 and report.exit_code == 1

    # A damaged one.
    p = root / "_manifest" / f"{FLUSHES:020d}.checkpoint.parquet"
    p.write_bytes(p.read_bytes()[:-100])
    kinds_found = {(f.kind, f.version) for f in wh.doctor().problems}
    assert kinds_found == {("checkpoint-mismatch", 2), ("unreadable-checkpoint", FLUSHES)}


def test_automatic_checkpoints_and_a_folded_log_are_healthy(root: Path) -> None:
    wh = build(str(root), checkpoint_interval=2)
    report = wh.doctor()
    assert report.findings == [] and report.checkpoints_checked == 1  # version 2
    wh.checkpoint()
    folded = wh.log.fold_commits(older_than=datetime.now(UTC) + timedelta(days=1))
    assert folded == [0, 1, 2]
    report = warehouse.open(str(root)).doctor()
    assert report.findings == [] and report.healthy
    # The replay starts from checkpoint 2 (commit 3 is still there), and checks checkpoint 3 against it.
    assert report.notes == [
        "commits before 3 were folded away by vacuum: the replay starts from checkpoint 2, "
        "which nothing older is left to check against"
    ]
    assert report.checkpoints_checked == 1
    assert report.files_checked == len(wh.snapshot.files)


@pytest.mark.parametrize("origin", ["another warehouse", "a copy of the last commit"])
def test_a_stray_commit_file_is_named_by_readers_and_set_aside_by_repair(
    root: Path, tmp_path: Path, origin: str
) -> None:
    wh = build(str(root))
    before = every_view_works(wh)
    stray = commit_path(root, 50)
    if origin == "another warehouse":  # its version 50, copied in beside versions 0..3 by mistake
        other = tmp_path / "other"
        with warehouse.open(str(other), create=True).writer(**CONFIG, flush_interval=None) as w:
            w.add_execution(task_id="elsewhere", benign_score=0.0)
        doc = json.loads(commit_path(other, 1).read_bytes())
        doc["version"] = 50
        stray.write_text(json.dumps(doc))
    else:  # `cp 00000000000000000003.json 00000000000000000050.json`
        stray.write_bytes(commit_path(root, FLUSHES).read_bytes())
    stray_bytes = stray.read_bytes()

    with pytest.raises(CorruptCommit) as err:
        warehouse.open(str(root))
    message = str(err.value)
    assert f"commits {FLUSHES + 1}..49 are missing" in message and f"runs from 0 to {FLUSHES}" in message
    assert "00000000000000000050.json" in message and "warehouse doctor --repair" in message, message

    res = run_cli("doctor", "--url", str(root), "--format", "json")
    assert res.returncode == 1, res.stderr
    found = json.loads(res.stdout)["findings"]
    assert [(f["kind"], f["path"], f["severity"]) for f in found] == [
        ("stray-commit", "_manifest/00000000000000000050.json", "error")
    ]
    assert "--repair" in found[0]["fix"] and f"commits {FLUSHES + 1}..49" in found[0]["fix"]

    res = run_cli("doctor", "--url", str(root), "--repair")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "_manifest/_set_aside/00000000000000000050.json" in res.stdout
    assert not stray.exists() and (root / "_manifest" / "_set_aside" / stray.name).read_bytes() == stray_bytes
    fixed = warehouse.open(str(root))
    assert fixed.version == FLUSHES and every_view_works(fixed) == before
    assert fixed.doctor().findings == [] and fixed.vacuum().files == 0  # vacuum leaves the set-aside file alone
    assert (root / "_manifest" / "_set_aside" / stray.name).exists()


@pytest.mark.slow
def test_a_checkpoint_newer_than_every_commit_is_refused_not_loaded_and_set_aside(root: Path, tmp_path: Path) -> None:
    wh = build(str(root))
    before = every_view_works(wh)
    other = warehouse.open(str(tmp_path / "other"), create=True)
    for _ in range(5):
        with other.writer(**CONFIG, flush_interval=None) as w:
            w.add_execution(task_id="elsewhere", benign_score=0.0)
    other.checkpoint()
    stray = root / "_manifest" / f"{5:020d}.checkpoint.parquet"
    stray.write_bytes((tmp_path / "other" / "_manifest" / stray.name).read_bytes())

    with pytest.raises(CorruptCommit, match=f"newer than the newest commit \\({FLUSHES}\\)"):
        warehouse.open(str(root))  # was: opened at version 5, the other warehouse's files
    report = doctor.run(str(root))
    assert [(f.kind, f.version) for f in report.problems] == [("stray-checkpoint", 5)]

    repaired = doctor.run(str(root), repair=True)
    assert repaired.healthy and not stray.exists()
    assert (root / "_manifest" / "_set_aside" / stray.name).exists()
    fixed = warehouse.open(str(root))
    assert fixed.version == FLUSHES and every_view_works(fixed) == before


def test_stray_parquet_files_outside_the_partition_layout_are_reported(root: Path) -> None:
    wh = build(str(root))
    sample = (root / data_file(wh, 1)).read_bytes()
    strays = [
        "executions/stray.parquet",
        "executions/dataset=agentdojo/part-0123.parquet",
        "messages/dataset=agentdojo/agent=plain/attack=none/config_hash=x/extra/part-1.parquet",
    ]
    for p in strays:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(sample)
    (root / "executions" / "notes.txt").write_text("not parquet")

    report = wh.doctor(repair=True)

    assert sorted((f.kind, f.path, f.severity) for f in report.findings) == sorted(
        ("stray-file", p, "warning") for p in strays
    )
    assert all("read_parquet(" in f.message and "move it out" in f.fix for f in report.findings)
    assert report.healthy and report.repair_version is None and all((root / p).exists() for p in strays)


# -- the CLI ---------------------------------------------------------------------------------------------
def test_cli_doctor_exit_codes_json_and_repair(root: Path) -> None:
    wh = build(str(root))
    ok = run_cli("doctor", "--url", str(root))
    assert ok.returncode == 0, ok.stderr
    assert "0 problems, 0 warnings, 0 orphans" in ok.stdout

    lost = data_file(wh, 2)
    (root / lost).unlink()
    res = run_cli("doctor", "--url", str(root), "--format", "json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["healthy"] is False and doc["problems"] == 1
    assert [(f["kind"], f["path"], f["severity"]) for f in doc["findings"]] == [("missing-file", lost, "error")]

    res = run_cli("doctor", "--url", str(root))
    assert res.returncode == 1 and "missing-file" in res.stdout and "doctor --repair" in res.stdout

    res = run_cli("doctor", "--url", str(root), "--repair")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"repaired 1 in version {FLUSHES + 1}" in res.stdout and "1 file(s) removed" in res.stdout
    again = run_cli("doctor", "--url", str(root), "--format", "json")
    assert again.returncode == 0 and json.loads(again.stdout)["findings"] == []

    commit_path(root, 1).write_text("{not json")
    res = run_cli("doctor", "--url", str(root), "--repair")
    assert res.returncode == 1 and "corrupt-commit" in res.stdout and "restore it from a backup" in res.stdout
    missing = run_cli("doctor", "--url", str(root.parent / "nowhere"))
    assert missing.returncode == 1 and "no warehouse" in missing.stderr


def test_doctor_on_s3_reads_only_footers_and_repairs(s3_url: str, s3_options: dict, s3) -> None:
    wh = build(s3_url, storage_options=s3_options)
    assert wh.doctor().findings == []
    fs = s3.fs()
    gone = data_file(wh, 2, "messages")
    fs.rm(f"{s3_url.removeprefix('s3://')}/{gone}")
    recount = data_file(wh, 3)
    raw = json.loads(fs.cat(f"{s3_url.removeprefix('s3://')}/_manifest/{3:020d}.json"))
    next(a for a in raw["add"] if a["path"] == recount)["rows"] = 1
    fs.pipe(f"{s3_url.removeprefix('s3://')}/_manifest/{3:020d}.json", json.dumps(raw).encode())
    wh = warehouse.open(s3_url, storage_options=s3_options)
    report = wh.doctor()
    assert {(f.path, f.kind) for f in report.problems} == {(gone, "missing-file"), (recount, "wrong-rows")}
    assert wh.doctor(repair=True).healthy
    assert warehouse.open(s3_url, storage_options=s3_options).doctor().findings == []
    counts = every_view_works(warehouse.open(s3_url, storage_options=s3_options))
    assert counts["raw_executions"] == FLUSHES * PER_FLUSH and counts["raw_messages"] == (FLUSHES - 1) * PER_FLUSH * 2
