"""Inspect AI live capture (`warehouse.compat.inspect_hook`): real `inspect_ai.eval` runs on mockllm in
child processes, the hook loaded through the package's entry point, land sample by sample; a run
killed with kill -9 keeps every finished sample (its WAL); importing the log afterwards adds nothing;
an unreachable warehouse never fails the eval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import read_eval_log

import warehouse
from warehouse.compat import inspect_hook
from warehouse.interop.importers.inspect_logs import sample_execution_id

sys.path.insert(0, str(Path(__file__).parent))
from processes import watchdog  # noqa: E402

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

#: Columns an import and a live capture of the same samples give the same values.
SAME = (
    "execution_id, task_id, run_id, sample, status, error, started_at, finished_at, duration_ms, model, "
    "input_tokens, output_tokens, total_tokens, cache_read_tokens, reasoning_tokens, requests, tool_calls, "
    "benign_score, attack_score, scores, result, config_hash, json_extract(metadata, '$.sample') as sample_meta"
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The warehouse URL, WAL folder and log folder of one capture; the children inherit the variables."""
    paths = {"wh": tmp_path / "wh", "wal": tmp_path / "wal", "logs": tmp_path / "logs"}
    monkeypatch.setenv(inspect_hook.URL_ENV, str(paths["wh"]))
    monkeypatch.setenv(inspect_hook.WAL_ENV, str(paths["wal"]))
    return paths


def _until(children: Any, proc: Any, prefix: str) -> str:
    """The rest of the child's first stdout line starting with `prefix` (Inspect prints its banner
    of enabled hooks before)."""
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise AssertionError(f"pid {proc.pid} never said {prefix!r}; stderr:\n{children.stderr(proc)}")


def _run(children: Any, *args: object) -> tuple[Path, str]:
    proc = children.start("inspect_eval.py", *args)
    with watchdog([proc], 240):
        location, status = _until(children, proc, "done ").rsplit(" ", 1)
        assert proc.wait() == 0, children.stderr(proc)
    return Path(location.removeprefix("file://")), status


def _rows(wh: warehouse.Warehouse, sql: str) -> list[tuple]:
    return wh.sql(sql).fetchall()


def _answers(wh: warehouse.Warehouse) -> dict[str, list[tuple]]:
    return {
        "executions": _rows(wh, f"select {SAME} from executions order by execution_id"),
        "messages": _rows(wh, "select execution_id, seq, role, content from messages order by execution_id, seq"),
        "events": _rows(
            wh, "select execution_id, seq, kind, name, message, attributes from events order by execution_id, seq, kind"
        ),
        "counts": _rows(wh, "select (select count(*) from executions), (select count(*) from events)"),
    }


def test_an_eval_lands_sample_by_sample_as_its_log_would_import(children: Any, env: dict[str, Path], tmp_path: Path):
    log_file, status = _run(children, env["logs"], "full")
    assert status == "success"
    log = read_eval_log(str(log_file))
    wh = warehouse.open(str(env["wh"]))
    live = _answers(wh)
    # every sample and epoch, under the importer's id, with the log's scores
    spec = log.eval.model_dump(mode="json")
    ids = {sample_execution_id(None, spec, s.model_dump(mode="json")): s for s in log.samples}
    stored = {
        r[0]: r[1:]
        for r in _rows(wh, "select execution_id, task_id, sample, status, scores, benign_score from executions")
    }
    assert set(stored) == set(ids) and len(ids) == 6
    for eid, s in ids.items():
        task_id, epoch, st, scores, benign = stored[eid]
        assert (task_id, epoch, st) == (str(s.id), s.epoch, "failed" if s.error else "completed")
        if not s.error:
            assert scores["letter"] == (1.0 if s.scores["letter"].value == "C" else 0.0) == benign
            assert scores["breakdown/turns"] == s.scores["breakdown"].value["turns"]
    # the same rows a plain import of the log gives, in a warehouse of their own
    other = warehouse.open(str(tmp_path / "imported"), create=True)
    other.import_("inspect", log_file)
    assert _answers(other) == live
    # importing the log into the live warehouse adds nothing (only the ledger notes the file)
    report = wh.import_("inspect", log_file)
    assert report.imported == 1 and not report.failed and sum(report.records.values()) == 0
    wh.refresh()
    assert _answers(wh) == live
    # the captured executions say the eval was running; the import would name the log file
    assert {r[0] for r in _rows(wh, "select json_extract_string(metadata, '$.eval.status') from executions")} == {
        "started"
    }


def test_an_eval_killed_mid_way_keeps_every_finished_sample(children: Any, env: dict[str, Path]):
    proc = children.start("inspect_eval.py", env["logs"], "block", 3)
    with watchdog([proc], 240):
        _until(children, proc, "blocked")  # samples s0..s2 have ended; s3 waits
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    wh = warehouse.open(str(env["wh"]))
    # nothing was due for a flush: the samples are in the WAL only
    assert _rows(wh, "select count(*) from executions") == [(0,)]
    # the next capture into the warehouse commits them first, then its own six
    _run(children, env["logs"], "block", 99)
    wh.refresh()
    rows = _rows(wh, "select task_id, status, benign_score, result, input_tokens from executions order by all")
    assert len(rows) == 9 and len({r[0] for r in rows}) == 6
    assert rows[:3] == [("s0", "completed", 1.0, "0", 10)] * 2 + [("s1", "completed", 1.0, "1", 11)]
    assert ("s4", "completed", 0.0, "wrong", 14) in rows
    assert _rows(wh, "select count(distinct execution_id) from executions") == [(9,)]
    assert inspect_hook.recover(str(env["wh"])) == 0  # nothing is left in the WALs


def test_an_eval_that_fails_keeps_its_samples_and_its_log_imports_as_nothing_new(children: Any, env: dict[str, Path]):
    log_file, status = _run(children, env["logs"], "raise", 2)
    assert status == "error"
    wh = warehouse.open(str(env["wh"]))
    # the samples the log holds (the finished ones, the failing one, and any Inspect had started and cancelled)
    logged = sorted((str(s.id), "failed" if s.error else "completed") for s in read_eval_log(str(log_file)).samples)
    assert _rows(wh, "select task_id, status from executions order by task_id") == logged
    assert logged[:3] == [("s0", "completed"), ("s1", "completed"), ("s2", "failed")]
    before = _answers(wh)
    report = wh.import_("inspect", log_file)
    assert report.imported == 1 and sum(report.records.values()) == 0  # the header row was captured too
    wh.refresh()
    assert _answers(wh) == before


def test_a_warehouse_lost_mid_eval_keeps_the_samples_in_the_wal(children: Any, env: dict[str, Path], tmp_path: Path):
    proc = children.start("inspect_eval.py", env["logs"], "block", 3)
    with watchdog([proc], 240):
        _until(children, proc, "blocked")
        # the warehouse goes away while the eval runs: every write under its root now fails
        env["wh"].rename(tmp_path / "away")
        env["wh"].write_text("not a warehouse")
        proc.stdin.write("go on\n")
        proc.stdin.flush()
        location, status = _until(children, proc, "done ").rsplit(" ", 1)
        assert proc.wait() == 0
    assert status == "success"
    assert children.stderr(proc).count("could not commit captured samples") == 1
    env["wh"].unlink()
    (tmp_path / "away").rename(env["wh"])
    assert inspect_hook.recover(str(env["wh"])) == 1
    wh = warehouse.open(str(env["wh"]))
    assert _rows(wh, "select count(*), count(distinct task_id) from executions") == [(6, 6)]
    before = _answers(wh)
    report = wh.import_("inspect", Path(location.removeprefix("file://")))
    assert sum(report.records.values()) == 0
    wh.refresh()
    assert _answers(wh) == before


def test_an_unreachable_warehouse_warns_once_and_the_eval_succeeds(
    children: Any, env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(inspect_hook.URL_ENV, str(blocker / "wh"))
    proc = children.start("inspect_eval.py", env["logs"], "full")
    with watchdog([proc], 240):
        location, status = _until(children, proc, "done ").rsplit(" ", 1)
        assert proc.wait() == 0
    assert status == "success"
    assert children.stderr(proc).count("is unreachable") == 1
    # the log adds the samples later, once
    wh = warehouse.open(str(env["wh"]), create=True)
    first = wh.import_("inspect", Path(location.removeprefix("file://")))
    assert first.records["executions"] == 6
    again = wh.import_("inspect", Path(location.removeprefix("file://")))
    assert again.skipped == 1 and sum(again.records.values()) == 0


def test_the_example_script_shows_the_live_rows_and_an_import_adding_nothing(tmp_path: Path):
    script = Path(__file__).resolve().parents[1] / "examples" / "inspect_live.py"
    res = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "example")], capture_output=True, text=True, timeout=240
    )
    assert res.returncode == 0, res.stderr
    assert "('3', 'completed', 0.0, 20, 'five')" in res.stdout
    assert "1 imported, 0 already imported, 0 failed; no rows" in res.stdout
    assert "executions now: 3" in res.stdout
