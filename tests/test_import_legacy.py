"""`warehouse import legacy` (the per-task JSON layout with config.yaml and index.jsonl) and
`wh.export("legacy", ...)`: field mapping, kept hashes and ids, idempotence, incremental imports,
bad files, the CLI, the export/import round trip, and an import killed with `kill -9`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import warehouse
from benchmarks import legacy as legacy_scripts
from tests.legacy_fixtures import write_legacy_tree
from tests.processes import REPO, watchdog
from warehouse.cli import app, demo

LONG = "Ünïcödé 北京 — " + "lorem ipsum dolor sit amet " * 4000  # ~100 KB of text

# An execution file as the reference shows it, with a hash of the reference's own scheme.
REFERENCE_DOC = {
    "execution_id": "abc12345",
    "task_id": "user:task_123",
    "dataset_type": "agentdojo",
    "dataset_config": {"suite_name": "workspace", "version": "v1.2.2"},
    "agent": "plain_agent_v2",
    "config_hash": "a1b2c3d4",
    "timestamp": "2025-10-14T15:30:22.123456Z",
    "trace_id": "0000000000000000000000075bcd15",
    "span_id": "000000003ade68b1",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Résumé my inbox, s'il vous plaît 📬"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "search_emails", "arguments": '{"q": "unread"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "search_emails", "content": LONG},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "You have 3 emails."}],
            "timestamp": "2025-10-14T15:30:21Z",
        },
    ],
    "usage": {
        "input_tokens": 1234,
        "output_tokens": 567,
        "total_tokens": 1801,
        "requests": 1,
        "tool_calls": 2,
        "details": {"reasoning": 12},
    },
    "results": {"benign_score": 1.0, "attack_score": 0.5, "steps": 4, "judge": "lenient"},
    "attacks": {"vector1": {"type": "str_content", "content": "malicious payload here"}},
    "notes": "kept",
}
REFERENCE_CONFIG = (
    "# Config hash: a1b2c3d4\n# Created: 2025-10-14T15:30:22.123456Z\n\n"
    "dataset:\n  type: agentdojo\n  config:\n    suite_name: workspace\n    version: v1.2.2\n\n"
    "agent:\n  type: plain\n  config:\n    model: claude-3-5-sonnet\n    temperature: 0.0\n\n"
    "attack:\n  type: gcg\n  config:\n    learning_rate: 0.1\n    epochs: 100\n"
)
CFG_DIR = "agentdojo/plain/gcg/a1b2c3d4"


def _index_line(doc: dict, path: str, agent_type: str = "plain", attack_type: str = "gcg") -> str:
    r = doc["results"]
    return (
        json.dumps(
            {
                "execution_id": doc["execution_id"],
                "task_id": doc["task_id"],
                "timestamp": doc["timestamp"],
                "dataset": doc["dataset_type"],
                "dataset_config": doc["dataset_config"],
                "agent_type": agent_type,
                "agent_name": doc["agent"],
                "attack_type": attack_type,
                "config_hash": doc["config_hash"],
                "benign_score": r.get("benign_score"),
                "attack_score": r.get("attack_score"),
                "path": path,
            }
        )
        + "\n"
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    """60 files written by the reference's persistence class, plus the reference's example file,
    an index line whose file is gone, and one execution file that is not JSON."""
    root = tmp_path_factory.mktemp("legacy") / "outputs"
    info = write_legacy_tree(root, 60, seed=3)
    d = root / CFG_DIR
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(REFERENCE_CONFIG, encoding="utf-8")
    (d / "20251014_153022_user_task_123.json").write_text(json.dumps(REFERENCE_DOC, indent=2), encoding="utf-8")
    gone = {
        **REFERENCE_DOC,
        "execution_id": "def67890",
        "task_id": "user:1",
        "results": {"benign_score": 0.0, "attack_score": 1.0},
    }
    with open(root / "index.jsonl", "a", encoding="utf-8") as f:
        f.write(_index_line(REFERENCE_DOC, f"outputs/{CFG_DIR}/20251014_153022_user_task_123.json"))
        f.write(_index_line(gone, f"outputs/{CFG_DIR}/20251014_153045_user_1.json"))
    (d / "20251014_160000_user_9.json").write_text('{"execution_id": "x", "task_id": ', encoding="utf-8")
    return root, info


@pytest.fixture(scope="module")
def imported(tree, tmp_path_factory):
    root, _ = tree
    wh = warehouse.open(str(tmp_path_factory.mktemp("wh") / "wh"), create=True)
    return wh, wh.import_("legacy", root)


def test_every_file_is_imported_with_its_ids_and_scores_and_the_corrupt_one_is_reported(tree, imported):
    root, info = tree
    wh, report = imported
    assert report.imported == 62 and report.sources == 63  # 60 + the example + the index-only line; 1 corrupt
    assert [(f.source, f.reason.split(":")[0]) for f in report.failed] == [
        (str(root / CFG_DIR / "20251014_160000_user_9.json"), "JSONDecodeError")
    ]
    index = legacy_scripts.read_index(root)
    ids = set(index["execution_id"])
    got = dict(wh.sql("select execution_id, benign_score from executions").fetchall())
    assert set(got) == ids  # execution ids kept as they are
    ws = wh.sql(
        "select count(*), sum(benign_score), sum(attack_score) from executions where config_hash <> 'a1b2c3d4'"
    ).fetchall()[0]
    assert ws == (60, info["benign_score_sum"], info["attack_score_sum"])
    assert wh.sql("select count(*) from messages").fetchall()[0][0] == info["messages"] + len(REFERENCE_DOC["messages"])
    assert wh.sql("select count(*) from attacks").fetchall()[0][0] == info["attacks"] + 1
    # the original config hashes are kept: the reference's own hash is marked legacy
    schemes = dict(wh.sql("select config_hash, hash_scheme from configs").fetchall())
    assert schemes.pop("a1b2c3d4") == "legacy"
    assert set(schemes) == set(info["per_config"]) and set(schemes.values()) == {"sha256-8"}
    # the index agrees with the files on every config
    by_cfg = dict(wh.sql("select config_hash, count(*) from executions group by all").fetchall())
    assert {h: by_cfg[h] for h in info["per_config"]} == info["per_config"]


def test_the_reference_example_lands_in_the_right_columns(imported):
    wh, _ = imported
    ex = wh.execution("abc12345")
    assert (ex["task_id"], ex["dataset"], ex["agent"], ex["attack"], ex["config_hash"]) == (
        "user:task_123",
        "agentdojo",
        "plain",
        "gcg",
        "a1b2c3d4",
    )
    assert ex["finished_at"].isoformat() == "2025-10-14T15:30:22.123456+00:00"
    assert (ex["trace_id"], ex["span_id"]) == ("0000000000000000000000075bcd15", "000000003ade68b1")
    assert (ex["input_tokens"], ex["output_tokens"], ex["total_tokens"], ex["requests"], ex["tool_calls"]) == (
        1234,
        567,
        1801,
        1,
        2,
    )
    assert (ex["benign_score"], ex["attack_score"], ex["scores"]) == (1.0, 0.5, {"steps": 4.0})
    assert json.loads(ex["metadata"]) == {
        "legacy": {
            "agent_name": "plain_agent_v2",
            "usage": {"details": {"reasoning": 12}},
            "results": {"judge": "lenient"},
            "fields": {"notes": "kept"},
        }
    }
    msgs = ex["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert msgs[1]["content"] == REFERENCE_DOC["messages"][1]["content"]
    assert msgs[2]["tool_calls"] == REFERENCE_DOC["messages"][2]["tool_calls"]
    assert (msgs[3]["content"], msgs[3]["tool_call_id"], msgs[3]["name"]) == (LONG, "call_1", "search_emails")
    assert msgs[4]["content"] == [{"type": "text", "text": "You have 3 emails."}]
    assert msgs[4]["timestamp"].isoformat() == "2025-10-14T15:30:21+00:00"
    assert [(a["vector_id"], a["type"], a["content"]) for a in ex["attacks"]] == [
        ("vector1", "str_content", "malicious payload here")
    ]
    cfg = wh.sql(
        "select dataset_config, agent_config, attack_config from configs where config_hash = 'a1b2c3d4'"
    ).fetchall()[0]
    assert [json.loads(c) for c in cfg] == [
        {"suite_name": "workspace", "version": "v1.2.2"},
        {"model": "claude-3-5-sonnet", "temperature": 0.0},
        {"learning_rate": 0.1, "epochs": 100},
    ]


def test_a_file_of_the_persistence_class_comes_back_as_written(tree, imported):
    root, _ = tree
    wh, _ = imported
    path = next(p for p in sorted(root.glob("injecagent/react/tool_knowledge/*/*.json")))
    doc = json.loads(path.read_text(encoding="utf-8"))
    ex = wh.execution(doc["execution_id"])
    assert ex["metadata"] is None  # default agent name, known usage keys: nothing left over
    assert (ex["task_id"], ex["dataset"], ex["agent"], ex["attack"]) == (
        doc["task_id"],
        "injecagent",
        "react",
        "tool_knowledge",
    )
    assert {k: ex[k] for k in doc["usage"]} == doc["usage"]
    assert (ex["benign_score"], ex["attack_score"]) == (doc["results"]["benign_score"], doc["results"]["attack_score"])
    for got, want in zip(ex["messages"], doc["messages"], strict=True):
        want = {k: v for k, v in want.items() if v is not None}
        got = {
            k: (v.isoformat().replace("+00:00", "Z") if k == "timestamp" else v)
            for k, v in got.items()
            if v is not None
        }
        assert got == want
    assert {a["vector_id"]: {"type": a["type"], "content": a["content"]} for a in ex["attacks"]} == doc["attacks"]


def test_an_index_line_without_its_file_is_imported_from_the_index(imported):
    wh, _ = imported
    ex = wh.execution("def67890")
    assert (ex["task_id"], ex["config_hash"], ex["benign_score"], ex["attack_score"], ex["messages"]) == (
        "user:1",
        "a1b2c3d4",
        0.0,
        1.0,
        [],
    )
    assert json.loads(ex["metadata"])["legacy"] == {"agent_name": "plain_agent_v2", "index_only": True}


def test_reimport_adds_nothing_and_a_new_file_is_imported_alone(tree, tmp_path):
    root, _ = tree
    src = tmp_path / "copy"
    import shutil

    shutil.copytree(root, src)
    (src / CFG_DIR / "20251014_160000_user_9.json").unlink()
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    first = wh.import_("legacy", src)
    assert first.ok and first.imported == 62
    again = wh.import_("legacy", src)
    assert (again.imported, again.skipped, again.versions) == (0, 62, [])
    new = {**REFERENCE_DOC, "execution_id": "fresh001", "task_id": "user:7"}
    (src / CFG_DIR / "20251015_090000_user_7.json").write_text(json.dumps(new), encoding="utf-8")
    third = wh.import_("legacy", src)
    assert (third.imported, third.skipped, third.records["executions"]) == (1, 62, 1)
    assert wh.sql("select count(*), count(distinct execution_id) from executions").fetchall() == [(63, 63)]


def test_the_cli_imports_and_exits_1_naming_the_bad_file(tree, tmp_path):
    root, _ = tree
    url = str(tmp_path / "wh")
    res = CliRunner().invoke(app, ["import", "legacy", str(root), "--url", url])
    assert res.exit_code == 1, res.output
    assert "20251014_160000_user_9.json" in res.output and "62 imported" in res.output
    res = CliRunner().invoke(
        app, ["import", "legacy", str(root / CFG_DIR / "20251014_153022_user_task_123.json"), "--url", url]
    )
    assert res.exit_code == 0 and "1 already imported" in res.output, res.output


@pytest.mark.slow
def test_runs_that_overwrote_each_others_file_are_all_imported(tmp_path):
    """The reference names a file {YYYYmmdd_HHMMSS}_{task_id}.json: runs of one task saved within the
    same second overwrite each other's file, and only index.jsonl still holds the earlier ones."""
    root = tmp_path / "outputs"
    d = root / CFG_DIR
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(REFERENCE_CONFIG, encoding="utf-8")
    name = f"outputs/{CFG_DIR}/20251014_153022_user_task_123.json"
    runs = [
        {**REFERENCE_DOC, "execution_id": f"run{i}", "results": {"benign_score": float(i % 2), "attack_score": 0.0}}
        for i in range(3)
    ]
    with open(root / "index.jsonl", "w", encoding="utf-8") as f:
        for doc in runs:  # each save appends its line and (over)writes the one file
            f.write(_index_line(doc, name))
            (d / "20251014_153022_user_task_123.json").write_text(json.dumps(doc), encoding="utf-8")
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    r = wh.import_("legacy", root)
    assert (r.sources, r.imported, r.failed) == (3, 3, [])
    rows = wh.sql(
        "select execution_id, benign_score, json_extract(metadata, '$.legacy.index_only') "
        "from executions order by execution_id"
    ).fetchall()
    assert [(e, b) for e, b, _ in rows] == [("run0", 0.0), ("run1", 1.0), ("run2", 0.0)]
    assert [bool(x) for _, _, x in rows] == [True, True, False]  # run2 is the file; the others come from the index
    assert len(wh.execution("run2")["messages"]) == len(REFERENCE_DOC["messages"])
    assert wh.import_("legacy", root).skipped == 3


def test_a_file_without_config_yaml_or_index_line_is_refused_clearly(tmp_path):
    d = tmp_path / "outputs" / "ds" / "a" / "benign" / "0000abcd"
    d.mkdir(parents=True)
    (d / "20250101_000000_t.json").write_text(json.dumps({**REFERENCE_DOC, "config_hash": "0000abcd"}))
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    r = wh.import_("legacy", tmp_path / "outputs")
    assert r.imported == 0 and "no config.yaml in" in r.failed[0].reason
    assert wh.version == 0


# -- export ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """A warehouse written through the API: every field the legacy layout has no key for is set somewhere."""
    wh = warehouse.open(str(tmp_path_factory.mktemp("native") / "wh"), create=True)
    rng = random.Random(7)
    for n, (d, a, k) in enumerate(list(demo.configs())[:6]):
        with wh.writer(dataset=d, agent=a, attack=k, run_id=f"job-{n % 2}") as w:
            for t in range(6):
                kw = demo.execution(rng, d["type"], a["type"], k["type"] if k else None, t, sample=t % 2)
                if t == 3:
                    kw["error"] = "context length exceeded ✗"
                if t == 4:
                    kw.update(
                        group="g1",
                        reward=0.5,
                        advantages=[0.1, -0.2],
                        metadata={},
                        owner="me",
                        result="done ✓",
                        completions=[{"id": "c1"}],
                        duration_ms=1234.5,
                    )
                w.add_execution(**kw)
            w.add_execution(
                task_id="user_task_0",
                benign_score=1.0,  # same task, same second: distinct files
                finished_at=kw["finished_at"].replace(microsecond=1),
                messages=[{"role": "user", "content": [{"type": "image", "url": "x.png"}, "hi"]}],
            )
            w.add_execution(
                task_id="user_task_0", benign_score=0.0, finished_at=kw["finished_at"].replace(microsecond=2)
            )
    return wh


@pytest.fixture(scope="module")
def exported(native, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "outputs"
    report = native.export("legacy", str(out))
    return out, report


def test_export_writes_the_reference_layout_that_existing_scripts_read(native, exported):
    out, report = exported
    n = native.sql("select count(*) from executions").fetchall()[0][0]
    assert report.rows["executions"] == n == 48
    lines, ids, files = legacy_scripts.count(out)
    assert (lines, ids, files) == (n, n, n)
    assert len(list(out.glob("*/*/*/*/config.yaml"))) == 6
    # two runs of user_task_0 finished in the same second: the second file's name ends with its id
    same = sorted(p.name for p in out.glob("agentdojo/plain/benign/*/*_user_task_0*.json"))
    assert len(same) == 3 and len({n[:15] for n in same[1:]}) == 1 and same[2].startswith(same[1][:-5] + "_")
    # the pandas analysis of today gives the warehouse's numbers
    want = {
        (r[0], r[1]): r[2:]
        for r in native.sql(
            "select agent, case when attack = 'none' then 'benign' else attack end, count(*), count(distinct task_id), "
            "avg(benign_score), avg(attack_score), sum(total_tokens), sum(cost) from executions group by all"
        ).fetchall()
    }
    df = legacy_scripts.scores_with_files(out)
    got = {
        (r.agent, r.attack): (r.n, r.n_tasks, r.utility, None if r.asr != r.asr else r.asr, r.total_tokens, r.cost)
        for r in df.itertuples()
    }
    assert got.keys() == want.keys()
    for key, w in want.items():
        assert got[key][:2] == w[:2] and got[key][2:] == pytest.approx(w[2:], nan_ok=True)
    doc = json.loads(next(out.glob("agentdojo/plain/important_instructions/*/*_user_task_1.json")).read_text())
    assert list(doc)[:13] == [
        "execution_id",
        "task_id",
        "dataset_type",
        "dataset_config",
        "agent",
        "config_hash",
        "timestamp",
        "trace_id",
        "span_id",
        "messages",
        "usage",
        "results",
        "attacks",
    ]
    assert doc["agent"] == "plain_agent" and doc["results"]["steps"] == 4.0


def test_import_of_an_export_answers_every_query_like_the_original(native, exported, tmp_path):
    out, _ = exported
    copy = warehouse.open(str(tmp_path / "wh"), create=True)
    r = copy.import_("legacy", out)
    assert r.ok and r.imported == 48
    for by in (
        [],
        ["agent"],
        ["agent", "attack"],
        ["dataset", "agent", "attack", "config_hash"],
        ["task_id", "status"],
        ["model", "run_id"],
    ):
        got, want = copy.scores(by=by).fetchall(), native.scores(by=by).fetchall()
        assert len(got) == len(want) > 0, by
        for g, w in zip(got, want):  # sums of floats depend on the order rows are read in
            assert [type(x) for x in g] == [type(x) for x in w], by
            for x, y in zip(g, w):
                assert x == (pytest.approx(y, rel=1e-12) if isinstance(y, float) else y), by
    # (write_id names an add, not its content: the copy's adds are its own)
    for q in (
        "select * exclude (write_id) from executions order by execution_id",
        "select * exclude (write_id) from messages order by execution_id, seq",
        "select * exclude (write_id) from attacks order by execution_id, vector_id",
        "select * exclude (created_at) from configs order by config_hash",
    ):
        assert copy.sql(q).fetchall() == native.sql(q).fetchall(), q


def test_export_again_writes_only_what_is_new(native, exported):
    out, _ = exported
    again = native.export("legacy", str(out))
    assert again.rows == {"executions": 0, "messages": 0} and again.files == 0
    d, a, k = next(iter(demo.configs()))
    with native.writer(dataset=d, agent=a, attack=k, run_id="job-0") as w:
        w.add_execution(task_id="user_task_99", benign_score=1.0)
    more = native.export("legacy", str(out))
    assert more.rows["executions"] == 1 and legacy_scripts.count(out)[:2] == (49, 49)


def test_export_into_a_file_is_refused(native, tmp_path):
    target = tmp_path / "f"
    target.write_text("x")
    with pytest.raises(warehouse.WarehouseError, match="is not a directory"):
        native.export("legacy", str(target))


# -- a crash mid-import ----------------------------------------------------------------------------------
CHILD = """
import sys
import warehouse
from warehouse.interop.importers import base, importer

done = base._commit
def announce(run, report, pending):
    done(run, report, pending)
    print("committed", report.versions[-1], flush=True)
base._commit = announce
wh = warehouse.open(sys.argv[1], create=True)
base.run_import(wh, importer("legacy"), sys.argv[2], batch_sources=50)
print("finished", flush=True)
"""


def test_an_import_killed_mid_way_and_run_again_has_every_execution_once(tmp_path):
    N = 800
    src = tmp_path / "outputs"
    write_legacy_tree(src, N, seed=1)
    url = str(tmp_path / "wh")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(src)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        with watchdog([child], 120):
            line = child.stdout.readline()
            assert line.startswith("committed"), line
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    wh = warehouse.open(url)
    partial = wh.sql("select count(*), count(distinct execution_id) from executions").fetchall()[0]
    assert partial[0] == partial[1] and 50 <= partial[0] < N  # killed mid-import, whole batches only
    assert wh.sql("select count(*) from imports").fetchall()[0][0] == partial[0]
    report = wh.import_("legacy", src)
    assert report.ok and report.skipped == partial[0] and report.imported == N - partial[0]
    ids = set(legacy_scripts.read_index(src)["execution_id"])
    assert wh.sql("select count(*), count(distinct execution_id) from executions").fetchall() == [(N, N)]
    assert {r[0] for r in wh.sql("select execution_id from executions").fetchall()} == ids
    assert wh.sql("select count(*) from messages").fetchall()[0][0] == N * 10
    assert wh.doctor().exit_code == 0
