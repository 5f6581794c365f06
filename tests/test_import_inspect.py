"""`warehouse import inspect`: Inspect AI eval logs written by inspect_ai itself (a tool-using task
on mockllm with several epochs and scorers, a crashing sample, unicode) land field by field in
executions, messages, events and configs; re-imports add nothing; bad logs are reported by path."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.log import EvalLog, read_eval_log, write_eval_log
from typer.testing import CliRunner

import warehouse
from warehouse.cli import app
from warehouse.core.errors import ImportFailed
from warehouse.interop.importers.inspect_logs import score_value

sys.path.insert(0, str(Path(__file__).parent))
import inspect_fixtures  # noqa: E402


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real logs: `easy.eval` (2 epochs) and `hard.json` (1 epoch, other task args)."""
    d = tmp_path_factory.mktemp("inspect_runs")
    a = inspect_fixtures.write_logs(d / "a", "eval", epochs=2, difficulty="easy")
    b = inspect_fixtures.write_logs(d / "b", "json", epochs=1, difficulty="hard", tags=["fixture", "dur"])
    return {"easy": Path(a.location), "hard": Path(b.location)}


@pytest.fixture(scope="module")
def imported(logs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[warehouse.Warehouse, Any]:
    src = tmp_path_factory.mktemp("src")
    shutil.copy(logs["easy"], src / logs["easy"].name)
    (src / "nested").mkdir()
    shutil.copy(logs["hard"], src / "nested" / logs["hard"].name)
    (src / "logs.json").write_text("{}")  # inspect's log-dir manifest: not a log
    wh = warehouse.open(str(tmp_path_factory.mktemp("wh") / "wh"), create=True)
    return wh, wh.import_("inspect", src)


def _rows(wh: warehouse.Warehouse, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    rel = wh.sql(sql, params)
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def _expected_scores(sample) -> dict[str, float]:
    out = {}
    for name, s in (sample.scores or {}).items():
        values = {f"{name}/{k}": v for k, v in s.value.items()} if isinstance(s.value, dict) else {name: s.value}
        for k, v in values.items():
            f = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}.get(v, v) if isinstance(v, str) else float(v)
            if not math.isnan(f):
                out[k] = f
    return out


@pytest.mark.slow
def test_every_sample_lands_with_its_scores_usage_times_and_error(imported, logs):
    wh, report = imported
    assert report.ok and (report.sources, report.imported) == (2, 2)  # logs.json is not a source
    for which in ("easy", "hard"):
        log = read_eval_log(str(logs[which]))
        rows = {
            (r["task_id"], r["sample"]): r
            for r in _rows(wh, "select * from executions where run_id = ?", [log.eval.run_id])
        }
        assert len(rows) == len(log.samples) == 3 * log.eval.config.epochs
        for s in log.samples:
            r = rows[(str(s.id), s.epoch)]
            assert (r["dataset"], r["agent"], r["attack"], r["model"]) == (
                "capitals",
                "inspect",
                "none",
                "mockllm/model",
            )
            if s.id == "crash":
                assert r["status"] == "failed" and r["error"] == s.error.message
                assert "lookup backend exploded on 'unknowable'" in r["error"]
                assert r["scores"] == {} and r["benign_score"] is None
            else:
                assert r["status"] == "completed" and r["error"] is None
                assert dict(r["scores"]) == _expected_scores(s)
                assert r["benign_score"] == 1.0  # the first scorer, "letter": C -> 1
            assert r["result"] == s.output.completion
            assert r["started_at"].isoformat() == s.started_at.replace("Z", "+00:00")
            assert r["finished_at"].isoformat() == s.completed_at.replace("Z", "+00:00")
            assert r["duration_ms"] == pytest.approx(s.total_time * 1000)
            [usage] = s.model_usage.values()
            assert (
                r["input_tokens"],
                r["output_tokens"],
                r["total_tokens"],
                r["cache_read_tokens"],
                r["reasoning_tokens"],
                r["cache_write_tokens"],
                r["cost"],
            ) == (
                usage.input_tokens,
                usage.output_tokens,
                usage.total_tokens,
                usage.input_tokens_cache_read,
                usage.reasoning_tokens,
                None,
                None,
            )
            assert r["requests"] == sum(e.event == "model" for e in s.events) == (1 if s.id == "crash" else 2)
            assert r["tool_calls"] == 1
            meta = json.loads(r["metadata"])
            assert meta["eval"]["eval_id"] == log.eval.eval_id and meta["eval"]["task_args"] == {"difficulty": which}
            assert meta["eval"]["metadata"] == {"purpose": "warehouse import test", "suite": "géo", "owner": "tests"}
            assert meta["eval"]["log"].endswith(logs[which].name)
            assert meta["sample"]["metadata"] == s.metadata  # the 10 kB unicode text included, resolved
            assert meta["sample"]["target"] == s.target and meta["sample"]["uuid"] == s.uuid
            assert meta["sample"]["working_time"] == s.working_time


@pytest.mark.slow
def test_score_objects_and_errors_are_kept_whole_in_metadata(imported, logs):
    wh, _ = imported
    log = read_eval_log(str(logs["easy"]))
    tokyo = next(s for s in log.samples if s.id == "tokyo")
    [r] = _rows(
        wh,
        "select metadata, scores from executions where task_id = 'tokyo' and sample = 1 and run_id = ?",
        [log.eval.run_id],
    )
    scores = json.loads(r["metadata"])["sample"]["scores"]
    assert scores["letter"]["explanation"] == "target found" and scores["letter"]["value"] == "C"
    assert scores["length"]["value"] == "NaN" and scores["length"]["reason"] == "no length for kanji"  # unscored
    assert "length" not in dict(r["scores"])  # NaN is no score
    assert scores["breakdown"]["value"] == {"turns": 5, "verdict": "P"} == tokyo.scores["breakdown"].value
    [crash] = _rows(
        wh, "select metadata from executions where task_id = 'crash' and sample = 1 and run_id = ?", [log.eval.run_id]
    )
    err = json.loads(crash["metadata"])["sample"]["error"]
    assert "RuntimeError: lookup backend exploded" in err["traceback"] and "traceback_ansi" not in err


@pytest.mark.slow
def test_messages_keep_tool_calls_unicode_and_inspect_fields(imported, logs):
    wh, _ = imported
    log = read_eval_log(str(logs["hard"]), resolve_attachments=True)
    for s in log.samples:
        [eid] = [
            r["execution_id"]
            for r in _rows(
                wh, "select execution_id from executions where run_id = ? and task_id = ?", [log.eval.run_id, str(s.id)]
            )
        ]
        rows = _rows(wh, "select * from messages where execution_id = ? order by seq", [eid])
        assert [m["role"] for m in rows] == [m.role for m in s.messages]
        assert len(rows) == (3 if s.id == "crash" else 5)  # system, user, assistant+tool call, tool, answer
        for row, m in zip(rows, s.messages):
            assert row["content"] == m.text
            extra = json.loads(row["metadata"])["extra"]
            assert extra["id"] == m.id
            if m.role == "assistant" and m.tool_calls:
                [call] = json.loads(row["tool_calls"])
                assert (call["id"], call["function"], call["arguments"]) == (
                    m.tool_calls[0].id,
                    "lookup",
                    m.tool_calls[0].arguments,
                )
                assert extra["model"] == "mockllm/model"
            if m.role == "tool":
                assert (row["tool_call_id"], row["name"]) == (m.tool_call_id, "lookup")
        if s.id == "tokyo":
            assert rows[1]["content"] == "東京はどこの首都ですか？ lookup を使って。"
            assert rows[3]["content"] == "Tokyo — 東京 (source: atlas)"
    # wh.execution gives the conversation back as inspect logged it
    one = wh.execution(eid)
    assert one["messages"][0]["content"] == "You answer geography questions — précisément."


@pytest.mark.slow
def test_transcript_events_and_the_log_header_are_events(imported, logs):
    wh, _ = imported
    log = read_eval_log(str(logs["easy"]))
    paris = next(s for s in log.samples if s.id == "paris" and s.epoch == 2)
    [eid] = [
        r["execution_id"]
        for r in _rows(
            wh,
            "select execution_id from executions where run_id = ? and task_id = 'paris' and sample = 2",
            [log.eval.run_id],
        )
    ]
    events = _rows(wh, "select * from events where execution_id = ? order by seq", [eid])
    kinds = [e["kind"] for e in events]
    assert kinds[: len(paris.events)] == [e.event for e in paris.events]
    assert all(e["source"] == "inspect" for e in events)
    model = [e for e in events if e["kind"] == "model"]
    assert [m["name"] for m in model] == ["mockllm/model"] * 2
    assert (
        json.loads(model[0]["attributes"])["output"]["usage"]["input_tokens"]
        == paris.events[kinds.index("model")].output.usage.input_tokens
    )
    tool = next(e for e in events if e["kind"] == "tool")
    assert tool["name"] == "lookup" and json.loads(tool["attributes"])["arguments"] == {"query": "France"}
    spans = {e["span_id"]: e["name"] for e in events if e["kind"] == "span_begin"}
    assert spans[tool["parent_span_id"]] == "generate"
    crash_err = _rows(
        wh,
        "select e.level, e.message from events e join executions x using (execution_id) "
        "where x.task_id = 'crash' and e.kind = 'error' and x.run_id = ?",
        [log.eval.run_id],
    )
    assert len(crash_err) == 2 and all(e["level"] == "error" and "exploded" in e["message"] for e in crash_err)
    [header] = _rows(
        wh,
        "select * from events where kind = 'eval' and execution_id is null and name = 'capitals' "
        "and json_extract_string(attributes, '$.eval.eval_id') = ?",
        [log.eval.eval_id],
    )
    h = json.loads(header["attributes"])
    assert h["results"]["total_samples"] == 6 and h["plan"]["steps"][1]["solver"] == "use_tools"
    assert (
        h["stats"]["model_usage"]["mockllm/model"]["input_tokens"]
        == log.stats.model_usage["mockllm/model"].input_tokens
    )
    # the long unicode metadata, stored once as an attachment, is what events' references point at
    [att] = _rows(
        wh,
        "select attributes from events e join executions x using (execution_id) where x.task_id = "
        "'tokyo' and x.sample = 1 and e.kind = 'attachments' and x.run_id = ?",
        [log.eval.run_id],
    )
    assert inspect_fixtures.LONG in json.loads(att["attributes"])["attachments"].values()


@pytest.mark.slow
def test_configs_hold_model_plan_task_and_dataset(imported, logs):
    wh, _ = imported
    rows = {json.loads(r["agent_config"])["task_args"]["difficulty"]: r for r in _rows(wh, "select * from configs")}
    assert set(rows) == {"easy", "hard"}  # task args differ: two configurations
    agent = json.loads(rows["hard"]["agent_config"])
    assert agent["model"] == "mockllm/model" and agent["task"] == "capitals"
    assert [s["solver"] for s in agent["plan"]["steps"]] == ["system_message", "use_tools", "generate"]
    assert json.loads(rows["hard"]["dataset_config"]) == {
        "name": None,
        "location": None,
        "samples": 3,
        "shuffled": False,
        "task": "capitals",
    }
    assert rows["hard"]["attack_type"] is None and rows["hard"]["hash_scheme"] == "sha256-8"


@pytest.mark.slow
def test_reimport_adds_nothing_and_new_logs_come_in_incrementally(logs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(logs["easy"], src)
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    r1 = wh.import_("inspect", src)
    assert (r1.imported, r1.records["executions"]) == (1, 6)
    r2 = wh.import_("inspect", src)
    assert (r2.imported, r2.skipped, r2.versions) == (0, 1, [])
    # the same eval in the other format (inspect log convert) is the same source: not imported twice
    write_eval_log(read_eval_log(str(logs["easy"])), str(src / "converted.json"), format="json")
    shutil.copy(logs["hard"], src)
    r3 = wh.import_("inspect", src)
    assert (r3.sources, r3.imported, r3.skipped, r3.records["executions"]) == (3, 1, 2, 3)
    assert wh.sql("select count(*), count(distinct execution_id) from executions").fetchall() == [(9, 9)]
    # a single file works too
    wh2 = warehouse.open(str(tmp_path / "wh2"), create=True)
    r4 = wh2.import_("inspect", src / logs["hard"].name)
    assert (r4.sources, r4.imported, r4.records["executions"]) == (1, 1, 3)


@pytest.mark.slow
def test_corrupt_logs_are_reported_by_path_and_the_rest_imported(logs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(logs["hard"], src)
    truncated = src / "2024-01-01T00-00-00_cut_abc.eval"
    truncated.write_bytes(logs["easy"].read_bytes()[:5000])
    garbage = src / "not-a-log.json"
    garbage.write_text('{"version": 2, "status": "success"')
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    r = wh.import_("inspect", src)
    assert r.imported == 1 and r.records["executions"] == 3
    assert sorted(f.source for f in r.failed) == sorted([str(truncated), str(garbage)])
    assert wh.sql("select count(*) from executions").fetchall() == [(3,)]
    with pytest.raises(ImportFailed, match="not-a-log.json|cut_abc.eval"):
        warehouse.open(str(tmp_path / "wh3"), create=True).import_("inspect", src, strict=True)


@pytest.mark.slow
def test_a_running_log_is_refused_until_it_has_finished(logs, tmp_path):
    log = read_eval_log(str(logs["hard"]))
    log.status = "started"
    write_eval_log(log, str(tmp_path / "src" / "running.eval"))
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    r = wh.import_("inspect", tmp_path / "src")
    [f] = r.failed
    assert "still running (status 'started')" in f.reason and f.source.endswith("running.eval")
    assert not wh.snapshot.table_files("executions")


@pytest.mark.slow
def test_a_log_edited_after_its_import_is_refused_not_duplicated(logs, tmp_path):
    from inspect_ai.log import ProvenanceData, edit_score
    from inspect_ai.scorer import ScoreEdit

    (tmp_path / "one").mkdir()
    shutil.copy(logs["easy"], tmp_path / "one" / "run.eval")
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    assert wh.import_("inspect", tmp_path / "one").imported == 1
    log: EvalLog = read_eval_log(str(logs["easy"]))
    edit_score(log, "paris", "letter", ScoreEdit(value="I", provenance=ProvenanceData(author="reviewer")), epoch=1)
    write_eval_log(log, str(tmp_path / "two" / "run.eval"))
    r = wh.import_("inspect", tmp_path / "two")
    [f] = r.failed
    assert "imported before with other content" in f.reason and "duplicate its 6 sample(s)" in f.reason
    assert wh.sql("select count(*) from executions").fetchall() == [(6,)]


@pytest.mark.slow
def test_cli_imports_logs_and_exits_1_naming_a_bad_log(logs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(logs["easy"], src)
    url = str(tmp_path / "wh")
    res = CliRunner().invoke(app, ["import", "inspect", str(src), "--url", url])
    assert res.exit_code == 0, res.output
    assert "1 imported" in res.output and "6 executions" in res.output
    (src / "broken.eval").write_bytes(b"PK\x03\x04 not really a zip")
    res = CliRunner().invoke(app, ["import", "inspect", str(src), "--url", url])
    assert res.exit_code == 1 and "broken.eval" in res.output and "1 already imported" in res.output
    assert warehouse.open(url).sql("select count(*) from executions").fetchall() == [(6,)]


@pytest.mark.slow
def test_without_inspect_ai_the_error_says_how_to_install_it(logs, tmp_path):
    code = (
        "import sys; sys.modules['inspect_ai'] = None\n"  # as if inspect_ai were not installed
        "import warehouse\n"
        "from warehouse.core.errors import ImportFailed\n"
        f"wh = warehouse.open({str(tmp_path / 'wh')!r}, create=True)\n"
        "try:\n"
        f"    wh.import_('inspect', {str(logs['easy'])!r})\n"
        "except ImportFailed as exc:\n"
        "    print('ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERROR reading Inspect AI logs needs inspect_ai: pip install 'warehouse[inspect]'" in out.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("C", 1.0),
        ("I", 0.0),
        ("P", 0.5),
        ("N", 0.0),
        ("yes", 1.0),
        ("False", 0.0),
        ("0.25", 0.25),
        (3, 3.0),
        (True, 1.0),
        ("banana", None),
        ("c", None),
        ("1e400", None),
        (float("nan"), None),
        ([1, 2], None),
        (None, None),
    ],
)
def test_score_values_read_as_inspect_reads_them(value, expected):
    assert score_value(value) == expected


@pytest.mark.slow
def test_samples_an_eval_set_retry_reused_are_counted_once(tmp_path):
    failed_log, retry_log = inspect_fixtures.write_retried_eval_set(tmp_path / "logs")
    reused = {s.uuid for s in read_eval_log(str(failed_log)).samples} & {
        s.uuid for s in read_eval_log(str(retry_log)).samples
    }
    assert len(reused) == 2  # paris and tokyo, copied into the retry's log
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    r = wh.import_("inspect", tmp_path / "logs")
    assert (r.imported, r.failed, r.records["executions"]) == (2, [], 4)
    rows = wh.sql("select task_id, status, benign_score from executions order by task_id, status").fetchall()
    # the failed attempt of "again" stays (it failed, and is counted as failed); nothing is counted twice
    assert rows == [
        ("again", "completed", 1.0),
        ("again", "failed", None),
        ("paris", "completed", 1.0),
        ("tokyo", "completed", 1.0),
    ]
    [scores] = _rows(wh, "select n, n_tasks, n_utility, n_failed from scores")
    assert scores == {"n": 4, "n_tasks": 3, "n_utility": 3, "n_failed": 1}
    # the same when the two logs come in two imports (the retry log once the eval set went on)
    wh2 = warehouse.open(str(tmp_path / "wh2"), create=True)
    (tmp_path / "first").mkdir()
    shutil.copy(failed_log, tmp_path / "first")
    assert wh2.import_("inspect", tmp_path / "first").records["executions"] == 3
    assert wh2.import_("inspect", tmp_path / "logs").records["executions"] == 1
    assert wh2.sql("select count(*), count(distinct execution_id) from executions").fetchall() == [(4, 4)]
