"""Crash torture in CI: writer, compaction, vacuum, checkpoint and sync processes killed with
`kill -9` at random moments, locally and on S3; then nothing acknowledged is lost, nothing is
duplicated or partly visible, and doctor finds nothing but orphans (see tests/torture.py;
`make torture` runs 100 kills); and the short-window case: a vacuum at the shortest orphan window
allowed beside writers stalled with files in flight; and the publication case: publishing writers
and publishers killed, then every Delta version reads and names what its warehouse version should."""

from __future__ import annotations

from pathlib import Path

import deltalake
import torture

import warehouse


def test_a_worker_that_dies_by_itself_is_a_problem(tmp_path: Path) -> None:
    # A role the worker does not know makes it exit with status 1 before it gets to work: the harness
    # must report that exit, not keep torturing without the worker (nor mistake it for its own kill).
    s = torture.run(str(tmp_path / "wh"), 2, seed=3, logs=tmp_path / "logs", roles={"writer": 1, "no-such-role": 1})
    died = [p for p in s.doctor_problems if "(no-such-role) exited by itself with status 1" in p]
    assert died and not s.ok, s.doctor_problems


def test_torture_local_disk(tmp_path: Path) -> None:
    s = torture.run(str(tmp_path / "wh"), 24, seed=7, logs=tmp_path / "logs")
    print("\n" + s.table())
    assert s.kills == 24 and s.acknowledged_batches > 20 and s.rows_checked > 0
    assert (s.lost, s.duplicated, s.partial_batches, s.doctor_problems) == (0, 0, 0, [])


def test_torture_s3(s3_url: str, s3_options: dict, tmp_path: Path) -> None:
    s = torture.run(s3_url, 8, seed=11, storage_options=s3_options, logs=tmp_path / "logs", max_pause=1.0)
    print("\n" + s.table())
    assert s.kills == 8 and s.acknowledged_batches > 0
    assert (s.lost, s.duplicated, s.partial_batches, s.doctor_problems) == (0, 0, 0, [])


def test_torture_a_vacuum_at_the_shortest_window_beside_stalled_writers_loses_nothing(tmp_path: Path) -> None:
    # The time constants scaled down to a 4 s minimum window (commit deadline 2 s) in every process;
    # writers and compaction stall with files in flight until the vacuum has deleted one of them.
    s = torture.run(str(tmp_path / "wh"), 16, seed=5, logs=tmp_path / "logs", short_window=4.0, max_pause=1.0)
    print("\n" + s.table())
    assert s.kills == 16 and s.acknowledged_batches > 10
    assert s.stalls_taken_by_vacuum > 0 and s.stale_refused > 0, "the case was not exercised"
    assert (s.lost, s.duplicated, s.partial_batches, s.doctor_problems) == (0, 0, 0, [])


def test_torture_publication_every_delta_version_reads_and_matches_a_warehouse_version(tmp_path: Path) -> None:
    s = torture.run(str(tmp_path / "wh"), 10, seed=13, logs=tmp_path / "logs", roles=torture.PUBLICATION_ROLES)
    print("\n" + s.table())
    assert s.kills == 10 and s.acknowledged_batches > 0
    assert s.kills_by_role["publish"] + s.kills_by_role["writer-publish"] > 0
    assert s.delta_versions_checked > 10 and s.delta_rows_read > 0
    assert (s.lost, s.duplicated, s.partial_batches, s.doctor_problems) == (0, 0, 0, [])


def test_the_publication_check_finds_a_delta_version_naming_other_files(tmp_path: Path) -> None:
    # The check must be able to fail: a Delta commit that drops rows but keeps the warehouse
    # transaction names other files than the warehouse version it records.
    root = str(tmp_path / "wh")
    wh = warehouse.open(root, create=True)
    with wh.writer(dataset={"type": "d", "config": {}}, agent={"type": "a", "config": {}}, flush_interval=None) as w:
        for i in range(3):
            w.add_execution(task_id=f"t{i}", execution_id=f"x-1-3-{i}", benign_score=1.0, attack_score=0.0)
    wh.publish("delta")
    s = torture.Summary()
    torture._check_publication(root, None, s)
    assert s.doctor_problems == [] and s.delta_versions_checked > 0
    dt = deltalake.DeltaTable(str(tmp_path / "wh" / "executions"))
    dt.delete("execution_id = 'x-1-3-0'")
    s = torture.Summary()
    torture._check_publication(root, None, s)
    assert any("executions v1 (warehouse 1) names" in p for p in s.doctor_problems), s.doctor_problems
