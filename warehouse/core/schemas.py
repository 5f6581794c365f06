"""Table schemas and view definitions, loaded from the `schemas/` data files shipped with the package."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyarrow as pa
import yaml

from warehouse.core.errors import InvalidArgumentType, SchemaMismatch

_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "json": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list<float64>": pa.list_(pa.float64()),
    "map<string,float64>": pa.map_(pa.string(), pa.float64()),
}


_DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "json": "VARCHAR",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "list<float64>": "DOUBLE[]",
    "map<string,float64>": "MAP(VARCHAR, DOUBLE)",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    stats: bool

    @property
    def arrow_type(self) -> pa.DataType:
        return _TYPES[self.type]

    @property
    def duckdb_type(self) -> str:
        return _DUCKDB_TYPES[self.type]


@dataclass(frozen=True)
class TableSchema:
    """One table: its columns (partition columns first), sort order and Arrow schema."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    sort_by: tuple[str, ...]

    @functools.cached_property
    def arrow(self) -> pa.Schema:
        """The Arrow schema; each field carries its Parquet field id (its 1-based position)."""
        return pa.schema(
            [
                pa.field(c.name, c.arrow_type, nullable=c.nullable, metadata={b"PARQUET:field_id": str(i).encode()})
                for i, c in enumerate(self.columns, start=1)
            ]
        )

    @functools.cached_property
    def duckdb_schema(self) -> str:
        """The `schema=` argument of DuckDB's `read_parquet`: field id -> name and type.

        Giving it means DuckDB never opens a file just to learn the schema (so partition pruning
        skips every other file), and files written before a column was added read it as NULL.
        """
        entries = ", ".join(
            f"{i}: {{name: '{c.name}', type: '{c.duckdb_type}', default_value: NULL}}"
            for i, c in enumerate(self.columns, start=1)
        )
        return "map {" + entries + "}"

    @functools.cached_property
    def empty_select(self) -> str:
        """A typed, zero-row SELECT with this table's columns (the view of a table with no files)."""
        cols = ", ".join(f"cast(null as {c.duckdb_type}) as {c.name}" for c in self.columns)
        return f"select {cols} limit 0"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def stats_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.stats]


@dataclass(frozen=True)
class Catalog:
    """Every table schema plus the ordered view definitions."""

    format_version: int
    partition_columns: tuple[str, ...]
    tables: dict[str, TableSchema]
    views: tuple[tuple[str, str], ...]  # (file name, SQL text), in file-name order
    queries: dict[str, str]  # reusable SQL fragments, by file stem; `{stem}` in a view is replaced by it

    def table(self, name: str) -> TableSchema:
        if not isinstance(name, str):
            raise InvalidArgumentType(
                f"a table name must be a string, got {type(name).__name__} {name!r:.80}; "
                f"tables are {sorted(self.tables)}"
            )
        try:
            return self.tables[name]
        except KeyError:
            raise SchemaMismatch(f"unknown table {name!r}; tables are {sorted(self.tables)}") from None


def _schema_dir() -> Path:
    """`warehouse/_schemas` in an installed wheel, `schemas/` in a source checkout."""
    try:
        packaged = Path(str(resources.files("warehouse._schemas")))
        if (packaged / "tables.yaml").exists():
            return packaged
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def catalog() -> Catalog:
    """Load (once) the table schemas and views from the schema files."""
    base = _schema_dir()
    spec = yaml.safe_load((base / "tables.yaml").read_text())
    pcols = tuple(spec["partition_columns"])
    tables: dict[str, TableSchema] = {}
    for name, t in spec["tables"].items():
        cols = [Column(c, "string", False, False) for c in pcols]
        # `columns_from: other` = the same columns as an earlier table (a side table of it)
        for c in spec["tables"][t["columns_from"]]["columns"] if "columns_from" in t else t["columns"]:
            if c["type"] not in _TYPES:
                raise SchemaMismatch(f"table {name}: column {c['name']} has unknown type {c['type']!r}")
            cols.append(Column(c["name"], c["type"], c.get("nullable", True), c.get("stats", False)))
        tables[name] = TableSchema(name, t.get("doc", ""), tuple(cols), tuple(t.get("sort_by", ())))
    queries = {p.stem: _strip_comments(p.read_text()) for p in sorted((base / "queries").glob("*.sql"))}
    views = tuple((p.name, _expand(p.read_text(), queries)) for p in sorted((base / "views").glob("*.sql")))
    return Catalog(spec["format_version"], pcols, tables, views, queries)


def _expand(sql: str, queries: dict[str, str]) -> str:
    """Replace `{name}` by the query fragment of that name (other braces are left alone)."""
    return re.sub(r"\{(\w+)\}", lambda m: queries.get(m.group(1), m.group(0)), sql)


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--")).strip()
