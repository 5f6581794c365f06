"""A warehouse whose path holds `[2025]`, `*`, `?`, `{`, spaces, `%`, `=`, a quote or non-ASCII letters
answers every read exactly as one at a plain path: both read paths (DuckDB views and Polars
LazyFrames) resolve the snapshot's own file list, never a pattern, so neither reads 0 rows nor the
rows of a sibling folder that a pattern would match (a copy of the warehouse beside it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import AGENT, ATTACK, DATASET, build_messages

import warehouse
from warehouse.core.schemas import catalog
from warehouse.read import analytics

TRAJ_DATASET = {"type": "trajectories", "config": {"name": "train"}}
TRAJ_AGENT = {"type": "policy", "config": {"model": "small"}}

# name of the warehouse folder -> name of a sibling folder its name would match as a glob pattern
ROOTS = {
    "results[2025]": "results2",
    "runs*": "runs-copy",
    "r?n": "ran",
    "set{a,b}": "seta",
    "my results": None,
    "100% done": None,
    "k=v": None,
    "it's": None,
    "résultats ü 結果": None,
}


def populate(wh: warehouse.Warehouse) -> dict[str, Any]:
    """Executions with messages and attacks, a live execution with events and a checkpoint,
    trajectories, a session and a simulation run; returns ids to read back."""
    ids: dict[str, Any] = {}
    with wh.writer(dataset=DATASET, agent=AGENT, attack=ATTACK, flush_interval=None) as w:
        ids["executions"] = [
            w.add_execution(
                task_id=f"user_task_{i}",
                benign_score=1.0,
                attack_score=float(i % 2),
                messages=build_messages(turns=1),
                metadata={"difficulty": "hard"},
                attacks=[{"vector_id": "v1", "type": "injection", "content": "ignore"}],
                usage={"total_tokens": 100 + i},
            )
            for i in range(3)
        ]
        w.flush()
        ex = w.start_execution(task_id="user_task_9")
        ex.log("info", "thinking")
        ids["checkpoint"] = ex.checkpoint({"turn": 1}, step=1)
        ex.finish(benign_score=0.0, attack_score=0.0, messages=[{"role": "user", "content": "hi"}])
        ids["live"] = ex.execution_id
    with wh.writer(dataset=TRAJ_DATASET, agent=TRAJ_AGENT, flush_interval=None) as w:
        for i in range(2):
            w.add_trajectory(
                messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}],
                rewards=float(i),
                group=1,
                replica=i,
                metadata={"task_id": f"t{i}", "difficulty": "hard"},
            )
    ids["session"] = wh.sessions.save([{"role": "user", "content": "hello"}], meta={"title": "s"})
    rec = wh.run_recorder("maze")
    rec.step(1, game_state={"x": 1})
    rec.finish(2, game_state={"x": 2})
    ids["run"] = rec.run_id
    wh.refresh()
    return ids


def answers(wh: warehouse.Warehouse, ids: dict[str, Any], out: Path) -> dict[str, Any]:
    """Every read of the public API, reduced to values that do not depend on the path."""
    a: dict[str, Any] = {}
    for t in catalog().tables:
        manifest = sum(f.rows for f in wh.files(t))
        [(duck,)] = wh.sql(f"select count(*) from raw_{t}").fetchall()
        polars = wh.scan(t).select(pl.len()).collect().item()
        assert duck == polars == manifest, (t, duck, polars, manifest)
        a[f"rows.{t}"] = manifest
    for view in (
        "executions",
        "executions_all",
        "messages",
        "attacks",
        "configs",
        "scores",
        "task_scores",
        "pass_at_k",
        "usage",
        "events",
        "snapshots",
        "sessions",
        "imports",
    ):
        [(n,)] = wh.sql(f"select count(*) from {view}").fetchall()
        a[f"view.{view}"] = n
    polars_ids = sorted(wh.scan("executions").select("execution_id").collect().to_series().to_list())
    duck_ids = sorted(r[0] for r in wh.sql("select execution_id from raw_executions").fetchall())
    assert polars_ids == duck_ids
    a["scores"] = [r[1:] for r in wh.scores(by="agent").fetchall()]
    a["asr"] = analytics.attack_success_rates(wh, by="agent", where="attack <> 'none'").drop("agent").rows()
    a["pass_at_k"] = analytics.pass_at_k(wh, k=1, by="agent").drop("agent").rows()
    a["task_scores"] = analytics.task_scores(wh, by="agent").drop("agent").rows()
    a["usage"] = analytics.usage(wh, by="agent").drop("agent").rows()
    ex = wh.execution(ids["executions"][0])
    a["execution"] = (ex["task_id"], len(ex["messages"]), len(ex["attacks"]))
    polars_msgs = wh.scan("messages").filter(pl.col("execution_id") == ids["executions"][0]).collect().height
    assert polars_msgs == len(ex["messages"])
    a["checkpoints"] = [c.state for c in wh.checkpoints(ids["live"])]
    a["events"] = len(list(wh.follow(ids["live"], follow=False)))
    assert a["events"] == wh.scan("events").filter(pl.col("execution_id") == ids["live"]).collect().height
    traj = wh.trajectories(with_messages=True, metadata_keys=["difficulty"]).collect().sort("replica")
    a["trajectories"] = (traj["rewards"].to_list(), traj["difficulty"].to_list(), traj["messages"].list.len().to_list())
    a["trajectories.hard"] = wh.trajectories(where={"difficulty": "hard"}).collect().height
    msgs, _, meta = wh.sessions.load(ids["session"])
    a["session"] = ([m["content"] for m in msgs], meta, wh.sessions.list().height)
    a["snapshots"] = [(s["step"], s["kind"]) for s in wh.snapshots(ids["run"])]
    a["runs"] = wh.runs().height
    a["report"] = wh.report(out / "report.html").exists()
    exports = out / "exports"
    for kind, target in (
        ("parquet", exports / "pq"),
        ("delta", exports / "delta"),
        ("trajectories", exports / "t.jsonl"),
        ("legacy", exports / "legacy"),
    ):
        a[f"export.{kind}"] = wh.export(kind, str(target)).rows
    a["export.parquet.read"] = pl.scan_parquet(exports / "pq" / "executions" / "**" / "*.parquet").collect().height
    a["export.delta.read"] = pl.read_delta(str(exports / "delta" / "executions")).height
    a["export.trajectories.read"] = [
        json.loads(line)["rewards"] for line in (exports / "t.jsonl").read_text().splitlines()
    ]
    return a


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The answers of a warehouse at a plain path, to compare the others with."""
    base = tmp_path_factory.mktemp("plain")
    wh = warehouse.open(str(base / "wh"), create=True)
    return answers(wh, populate(wh), base)


@pytest.mark.slow
@pytest.mark.parametrize("name", ROOTS)
def test_every_read_at_an_odd_path_equals_the_plain_path(tmp_path: Path, plain: dict[str, Any], name: str) -> None:
    root = tmp_path / name
    wh = warehouse.open(str(root), create=True)
    ids = populate(wh)
    decoy = ROOTS[name]
    if decoy:
        # A copy beside it that the name, read as a pattern, would match: its rows must not count.
        shutil.copytree(root, tmp_path / decoy)
    got = answers(wh, ids, tmp_path / "out")
    assert got == plain
    assert got["rows.executions"] == 6 and got["view.executions"] == 6 and got["export.parquet.read"] == 6
    # the same after compaction (which reads through the same SQL) and from a fresh process' view
    wh.compact()
    again = warehouse.open(str(root))
    assert [r[1:] for r in again.scores(by="agent").fetchall()] == plain["scores"]
    for t in catalog().tables:
        assert again.scan(t).select(pl.len()).collect().item() == plain[f"rows.{t}"], t


def test_every_read_at_an_odd_s3_prefix_equals_the_plain_path(
    s3_url: str, s3_options: dict[str, Any], tmp_path: Path, plain: dict[str, Any]
) -> None:
    url = f"{s3_url}/results[2025] k=v ü"
    wh = warehouse.open(url, create=True, storage_options=s3_options)
    ids = populate(wh)
    for t in catalog().tables:
        manifest = sum(f.rows for f in wh.files(t))
        [(duck,)] = wh.sql(f"select count(*) from raw_{t}").fetchall()
        assert duck == wh.scan(t).select(pl.len()).collect().item() == manifest == plain[f"rows.{t}"], t
    assert [r[1:] for r in wh.scores(by="agent").fetchall()] == plain["scores"]
    assert analytics.pass_at_k(wh, k=1, by="agent").drop("agent").rows() == plain["pass_at_k"]
    traj = wh.trajectories(with_messages=True).collect().sort("replica")
    assert traj["rewards"].to_list() == plain["trajectories"][0]
    assert len(wh.execution(ids["executions"][0])["messages"]) == plain["execution"][1]
    assert wh.compact().compacted  # compaction reads its inputs through the same SQL
    for t in catalog().tables:
        assert wh.scan(t).select(pl.len()).collect().item() == plain[f"rows.{t}"], t
    assert [r[1:] for r in wh.scores(by="agent").fetchall()] == plain["scores"]


def test_opening_a_pattern_like_s3_prefix_reads_only_its_own_objects(s3, s3_url: str) -> None:
    """The log's commits are read by their exact names: a prefix `runs*` lists and reads nothing
    of `runs-copy` beside it (fsspec's `cat` would expand it as a pattern)."""
    from faultproxy import FaultProxy

    with FaultProxy(s3.url) as proxy:
        opts = s3.options(proxy.url)
        for name in ("runs-copy", "runs*"):
            wh = warehouse.open(f"{s3_url}/{name}", storage_options=opts, create=True)
            for i in range(3):
                with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
                    w.add_execution(task_id=f"t{i}", benign_score=1.0)
        proxy.reset_stats()
        plain = warehouse.open(f"{s3_url}/runs-copy", storage_options=opts)
        baseline = proxy.reset_stats().log
        odd = warehouse.open(f"{s3_url}/runs*", storage_options=opts)
        log = proxy.reset_stats().log
        assert odd.version == plain.version >= 3
        assert odd.scores(by="all").pl()["n"].to_list() == [3]
    own = "/" + s3_url.removeprefix("s3://") + "/runs*/"
    assert [p for m, p in log if m in ("GET", "HEAD") and "/runs-copy" in p] == []
    reads = [p for m, p in log if m in ("GET", "HEAD") and p.count("/") > 2]
    assert reads and all(p.startswith(own) for p in reads)
    assert len(log) == len(baseline)


def test_demo_fresh_at_a_pattern_like_s3_prefix_deletes_only_that_warehouse(s3, s3_url: str) -> None:
    """`warehouse demo --fresh` empties its own prefix file by file; fsspec's recursive rm would
    read `runs*` as a pattern and delete `runsX` beside it too."""
    import os
    import subprocess
    import sys

    opts = s3.options()
    neighbour = warehouse.open(f"{s3_url}/runsX", storage_options=opts, create=True)
    with neighbour.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
        w.add_execution(task_id="keep me", benign_score=1.0)
    url = f"{s3_url}/runs*"
    old = warehouse.open(url, storage_options=opts, create=True)
    with old.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
        w.add_execution(task_id="old", benign_score=0.0)
    before = sorted(s3.fs().find(f"{s3_url}/runsX"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "warehouse",
            "demo",
            "--url",
            url,
            "--tasks",
            "1",
            "--samples",
            "1",
            "--processes",
            "1",
            "--fresh",
        ],
        env={**os.environ, **s3.env()},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert sorted(s3.fs().find(f"{s3_url}/runsX")) == before
    assert warehouse.open(f"{s3_url}/runsX", storage_options=opts).sql("select task_id from executions").fetchall() == [
        ("keep me",)
    ]
    fresh = warehouse.open(url, storage_options=opts)
    assert fresh.sql("select count(*) from executions where task_id = 'old'").fetchall() == [(0,)]


@pytest.mark.parametrize("name", ["delta[2025]", "a%20b", "x^y", "p|q"])
def test_delta_export_to_a_local_path_delta_rs_misreads_is_refused_clearly(tmp_path: Path, name: str) -> None:
    """delta-rs panics on '[' in a local path and writes `%20` as a space elsewhere: the export says
    so, names the path, writes nothing, and the other exports take the same path."""
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    populate(wh)
    out = tmp_path / name
    with pytest.raises(warehouse.ExportFailed, match=r"delta-rs.*cannot use the local path"):
        wh.export("delta", str(out))
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["wh"]
    assert wh.export("parquet", str(out)).rows["executions"] == 6


def test_sync_from_a_pattern_like_s3_prefix_copies_each_file_to_its_own_name(
    s3_url: str, s3_options: dict[str, Any]
) -> None:
    """A server-side copy names the file itself: fsspec's `copy` would expand `runs*` and copy the
    backup's file of the same name too, to a wrong key."""
    src = warehouse.open(f"{s3_url}/runs*", storage_options=s3_options, create=True)
    populate(src)
    src.sync_to(f"{s3_url}/runs-backup", storage_options=s3_options)  # same file names, beside it
    src.sync_to(f"{s3_url}/copy", storage_options=s3_options)
    dst = warehouse.open(f"{s3_url}/copy", storage_options=s3_options)
    for t in catalog().tables:
        lf = dst.scan(t)
        if t == "imports":  # (besides DST's own sync ledger: a row per file it took in)
            lf = lf.filter(~pl.col("kind").is_in(["sync", "sync-removed"]))
        assert lf.select(pl.len()).collect().item() == sum(f.rows for f in src.files(t)), t
    assert [r[1:] for r in dst.scores(by="agent").fetchall()] == [r[1:] for r in src.scores(by="agent").fetchall()]
    data = {p for p in dst.store.list_files(".") if not p.startswith("_")}
    assert data == {f.path for f in dst.snapshot.files.values()} | {p for p in data if p.startswith("configs/")}
    assert not dst.doctor().problems
