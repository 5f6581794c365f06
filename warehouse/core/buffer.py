"""Column-wise buffering: rows become Arrow record batches as they arrive, a chunk at a time.

A writer appends validated row tuples (non-partition columns, in schema order); every CHUNK_ROWS
rows the pending tuples are transposed (`zip(*rows)`, in C) and each column converted by one typed
`pa.array` call into a record batch, and the tuples are dropped. The buffer therefore holds compact
Arrow memory whose size it knows exactly (so `flush_bytes` bounds memory), and a flush only
concatenates batches and encodes Parquet.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from warehouse.core.errors import SchemaMismatch
from warehouse.core.rows import RowShape
from warehouse.core.schemas import TableSchema, catalog

#: Rows converted at a time. Small enough that a chunk's builders never grow into freshly faulted
#: memory by doubling (one 200k-row builder cost 6x more than 25 chunks), large enough to amortise.
CHUNK_ROWS = 8192
#: Bytes counted per row not yet converted to Arrow, besides its text (tuple and object overhead).
PENDING_ROW_BYTES = 200


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector around a bulk conversion.

    Converting thousands of values allocates enough to trigger collections, each a pass over every
    live object of the caller's process (often millions: the records being written). Nothing
    cyclic is created here; the collector resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def rows_to_batch(schema: TableSchema, partition: Mapping[str, str], rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """Row tuples (non-partition columns, in schema order) -> one record batch with the constant
    partition columns filled in. Raises SchemaMismatch if a value does not fit its column."""
    n = len(rows)
    fields = list(schema.arrow)
    npart = len(catalog().partition_columns)
    # (a list of one repeated string converts 20x faster than pa.repeat)
    arrays = [pa.array([partition[f.name]] * n, pa.string()) for f in fields[:npart]]
    with gc_paused():
        columns = list(zip(*rows)) if n else [()] * (len(fields) - npart)
        if len(columns) != len(fields) - npart:
            raise SchemaMismatch(f"{schema.name}: rows have {len(columns)} columns, the schema {len(fields) - npart}")
        for f, col in zip(fields[npart:], columns):
            try:
                arrays.append(pa.array(col, type=f.type))
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
                raise SchemaMismatch(f"{schema.name}.{f.name}: a value does not fit {f.type}: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema.arrow)


class TableBuffer:
    """The buffered rows of one table of one partition: record batches plus a short tail of tuples."""

    def __init__(self, schema: TableSchema, partition: Mapping[str, str]) -> None:
        self.schema = schema
        self.partition = dict(partition)
        self.batches: list[pa.RecordBatch] = []
        self.pending: list[tuple[Any, ...]] = []
        self.rows = 0
        self.arrow_bytes = 0  # exact size of the converted batches
        self.pending_bytes = 0  # estimate for the tuples not yet converted
        self.shapes: set[RowShape] = set()  # the row shapes checked against the schema

    def accept(self, shape: RowShape) -> None:
        """Check, once per shape, that rows of `shape` fit this table (names and order); raises
        SchemaMismatch naming the first misplaced column."""
        if shape not in self.shapes:
            if shape.table != self.schema.name:
                raise SchemaMismatch(f"rows of table {shape.table} cannot go to table {self.schema.name}")
            shape.check()
            self.shapes.add(shape)

    def __len__(self) -> int:
        return self.rows

    @property
    def nbytes(self) -> int:
        return self.arrow_bytes + self.pending_bytes

    def extend(self, shape: RowShape, rows: list[tuple[Any, ...]], text_bytes: int = 0) -> None:
        """Add rows of `shape` (holding about `text_bytes` of text); converts the pending rows once
        CHUNK_ROWS have accumulated."""
        if shape not in self.shapes:
            self.accept(shape)
        self.pending.extend(rows)
        self.rows += len(rows)
        self.pending_bytes += text_bytes + PENDING_ROW_BYTES * len(rows)
        if len(self.pending) >= CHUNK_ROWS:
            self._convert()

    def append(self, shape: RowShape, row: tuple[Any, ...]) -> None:
        """Add one row of `shape` (without building a list)."""
        if shape not in self.shapes:
            self.accept(shape)
        self.pending.append(row)
        self.rows += 1
        self.pending_bytes += PENDING_ROW_BYTES
        if len(self.pending) >= CHUNK_ROWS:
            self._convert()

    def _convert(self) -> None:
        # CHUNK_ROWS at a time: a conversion holds the GIL throughout, so a long pending list (the
        # events a flush converts on the flusher thread) must not stall the caller's threads for long.
        pending = self.pending
        for i in range(0, len(pending), CHUNK_ROWS):
            batch = rows_to_batch(self.schema, self.partition, pending[i : i + CHUNK_ROWS])
            self.batches.append(batch)
            self.arrow_bytes += batch.nbytes
        self.pending = []
        self.pending_bytes = 0

    def table(self) -> pa.Table:
        """Everything buffered, as one table (the pending tail converted now)."""
        if self.pending:
            self._convert()
        return pa.Table.from_batches(self.batches, schema=self.schema.arrow)
