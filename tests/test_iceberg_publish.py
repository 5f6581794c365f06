"""`publish_iceberg`: the warehouse's own Parquet files (which carry Parquet field ids) registered in
place as Iceberg tables in a pyiceberg SqlCatalog (sqlite), read back by pyiceberg with the same rows
as the warehouse, pruned by partition, and kept in step when compaction replaces files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo

import warehouse
from warehouse.interop.iceberg_publish import VERSION_PROPERTY, publish_iceberg

DATASET = {"type": "agentdojo", "config": {"suite": "workspace"}}
AGENTS = [{"type": "tool_agent", "config": {"model": "gpt-4o"}}, {"type": "Agent 'ü' 100%", "config": {"m": 1}}]
ATTACKS: list[dict[str, Any] | None] = [None, {"type": "important_instructions", "config": {"position": "end"}}]


def write(wh: warehouse.Warehouse, tag: str, n: int) -> None:
    for agent in AGENTS:
        for attack in ATTACKS:
            with wh.writer(dataset=DATASET, agent=agent, attack=attack) as w:
                for i in range(n):
                    w.add_execution(
                        task_id=f"{tag}{i}",
                        benign_score=float(i % 2),
                        advantages=[0.5, float(i)],
                        scores={"x": float(i), "y": 1.0},
                        messages=[{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": "a"}],
                    )
    wh.refresh()


def iceberg_rows(tbl: Any, names: list[str], order: list[str], snapshot_id: int | None = None) -> pa.Table:
    scan = tbl.scan(snapshot_id=snapshot_id) if snapshot_id is not None else tbl.scan()
    return scan.to_arrow().select(names).sort_by([(c, "ascending") for c in order])


def warehouse_rows(wh: warehouse.Warehouse, table: str, order: list[str]) -> pa.Table:
    return wh.sql(f"select * from {table} order by {', '.join(order)}").arrow().read_all()


def assert_same_rows(wh: warehouse.Warehouse, cat: SqlCatalog) -> None:
    for table, order in (("executions", ["execution_id"]), ("messages", ["execution_id", "seq"])):
        expected = warehouse_rows(wh, table, order)
        got = iceberg_rows(cat.load_table(f"warehouse.{table}"), expected.schema.names, order)
        assert got.num_rows == expected.num_rows == sum(f.rows for f in wh.snapshot.table_files(table))
        assert got.cast(expected.schema).equals(expected)


def test_files_with_field_ids_are_registered_in_place(wh: warehouse.Warehouse, root: Path, tmp_path: Path) -> None:
    write(wh, "t", 5)
    first = pq.read_schema(str(root / wh.snapshot.table_files("executions")[0].path))
    assert first.field("agent").metadata == {b"PARQUET:field_id": b"2"}  # what pyiceberg < 0.12 refused
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"

    published = publish_iceberg(wh, uri)

    assert [(p.table, p.files_added, p.files_removed) for p in published] == [
        ("warehouse.executions", 4, 0),
        ("warehouse.messages", 4, 0),
    ]
    cat = SqlCatalog("warehouse", uri=uri)
    assert_same_rows(wh, cat)
    tbl = cat.load_table("warehouse.executions")
    # in place: the snapshot lists the warehouse's files, and only metadata was written elsewhere
    listed = {r["file_path"] for r in tbl.inspect.files().select(["file_path"]).to_pylist()}
    assert listed == {f"file://{root}/{f.path}" for f in wh.snapshot.table_files("executions")}
    assert tbl.metadata_location.startswith(f"file://{root}/_iceberg/")
    # partition pruning: planning for one agent keeps that agent's files only
    agent = wh.snapshot.table_files("executions")[0].partition["agent"]
    planned = {t.file.file_path for t in tbl.scan(row_filter=EqualTo("agent", agent)).plan_files()}
    assert planned == {
        f"file://{root}/{f.path}" for f in wh.snapshot.table_files("executions") if f.partition["agent"] == agent
    }
    assert tbl.current_snapshot().summary[VERSION_PROPERTY] == str(wh.version)
    # publishing an unchanged warehouse makes no snapshot
    again = publish_iceberg(wh, uri)
    assert [(p.files_added, p.files_removed, p.snapshot_id) for p in again] == [
        (0, 0, p.snapshot_id) for p in published
    ]


def test_replaced_files_make_a_second_snapshot(wh: warehouse.Warehouse, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    write(wh, "t", 3)
    publish_iceberg(wh, uri)
    rows_before = sum(f.rows for f in wh.snapshot.table_files("executions"))
    published = {f.path for f in wh.snapshot.table_files("executions")}
    write(wh, "u", 2)
    compacted = wh.compact("executions", min_files=2)
    assert [c.status for c in compacted.partitions] == ["compacted"] * 4
    after = {f.path for f in wh.snapshot.table_files("executions")}

    ex, _ = publish_iceberg(wh, uri)

    # one overwrite: the 4 files published first are compacted away, the 4 compacted files come in
    assert (ex.files_added, ex.files_removed) == (len(after - published), len(published - after)) == (4, 4)
    cat = SqlCatalog("warehouse", uri=uri)
    assert_same_rows(wh, cat)
    tbl = cat.load_table("warehouse.executions")
    history = tbl.snapshots()
    assert [s.summary.operation.value for s in history] == ["append", "overwrite"]
    # the first Iceberg snapshot still reads the files as they were (until the warehouse vacuums them)
    assert tbl.scan(snapshot_id=history[0].snapshot_id).to_arrow().num_rows == rows_before
