"""Publication in place (`wh.publish("delta")`, `warehouse publish delta`, `open(..., publish=["delta"])`):
every published table answers exactly like the warehouse's view of the same name at the warehouse
version its Delta commit records, whichever reader reads it (Polars, DataFusion, DuckDB over
deltalake's Arrow dataset and table), through compaction, expire, vacuum, time travel, superseded
adds, running executions, odd partition values, schema evolution, concurrent publishers and
automatic publication.

deltalake's `to_pyarrow_table()` / `to_pyarrow_dataset()` may abort the interpreter at its exit, so
those two paths are read in a child process (`_child_read`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import build_messages
from deltalake import DeltaTable, write_deltalake
from typer.testing import CliRunner

import warehouse
from warehouse import PublishFailed
from warehouse.cli import app
from warehouse.core.schemas import catalog
from warehouse.ops.publish.delta import APP_ID, delta_files, delta_schema

REPO = Path(__file__).resolve().parents[1]
DATASET = {"type": "agentdojo", "config": {"suite": "workspace"}}
AGENTS = [
    {"type": "tool_agent", "config": {"model": "gpt-4o"}},
    {"type": "react", "config": {"max_steps": 5}},
]
ATTACKS: list[dict[str, Any] | None] = [
    None,
    {"type": "important_instructions", "config": {"position": "end"}},
    {"type": "tool_knowledge", "config": {}},
]
#: Partition values that must be escaped on disk or in a Delta log's URIs.
ODD_DATASET = {"type": "suite a/b 50% 'q' \"dq\"", "config": {"k": 1}}
ODD_AGENT = {"type": "Agent 'ü' 100% / €", "config": {"model": "claude"}}
TABLE_VIEW = {t: ("raw_executions_live" if t == "executions_live" else t) for t in catalog().tables}
ASR = (
    "select agent, attack, count(*) as n, round(avg(attack_score), 9) as asr, round(avg(benign_score), 9) as utility "
    "from {t} group by agent, attack order by agent, attack"
)


# -- building warehouses -------------------------------------------------------------------------------
def add_runs(
    wh: warehouse.Warehouse,
    n: int,
    *,
    dataset: dict[str, Any] = DATASET,
    agent: dict[str, Any] = AGENTS[0],
    attack: dict[str, Any] | None = None,
    start: int = 0,
    ids: list[str] | None = None,
) -> None:
    """One flush of `n` executions (messages, attacks, scores, metadata `{"k": "even"|"odd"}`)."""
    with wh.writer(dataset=dataset, agent=agent, attack=attack, run_id="job", flush_interval=None) as w:
        for i in range(start, start + n):
            w.add_execution(
                execution_id=None if ids is None else ids[i - start],
                task_id=f"user_task_{i}",
                messages=build_messages(f"task {i} «ü»", turns=1 + i % 2),
                usage={"input_tokens": 100 + i, "output_tokens": 7},
                benign_score=float(i % 2),
                attack_score=None if attack is None else float(i % 3 == 0),
                attacks=[] if attack is None else [{"vector_id": f"v{i}", "type": "str", "content": "ignore"}],
                metadata={"k": "even" if i % 2 == 0 else "odd", "i": i},
                scores={"steps": float(i)},
            )


def grid(wh: warehouse.Warehouse, per: int = 4) -> None:
    """Several agents x attacks, one flush each."""
    for a, agent in enumerate(AGENTS):
        for b, attack in enumerate(ATTACKS):
            add_runs(wh, per + a + b, agent=agent, attack=attack, start=100 * (3 * a + b))


def add_live(wh: warehouse.Warehouse) -> None:
    """A running execution (two revisions) and one started then finished."""
    with wh.writer(dataset=DATASET, agent=AGENTS[1], attack=ATTACKS[1], flush_interval=None) as w:
        ex = w.start_execution(task_id="live_task", metadata={"k": "live"})
        ex.update(metadata={"k": "live", "progress": 0.5})
        done = w.start_execution(task_id="finished_task", metadata={"k": "even"})
        w.flush()
        done.finish(benign_score=1.0, attack_score=0.0)


# -- comparing -------------------------------------------------------------------------------------------
def norm(t: pa.Table, table: str) -> list[str]:
    """Rows as sorted JSON lines over the table's Delta columns (equal lists: equal multisets of rows)."""
    schema = delta_schema(table)
    t = t.select(schema.names)
    t = pa.table([t.column(f.name).cast(f.type) for f in schema], schema=schema)
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist())


def view_rows(wh: warehouse.Warehouse, table: str) -> list[str]:
    cols = ", ".join(f'"{c}"' for c in delta_schema(table).names)
    return norm(wh.sql(f"select {cols} from {TABLE_VIEW[table]}").to_arrow_table(), table)


def view_answers(wh: warehouse.Warehouse) -> dict[str, Any]:
    """(a) counts per table, (b) ASR and utility by agent x attack, (c) a metadata filter."""
    return {
        "counts": dict(
            zip(
                TABLE_VIEW,
                wh.sql("select " + ", ".join(f"(select count(*) from {v})" for v in TABLE_VIEW.values())).fetchall()[0],
                strict=True,
            )
        ),
        "asr": [list(r) for r in wh.sql(ASR.format(t="executions")).fetchall()],
        "even": sorted(
            r[0]
            for r in wh.sql(
                "select execution_id from executions where json_extract_string(metadata, '$.k') = 'even'"
            ).fetchall()
        ),
    }


def uri(wh_root: Path | str, table: str) -> str:
    return f"{wh_root}/{table}"


def polars_answers(root: str, version: int | None = None) -> dict[str, Any]:
    counts = {t: pl.scan_delta(uri(root, t), version=version).select(pl.len()).collect().item() for t in TABLE_VIEW}
    ex = pl.read_delta(uri(root, "executions"), version=version)
    asr = (
        ex.group_by("agent", "attack")
        .agg(
            pl.len().alias("n"),
            pl.col("attack_score").mean().round(9).alias("asr"),
            pl.col("benign_score").mean().round(9).alias("utility"),
        )
        .sort("agent", "attack")
    )
    even = ex.filter(pl.col("metadata").str.json_path_match("$.k") == "even")["execution_id"].to_list()
    return {"counts": counts, "asr": [list(r) for r in asr.iter_rows()], "even": sorted(even)}


def datafusion_answers(root: str, version: int | None = None) -> dict[str, Any]:
    from datafusion import SessionContext

    ctx = SessionContext()
    for t in TABLE_VIEW:
        ctx.register_table(t, DeltaTable(uri(root, t), version=version))
    counts = {t: ctx.sql(f"select count(*) as n from {t}").to_pydict()["n"][0] for t in TABLE_VIEW}
    asr = ctx.sql(ASR.format(t="executions")).to_pydict()
    ids = pl.from_arrow(ctx.sql("select execution_id, metadata from executions").to_arrow_table())
    even = ids.filter(pl.col("metadata").str.json_path_match("$.k") == "even")["execution_id"].to_list()
    return {"counts": counts, "asr": [list(r) for r in zip(*asr.values(), strict=True)], "even": sorted(even)}


CHILD = textwrap.dedent(
    """
    import json, os, sys
    import duckdb, pyarrow.parquet as pq
    from deltalake import DeltaTable
    root, out, tables = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    version = None if sys.argv[4] == "-" else int(sys.argv[4])
    ASR = {asr!r}
    answers = {{"counts": {{}}}}
    for t in tables:
        dt = DeltaTable(f"{{root}}/{{t}}", version=version)
        for how in ("dataset", "table"):
            src = dt.to_pyarrow_dataset() if how == "dataset" else dt.to_pyarrow_table()
            con = duckdb.connect()
            con.register(t, src)
            rows = con.sql(f"select * from {{t}}").to_arrow_table()
            pq.write_table(rows, f"{{out}}/{{how}}-{{t}}.parquet")
            answers["counts"][f"{{how}}:{{t}}"] = con.sql(f"select count(*) from {{t}}").fetchall()[0][0]
            if t == "executions":
                answers[f"asr:{{how}}"] = [list(r) for r in con.sql(ASR.format(t=t)).fetchall()]
                answers[f"even:{{how}}"] = sorted(r[0] for r in con.sql(
                    "select execution_id from executions where json_extract_string(metadata, '$.k') = 'even'"
                ).fetchall())
            con.close()
    print(json.dumps(answers), flush=True)
    """
).format(asr=ASR)


def child_read(root: str, out: Path, version: int | None = None) -> dict[str, Any]:
    """DuckDB over `DeltaTable.to_pyarrow_dataset()` and `.to_pyarrow_table()`, in a child process."""
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, root, str(out), ",".join(TABLE_VIEW), "-" if version is None else str(version)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def assert_published(wh: warehouse.Warehouse, root: Path | str, *, version: int | None = None) -> None:
    """Every published table (at Delta `version`, default latest) equals the view of its name, with
    Polars and DataFusion. The latest Delta version records a warehouse version no later than the
    warehouse's (a table no commit changed since its last publication gets no empty Delta commit)."""
    root = str(root)
    for t in TABLE_VIEW:
        dt = DeltaTable(uri(root, t), version=version)
        if version is None:
            assert 0 <= dt.transaction_version(APP_ID) <= wh.version, t
        assert norm(pl.read_delta(uri(root, t), version=version).to_arrow(), t) == view_rows(wh, t), t
    want = view_answers(wh)
    assert polars_answers(root, version) == want
    assert datafusion_answers(root, version) == want


# -- 1. readers ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[warehouse.Warehouse, Path]:
    root = tmp_path_factory.mktemp("pub") / "wh"
    wh = warehouse.open(str(root), create=True)
    grid(wh)
    add_runs(wh, 3, dataset=ODD_DATASET, agent=ODD_AGENT, attack=ATTACKS[1])
    add_live(wh)
    wh.publish("delta")
    return wh, root


def test_every_table_reads_like_its_view_with_polars_and_datafusion(
    published: tuple[warehouse.Warehouse, Path],
) -> None:
    wh, root = published
    assert wh.sql("select count(distinct agent || attack) from executions").fetchall()[0][0] >= 6
    assert_published(wh, root)


@pytest.mark.subprocess
def test_duckdb_over_deltalake_arrow_dataset_and_table_reads_like_the_views(
    published: tuple[warehouse.Warehouse, Path], tmp_path: Path
) -> None:
    wh, root = published
    got = child_read(str(root), tmp_path)
    want = view_answers(wh)
    for how in ("dataset", "table"):
        assert {t: got["counts"][f"{how}:{t}"] for t in TABLE_VIEW} == want["counts"], how
        assert got[f"asr:{how}"] == want["asr"] and got[f"even:{how}"] == want["even"], how
        for t in TABLE_VIEW:
            assert norm(pq.read_table(tmp_path / f"{how}-{t}.parquet"), t) == view_rows(wh, t), (how, t)


# -- 2. compaction, expire, vacuum ----------------------------------------------------------------------
def test_compaction_publishes_without_data_change_then_expire_and_vacuum_keep_it_readable(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    grid(wh, per=2)
    grid(wh, per=1)  # a second file in every partition: compaction has something to merge
    add_live(wh)
    wh.publish("delta")
    assert_published(wh, root)
    versions = {t: DeltaTable(uri(root, t)).version() for t in TABLE_VIEW}

    result = wh.maintenance.compact()
    assert result.files_in > result.files_out
    report = wh.publish("delta")
    compacted = [t for t, p in report.tables.items() if p.committed]
    assert "messages" in compacted and "executions" in compacted
    for t in compacted:
        assert report.tables[t].data_change is False, t
        dt = DeltaTable(uri(root, t))
        assert dt.version() == versions[t] + 1, t  # one Delta commit per changed table
        actions = pa.table(dt.get_add_actions(flatten=True))
        assert actions.num_rows == len(delta_files(dt, t))
        log = root / t / "_delta_log" / f"{dt.version():020d}.json"
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        changes = [a.get("add") or a.get("remove") for a in lines if "add" in a or "remove" in a]
        assert changes and all(c["dataChange"] is False for c in changes), t
    assert_published(wh, root)

    later = datetime.now(UTC) + timedelta(days=2)  # every finished execution is older than a day then
    wh.maintenance.expire(timedelta(days=1), tables=["executions"], now=later)
    add_runs(wh, 2, agent=AGENTS[1], attack=ATTACKS[2], start=500)  # and something left to show
    expired = wh.publish("delta")
    assert expired.tables["executions"].removed > 0
    assert wh.sql("select count(*) from executions").fetchall()[0][0] < 20
    assert_published(wh, root)

    vacuumed = wh.maintenance.vacuum(retain=timedelta(0), now=later)
    assert vacuumed.removed
    assert_published(wh, root)
    for t in TABLE_VIEW:
        dt = DeltaTable(uri(root, t))
        assert all((root / p).exists() for p in delta_files(dt, t)), t


def test_a_table_only_compaction_changed_since_its_last_publication_commits_without_data_change(
    tmp_path: Path,
) -> None:
    """The attacks' log records an older warehouse version than the executions' (a flush without
    attacks left it alone); compaction since then is still a rewrite for the attacks."""
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    for k in range(2):
        add_runs(wh, 2, attack=ATTACKS[1], start=10 * k)
    wh.publish("delta")
    add_runs(wh, 2, agent=AGENTS[1], start=50)  # no attacks: touches executions and messages only
    assert wh.maintenance.compact().files_in > 0
    report = wh.publish("delta")
    assert report.tables["attacks"].committed and report.tables["attacks"].data_change is False
    assert report.tables["executions"].committed and report.tables["executions"].data_change is True
    assert_published(wh, root)


# -- 3. time travel ---------------------------------------------------------------------------------------
def test_every_delta_version_answers_like_the_warehouse_version_it_records(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    for k, attack in enumerate(ATTACKS):
        ids = [f"tt-{k}-{i}" if k else f"tt-{i}" for i in range(3 + k)]
        add_runs(wh, 3 + k, agent=AGENTS[k % 2], attack=attack, start=10 * k, ids=ids)
        wh.publish("delta")
    add_live(wh)
    wh.publish("delta")
    add_runs(wh, 1, agent=AGENTS[0], attack=None, ids=["tt-0"], start=200)  # supersedes an add of the first flush
    wh.publish("delta")
    wh.maintenance.compact()
    wh.publish("delta")
    opened: dict[int, warehouse.Warehouse] = {}
    for t in TABLE_VIEW:
        latest = DeltaTable(uri(root, t)).version()
        for d in range(latest + 1):
            w = DeltaTable(uri(root, t), version=d).transaction_version(APP_ID)
            if w is None:
                continue  # a schema-only commit carries no transaction
            if w not in opened:
                opened[w] = warehouse.open(str(root), version=w)
            rows = view_rows(opened[w], t)
            assert norm(pl.scan_delta(uri(root, t), version=d).collect().to_arrow(), t) == rows, (t, d, w)
            if t == "executions":
                from datafusion import SessionContext

                ctx = SessionContext()
                ctx.register_table("e", DeltaTable(uri(root, t), version=d))
                assert norm(ctx.sql("select * from e").to_arrow_table(), t) == rows, (d, w)


# -- 4. superseded adds and running executions -----------------------------------------------------------
def test_superseded_adds_and_running_executions_publish_as_the_views_show_them(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    ids = [f"ex-{i}" for i in range(4)]
    add_runs(wh, 4, ids=ids)
    add_runs(wh, 2, ids=ids[:2], start=40)  # the same ids again: these adds win...
    add_runs(
        wh, 2, ids=ids[:2], agent=AGENTS[1], start=50
    )  # ...until these (another partition; all of the last file hidden)
    with wh.writer(dataset=DATASET, agent=AGENTS[0], flush_interval=None) as w:
        ex = w.start_execution(task_id="running", metadata={"k": "even"})
        w.flush()
        wh.publish("delta")
        assert_published(wh, root)
        assert wh.sql("select count(*) from superseded").fetchall()[0][0] > 0
        ex_rows = pl.read_delta(uri(root, "executions")).filter(pl.col("execution_id").is_in(ids))
        assert sorted(ex_rows["task_id"]) == ["user_task_2", "user_task_3", "user_task_50", "user_task_51"]
        assert pl.read_delta(uri(root, "executions")).filter(pl.col("task_id") == "running")["status"].to_list() == [
            "running"
        ]
        ex.update(metadata={"k": "odd"})
        w.flush()
        wh.publish("delta")
        assert_published(wh, root)
        ex.finish(benign_score=1.0)
    wh.publish("delta")
    assert_published(wh, root)
    assert pl.read_delta(uri(root, "executions")).filter(pl.col("task_id") == "running")["status"].to_list() == [
        "completed"
    ]


# -- 5. odd names ------------------------------------------------------------------------------------------
def test_a_local_root_delta_rs_cannot_use_is_refused_naming_the_path(tmp_path: Path) -> None:
    for name in ("wh[1]", "wh%20x"):
        root = tmp_path / name
        wh = warehouse.open(str(root), create=True)
        add_runs(wh, 1)
        with pytest.raises(PublishFailed, match=r"cannot use the local path") as err:
            wh.publish("delta")
        assert str(root) in str(err.value)
        assert not any((root / t / "_delta_log").exists() for t in TABLE_VIEW)


def test_a_root_with_spaces_unicode_and_hash_publishes_and_reads(tmp_path: Path) -> None:
    """Characters delta-rs percent-encodes in the table URI. (Polars 2.1's `read_delta` cannot read
    any Delta table under such a local path, one delta-rs wrote itself included, so DataFusion and
    deltalake's QueryBuilder read it here.)"""
    from datafusion import SessionContext
    from deltalake import QueryBuilder

    root = tmp_path / "my wh ü #1"
    wh = warehouse.open(str(root), create=True)
    add_runs(wh, 3, dataset=ODD_DATASET, agent=ODD_AGENT, attack=ATTACKS[1], ids=["x", "y", "z"])
    add_runs(wh, 1, ids=["x"], start=10)
    wh.publish("delta")
    for t in ("executions", "messages", "attacks"):
        ctx = SessionContext()
        ctx.register_table("t", DeltaTable(uri(root, t)))
        assert norm(ctx.sql("select * from t").to_arrow_table(), t) == view_rows(wh, t), t
        qb = pa.table(QueryBuilder().register("t", DeltaTable(uri(root, t))).execute("select * from t").read_all())
        assert norm(qb, t) == view_rows(wh, t), t


# -- 6. schema evolution ------------------------------------------------------------------------------------
def test_an_older_schema_gains_the_new_column_and_old_files_read_it_as_null(tmp_path: Path) -> None:
    from deltalake import Schema
    from deltalake.transaction import CommitProperties, Transaction, create_table_with_add_actions

    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    add_runs(wh, 3)
    schema = delta_schema("executions")
    older = pa.schema(list(schema)[:-1])
    create_table_with_add_actions(
        uri(root, "executions"),
        Schema.from_arrow(older),
        [],
        mode="error",
        partition_by=list(catalog().partition_columns),
        commit_properties=CommitProperties(app_transactions=[Transaction(APP_ID, 0)]),
    )
    wh.publish("delta")
    dt = DeltaTable(uri(root, "executions"))
    assert [f.name for f in dt.schema().fields] == schema.names
    ops = [h["operation"] for h in dt.history()]
    assert "ADD COLUMN" in ops
    assert_published(wh, root)


def test_a_warehouse_of_an_earlier_release_publishes_like_its_views(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    shutil.copytree(REPO / "tests" / "fixtures" / "warehouse-0.1", root)
    wh = warehouse.open(str(root))
    wh.publish("delta")
    assert pl.read_delta(uri(root, "executions")).height > 0
    assert_published(wh, root)


def test_files_written_before_a_column_existed_read_it_as_null(tmp_path: Path) -> None:
    """A data file without `write_id` (as an earlier release wrote them) next to current ones."""
    from warehouse.manifest import DataFile, RemovedFile, writer_info

    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    add_runs(wh, 2, ids=["old-0", "old-1"])
    add_runs(wh, 2, agent=AGENTS[1], start=10)
    adds, removes = [], []
    for table in ("executions", "messages"):
        f = next(f for f in wh.files(table) if f.partition["agent"] == AGENTS[0]["type"])
        path = f.path.replace(".parquet", "-old.parquet")
        pq.write_table(pq.read_table(root / f.path).drop_columns(["write_id"]), root / path)
        stats = {k: v for k, v in f.stats.items() if k != "write_id"}
        adds.append(DataFile(table, path, f.partition, f.rows, os.path.getsize(root / path), stats))
        removes.append(RemovedFile(table, f.path))
    wh.engine.commit(operation="repair", writer=writer_info("test"), token=None, add=adds, remove=removes)
    wh.publish("delta")
    ex = pl.read_delta(uri(root, "executions"))
    assert ex.filter(pl.col("execution_id").str.starts_with("old-"))["write_id"].null_count() == 2
    assert ex.filter(~pl.col("execution_id").str.starts_with("old-"))["write_id"].null_count() == 0
    assert_published(wh, root)


# -- 7. idempotence, incremental, foreign logs ----------------------------------------------------------
def test_publish_is_idempotent_incremental_and_never_touches_a_foreign_log(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    add_runs(wh, 3, attack=ATTACKS[1])
    first = wh.publish("delta")
    assert first.commits == len([t for t in TABLE_VIEW if first.tables[t].committed])
    versions = {t: DeltaTable(uri(root, t)).version() for t in TABLE_VIEW}
    again = wh.publish("delta")
    assert again.commits == 0 and {t: DeltaTable(uri(root, t)).version() for t in TABLE_VIEW} == versions

    add_runs(wh, 2, agent=AGENTS[1], start=10)  # no attack: executions, messages, configs change
    third = wh.publish("delta")
    changed = {t for t, p in third.tables.items() if p.committed}
    assert {"executions", "messages", "configs"} <= changed and "attacks" not in changed
    for t in TABLE_VIEW:
        assert DeltaTable(uri(root, t)).version() == versions[t] + (t in changed), t
    assert_published(wh, root)

    other = tmp_path / "other"
    wh2 = warehouse.open(str(other), create=True)
    add_runs(wh2, 2)
    write_deltalake(str(other / "executions"), pa.table({"x": [1, 2]}))
    before = {p: p.read_bytes() for p in (other / "executions" / "_delta_log").rglob("*") if p.is_file()}
    with pytest.raises(PublishFailed, match="did not write") as err:
        wh2.publish("delta")
    assert "executions" in str(err.value)
    after = {p: p.read_bytes() for p in (other / "executions" / "_delta_log").rglob("*") if p.is_file()}
    assert after == before
    wh2.publish("delta", rebuild=True)
    assert_published(wh2, other)


# -- 8. publishers at once ---------------------------------------------------------------------------------
@pytest.mark.subprocess
@pytest.mark.slow
def test_four_publishers_and_a_writer_at_once_leave_every_delta_version_consistent(
    tmp_path: Path, children: Any
) -> None:
    from processes import watchdog

    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    add_runs(wh, 2, attack=ATTACKS[1])
    flushes = 6
    final = wh.version + flushes
    procs = [children.start("publisher.py", root, final) for _ in range(4)]
    with watchdog(procs, 240):
        for p in procs:
            children.expect_line(p, "ready")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for k in range(flushes):
            add_runs(wh, 2, agent=AGENTS[k % 2], attack=ATTACKS[k % 3], start=10 * (k + 1))
        assert wh.version == final
        done = [json.loads(children.line(p, "done ")) for p in procs]
        for p in procs:
            assert p.wait() == 0, children.stderr(p)
    assert sum(d["commits"] for d in done) > 0
    for t in TABLE_VIEW:
        latest = DeltaTable(uri(root, t)).version()
        recorded = []
        for d in range(latest + 1):
            dt = DeltaTable(uri(root, t), version=d)
            w = dt.transaction_version(APP_ID)
            assert w is not None, (t, d)
            recorded.append(w)
            at = warehouse.open(str(root), version=w)
            assert delta_files(dt, t) == {f.path for f in at.files(t)}, (t, d, w)
        assert recorded == sorted(recorded), t  # a log never goes back
        # the latest names the final warehouse's files (a table no flush changed keeps an older txn)
        assert delta_files(DeltaTable(uri(root, t)), t) == {f.path for f in wh.files(t)}, t
        assert recorded[-1] == final or t not in ("executions", "messages", "attacks"), t
    assert_published(warehouse.open(str(root)), root)


# -- 9. automatic publication -----------------------------------------------------------------------------
AUTO_CHILD = textwrap.dedent(
    """
    import sys, warehouse
    wh = warehouse.open(sys.argv[1])
    with wh.writer(dataset={"type": "agentdojo", "config": {"suite": "workspace"}},
                   agent={"type": "child", "config": {}}, flush_interval=None) as w:
        for i in range(3):
            w.add_execution(task_id=f"child_{i}", messages=[{"role": "user", "content": "hi"}],
                            benign_score=1.0, metadata={"k": "even"})
    print(wh.version, flush=True)
    """
)


@pytest.mark.subprocess
def test_automatic_publication_follows_every_commit_of_every_process_until_turned_off(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True, publish=["delta"])
    grid(wh, per=1)
    add_live(wh)
    wh.maintenance.compact()
    assert wh.wait_for_publication(30)
    assert_published(wh, root)

    child = subprocess.run([sys.executable, "-c", AUTO_CHILD, str(root)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    wh = warehouse.open(str(root))
    assert int(child.stdout) == wh.version
    assert wh.sql("select count(*) from executions where agent = 'child'").fetchall()[0][0] == 3
    assert_published(wh, root)  # the child published its own commits before it exited

    off = warehouse.open(str(root), publish=[])
    add_runs(off, 1, start=900)
    assert off.wait_for_publication(30)
    assert DeltaTable(uri(root, "executions")).transaction_version(APP_ID) < off.version
    child = subprocess.run([sys.executable, "-c", AUTO_CHILD, str(root)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    assert DeltaTable(uri(root, "executions")).transaction_version(APP_ID) < int(child.stdout)


# -- 10. the CLI ---------------------------------------------------------------------------------------------
def test_cli_publish_delta_reports_json_and_publishes(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    grid(wh, per=1)
    runner = CliRunner()
    result = runner.invoke(app, ["publish", "delta", "--url", str(root), "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = {r["table"]: r for r in json.loads(result.stdout)}
    assert set(doc) == set(TABLE_VIEW)
    assert all(r["committed"] and r["warehouse_version"] == wh.version for r in doc.values())
    assert doc["executions"]["added"] == len(wh.files("executions")) and doc["executions"]["derived_files"] == 0
    assert_published(wh, root)
    again = runner.invoke(app, ["publish", "delta", "--url", str(root), "-f", "json"])
    assert again.exit_code == 0 and not any(r["committed"] for r in json.loads(again.stdout))


# -- data made by a real library --------------------------------------------------------------------------
@pytest.mark.slow  # agentdojo's own benchmark run takes most of its time
def test_agentdojo_results_import_and_publish_like_their_views(tmp_path: Path) -> None:
    from agentdojo_fixtures import write_agentdojo_logs

    logs = tmp_path / "logs"
    write_agentdojo_logs(logs)
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    assert wh.import_("agentdojo", logs).imported > 0
    wh.publish("delta")
    assert wh.sql("select count(distinct attack) from executions").fetchall()[0][0] == 2
    assert_published(wh, root)


def test_a_publisher_whose_warehouse_is_gone_stops_idle(tmp_path: Path) -> None:
    """A warehouse dropped (garbage-collected) while its publisher has work: the publisher stops as
    idle, so `wait()` and the drain at interpreter exit return at once instead of sitting out their
    timeout (60 s at exit)."""
    import gc

    from warehouse.ops.publish import auto

    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    with wh.writer(dataset="d", agent="a", attack="k") as w:
        w.add_execution(task_id="t", benign_score=1.0, attack_score=0.0)
    [commit] = [c for c in wh.log.commits() if c.add]
    publisher = auto.AutoPublisher(wh.engine, enabled=True)
    del wh, w
    gc.collect()
    publisher.notify(commit)  # its thread finds no warehouse
    assert publisher.wait(timeout=10)
    assert publisher.published == 0 and publisher.last_error is None
