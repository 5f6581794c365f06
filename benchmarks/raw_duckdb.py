"""Raw DuckDB: the same aggregation over one pre-written Parquet file (the lower bound for queries).

The file holds exactly the rows of the warehouse's `executions` view, written once with the
warehouse's own Parquet settings; the query is the text of `Warehouse.scores(by=...)` with
`read_parquet('<file>')` in place of the view, on a connection with the same macros.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

import warehouse
from warehouse.core.schemas import catalog
from warehouse.engine.datafiles import PARQUET_OPTIONS


def write_one_file(wh: warehouse.Warehouse, path: str | Path) -> int:
    """Every row of `executions` into one Parquet file; returns its size in bytes."""
    table = wh.sql("select * from executions").arrow()
    if not hasattr(table, "num_rows"):  # a RecordBatchReader in some DuckDB versions
        table = table.read_all()
    pq.write_table(table, str(path), **PARQUET_OPTIONS)
    return Path(path).stat().st_size


def connect() -> duckdb.DuckDBPyConnection:
    """A connection with the warehouse's SQL macros (Wilson intervals) and no views."""
    con = duckdb.connect()
    for name, sql in catalog().views:
        if name.startswith("00_"):
            con.execute(sql)
    return con


def scores_sql(path: str | Path, by: Sequence[str] = ("agent", "attack"), where: str | None = None) -> str:
    cols = ", ".join(by)
    path_sql = "'" + str(path).replace("'", "''") + "'"
    q = f"select {cols}, {catalog().queries['score_columns']} from read_parquet({path_sql})"
    if where:
        q += f" where {where}"
    return q + f" group by {cols} order by {cols}"
