"""Execution ids are keys: a later add of a known execution id replaces the earlier one everywhere.

Every add of an execution gets a `write_id`, carried by its `executions` row and by its messages and
attacks. A writer committing rows whose ids may already be stored (ids the caller gave, imports, a
WAL's recovery) looks up the earlier adds of those ids, in the snapshot and in its own batch, and
commits with its rows one `superseded` row per earlier add: (execution_id, write_id). Every view,
`Warehouse.scan` and export hides the rows of a superseded add, so exactly one add of each id shows
at every version: the one committed last (the log orders commits; within a batch, the later add).
Two writers adding the same id at once: the second to commit meets the first's commit on its way
(`Log.commit`'s conflict check), looks again and commits the corrected list.

What it costs:
- ids this package generates (`add_execution` without `execution_id`) are new by construction:
  no lookup, no `superseded` row, nothing for readers;
- given ids: one read of the (execution_id, write_id) columns of the executions files whose
  manifest min/max of execution_id can hold one of them, cached per file for the life of the
  `Warehouse` object, then an in-memory membership test per flush;
- readers: nothing while no add was superseded; then an anti-join, only over the files whose
  write_id range overlaps a superseded add of the same partition (write ids are time-ordered, so a
  flush's files cover a narrow range). Compaction leaves the superseded adds' rows out of the files
  it writes and records up to which version (`APPLIED`), so those files skip the anti-join until
  one of their adds is superseded again (BENCHMARKS.md, "Execution-id keys").
"""

from __future__ import annotations

import bisect
import logging
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.core.schemas import catalog
from warehouse.engine.datafiles import checked, parquet_file
from warehouse.manifest import DataFile, Snapshot

if TYPE_CHECKING:
    import polars as pl

    from warehouse.core.storage import Store

log = logging.getLogger("warehouse")

#: The table of superseded adds, and the tables whose rows belong to one add of an execution.
SUPERSEDED = "superseded"
KEYED_TABLES = ("executions", "messages", "attacks")
#: Random low bits of a write id (below them: microseconds since the epoch, good until 2112).
RANDOM_BITS = 11
_KEY_COLUMNS = ["execution_id", "write_id"]


class WriteIds:
    """Write ids of one writer: time-ordered (microseconds << RANDOM_BITS | random bits) and strictly
    increasing, so that a later add in the same writer always has the larger id."""

    def __init__(self) -> None:
        self._rng = random.Random(os.urandom(16))
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        wid = (time.time_ns() // 1000) << RANDOM_BITS | self._rng.getrandbits(RANDOM_BITS)
        with self._lock:
            if wid <= self._last:
                wid = self._last + 1
            self._last = wid
        return wid


class KeysMoved(Exception):
    """Raised inside a commit attempt when a commit that landed meanwhile added an execution id this
    commit also adds: the list of superseded adds must be made again. Never leaves this module."""


# -- finding earlier adds -------------------------------------------------------------------------
def _read_keys(store: Store, f: DataFile) -> pa.Table:
    """(execution_id, write_id) of every row of a file of a keyed table or of `superseded` (write_id
    NULL in files written before it existed). Raises CorruptDataFile naming a damaged file."""
    pf = parquet_file(store, f)  # pages checked against their checksums
    present = set(pf.schema_arrow.names)
    t = checked(f, lambda: pf.read(columns=[c for c in _KEY_COLUMNS if c in present]))
    if "write_id" not in present:
        t = t.append_column("write_id", pa.nulls(t.num_rows, pa.int64()))
    return t.select(_KEY_COLUMNS).cast(pa.schema([("execution_id", pa.string()), ("write_id", pa.int64())]))


class KeyCache:
    """Per `Warehouse`: the key columns of data files already read (files are immutable)."""

    def __init__(self) -> None:
        self._tables: dict[str, pa.Table] = {}
        self._lock = threading.Lock()

    def keys(self, store: Store, f: DataFile) -> pa.Table:
        with self._lock:
            t = self._tables.get(f.path)
        if t is None:
            t = _read_keys(store, f)
            with self._lock:
                self._tables[f.path] = t
        return t

    def forget_except(self, paths: Container[str]) -> None:
        """Drop the cached files that are not in `paths` (files that left the snapshot)."""
        with self._lock:
            for p in [p for p in self._tables if p not in paths]:
                del self._tables[p]


def _may_hold(f: DataFile, sorted_ids: Sequence[str]) -> bool:
    """Whether an executions file can hold one of `sorted_ids`, by its manifest min/max (files written
    before the column had stats can hold anything)."""
    st = f.stats.get("execution_id")
    if not st:
        return True
    if st.get("min") is None:  # (execution_id is never null: an empty file)
        return False
    i = bisect.bisect_left(sorted_ids, st["min"])
    return i < len(sorted_ids) and sorted_ids[i] <= st["max"]


def _matching(
    cache: KeyCache, store: Store, files: Iterable[DataFile], id_set: pa.Array, sorted_ids: Sequence[str]
) -> list[tuple[tuple[str, ...], pa.Table]]:
    """(partition, rows of keys among `id_set`) of each file of `files` that holds some."""
    pcols = catalog().partition_columns
    out = []
    for f in files:
        if f.table != "executions" or not _may_hold(f, sorted_ids):
            continue
        t = cache.keys(store, f)
        hit = t.filter(pc.is_in(t.column("execution_id"), value_set=id_set))
        if hit.num_rows:
            out.append((tuple(f.partition[c] for c in pcols), hit))
    return out


def _pairs(t: pa.Table) -> set[tuple[str, int | None]]:
    return set(zip(t.column("execution_id").to_pylist(), t.column("write_id").to_pylist()))


# -- reading ---------------------------------------------------------------------------------------
def _range(f: DataFile) -> tuple[Any, Any, bool]:
    """(min, max, has nulls) of a file's write_id (an old file without the column: all nulls)."""
    st = f.stats.get("write_id")
    if st is None:
        return None, None, True
    return st.get("min"), st.get("max"), bool(st.get("nulls"))


#: Manifest stats entry of a file that compaction rewrote without the rows of the adds superseded
#: up to a version: {"applied": version}. Superseded adds committed later may still be in it.
APPLIED = "_superseded"


def split(
    files: Sequence[DataFile], superseded: Sequence[DataFile], added_in: Callable[[str], int | None] | None = None
) -> tuple[list[DataFile], list[DataFile]]:
    """`files` of a keyed table -> (files that hold no superseded add, files that may), by partition
    and the manifest's write_id ranges; a file compaction rewrote without the adds superseded up to
    a version is only checked against later ones (their versions from `added_in`, the snapshot's).
    With nothing superseded, all files are in the first list."""
    if not superseded:
        return list(files), []
    pcols = catalog().partition_columns
    by_part: dict[tuple[str, ...], list[tuple[Any, Any, bool, int]]] = defaultdict(list)
    for s in superseded:
        v = added_in(s.path) if added_in is not None else None
        by_part[tuple(s.partition[c] for c in pcols)].append((*_range(s), v if v is not None and v >= 0 else 1 << 62))
    clean: list[DataFile] = []
    maybe: list[DataFile] = []
    for f in files:
        ranges = by_part.get(tuple(f.partition[c] for c in pcols))
        lo, hi, nulls = _range(f)
        applied = (f.stats.get(APPLIED) or {}).get("applied", -1)
        hit = ranges is not None and any(
            v > applied and ((snulls and nulls) or (slo is not None and lo is not None and lo <= shi and slo <= hi))
            for slo, shi, snulls, v in ranges
        )
        (maybe if hit else clean).append(f)
    return clean, maybe


def hide_sql(rows_sql: str) -> str:
    """A SELECT of `rows_sql`'s rows without those of superseded adds (reads view `raw_superseded`).

    The join hashes the write id alone (an integer; -1 stands for NULL in rows written before write
    ids existed) and compares execution ids only on a match, as a residual range condition: hashing
    both keys made a scores query over 200,000 executions a quarter slower."""
    return (
        f"select k.* from ({rows_sql}) as k anti join raw_superseded as s "
        "on coalesce(s.write_id, -1) = coalesce(k.write_id, -1) "
        "and s.execution_id >= k.execution_id and s.execution_id <= k.execution_id"
    )


def hide_polars(lf: pl.LazyFrame, superseded: pl.LazyFrame) -> pl.LazyFrame:
    """`lf` without the rows of superseded adds."""
    return lf.join(superseded.select(_KEY_COLUMNS).unique(), on=_KEY_COLUMNS, how="anti", nulls_equal=True)


# -- exports: the rows of one file without those of superseded adds ---------------------------------
def _flat(eids: pa.Array | pa.ChunkedArray, wids: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """One string per (execution_id, write_id): write ids are positive, so -1 stands for NULL."""
    return pc.binary_join_element_wise(eids, pc.cast(pc.fill_null(wids, -1), pa.string()), "\x00")


class Hidden:
    """The superseded adds of one snapshot, to drop their rows from data files being exported."""

    def __init__(self, cache: KeyCache, store: Store, snapshot: Snapshot) -> None:
        self.superseded = snapshot.table_files(SUPERSEDED)
        self.version = snapshot.version
        self._added_in = snapshot.added_in
        self._cache = cache
        self._store = store
        self._set: pa.Array | None = None
        self._counts: dict[str, int] = {}

    def _value_set(self) -> pa.Array:
        if self._set is None:
            parts = [self._cache.keys(self._store, f) for f in self.superseded]
            t = (
                pa.concat_tables(parts)
                if parts
                else pa.table({"execution_id": pa.array([], pa.string()), "write_id": pa.array([], pa.int64())})
            )
            self._set = pc.unique(_flat(t.column("execution_id"), t.column("write_id")).combine_chunks())
        return self._set

    def may_hide(self, f: DataFile) -> bool:
        """Whether `f` (of any table) may hold rows of a superseded add."""
        return f.table in KEYED_TABLES and bool(split([f], self.superseded, self._added_in)[1])

    def mask(self, rows: pa.Table) -> pa.Array | pa.ChunkedArray:
        """True for the rows (of a keyed table, with execution_id and write_id) of superseded adds."""
        return pc.is_in(_flat(rows.column("execution_id"), rows.column("write_id")), value_set=self._value_set())

    def count(self, f: DataFile) -> int:
        """How many rows of `f` belong to superseded adds (reads only its key columns, if at all)."""
        if not self.may_hide(f):
            return 0
        if f.path not in self._counts:
            self._counts[f.path] = pc.sum(self.mask(_read_keys(self._store, f))).as_py() or 0
        return self._counts[f.path]

    def drop(self, f: DataFile, rows: pa.Table) -> pa.Table:
        """`rows` (all of `f`) without those of superseded adds."""
        if not self.may_hide(f):
            return rows
        return rows.filter(pc.invert(self.mask(rows)))
