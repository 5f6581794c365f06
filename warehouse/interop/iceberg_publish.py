"""Prototype: publish warehouse tables as Apache Iceberg tables over the warehouse's own data files.

No data is copied or rewritten: each Iceberg table's snapshots list the warehouse's Parquet files
where they are (absolute `file://` paths); only Iceberg metadata (metadata JSON, manifest lists,
manifests) is written, under `metadata_root` (default `<warehouse>/_iceberg/`, which the
warehouse's vacuum leaves alone: it only deletes `part-*.parquet` / `.tmp-*` in partition
directories). The catalog is pyiceberg's `SqlCatalog` at `catalog_uri` (an SQLAlchemy URL, e.g.
`sqlite:////path/catalog.db`).

Why this works with pyiceberg >= 0.12 (which accepts files carrying Parquet field ids when they
agree with the table's, apache/iceberg-python#2662):

- The warehouse writes top-level field ids 1..n in column order; an Iceberg table created from the
  same Arrow schema gets those ids too (pyiceberg numbers a struct's fields before their children),
  so the file ids and the table ids agree.
- Nested fields (the list element of `advantages`, the map key/value of `scores`) carry no field
  id in the files, so pyiceberg resolves every file by the table's name mapping
  (`schema.name-mapping.default`), which each table is given when created.
- Partitioning is identity on dataset/agent/attack/config_hash; pyiceberg derives each file's
  partition from the footer's min == max of those physical columns, so scans prune by them.

Each publish makes at most one Iceberg snapshot per table: the files the warehouse snapshot no
longer has (compacted, rewritten, expired) are removed and the new ones added in one overwrite
commit, whose summary records `warehouse.version`. Nothing happens for a table already in sync.

Readers that resolve columns by field id only (no name-mapping fallback per nested field) cannot
read the map column: Polars' native Iceberg reader (polars 2.2, `reader_override="native"`) fails
with "physical ID mismatch for map keys column" on `scores`, while `reader_override="pyiceberg"`
reads it. Files whose list element and map key/value carry ids too (the ids the Iceberg schema
gives them) read with both; the warehouse's writer does not write those ids yet.

The Iceberg table holds the *raw* table's rows, like the Parquet files: rows that the warehouse's
views hide (superseded executions, running revisions in `executions_live`) are not filtered.
Local warehouses only (the file paths are handed to pyiceberg's local FileIO).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from warehouse.core.errors import ExportFailed
from warehouse.core.schemas import catalog

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

    from warehouse.engine.engine import Engine

#: The snapshot-summary property recording the warehouse version each Iceberg snapshot reflects.
VERSION_PROPERTY = "warehouse.version"
NAME_MAPPING_PROPERTY = "schema.name-mapping.default"


@dataclass(frozen=True)
class IcebergPublished:
    """What one publish did to one table."""

    table: str  # the Iceberg identifier, "<namespace>.<table>"
    files_added: int
    files_removed: int
    snapshot_id: int | None  # the table's current Iceberg snapshot (None: no files yet)


def publish_iceberg(
    wh: Engine,
    catalog_uri: str,
    *,
    tables: Iterable[str] = ("executions", "messages"),
    namespace: str = "warehouse",
    metadata_root: str | None = None,
) -> list[IcebergPublished]:
    """Bring the Iceberg tables `<namespace>.<table>` in the SqlCatalog at `catalog_uri` up to
    the warehouse's current snapshot, registering its data files in place.

    `wh` is a warehouse (or its engine) on a local path. Tables are created on first publish
    (identity-partitioned on the partition columns, field ids equal to the files'). Raises
    ExportFailed for a warehouse that is not local.
    """
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    engine = wh.engine
    if not engine.store.is_local:
        raise ExportFailed(f"Iceberg publishing is local-only for now; {engine.url!r} is not a local path")
    root = os.path.abspath(engine.store.root)
    meta = os.path.abspath(metadata_root or os.path.join(root, "_iceberg"))
    cat = SqlCatalog("warehouse", uri=catalog_uri, warehouse=f"file://{meta}")
    try:
        cat.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    snap = engine.snapshot
    out = []
    for name in tables:
        ident = f"{namespace}.{name}"
        tbl = _load_or_create(cat, ident, name)
        wanted = {f"file://{root}/{f.path}" for f in snap.table_files(name)}
        out.append(_sync(tbl, ident, wanted, engine.version))
    return out


def _load_or_create(cat: SqlCatalog, ident: str, name: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return cat.load_table(ident)
    except NoSuchTableError:
        pass
    arrow = catalog().table(name).arrow
    tbl = cat.create_table(ident, schema=arrow)
    schema = tbl.schema()
    # The files' field ids are 1..n in column order: the table must number its columns the same.
    for i, f in enumerate(arrow, start=1):
        if schema.find_field(f.name).field_id != i:
            raise ExportFailed(f"Iceberg numbered {name}.{f.name} {schema.find_field(f.name).field_id}, the files {i}")
    with tbl.transaction() as tx:
        with tx.update_spec() as us:
            for c in catalog().partition_columns:
                us.add_identity(c)
        tx.set_properties({NAME_MAPPING_PROPERTY: schema.name_mapping.model_dump_json()})
    return cat.load_table(ident)


def _sync(tbl: Table, ident: str, wanted: set[str], version: int) -> IcebergPublished:
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    current = {task.file.file_path: task.file for task in tbl.scan().plan_files()}
    removed = [current[p] for p in sorted(current.keys() - wanted)]
    added = sorted(wanted - current.keys())
    if removed or added:
        with tbl.transaction() as tx:
            props = {VERSION_PROPERTY: str(version)}
            with tx.update_snapshot(snapshot_properties=props).overwrite() as ow:
                for df in removed:
                    ow.delete_data_file(df)
                for path in added:
                    ow.append_data_file(parquet_file_to_data_file(tbl.io, tx.table_metadata, path))
    snap = tbl.current_snapshot()
    return IcebergPublished(ident, len(added), len(removed), snap.snapshot_id if snap else None)
