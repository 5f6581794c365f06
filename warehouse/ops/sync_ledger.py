"""The sync ledger: rows of a warehouse's own `imports` partition (`dataset = 'imports'`,
`agent = 'sync'`) that record every data file a sync took in (kind `sync`) and every file it removed
because its source had (kind `sync-removed`). Data, so it outlives vacuum folding old commits.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.core.buffer import rows_to_batch
from warehouse.core.config import RunConfig
from warehouse.core.schemas import catalog
from warehouse.core.storage import arrow_reader
from warehouse.manifest import DataFile, RemovedFile

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Kinds of the ledger's rows in `imports`: a data file DST took in, one it removed because SRC had.
TAKEN = "sync"
MIRRORED = "sync-removed"
#: A ledger row to write: (kind, root, path, bytes, rows).
Entry = tuple[str, "str | None", str, int, int]


@functools.cache
def _ledger_partition() -> tuple[tuple[str, str], ...]:
    return tuple(RunConfig.of({"type": "imports"}, {"type": TAKEN}).partition.items())


def ledger_partition() -> dict[str, str]:
    """The partition of the `imports` table that holds a warehouse's sync ledger (as importers
    keep theirs: dataset `imports`, agent the kind)."""
    return dict(_ledger_partition())


def is_ledger_file(f: DataFile) -> bool:
    """Whether `f` is a file of a warehouse's own sync ledger (never copied by a sync)."""
    return f.table == "imports" and dict(f.partition) == ledger_partition()


def location(wh: Engine) -> str:
    """Where `wh` is, normalised (an absolute path on local disk), as its ledger rows name SRC."""
    store = wh.store
    return store.root if store.is_local else f"{store.protocol}://{store.root.lstrip('/')}"


def ledger_rows(
    wh: Engine, kinds: Iterable[str] = (TAKEN, MIRRORED), roots: Iterable[str] | None = None
) -> list[tuple[str, str | None, str]]:
    """(kind, root, path) of the rows of `wh`'s sync ledger of `kinds` (and of `roots`, if given).
    Reads the ledger's files only (at once on a remote store), not a view over every file: DuckDB's
    views over 3,000 files cost a repeated sync 0.3 s to define."""
    files = wh.snapshot.table_files("imports", ledger_partition())
    if not files:
        return []
    cols = ["kind", "root", "source"]
    if wh.store.is_local:
        tables = [pq.read_table(wh.store.full(f.path), columns=cols) for f in files]
    else:
        blobs = wh.store.read_many([f.path for f in files])
        missing = [p for p, data in blobs.items() if data is None]
        if missing:
            raise FileNotFoundError(f"{wh.url}: {missing[0]} of its sync ledger is missing; run `warehouse doctor`")
        tables = [pq.read_table(arrow_reader(blobs[f.path]), columns=cols) for f in files]  # type: ignore[arg-type]
    t = pa.concat_tables(tables)
    keep = pc.is_in(t.column("kind"), value_set=pa.array(list(kinds), pa.string()))
    if roots is not None:
        keep = pc.and_(keep, pc.is_in(t.column("root"), value_set=pa.array(list(roots), pa.string())))
    t = t.filter(pc.fill_null(keep, False))
    return list(zip(*(t.column(c).to_pylist() for c in cols)))


def ledger_file(
    src: Engine, dst: Engine, add: Iterable[DataFile], remove: Iterable[RemovedFile], record: Iterable[Entry] = ()
) -> DataFile | None:
    """The ledger rows of one sync commit (the files it takes in and removes, and `record`) as a
    data file of DST; None if there are none."""
    from warehouse.engine.datafiles import write_data_file

    root = location(src)
    entries = [
        *((TAKEN, root, f.path, f.bytes, f.rows) for f in add),
        *((MIRRORED, root, r.path, 0, 0) for r in remove),
        *record,
    ]
    if not entries:
        return None
    now = datetime.now(UTC)
    schema = catalog().table("imports")
    rows = [(kind, r, path, path, size, n, now) for kind, r, path, size, n in entries]
    part = ledger_partition()
    table = pa.Table.from_batches([rows_to_batch(schema, part, rows)], schema=schema.arrow)
    with dst.store.errors():
        return write_data_file(dst, "imports", dict(part), table)
