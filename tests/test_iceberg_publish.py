"""Publication as Iceberg tables (`wh.publish("iceberg", catalog=...)`, `warehouse publish iceberg --catalog`):
the warehouse's own Parquet files (and the same derived files as the Delta publication) registered in
place in a pyiceberg SqlCatalog (sqlite); every table answers like the warehouse's view of the same
name, read through pyiceberg (Arrow, DuckDB) and Polars, through superseded adds, running
executions, compaction, expire, vacuum and time travel by snapshot id."""

from __future__ import annotations

import json
import threading
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import build_messages
from pyiceberg.expressions import EqualTo
from typer.testing import CliRunner

import warehouse
from warehouse import PublishFailed
from warehouse.cli import app
from warehouse.core.errors import InvalidArgument
from warehouse.core.schemas import catalog
from warehouse.ops.publish import iceberg, settings

DATASET = {"type": "agentdojo", "config": {"suite": "workspace"}}
AGENTS = [{"type": "tool_agent", "config": {"model": "gpt-4o"}}, {"type": "Agent 'ü' 100%", "config": {"m": 1}}]
ATTACKS: list[dict[str, Any] | None] = [None, {"type": "important_instructions", "config": {"position": "end"}}]
TABLE_VIEW = {t: ("raw_executions_live" if t == "executions_live" else t) for t in catalog().tables}
ASR = (
    "select agent, attack, count(*) as n, round(avg(attack_score), 9) as asr, round(avg(benign_score), 9) as utility "
    "from {t} group by agent, attack order by agent, attack"
)
EVEN = "select execution_id from {t} where json_extract_string(metadata, '$.k') = 'even' order by execution_id"


def add_runs(
    wh: warehouse.Warehouse,
    n: int,
    *,
    agent: dict[str, Any] = AGENTS[0],
    attack: dict[str, Any] | None = None,
    start: int = 0,
    ids: list[str] | None = None,
) -> None:
    """One flush of `n` executions (messages, attacks, scores, metadata `{"k": "even"|"odd"}`)."""
    with wh.writer(dataset=DATASET, agent=agent, attack=attack, flush_interval=None) as w:
        for i in range(start, start + n):
            w.add_execution(
                execution_id=None if ids is None else ids[i - start],
                task_id=f"t{i}",
                messages=build_messages(f"task {i} «ü»", turns=1 + i % 2),
                benign_score=float(i % 2),
                attack_score=None if attack is None else float(i % 3 == 0),
                attacks=[] if attack is None else [{"vector_id": f"v{i}", "type": "str", "content": "ignore"}],
                advantages=[0.5, float(i)],
                metadata={"k": "even" if i % 2 == 0 else "odd", "i": i},
                scores={"x": float(i), "y": 1.0},
            )


def grid(wh: warehouse.Warehouse, per: int = 3, offset: int = 0) -> None:
    """Every agent x attack, one flush each."""
    for a, agent in enumerate(AGENTS):
        for b, attack in enumerate(ATTACKS):
            add_runs(wh, per + a + b, agent=agent, attack=attack, start=offset + 100 * (2 * a + b))


def add_live(wh: warehouse.Warehouse) -> None:
    """A running execution (two revisions) and one started then finished."""
    with wh.writer(dataset=DATASET, agent=AGENTS[1], attack=ATTACKS[1], flush_interval=None) as w:
        ex = w.start_execution(task_id="live_task", metadata={"k": "live"})
        ex.update(metadata={"k": "live", "progress": 0.5})
        done = w.start_execution(task_id="finished_task", metadata={"k": "even"})
        w.flush()
        done.finish(benign_score=1.0, attack_score=0.0)


# -- comparing -------------------------------------------------------------------------------------------
def norm(t: pa.Table | pl.DataFrame, table: str) -> list[str]:
    """Rows as sorted JSON lines over the table's columns (equal lists: equal multisets of rows)."""
    if isinstance(t, pl.DataFrame):
        t = t.to_arrow()
    schema = catalog().table(table).arrow
    t = t.select(schema.names)
    t = pa.table(
        [t.column(f.name).cast(f.type) for f in schema], schema=pa.schema([f.remove_metadata() for f in schema])
    )
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in t.to_pylist())


def view_rows(wh: warehouse.Warehouse, table: str) -> list[str]:
    cols = ", ".join(f'"{c}"' for c in catalog().table(table).arrow.names)
    return norm(wh.sql(f"select {cols} from {TABLE_VIEW[table]}").to_arrow_table(), table)


def answers(con: duckdb.DuckDBPyConnection | warehouse.Warehouse, names: dict[str, str]) -> dict[str, Any]:
    """(a) counts per table, (b) ASR and utility by agent x attack, (c) a metadata filter."""
    return {
        "counts": {t: con.sql(f"select count(*) from {v}").fetchall()[0][0] for t, v in names.items()},
        "asr": [list(r) for r in con.sql(ASR.format(t=names["executions"])).fetchall()],
        "even": [r[0] for r in con.sql(EVEN.format(t=names["executions"])).fetchall()],
    }


def assert_published(wh: warehouse.Warehouse, cat_uri: str) -> None:
    """Every Iceberg table answers like its view: rows via pyiceberg's Arrow scan and via Polars'
    scan_iceberg (pyiceberg reader); counts, ASR and a metadata filter via DuckDB over both the
    Arrow scan and pyiceberg's `to_duckdb`."""
    con = duckdb.connect()
    names = {}
    for t in TABLE_VIEW:
        tbl = iceberg.load_table(cat_uri, t)
        assert tbl.current_snapshot() is not None, t
        arrow = tbl.scan().to_arrow()
        expected = view_rows(wh, t)
        assert norm(arrow, t) == expected, t
        got = pl.scan_iceberg(tbl, reader_override="pyiceberg").collect()
        assert norm(got, t) == expected, t
        con.register(f"ice_{t}", arrow)
        names[t] = f"ice_{t}"
    assert answers(con, names) == answers(wh, TABLE_VIEW)
    ex = iceberg.load_table(cat_uri, "executions").scan().to_duckdb("ex")
    assert answers(ex, {"executions": "ex"}) == answers(wh, {"executions": "executions"})


def catalog_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


# -- tests -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_files_with_field_ids_are_registered_in_place_and_answer_like_the_views(
    wh: warehouse.Warehouse, root: Path, tmp_path: Path
) -> None:
    grid(wh)
    add_live(wh)
    first = pq.read_schema(str(root / wh.snapshot.table_files("executions")[0].path))
    assert first.field("agent").metadata == {b"PARQUET:field_id": b"2"}  # what pyiceberg < 0.12 refused
    uri = catalog_uri(tmp_path)

    report = wh.publish("iceberg", catalog=uri)

    assert report.format == "iceberg" and set(report.tables) == set(catalog().tables)
    assert report.commits == len(catalog().tables)
    assert_published(wh, uri)
    tbl = iceberg.load_table(uri, "messages")
    # in place: the snapshot lists the warehouse's files, and only metadata was written elsewhere
    listed = {r["file_path"] for r in tbl.inspect.files().select(["file_path"]).to_pylist()}
    assert listed == {f"file://{root}/{f.path}" for f in wh.snapshot.table_files("messages")}
    assert tbl.metadata_location.startswith(f"file://{root}/_iceberg/")
    # the running execution is in a derived file, the same one the Delta publication names
    ex = iceberg.load_table(uri, "executions")
    derived = [p for p in iceberg.iceberg_files(ex, str(root)) if p.rsplit("/", 1)[-1].startswith("delta-live-")]
    assert len(derived) == 1 and report.tables["executions"].derived_files == 1
    # partition pruning: planning for one agent keeps that agent's files only
    agent = wh.snapshot.table_files("messages")[0].partition["agent"]
    planned = {t.file.file_path for t in tbl.scan(row_filter=EqualTo("agent", agent)).plan_files()}
    assert planned == {
        f"file://{root}/{f.path}" for f in wh.snapshot.table_files("messages") if f.partition["agent"] == agent
    }
    for t in catalog().tables:
        assert iceberg.load_table(uri, t).current_snapshot().summary[iceberg.VERSION_PROPERTY] == str(wh.version)
    assert settings.iceberg_catalog(wh.store) == uri
    assert iceberg.referenced(wh.engine) == {
        p for t in catalog().tables for p in iceberg.iceberg_files(iceberg.load_table(uri, t), str(root))
    }

    # idempotent: publishing again makes no snapshot
    again = wh.publish("iceberg", catalog=uri)
    assert again.commits == 0
    assert {t: p.snapshot_id for t, p in again.tables.items()} == {  # type: ignore[attr-defined]
        t: p.snapshot_id  # type: ignore[attr-defined]
        for t, p in report.tables.items()
    }
    # incremental: one more flush makes one overwrite snapshot in the tables it touched only
    add_runs(wh, 2, agent=AGENTS[1], start=900)
    third = wh.publish("iceberg", catalog=uri)
    assert {t for t, p in third.tables.items() if p.committed} == {"executions", "messages"}
    assert [s["operation"] for s in iceberg.summaries(iceberg.load_table(uri, "executions"))] == [
        "append",
        "overwrite",
    ]
    assert_published(wh, uri)


@pytest.mark.slow
def test_superseded_adds_and_running_executions_answer_like_the_views(wh: warehouse.Warehouse, tmp_path: Path) -> None:
    uri = catalog_uri(tmp_path)
    ids = [f"ex-{i}" for i in range(4)]
    add_runs(wh, 4, ids=ids)
    add_runs(wh, 2, ids=ids[:2], start=50)  # the same ids again: these adds win
    with wh.writer(dataset=DATASET, agent=AGENTS[0], flush_interval=None) as w:
        ex = w.start_execution(task_id="running", metadata={"k": "even"})
        w.flush()
        wh.publish("iceberg", catalog=uri)
        assert wh.sql("select count(*) from superseded").fetchall()[0][0] > 0
        assert_published(wh, uri)
        rows = iceberg.load_table(uri, "executions").scan().to_arrow().to_pylist()
        assert sorted(r["task_id"] for r in rows if r["execution_id"] in ids) == ["t2", "t3", "t50", "t51"]
        assert [r["status"] for r in rows if r["task_id"] == "running"] == ["running"]
        ex.update(metadata={"k": "odd"})
        w.flush()
        wh.publish("iceberg", catalog=uri)
        assert_published(wh, uri)
        ex.finish(benign_score=1.0)
    wh.publish("iceberg", catalog=uri)
    assert_published(wh, uri)
    rows = iceberg.load_table(uri, "executions").scan().to_arrow().to_pylist()
    assert [r["status"] for r in rows if r["task_id"] == "running"] == ["completed"]


@pytest.mark.slow
def test_compaction_expire_and_vacuum_keep_every_table_answering_like_the_views(
    wh: warehouse.Warehouse, root: Path, tmp_path: Path
) -> None:
    uri = catalog_uri(tmp_path)
    grid(wh, per=2)
    grid(wh, per=2, offset=50)  # two files per partition: compaction has work everywhere
    add_live(wh)
    wh.publish("iceberg", catalog=uri)
    assert_published(wh, uri)

    result = wh.maintenance.compact()
    assert result.files_in > result.files_out
    report = wh.publish("iceberg", catalog=uri)
    compacted = [t for t, p in report.tables.items() if p.committed]
    assert "messages" in compacted and "executions" in compacted
    for t in compacted:
        p = report.tables[t]
        assert p.data_change is False and p.added > 0 and p.removed > p.added, t
        last = iceberg.summaries(iceberg.load_table(uri, t))[-1]
        # pyiceberg 0.12 cannot write a `replace` snapshot: an overwrite that says no data changed
        assert (last["operation"], last[iceberg.DATA_CHANGE_PROPERTY]) == ("overwrite", "false"), t
    assert_published(wh, uri)

    later = datetime.now(UTC) + timedelta(days=1)  # every finished execution counts as older than a day
    expired = wh.maintenance.expire(timedelta(days=1), tables=["executions"], now=later)
    assert expired.executions_expired > 0
    assert wh.publish("iceberg", catalog=uri).tables["executions"].committed
    assert_published(wh, uri)

    kept = iceberg.referenced(wh.engine)
    vacuumed = wh.maintenance.vacuum(retain=timedelta(0))
    assert vacuumed.removed and not set(vacuumed.removed) & kept  # compacted and expired files went
    assert kept and all((root / p).exists() for p in kept)
    assert_published(wh, uri)


@pytest.mark.slow
def test_time_travel_by_snapshot_id_answers_like_the_recorded_warehouse_version(
    wh: warehouse.Warehouse, root: Path, tmp_path: Path
) -> None:
    uri = catalog_uri(tmp_path)
    for k, attack in enumerate(ATTACKS):
        add_runs(wh, 3 + k, agent=AGENTS[k % 2], attack=attack, start=10 * k)
        wh.publish("iceberg", catalog=uri)
    add_live(wh)
    wh.publish("iceberg", catalog=uri)
    wh.maintenance.compact()
    wh.publish("iceberg", catalog=uri)
    checked = 0
    for t in TABLE_VIEW:
        tbl = iceberg.load_table(uri, t)
        for snap in tbl.snapshots():
            w = int(snap.summary[iceberg.VERSION_PROPERTY])
            assert iceberg.snapshot_for(tbl, w) == snap.snapshot_id
            old = warehouse.open(str(root), version=w)
            rows = view_rows(old, t)
            assert norm(tbl.scan(snapshot_id=snap.snapshot_id).to_arrow(), t) == rows, (t, w)
            got = pl.scan_iceberg(tbl, snapshot_id=snap.snapshot_id, reader_override="pyiceberg").collect()
            assert norm(got, t) == rows, (t, w)
            checked += 1
    assert checked > len(TABLE_VIEW)


def test_catalog_is_required_for_iceberg_and_refused_for_delta(wh: warehouse.Warehouse, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="catalog="):
        wh.publish("iceberg")
    with pytest.raises(InvalidArgument, match="not-a-url"):
        wh.publish("iceberg", catalog="not-a-url")
    uri = catalog_uri(tmp_path)
    with pytest.raises(InvalidArgument, match=repr(uri).replace("\\", "\\\\")):
        wh.publish("delta", catalog=uri)
    with pytest.raises(InvalidArgument, match="iceberg"):
        wh.publish("hudi")


def test_a_changed_table_schema_is_refused_until_rebuild(wh: warehouse.Warehouse, tmp_path: Path) -> None:
    uri = catalog_uri(tmp_path)
    add_runs(wh, 2)
    wh.publish("iceberg", catalog=uri, tables="messages")
    tbl = iceberg.load_table(uri, "messages")
    with tbl.update_schema() as us:
        us.delete_column("content")
    with pytest.raises(PublishFailed, match="rebuild"):
        wh.publish("iceberg", catalog=uri, tables="messages")
    report = wh.publish("iceberg", catalog=uri, tables="messages", rebuild=True)
    assert report.tables["messages"].committed
    assert_rows = norm(iceberg.load_table(uri, "messages").scan().to_arrow(), "messages")
    assert assert_rows == view_rows(wh, "messages")


@pytest.mark.slow
def test_cli_publish_iceberg_reports_json_and_publishes(wh: warehouse.Warehouse, root: Path, tmp_path: Path) -> None:
    uri = catalog_uri(tmp_path)
    add_runs(wh, 3)
    runner = CliRunner()
    res = runner.invoke(app, ["publish", "iceberg", "--url", str(root), "--catalog", uri, "-f", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    # rows of the table (or the report's JSON, `tables` keyed by table)
    by_table = {r["table"]: r for r in out} if isinstance(out, list) else out["tables"]
    assert set(by_table) == set(catalog().tables)
    assert by_table["executions"]["snapshot_id"] == iceberg.load_table(uri, "executions").current_snapshot().snapshot_id
    res = runner.invoke(app, ["publish", "iceberg", "--url", str(root)])
    assert res.exit_code != 0 and "catalog=" in res.output


@pytest.mark.slow
def test_three_publishers_at_once_commit_each_table_once_and_agree(root: Path, tmp_path: Path) -> None:
    wh = warehouse.open(str(root), create=True)
    grid(wh, per=2)
    uri = catalog_uri(tmp_path)  # a new catalog: its own tables are created concurrently too
    reports: list[Any] = []
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            reports.append(warehouse.open(str(root)).publish("iceberg", catalog=uri))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.commits for r in reports) == len(catalog().tables)  # the losers found the work done
    assert_published(wh, uri)
    for t in catalog().tables:
        assert len(iceberg.load_table(uri, t).snapshots()) == 1, t


def test_the_catalog_setting_survives_turning_automatic_delta_publication_on_and_off(
    wh: warehouse.Warehouse, root: Path, tmp_path: Path
) -> None:
    uri = catalog_uri(tmp_path)
    add_runs(wh, 2)
    wh.publish("iceberg", catalog=uri, tables="executions")
    warehouse.open(str(root), publish=["delta"])
    warehouse.open(str(root), publish=[])
    assert settings.iceberg_catalog(wh.store) == uri
    assert iceberg.referenced(wh.engine) == {f.path for f in wh.snapshot.table_files("executions")}
    with pytest.raises(InvalidArgument, match="on demand only"):
        warehouse.open(str(root), publish=["iceberg"])


def test_polars_native_reader_reads_every_column_but_the_map_without_nested_field_ids(
    wh: warehouse.Warehouse, tmp_path: Path
) -> None:
    """The known limit of id-only readers (docs/iceberg.md): the files carry no ids for the map's
    key/value, and Polars' native reader does not fall back to the name mapping for them."""
    uri = catalog_uri(tmp_path)
    add_runs(wh, 3)
    wh.publish("iceberg", catalog=uri, tables="executions")
    tbl = iceberg.load_table(uri, "executions")
    others = [c for c in catalog().table("executions").arrow.names if c != "scores"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "install polars_iceberg for faster planning"
        native = pl.scan_iceberg(tbl, reader_override="native").select(others).collect()
        assert norm(native.with_columns(scores=None), "executions") == norm(
            pl.scan_iceberg(tbl, reader_override="pyiceberg").collect().with_columns(scores=None), "executions"
        )
        with pytest.raises(pl.exceptions.SchemaError, match="scores"):
            pl.scan_iceberg(tbl, reader_override="native").select("scores").collect()
