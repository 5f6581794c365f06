"""Publication in place as Apache Iceberg tables: every warehouse table is also an Iceberg table in a
catalog (pyiceberg's `SqlCatalog`), whose snapshots name the warehouse's own Parquet files.

    <catalog>                                   an SQLAlchemy URL, e.g. sqlite:////abs/path/catalog.db:
                                                table `warehouse.<table>` -> its current metadata file
    <root>/_iceberg/warehouse.db/<table>/metadata/  Iceberg metadata (JSON, manifest lists, manifests)
    <root>/<table>/dataset=.../part-....parquet  the warehouse's own data files, named by the manifests
    <root>/<table>/dataset=.../delta-*.parquet   derived files (rows the views show that no data file
                                                holds as such), the same ones the Delta publication names

No data is copied: the file set of each table is `warehouse.ops.publish.delta.target`, so an Iceberg
table answers like the warehouse's view (superseded adds left out, running executions in
`executions`), exactly as its Delta table does. Publishing a table brings it to the warehouse's
current version in one Iceberg snapshot: the files it names that left the target are deleted and
the missing ones added (one `overwrite` commit; the first is an `append`). Each snapshot's summary
records `warehouse.version`, the warehouse version it reflects, so time travel maps both ways
(`snapshot_for(table, version)`). Idempotent: a table whose current snapshot already reflects this
version (or a newer one), or already names exactly the target files, gets no snapshot. Commits are
conditional on the metadata they were computed from (the catalog's compare-and-swap); a publisher
that loses to another reads the table again and commits the difference, or nothing.

Compaction: Iceberg's `replace` operation (files rewritten, no data change) is what compaction
should commit, but pyiceberg 0.12 offers no public way to produce it (its snapshot summaries refuse
`replace`); a compaction is published as an `overwrite` whose summary also says
`warehouse.data-change: false`.

Why pyiceberg (>= 0.12) accepts the warehouse's files as they are:

- The warehouse writes top-level Parquet field ids 1..n in column order; an Iceberg table created
  from the same Arrow schema numbers its top-level columns the same (a struct's fields before their
  children), which is checked when the table is created.
- Nested fields (the list element of `advantages`, the map key/value of `scores`) carry no field id
  in the files, so pyiceberg resolves them by the table's name mapping
  (`schema.name-mapping.default`), which each table is given when created.
- Partitioning is identity on the partition columns; pyiceberg derives each file's partition from
  the footer statistics (min == max) of those physical columns, so scans prune by them.

Readers that resolve columns by field id only (no name-mapping fallback for nested fields) cannot
read the map column: Polars' native Iceberg reader (polars 2.2) fails on `scores` ("data type
mismatch for column scores"); `polars.scan_iceberg(..., reader_override="pyiceberg")` reads it.
See docs/iceberg.md.

Local warehouses only (the file paths are handed to pyiceberg's local FileIO). Automatic
publication after every commit is Delta's only (`settings.FORMATS`); Iceberg is published on demand
(`wh.publish("iceberg", catalog=...)`, `warehouse publish iceberg --catalog URI`). The catalog a
warehouse was last published to is kept in `_manifest/_publish.json` so that vacuum keeps the
files its tables name (`referenced`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse.core.errors import InvalidArgument, PublishFailed
from warehouse.core.schemas import catalog
from warehouse.engine import keys
from warehouse.manifest import Snapshot
from warehouse.ops.publish import settings
from warehouse.ops.publish.delta import REWRITE_OPERATIONS, PublishReport, TablePublication, tables, target

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

    from warehouse.engine.engine import Engine

#: The snapshot-summary property recording the warehouse version each Iceberg snapshot reflects.
VERSION_PROPERTY = "warehouse.version"
#: "false" in the summary of a snapshot that only moved rows between files (compaction).
DATA_CHANGE_PROPERTY = "warehouse.data-change"
NAME_MAPPING_PROPERTY = "schema.name-mapping.default"
COMMIT_RETRIES_PROPERTY = "commit.retry.num-retries"
#: The pyiceberg catalog name and the namespace the tables go in.
CATALOG_NAME = "warehouse"
NAMESPACE = "warehouse"
#: Where the Iceberg metadata goes, under the warehouse root (vacuum and doctor leave it alone).
METADATA_DIR = "_iceberg"
RETRIES = 8


@dataclass
class IcebergTablePublication(TablePublication):
    """What publishing one table as an Iceberg table did (`delta_version` stays None)."""

    snapshot_id: int | None = None  # the table's current Iceberg snapshot (None: none yet)


def check_catalog(uri: object) -> str:
    """`uri` if it looks like an SQLAlchemy URL (`dialect://...`); InvalidArgument naming it otherwise."""
    if not isinstance(uri, str) or "://" not in uri or not uri.split("://", 1)[0]:
        raise InvalidArgument(
            f"catalog must be an SQLAlchemy URL such as 'sqlite:////abs/path/catalog.db', got {uri!r}"
        )
    return uri


def _root(engine: Engine) -> str:
    if not engine.store.is_local:
        raise PublishFailed(f"Iceberg publication is local-only for now; {engine.url!r} is not a local path")
    return os.path.abspath(engine.store.root)


def open_catalog(engine: Engine, catalog_uri: str) -> SqlCatalog:
    """The pyiceberg SqlCatalog at `catalog_uri`, new tables' metadata under `<root>/_iceberg/`."""
    try:
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError as exc:  # an optional dependency
        raise PublishFailed(f"Iceberg publication needs pyiceberg: pip install 'warehouse[iceberg]' ({exc})") from None
    meta = os.path.join(_root(engine), METADATA_DIR)
    check_catalog(catalog_uri)
    for attempt in range(RETRIES):
        try:
            return SqlCatalog(CATALOG_NAME, uri=catalog_uri, warehouse=f"file://{meta}")
        except Exception as exc:  # SQLAlchemy: no driver, a path it cannot open, ...
            # Two processes creating a new catalog's tables at once: the loser finds them made.
            if "already exists" in str(exc) and attempt + 1 < RETRIES:
                continue
            raise PublishFailed(f"cannot open the Iceberg catalog {catalog_uri!r}: {exc}") from exc
    raise AssertionError("unreachable")


def _file_uri(root: str, rel: str) -> str:
    return f"file://{root}/{rel}"


def _rel(root: str, uri: str) -> str | None:
    prefix = f"file://{root}/"
    if uri.startswith(prefix):
        return uri[len(prefix) :]
    if uri.startswith(root + "/"):
        return uri[len(root) + 1 :]
    return None


def _create(cat: SqlCatalog, ident: str, table: str) -> None:
    """Create the table, its partition spec and properties in one catalog commit (a concurrent
    publisher never sees it half made)."""
    arrow = catalog().table(table).arrow
    with cat.create_table_transaction(ident, schema=arrow) as tx:
        schema = tx.table_metadata.schema()
        # The files' field ids are 1..n in column order: the table must number its columns the same.
        for i, f in enumerate(arrow, start=1):
            got = schema.find_field(f.name).field_id
            if got != i:
                raise PublishFailed(f"Iceberg numbered {table}.{f.name} {got}, the warehouse's files {i}")
        with tx.update_spec() as us:
            for c in catalog().partition_columns:
                us.add_identity(c)
        tx.set_properties(
            {
                NAME_MAPPING_PROPERTY: schema.name_mapping.model_dump_json(),
                # pyiceberg's own retry would re-apply a file diff computed from an older snapshot:
                # a conflict comes back to `publish_table`, which computes it again.
                COMMIT_RETRIES_PROPERTY: "0",
                "comment": catalog().table(table).doc or "",
            }
        )


def published_version(tbl: Table) -> int | None:
    """The warehouse version `tbl`'s current snapshot reflects (None: no snapshot, or not ours)."""
    snap = tbl.current_snapshot()
    if snap is None or snap.summary is None:
        return None
    v = snap.summary.additional_properties.get(VERSION_PROPERTY)
    return None if v is None else int(v)


def snapshot_for(tbl: Table, version: int) -> int | None:
    """The id of `tbl`'s snapshot that reflects warehouse version `version` (the latest one
    recording `version` or an older version; None if the table was first published later)."""
    best: tuple[int, int] | None = None
    for s in tbl.snapshots():
        v = s.summary.additional_properties.get(VERSION_PROPERTY) if s.summary is not None else None
        if v is not None and int(v) <= version and (best is None or int(v) >= best[0]):
            best = (int(v), s.snapshot_id)
    return None if best is None else best[1]


def iceberg_files(tbl: Table, root: str) -> dict[str, Any]:
    """The files `tbl`'s current snapshot names: warehouse-relative path -> pyiceberg DataFile."""
    if tbl.current_snapshot() is None:
        return {}
    out = {}
    for task in tbl.scan().plan_files():
        rel = _rel(root, task.file.file_path)
        out[rel if rel is not None else task.file.file_path] = task.file
    return out


def _check_schema(tbl: Table, table: str) -> None:
    have = [f.name for f in tbl.schema().fields]
    want = catalog().table(table).arrow.names
    if have != want:
        raise PublishFailed(
            f"Iceberg table {tbl.name()} has columns {have}, warehouse table {table!r} has {want}; "
            "publish with rebuild=True (`warehouse publish iceberg --rebuild`) to create it again"
        )


def _data_change(engine: Engine, after: int | None, upto: int) -> bool:
    if after is None or after < 0 or upto <= after:
        return True
    try:
        ops = engine.log.operations(range(after + 1, upto + 1))
    except Exception:  # folded or unreadable commits: say the data changed (always true to say)
        return True
    return not all(op in REWRITE_OPERATIONS for op, _ in ops.values()) or len(ops) != upto - after


def publish_table(
    engine: Engine,
    cat: SqlCatalog,
    table: str,
    snapshot: Snapshot,
    *,
    hidden: keys.Hidden,
    rebuild: bool = False,
) -> IcebergTablePublication:
    """Bring the Iceberg table `warehouse.<table>` to `snapshot` (see the module docstring); idempotent."""
    from pyiceberg.exceptions import (
        CommitFailedException,
        NoSuchTableError,
        TableAlreadyExistsError,
        ValidationException,
    )
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    root = _root(engine)
    ident = f"{NAMESPACE}.{table}"
    report = IcebergTablePublication(table, snapshot.version, None)
    if rebuild:
        try:
            cat.drop_table(ident)  # metadata only: the catalog never deletes the data files
        except NoSuchTableError:
            pass
    want: dict[str, Any] | None = None
    for _attempt in range(RETRIES):
        try:
            tbl = cat.load_table(ident)
        except NoSuchTableError:
            try:
                _create(cat, ident, table)
            except (TableAlreadyExistsError, CommitFailedException):
                pass  # another publisher created it
            continue  # read it (again)
        _check_schema(tbl, table)
        done = published_version(tbl)
        if done is not None and done >= snapshot.version:
            report.warehouse_version = done
            report.snapshot_id = tbl.current_snapshot().snapshot_id  # type: ignore[union-attr]
            return report
        if want is None:
            want = target(engine, snapshot, table, hidden, report)
        have = iceberg_files(tbl, root)
        removed = [have[p] for p in sorted(have.keys() - want.keys())]
        added = sorted(want.keys() - have.keys())
        if not removed and not added and tbl.current_snapshot() is not None:
            # Already names exactly these files: no empty snapshot per table per warehouse commit.
            report.warehouse_version = done if done is not None else snapshot.version
            report.snapshot_id = tbl.current_snapshot().snapshot_id  # type: ignore[union-attr]
            return report
        data_change = _data_change(engine, done, snapshot.version)
        props = {VERSION_PROPERTY: str(snapshot.version)}
        if not data_change:
            props[DATA_CHANGE_PROPERTY] = "false"
        try:
            with tbl.transaction() as tx, tx.update_snapshot(snapshot_properties=props).overwrite() as ow:
                for df in removed:
                    ow.delete_data_file(df)
                for rel in added:
                    # tbl.metadata, not tx.table_metadata: the latter is a deep copy per access
                    ow.append_data_file(parquet_file_to_data_file(tbl.io, tbl.metadata, _file_uri(root, rel)))
        except (CommitFailedException, ValidationException):
            continue  # another publisher committed first: read the table again
        report.added, report.removed, report.data_change, report.committed = len(added), len(removed), data_change, True
        snap = cat.load_table(ident).current_snapshot()
        report.snapshot_id = snap.snapshot_id if snap is not None else None
        return report
    raise PublishFailed(f"{ident}: other publishers kept committing to this Iceberg table; run publish again")


def publish(
    engine: Engine,
    catalog_uri: str,
    *,
    tables_: Iterable[str] | str | None = None,
    rebuild: bool = False,
    refresh: bool = True,
) -> PublishReport:
    """Bring every table's Iceberg table in the catalog at `catalog_uri` (or those of `tables_`) to
    the warehouse's current version; `rebuild` drops each table from the catalog first (its
    metadata only) and creates it again from the current snapshot. Records `catalog_uri` in the
    publication setting (for vacuum). PublishFailed for a remote warehouse, a catalog that cannot
    be opened or a table whose columns changed (without `rebuild`)."""
    t0 = time.perf_counter()
    cat = open_catalog(engine, catalog_uri)  # first: PublishFailed if pyiceberg is not installed
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    if refresh and not engine.read_only:
        engine.refresh()
    snapshot = engine.snapshot
    names = tables(tables_)
    try:
        cat.create_namespace(NAMESPACE)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:
        # Another publisher created it between pyiceberg's check and its insert (sqlite then says
        # UNIQUE constraint failed): fine if it is there now.
        if not cat.namespace_exists(NAMESPACE):
            raise
    if settings.iceberg_catalog(engine.store) != catalog_uri:
        settings.set_iceberg_catalog(engine.store, catalog_uri)
    hidden = keys.Hidden(engine.keys, engine.store, snapshot)
    report = PublishReport("iceberg", engine.url, snapshot.version)
    for t in names:
        report.tables[t] = publish_table(engine, cat, t, snapshot, hidden=hidden, rebuild=rebuild)
    report.seconds = time.perf_counter() - t0
    return report


def referenced(engine: Engine, catalog_uri: str | None = None) -> set[str]:
    """Warehouse-relative paths of every file the current snapshot of a published Iceberg table names
    (vacuum keeps them). `catalog_uri` defaults to the catalog the warehouse was last published to
    (the publication setting); none recorded, a remote warehouse, or a catalog or table that
    cannot be read keeps nothing extra."""
    uri = catalog_uri if catalog_uri is not None else settings.iceberg_catalog(engine.store)
    if uri is None or not engine.store.is_local:
        return set()
    try:
        cat = open_catalog(engine, uri)
    except PublishFailed:
        return set()
    root = _root(engine)
    out: set[str] = set()
    for t in catalog().tables:
        try:
            tbl = cat.load_table(f"{NAMESPACE}.{t}")
            files = iceberg_files(tbl, root)
        except Exception:  # no such table, unreadable metadata: nothing to keep for it
            continue
        out |= {p for p in files if not p.startswith("file://") and not p.startswith("/")}
    return out


def load_table(catalog_uri: str, table: str) -> Table:
    """The published Iceberg table `warehouse.<table>` of the catalog at `catalog_uri` (for readers)."""
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(CATALOG_NAME, uri=check_catalog(catalog_uri)).load_table(f"{NAMESPACE}.{table}")


def summaries(tbl: Table) -> list[Mapping[str, str]]:
    """Each snapshot's summary (operation and properties), oldest first."""
    return [
        {"operation": s.summary.operation.value, **s.summary.additional_properties} if s.summary is not None else {}
        for s in tbl.snapshots()
    ]


__all__ = [
    "DATA_CHANGE_PROPERTY",
    "IcebergTablePublication",
    "VERSION_PROPERTY",
    "check_catalog",
    "iceberg_files",
    "load_table",
    "open_catalog",
    "publish",
    "publish_table",
    "published_version",
    "referenced",
    "snapshot_for",
    "summaries",
]
