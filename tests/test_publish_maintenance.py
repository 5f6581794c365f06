"""Publication and maintenance: vacuum keeps every file the latest Delta version of a table names and
cleans the derived files no log names any more; doctor finds a Delta log that is damaged, foreign or
behind, and `warehouse publish delta --rebuild` puts it right."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import deltalake
import polars as pl

import warehouse
from warehouse.ops.publish import delta as delta_pub
from warehouse.ops.publish import settings as publish_settings

REPO = Path(__file__).resolve().parents[1]


def _flush(wh: warehouse.Warehouse, config: dict[str, Any], ids: list[str], tag: str = "") -> None:
    with wh.writer(**config, flush_interval=None) as w:
        for i, eid in enumerate(ids):
            w.add_execution(
                task_id=f"task-{i}",
                execution_id=eid,
                benign_score=float(i % 2),
                attack_score=0.0,
                messages=[{"role": "user", "content": f"q {eid} {tag}"}, {"role": "assistant", "content": "a"}],
            )


def _warehouse(root: Path, config: dict[str, Any], flushes: int = 3) -> warehouse.Warehouse:
    wh = warehouse.open(str(root), create=True)
    for n in range(flushes):
        _flush(wh, config, [f"e{n}-{i}" for i in range(4)])
    return wh


def _age(root: Path, paths: list[str], hours: float = 2.0) -> None:
    """Make files look `hours` old (vacuum judges derived files by their last modification)."""
    then = time.time() - hours * 3600
    for p in paths:
        os.utime(root / p, (then, then))


def _delta_count(root: Path, table: str, version: int | None = None) -> int:
    return pl.read_delta(str(root / table), version=version).height


def _delta_named(root: Path, table: str) -> set[str]:
    dt = delta_pub.open_table(str(root / table), None)
    assert dt is not None
    return delta_pub.delta_files(dt, table)


# -- vacuum ------------------------------------------------------------------------------------------
def test_vacuum_keeps_the_files_a_delta_log_behind_the_warehouse_still_names(
    root: Path, config: dict[str, Any]
) -> None:
    wh = _warehouse(root, config)
    wh.publish("delta")
    named_before = _delta_named(root, "executions")
    assert len(named_before) == 3
    wh.compact()  # publication is manual: the Delta log still names the three small files
    assert not named_before & set(wh.engine.snapshot.files)

    out = _cli("vacuum", "--url", str(root), "--retain", "0s", "--dry-run")
    assert out.returncode == 0 and "removed file(s) the latest Delta versions still name" in out.stdout, out
    res = wh.vacuum(retain=timedelta(0))
    assert set(res.kept_for_delta) >= named_before and not set(res.removed) & named_before
    assert all((root / p).exists() for p in named_before)
    assert _delta_count(root, "executions") == 12  # the log that fell behind still reads

    wh.publish("delta")
    assert _delta_named(root, "executions") == {p for p in wh.engine.snapshot.files if p.startswith("executions/")}
    res = wh.vacuum(retain=timedelta(0))
    assert named_before <= set(res.removed) and not res.kept_for_delta
    assert not any((root / p).exists() for p in named_before)
    assert _delta_count(root, "executions") == 12


def test_vacuum_deletes_derived_files_no_delta_log_names_once_older_than_retain(
    root: Path, config: dict[str, Any]
) -> None:
    wh = _warehouse(root, config, flushes=1)
    _flush(wh, config, ["e0-1", "e0-2"], tag="again")  # superseded adds: published as a derived copy
    wh.publish("delta")
    derived = sorted(p for p in _delta_named(root, "executions") if delta_pub.is_derived(p))
    assert derived and all((root / p).exists() for p in derived)
    assert _delta_count(root, "executions") == 4

    # Named by the latest Delta version: never deleted, however old.
    _age(root, derived)
    res = wh.vacuum(retain=timedelta(0))
    assert not set(res.derived) & set(derived) and all((root / p).exists() for p in derived)

    wh.compact()
    wh.publish("delta")
    assert not set(derived) & _delta_named(root, "executions")
    # No longer named, but modified within the retention (time travel to the older Delta version): kept.
    os.utime(root / derived[0])
    res = wh.vacuum(retain=timedelta(hours=1), dry_run=True)
    assert derived[0] not in res.derived
    _age(root, derived)
    res = wh.vacuum(retain=timedelta(hours=1))
    assert sorted(res.derived) == derived and res.files >= len(derived)
    assert not any((root / p).exists() for p in derived)
    assert _delta_count(root, "executions") == 4


# -- doctor --------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warehouse", *args], capture_output=True, text=True, timeout=300)


def _publication_findings(wh: warehouse.Warehouse) -> list[tuple[str, str, str | None]]:
    report = wh.doctor()
    return sorted((f.severity, f.kind, f.path) for f in report.findings if f.kind.startswith("publication"))


def test_doctor_counts_delta_logs_and_derived_files_neither_orphans_nor_strays(
    root: Path, config: dict[str, Any]
) -> None:
    wh = _warehouse(root, config, flushes=12)
    _flush(wh, config, ["e0-1"], tag="again")  # a derived file
    wh.publish("delta")
    dt = delta_pub.open_table(str(root / "executions"), None)
    assert dt is not None
    dt.create_checkpoint()  # a `.parquet` in the log
    assert list((root / "executions" / "_delta_log").glob("*.checkpoint.parquet"))
    assert any(delta_pub.is_derived(p) for p in _delta_named(root, "executions"))
    report = wh.doctor()
    assert report.healthy and not report.orphans and not report.warnings, report.findings
    assert any(n.startswith("publication: checked") for n in report.notes)


def test_doctor_finds_a_damaged_log_and_publish_rebuild_fixes_it(root: Path, config: dict[str, Any]) -> None:
    wh = _warehouse(root, config)
    wh.publish("delta")
    assert _publication_findings(wh) == []

    # The latest commit of the log cut short.
    logs = sorted((root / "messages" / "_delta_log").glob("*.json"))
    logs[-1].write_bytes(logs[-1].read_bytes()[:40])
    # A file the latest Delta version names, deleted (and gone from the warehouse too: compaction + vacuum
    # by hand, as a careless script would).
    named = sorted(_delta_named(root, "executions"))
    wh.compact()
    (root / named[0]).unlink()
    # A log this warehouse did not write, instead of the published one.
    shutil.rmtree(root / "attacks" / "_delta_log")
    deltalake.write_deltalake(str(root / "attacks"), pl.DataFrame({"x": [1, 2]}).to_arrow())

    found = _publication_findings(wh)
    assert ("error", "publication-damaged", "messages/_delta_log") in found
    assert ("error", "publication-damaged", "executions/_delta_log") in found
    assert ("warning", "publication-foreign", "attacks/_delta_log") in found
    report = wh.doctor()
    assert not report.healthy
    fixes = {f.path: f.fix for f in report.findings if f.kind.startswith("publication")}
    assert all("warehouse publish delta --rebuild" in fix for fix in fixes.values())
    assert wh.doctor(repair=True).repair_version is None  # repair leaves logs to publish --rebuild

    out = _cli("publish", "delta", "--url", str(root), "--rebuild", "-f", "json")
    assert out.returncode == 0, out.stderr
    assert {r["warehouse_version"] for r in json.loads(out.stdout)} == {wh.engine.snapshot.version}
    assert _publication_findings(wh) == []
    assert wh.doctor().healthy
    assert _delta_count(root, "executions") == 12
    assert _delta_count(root, "messages") == 24


def test_doctor_finds_a_log_naming_other_files_than_its_warehouse_version(root: Path, config: dict[str, Any]) -> None:
    wh = _warehouse(root, config)
    wh.publish("delta")
    # A Delta commit that drops one file but keeps the warehouse transaction: the log still opens and
    # every file it names exists, but it shows fewer rows than the version it claims.
    dt = delta_pub.open_table(str(root / "executions"), None)
    assert dt is not None
    dt.delete("execution_id = 'e0-0'")
    found = _publication_findings(wh)
    assert [k for _, k, _ in found] == ["publication-damaged"], found
    assert _cli("publish", "delta", "--url", str(root), "--rebuild", "--table", "executions").returncode == 0
    assert _publication_findings(wh) == []


def test_doctor_warns_of_a_log_behind_when_publication_is_automatic(root: Path, config: dict[str, Any]) -> None:
    wh = _warehouse(root, config, flushes=1)
    wh.publish("delta")
    _flush(wh, config, ["late-0"])
    assert _publication_findings(wh) == []  # manual publication: a log behind is expected
    publish_settings.write(wh.engine.store, ["delta"])
    found = _publication_findings(wh)
    assert ("warning", "publication-behind", "executions/_delta_log") in found
    assert all(k == "publication-behind" for _, k, _ in found)
    report = wh.doctor()
    assert report.healthy  # a warning only
    assert all("warehouse publish delta" in f.fix for f in report.warnings if f.kind == "publication-behind")
    assert _cli("publish", "delta", "--url", str(root)).returncode == 0
    assert _publication_findings(wh) == []


def test_a_first_delta_commit_killed_before_it_landed_does_not_block_publication(
    root: Path, config: dict[str, Any]
) -> None:
    # delta-rs writes a commit to `_delta_log/_commit_<uuid>.json.tmp`, then renames it: a publisher
    # killed in between leaves the temp file alone in the folder, which is no log.
    wh = _warehouse(root, config, flushes=1)
    log = root / "executions" / "_delta_log"
    log.mkdir(parents=True)
    (log / "_commit_0b1c.json.tmp").write_text('{"commitInfo":{}}\n')
    assert not delta_pub.log_present(wh.engine.store, "executions")
    assert _publication_findings(wh) == []
    wh.publish("delta")
    assert _delta_count(root, "executions") == 4
    assert _publication_findings(wh) == [] and wh.doctor().healthy
