"""Row builders emit tuples whose column names are declared once and checked against the catalog."""

from __future__ import annotations

import pytest

import warehouse
from warehouse.agent.sessions import SESSION_ROW
from warehouse.core.buffer import TableBuffer
from warehouse.core.config import CONFIG_ROW
from warehouse.core.records import ATTACK_ROW, MESSAGE_ROW
from warehouse.core.rows import RowShape
from warehouse.core.schemas import catalog
from warehouse.interop.importers.base import IMPORT_ROW
from warehouse.write.live import EVENT_ROW, SNAPSHOT_ROW
from warehouse.write.writer import EXECUTION_LIVE_ROW, EXECUTION_ROW

SHAPES = [
    EXECUTION_ROW,
    EXECUTION_LIVE_ROW,
    MESSAGE_ROW,
    ATTACK_ROW,
    CONFIG_ROW,
    EVENT_ROW,
    SNAPSHOT_ROW,
    SESSION_ROW,
    IMPORT_ROW,
]
PARTITION = {"dataset": "d", "agent": "a", "attack": "none", "config_hash": "0" * 16}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.table)
def test_each_builders_columns_are_its_tables_non_partition_columns(shape):
    cat = catalog()
    assert list(shape.columns) == cat.table(shape.table).column_names[len(cat.partition_columns) :]


def test_every_table_a_writer_buffers_has_a_builder_shape():
    # `superseded` rows are written by the keyed commit from Arrow tables, not by a row builder
    assert {s.table for s in SHAPES} == set(catalog().tables) - {"superseded"}


def test_a_builder_that_swaps_two_columns_is_refused_before_any_row_is_buffered():
    cols = list(EXECUTION_ROW.columns)
    i, j = cols.index("trace_id"), cols.index("span_id")
    cols[i], cols[j] = cols[j], cols[i]
    swapped = RowShape("executions", tuple(cols))
    buf = TableBuffer(catalog().table("executions"), PARTITION)
    with pytest.raises(warehouse.SchemaMismatch, match="'span_id' at position 11, where the schema has 'trace_id'"):
        buf.extend(swapped, [tuple(range(len(cols)))])
    assert len(buf) == 0


def test_rows_of_one_table_are_refused_by_another_tables_buffer():
    buf = TableBuffer(catalog().table("executions_live"), PARTITION)
    with pytest.raises(warehouse.SchemaMismatch, match="executions"):
        buf.append(EXECUTION_ROW, ())
    with pytest.raises(warehouse.SchemaMismatch, match="3 columns"):
        TableBuffer(catalog().table("attacks"), PARTITION).extend(
            RowShape("attacks", ("execution_id", "vector_id", "type")), []
        )


def test_a_buffer_checks_a_shape_once():
    buf = TableBuffer(catalog().table("attacks"), PARTITION)
    buf.extend(ATTACK_ROW, [("e", "v", None, "c", None, 1)])
    buf.extend(ATTACK_ROW, [("e", "w", None, "c", None, 2)])
    assert buf.shapes == {ATTACK_ROW} and buf.table().column("vector_id").to_pylist() == ["v", "w"]
