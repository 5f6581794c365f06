"""`wh.export("delta" | "parquet", out)` and `warehouse export`: every table of the snapshot, read back
by deltalake, Polars, DuckDB and pyarrow with the same values; incremental; compaction and expire
never leave a row twice; targets that are not exports are refused untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest
from conftest import build_messages, tree
from deltalake import DeltaTable, write_deltalake
from typer.testing import CliRunner

import warehouse
from warehouse.cli import app
from warehouse.core.config import config_hash
from warehouse.core.errors import ExportFailed
from warehouse.interop.exporters.delta import FILE_COLUMN
from warehouse.interop.exporters.parquet import MARKER

DATASET = {"type": "agentdojo", "config": {"suite": "workspace"}}
AGENT = {"type": "tool_agent", "config": {"model": "gpt-4o"}}
ATTACK = {"type": "important_instructions", "config": {"position": "end"}}
# A partition value that must be escaped on disk (space, quote, percent, non-ASCII).
ODD_AGENT = {"type": "Agent 'ü' 100%", "config": {"model": "claude"}}


def digits_only_agent() -> dict[str, Any]:
    """An agent config whose config_hash is made of digits only: a reader that infers partition
    types from directory names would turn it into a number."""
    for seed in range(10_000):
        agent = {"type": "digits", "config": {"seed": seed}}
        if config_hash(DATASET, agent, None).isdigit():
            return agent
    raise AssertionError("no all-digit config hash in 10,000 seeds")


def add_batch(
    wh: warehouse.Warehouse,
    n: int,
    *,
    agent: dict[str, Any] = AGENT,
    attack: dict[str, Any] | None = ATTACK,
    start: int = 0,
    finished_at: datetime | None = None,
) -> None:
    """One flush of `n` realistic executions (messages with tool calls, attacks, scores, metadata)."""
    with wh.writer(dataset=DATASET, agent=agent, attack=attack, run_id="job-1", flush_interval=None) as w:
        for i in range(start, start + n):
            w.add_execution(
                task_id=f"user_task_{i}",
                messages=build_messages(f"task {i} «ü»", turns=1 + i % 2),
                usage={"input_tokens": 100 + i, "output_tokens": 7, "cost": 0.001 * i},
                benign_score=float(i % 2),
                attack_score=0.0 if attack is None else float(i % 3 == 0),
                attacks=[] if attack is None else [{"vector_id": f"v{i}", "type": "str", "content": "ignore"}],
                metadata={"i": i, "note": "naïve"},
                scores={"steps": float(i)},
                advantages=[0.5, -0.25],
                started_at=finished_at,
                finished_at=finished_at,
            )


def rows_of(df: pl.DataFrame) -> list[str]:
    """Rows as sorted JSON lines: equal lists mean equal tables, whatever the row order."""
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in df.to_dicts())


def warehouse_rows(wh: warehouse.Warehouse, table: str) -> list[str]:
    return rows_of(wh.scan(table).collect())


def delta_rows(out: Path, table: str) -> list[str]:
    return rows_of(pl.read_delta(str(out / table)).drop(FILE_COLUMN))


def assert_delta_equals_snapshot(wh: warehouse.Warehouse, out: Path) -> None:
    for table in wh.tables:
        assert delta_rows(out, table) == warehouse_rows(wh, table), table
        # each row names the active data file it came from, and every such file is there whole
        counts = dict(pl.read_delta(str(out / table)).group_by(FILE_COLUMN).len().iter_rows())
        assert counts == {f.path: f.rows for f in wh.files(table)}, table


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[warehouse.Warehouse, Path]:
    """A warehouse with every table used (three configurations, one with an odd agent name and one
    whose hash is all digits, a live execution, logs, a checkpoint, a session), exported once to
    Delta and once to Parquet under the returned directory."""
    tmp = tmp_path_factory.mktemp("export")
    wh = warehouse.open(str(tmp / "wh"), create=True)
    add_batch(wh, 6)
    add_batch(wh, 4, agent=ODD_AGENT, attack=None)
    add_batch(wh, 3, agent=digits_only_agent(), attack=None)
    with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
        ex = w.start_execution(task_id="live_task", owner="agent-7", metadata={"suite": "workspace"})
        ex.log("info", "calling search", source="agent", attrs={"query": "unread"})
        with ex.span("tool:search_emails", attrs={"page": 1}):
            pass
        ex.checkpoint({"messages": [{"role": "user", "content": "hi"}], "env": {"inbox": 3}}, step=1)
        ex.update(metadata={"progress": 0.5})
        done = w.start_execution(task_id="finished_task")
        done.finish(benign_score=1.0, usage={"input_tokens": 9})
    wh.sessions.save(
        [{"role": "user", "content": "bonjour"}, {"role": "assistant", "content": "salut 🙂"}],
        session_id="s-1",
        title="greeting",
    )
    wh.export("delta", str(tmp / "delta"))
    wh.export("parquet", str(tmp / "pq"))
    return wh, tmp


# -- Delta -------------------------------------------------------------------------------------------
def test_delta_export_holds_every_table_with_the_warehouse_rows_and_partitioning(
    full: tuple[warehouse.Warehouse, Path],
) -> None:
    wh, tmp = full
    used = {t for t in wh.tables if wh.files(t)}
    assert {
        "executions",
        "executions_live",
        "messages",
        "attacks",
        "configs",
        "events",
        "snapshots",
        "sessions",
    } <= used
    assert_delta_equals_snapshot(wh, tmp / "delta")
    for table in wh.tables:
        dt = DeltaTable(str(tmp / "delta" / table))
        assert dt.metadata().partition_columns == ["dataset", "agent", "attack", "config_hash"]
    odd = pl.read_delta(str(tmp / "delta" / "executions")).filter(pl.col("agent") == ODD_AGENT["type"])
    assert odd.height == 4 and set(odd["attack"]) == {"none"}
    # the running revision is in executions_live, the final rows in executions
    live = pl.read_delta(str(tmp / "delta" / "executions_live"))
    assert set(live["task_id"]) == {"live_task", "finished_task"} and set(live["status"]) == {"running"}
    final = pl.read_delta(str(tmp / "delta" / "executions")).filter(pl.col("task_id") == "finished_task")
    assert final["status"].to_list() == ["completed"]


def test_delta_commit_info_records_warehouse_version_and_files(full: tuple[warehouse.Warehouse, Path]) -> None:
    wh, tmp = full
    [h] = DeltaTable(str(tmp / "delta" / "messages")).history()
    assert h["warehouse.version"] == str(wh.version) and h["warehouse.table"] == "messages"
    assert h["warehouse.url"] == str(tmp / "wh")
    assert sorted(json.loads(h["warehouse.files_added"])) == sorted(f.path for f in wh.files("messages"))
    assert json.loads(h["warehouse.files_removed"]) == []


@pytest.mark.slow
def test_delta_export_is_incremental_and_compaction_leaves_no_duplicates(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    out = tmp_path / "delta"
    for k in range(3):
        add_batch(wh, 5, start=5 * k)
    first = wh.export("delta", str(out))
    assert first.rows["executions"] == 15 and first.rows["messages"] == sum(
        len(build_messages(turns=1 + i % 2)) for i in range(15)
    )
    versions = {t: DeltaTable(str(out / t)).version() for t in wh.tables}

    again = wh.export("delta", str(out))
    assert again.rows == {} and again.files == 0
    assert {t: DeltaTable(str(out / t)).version() for t in wh.tables} == versions  # no empty commits

    add_batch(wh, 2, start=100)
    new_files = {f.path for f in wh.files("executions")} - {
        p for p in json.loads(DeltaTable(str(out / "executions")).history()[0]["warehouse.files_added"])
    }
    second = wh.export("delta", str(out))
    assert second.rows["executions"] == 2 and second.version == wh.version
    h = DeltaTable(str(out / "executions")).history()[0]
    assert h["operationParameters"]["mode"] == "Append" and set(json.loads(h["warehouse.files_added"])) == new_files
    assert_delta_equals_snapshot(wh, out)

    before = {f.path for f in wh.files("messages")}
    result = wh.compact()
    assert result.files_in > result.files_out
    third = wh.export("delta", str(out))
    assert third.rows["messages"] == sum(f.rows for f in wh.files("messages")) and third.notes
    h = DeltaTable(str(out / "messages")).history()[0]
    assert set(json.loads(h["warehouse.files_removed"])) == before  # one commit: old rows out, new rows in
    assert set(json.loads(h["warehouse.files_added"])) == {f.path for f in wh.files("messages")}
    assert_delta_equals_snapshot(wh, out)
    assert pl.read_delta(str(out / "executions"))["execution_id"].is_unique().all()
    # an older Delta version still reads the pre-compaction rows (time travel on the Delta side)
    assert pl.read_delta(str(out / "executions"), version=versions["executions"]).height == 15


@pytest.mark.slow
def test_delta_export_deletes_rows_that_expire_removed(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    out = tmp_path / "delta"
    add_batch(wh, 3, finished_at=datetime.now(UTC) - timedelta(days=90))
    add_batch(wh, 2, start=10)
    wh.export("delta", str(out))
    assert pl.read_delta(str(out / "executions")).height == 5
    assert wh.expire(timedelta(days=30), tables=("executions",)).rows_removed["executions"] == 3
    report = wh.export("delta", str(out))
    assert report.rows == {} and report.notes  # nothing added, old rows removed
    assert sorted(pl.read_delta(str(out / "executions"))["task_id"]) == ["user_task_10", "user_task_11"]
    assert_delta_equals_snapshot(wh, out)


@pytest.mark.slow
def test_delta_rows_deleted_by_hand_are_exported_again(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    out = tmp_path / "delta"
    add_batch(wh, 4)
    wh.export("delta", str(out))
    DeltaTable(str(out / "executions")).delete("task_id = 'user_task_1'")
    report = wh.export("delta", str(out))
    assert report.rows["executions"] == 4 and any("another row count" in n for n in report.notes)
    assert_delta_equals_snapshot(wh, out)


@pytest.mark.slow
def test_delta_export_of_some_partitions_then_all_adds_the_rest_once(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    out = tmp_path / "delta"
    add_batch(wh, 3)
    add_batch(wh, 2, agent=ODD_AGENT, attack=None)
    quoted = ODD_AGENT["type"].replace("'", "''")
    part = wh.export("delta", str(out), where=f"agent = '{quoted}'", tables=["executions"])
    assert part.rows == {"executions": 2} and sorted(os.listdir(out)) == ["executions"]
    assert set(pl.read_delta(str(out / "executions"))["agent"]) == {ODD_AGENT["type"]}
    rest = wh.export("delta", str(out))
    assert rest.rows["executions"] == 3
    assert_delta_equals_snapshot(wh, out)


def test_delta_export_refuses_targets_that_are_not_its_exports(
    tmp_path: Path, snapshot_tree: Callable[[Path], dict[str, bytes]]
) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    add_batch(wh, 2)
    foreign = tmp_path / "foreign"
    (foreign / "executions").mkdir(parents=True)
    (foreign / "executions" / "notes.txt").write_text("mine")
    import pyarrow as pa

    write_deltalake(str(foreign / "messages"), pa.table({"x": [1, 2]}))
    before = snapshot_tree(foreign)
    with pytest.raises(ExportFailed, match="executions.*not a Delta table"):
        wh.export("delta", str(foreign), tables=["executions"])
    with pytest.raises(ExportFailed, match=f"messages.*without a {FILE_COLUMN}"):
        wh.export("delta", str(foreign), tables=["messages"])
    with pytest.raises(ExportFailed, match="unknown table 'nope'"):
        wh.export("delta", str(foreign), tables=["nope"])
    with pytest.raises(ExportFailed, match="'model'"):
        wh.export("delta", str(foreign), where="model=gpt")
    assert snapshot_tree(foreign) == before
    # the export of another warehouse (none of whose files is here) is not overwritten
    other = warehouse.open(str(tmp_path / "other"), create=True)
    add_batch(other, 1)
    other.export("delta", str(tmp_path / "theirs"), tables=["executions"])
    before = snapshot_tree(tmp_path / "theirs")
    with pytest.raises(ExportFailed, match="holds an export of warehouse"):
        wh.export("delta", str(tmp_path / "theirs"), tables=["executions"])
    assert snapshot_tree(tmp_path / "theirs") == before


# -- Parquet -----------------------------------------------------------------------------------------
def test_parquet_export_reads_back_equal_in_duckdb_polars_and_pyarrow(full: tuple[warehouse.Warehouse, Path]) -> None:
    wh, tmp = full
    out = tmp / "pq"
    for table in wh.tables:
        files = wh.files(table)
        if not files:
            assert not (out / table).exists()
            continue
        expected = warehouse_rows(wh, table)
        cols = wh.scan(table).collect_schema().names()
        assert (
            rows_of(pl.scan_parquet(str(out / table / "**/*.parquet"), hive_partitioning=True).select(cols).collect())
            == expected
        ), table
        assert (
            rows_of(pl.from_arrow(ds.dataset(str(out / table), format="parquet").to_table()).select(cols)) == expected
        )
        got = duckdb.sql(
            f"select count(*), count(distinct config_hash) from read_parquet("
            f"'{out / table}/**/*.parquet', hive_partitioning=true)"
        ).fetchall()
        assert got == [(sum(f.rows for f in files), len({f.partition["config_hash"] for f in files}))], table
    # copied byte for byte, under the same relative paths
    for f in wh.files("messages"):
        assert (out / f.path).read_bytes() == (tmp / "wh" / f.path).read_bytes()
    # a config hash of digits only stays the stored text, as do escaped partition values
    hashes = duckdb.sql(
        f"select distinct config_hash, agent from read_parquet('{out}/executions/**/*.parquet', "
        "hive_partitioning=true) order by all"
    ).fetchall()
    assert sorted(hashes) == sorted(
        {(f.partition["config_hash"], f.partition["agent"]) for f in wh.files("executions")}
    )
    assert any(h.isdigit() for h, _ in hashes) and any(a == ODD_AGENT["type"] for _, a in hashes)
    marker = json.loads((out / MARKER).read_text())
    assert marker["version"] == wh.version and set(marker["files"]) == {f.path for f in wh.snapshot.files.values()}


def test_parquet_export_mirrors_compaction_and_copies_only_new_files(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    out = tmp_path / "pq"
    add_batch(wh, 3)
    add_batch(wh, 3, start=3)
    first = wh.export("parquet", str(out))
    assert first.rows["executions"] == 6 and first.files == len(wh.snapshot.files)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    assert len(stamps) == first.files
    assert wh.export("parquet", str(out)).files == 0
    add_batch(wh, 1, start=50)
    assert wh.export("parquet", str(out)).rows["executions"] == 1
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # earlier files untouched
    wh.compact()
    report = wh.export("parquet", str(out))
    assert report.notes and report.rows["executions"] == 7
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.parquet")}
    assert on_disk == {f.path for f in wh.snapshot.files.values()}
    n = duckdb.sql(f"select count(*), count(distinct execution_id) from '{out}/executions/**/*.parquet'").fetchall()
    assert n == [(7, 7)]


def test_parquet_export_of_some_partitions_leaves_the_others_alone(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    out = tmp_path / "pq"
    old = datetime.now(UTC) - timedelta(days=90)
    add_batch(wh, 3, finished_at=old)
    add_batch(wh, 2, agent=ODD_AGENT, attack=None, finished_at=old)
    some = wh.export("parquet", str(out), where={"agent": ODD_AGENT["type"]}, tables="executions")
    assert some.rows == {"executions": 2} and some.files == 1
    assert wh.export("parquet", str(out)).files == len(wh.snapshot.files) - 1

    def exported() -> set[str]:
        return {str(p.relative_to(out)) for p in (out / "executions").rglob("*.parquet")}

    odd = {f.path for f in wh.files("executions", {"agent": ODD_AGENT["type"]})}
    wh.expire(timedelta(days=30), tables=("executions",))  # every execution, of both agents
    assert wh.files("executions") == []
    assert wh.export("parquet", str(out), where={"agent": AGENT["type"]}).notes
    assert exported() == odd  # outside the filter: kept until an export that covers it
    wh.export("parquet", str(out))
    assert exported() == set()


def test_parquet_export_refuses_a_directory_that_is_not_its_export(
    tmp_path: Path, snapshot_tree: Callable[[Path], dict[str, bytes]]
) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    add_batch(wh, 1)
    with pytest.raises(ExportFailed, match=f"no {MARKER}"):
        wh.export("parquet", str(tmp_path / "wh"))  # the warehouse itself: never touched
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / MARKER).write_text("{not json")
    before = snapshot_tree(tmp_path)
    with pytest.raises(ExportFailed, match="damaged"):
        wh.export("parquet", str(tmp_path / "damaged"))
    assert snapshot_tree(tmp_path) == before


# -- CLI ---------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "warehouse", *args], capture_output=True, text=True, timeout=120)


def test_cli_exports_delta_and_parquet_and_reports_errors_in_one_line(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    add_batch(wh, 3)
    add_batch(wh, 2, agent=ODD_AGENT, attack=None)
    url = str(tmp_path / "wh")
    r = _cli("export", "delta", str(tmp_path / "delta"), "--url", url, "--where", "attack=none")
    assert r.returncode == 0, r.stderr
    assert "delta export of version 2" in r.stdout and "2 executions" in r.stdout
    assert set(pl.read_delta(str(tmp_path / "delta" / "executions"))["agent"]) == {ODD_AGENT["type"]}
    # the rest in-process (typer's runner): the same command function, without a second start-up
    runner = CliRunner()
    r = runner.invoke(app, ["export", "parquet", str(tmp_path / "pq"), "--url", url])
    assert r.exit_code == 0, r.output
    assert pl.scan_parquet(str(tmp_path / "pq" / "executions" / "**" / "*.parquet")).collect().height == 5
    r = runner.invoke(app, ["export", "orc", str(tmp_path / "x"), "--url", url])
    assert r.exit_code == 1 and "unknown export kind 'orc'" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["export", "delta", str(tmp_path / "y"), "--url", url, "--where", "agent"])
    assert r.exit_code == 1 and "where 'agent' is not a condition" in r.output and "not a boolean" in r.output
    assert not (tmp_path / "y").exists()
    assert tree(tmp_path / "delta")  # the first export is still there
