"""Row shapes: the column names a row builder emits, in the order of its tuples.

Builders emit plain tuples (the writer's hot path cannot afford a dict per row); each declares the
names of its tuple's positions once, as a `RowShape`, and a buffer takes a builder's rows only
after checking those names, once per shape, against the table's columns in `schemas/tables.yaml`
(non-partition columns, in order). Two swapped columns are then refused before any row is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from warehouse.core.errors import SchemaMismatch
from warehouse.core.schemas import catalog


@dataclass(frozen=True, eq=False)  # compared by identity: a buffer remembers the shapes it checked
class RowShape:
    """The rows of `table` as one builder emits them: `columns`, by name, in tuple order."""

    table: str
    columns: tuple[str, ...]

    def on(self, table: str) -> RowShape:
        """The same columns for another table (a side table with the same columns)."""
        return RowShape(table, self.columns)

    def check(self) -> None:
        """Raise SchemaMismatch, naming the first difference, unless `columns` are the table's
        non-partition columns in catalog order."""
        cat = catalog()
        expected = tuple(cat.table(self.table).column_names[len(cat.partition_columns) :])
        if self.columns == expected:
            return
        for i, (got, want) in enumerate(zip(self.columns, expected)):
            if got != want:
                raise SchemaMismatch(
                    f"{self.table}: a row builder puts {got!r} at position {i}, where the "
                    f"schema has {want!r}; its columns are {list(expected)}"
                )
        raise SchemaMismatch(
            f"{self.table}: a row builder emits {len(self.columns)} columns, the schema has "
            f"{len(expected)}: {list(expected)}"
        )


def catalog_shape(table: str) -> RowShape:
    """The shape of rows already in catalog order (read back from a write-ahead log, say)."""
    cat = catalog()
    return RowShape(table, tuple(cat.table(table).column_names[len(cat.partition_columns) :]))
