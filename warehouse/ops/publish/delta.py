"""Publication in place: every warehouse table is also a Delta table over the same Parquet files.

    <root>/<table>/_delta_log/                    the table's Delta log (written with delta-rs)
    <root>/<table>/dataset=.../part-....parquet    the warehouse's own data files, named by the log
    <root>/<table>/dataset=.../delta-*.parquet     rows the view shows that no data file holds as such

The manifest stays the source of truth. Publishing a table brings its Delta log to the warehouse's
current version in one Delta commit: the files the latest Delta version names that left the
snapshot are removed, the snapshot's files it lacks are added (same paths, same partition values,
row counts and the manifest's min/max/null statistics). Each commit carries the Delta application
transaction `warehouse` whose version is the warehouse version it reflects
(`DeltaTable.transaction_version("warehouse")`), so:

- a re-run after a crash at any point commits nothing twice (it reads that version first; a commit
  is one put of one file, and files are staged before it);
- two publishers at once: each commit is conditional on the Delta version it was computed from
  (delta-rs' own retries are off); the loser reads the log again and commits the difference, or
  nothing if the log already reflects its version or a newer one. A log never goes back.
- a commit whose answer was lost (S3) and that did land is recognised by its transaction version.

**The same rows as the views.** A Delta reader sees every row of every file the log names, while
the warehouse's views hide two kinds of rows. Both are handled by a *derived* file, written in its
partition's folder as `delta-*.parquet` and named by its content (so a re-run writes the same name), which the log names
instead of (or beside) the data files:

- rows of superseded adds (an execution id added again: the later add wins): a data file of
  executions, messages or attacks holding such rows is published as a derived copy without them;
- running executions: the `executions` view shows the latest revision of each execution still in
  flight (from `executions_live`) while it has no final row; those rows go in one derived file per
  partition of the `executions` Delta table. `executions_live` itself is published raw, every
  revision, as its table.

Batch results never need either, so a warehouse of batch runs publishes without writing any data.
Compaction publishes as one Delta commit per table whose actions have `dataChange=false`; vacuum
keeps every file the latest Delta version of a table names.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.core.errors import PublishFailed
from warehouse.core.partition_paths import partition_dir
from warehouse.core.schemas import catalog
from warehouse.core.storage import Store
from warehouse.engine import keys, reader
from warehouse.engine.datafiles import PARQUET_OPTIONS, read_data_file
from warehouse.manifest import Commit, Snapshot, commit_name

if TYPE_CHECKING:
    from deltalake import DeltaTable

    from warehouse.engine.engine import Engine

#: The Delta application-transaction id of publication; its version is the warehouse version.
APP_ID = "warehouse"
#: How derived files are named (in their partition's folder: `derived_path`).
DERIVED_PREFIX = "delta-"
DELTA_LOG = "_delta_log"
#: Warehouse operations that move rows between files without changing them (`dataChange=false`).
REWRITE_OPERATIONS = frozenset({"compact"})
RETRIES = 8
#: At most this many warehouse commits are read to tell a compaction's Delta commit (`dataChange`
#: false) from a data change; a longer range publishes `dataChange` true, which is always correct.
DATA_CHANGE_SCAN = 64


@dataclass
class TablePublication:
    """What publishing one table did."""

    table: str
    warehouse_version: int  # the version the table's Delta log reflects now
    delta_version: int | None  # its latest Delta version (None: nothing published)
    added: int = 0  # files added by this publication's commit
    removed: int = 0
    derived_files: int = 0  # derived files written (rows no data file holds as the view shows them)
    derived_bytes: int = 0
    committed: bool = False  # False: the log already reflected this version (or a newer one)
    data_change: bool = True

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PublishReport:
    """What `publish` did, per table."""

    format: str
    url: str
    version: int
    tables: dict[str, TablePublication] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def commits(self) -> int:
        return sum(t.committed for t in self.tables.values())

    @property
    def derived_bytes(self) -> int:
        """Bytes of data written (derived files only: the data files themselves are never copied)."""
        return sum(t.derived_bytes for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "url": self.url,
            "version": self.version,
            "commits": self.commits,
            "derived_bytes": self.derived_bytes,
            "seconds": round(self.seconds, 3),
            "tables": {t: p.to_json() for t, p in self.tables.items()},
        }


# -- locations -------------------------------------------------------------------------------------
# delta-rs turns a local path into a URL: these characters make it panic or read another directory.
_BAD_LOCAL_PATH = re.compile(r"[\[\]^|\\]|%[0-9A-Fa-f]{2}")


def table_uri(store: Store, table: str) -> str:
    """The URI delta-rs opens for `table`'s Delta table (the table's folder in the warehouse)."""
    if store.is_local:
        path = store.full(table)
        bad = _BAD_LOCAL_PATH.search(path)
        if bad:
            raise PublishFailed(
                f"the Delta library (delta-rs) cannot use the local path {path!r}: it reads {bad.group(0)!r} in it "
                "as URL syntax; move the warehouse to a path without '[', ']', '^', '|', '\\' or %XX to publish it"
            )
        return path
    return store.reader_path(table)


def storage_options(store: Store) -> dict[str, str] | None:
    """delta-rs storage options for the warehouse's store: its credentials and endpoint, and S3
    commits made with a conditional put (`If-None-Match`), so two commits of one version never both land."""
    opts = store.polars_storage_options()
    if opts is None:
        return None
    if store.is_s3:
        opts = {**opts, "conditional_put": "etag"}
    return opts


def delta_schema(table: str) -> pa.Schema:
    """The Arrow schema of `table`'s Delta table: the columns of `schemas/tables.yaml`, in order
    (without the Parquet field ids, which Delta does not use without column mapping)."""
    return pa.schema([pa.field(f.name, f.type, nullable=f.nullable) for f in catalog().table(table).arrow])


def _delta_path(table: str, path: str) -> str:
    """The Delta `add.path` of a warehouse file, relative to the table's folder, as delta-rs takes it:
    the plain path (delta-rs URI-encodes it in the log: a `%2F` of an escaped partition value is
    `%252F` there, as the protocol says)."""
    return path[len(table) + 1 :] if path.startswith(table + "/") else path


def _file_path(table: str, delta_path: str) -> str:
    """The warehouse-relative path of an `add.path` as delta-rs reports it (URI-encoded)."""
    return f"{table}/{urllib.parse.unquote(delta_path)}"


# -- what a table's Delta version should name -------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One file a Delta version names: a warehouse data file or a derived file."""

    path: str  # warehouse-relative
    partition: Mapping[str, str]
    rows: int
    bytes: int
    stats: Mapping[str, Any]
    derived: bool = False


def _stat_ok(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and not math.isfinite(v))


def _stats_json(rows: int, stats: Mapping[str, Any], schema: pa.Schema) -> str:
    """Delta per-file statistics from the manifest's: numRecords, nullCount, and min/max of string
    and integer columns (timestamps and floats are left out: Delta truncates timestamps to
    milliseconds, and a max rounded down would make readers skip rows)."""
    out: dict[str, Any] = {"numRecords": rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    names = set(schema.names)
    for col, st in stats.items():
        if col not in names or not isinstance(st, Mapping):
            continue
        t = schema.field(col).type
        if st.get("nulls") is not None:
            out["nullCount"][col] = int(st["nulls"])
        if (pa.types.is_string(t) or pa.types.is_integer(t)) and _stat_ok(st.get("min")) and _stat_ok(st.get("max")):
            out["minValues"][col], out["maxValues"][col] = st["min"], st["max"]
    return json.dumps(out, separators=(",", ":"))


def derived_path(table: str, partition: Mapping[str, str], name: str) -> str:
    """Where a derived file goes: in its partition's folder (Delta readers that infer hive partitions
    from paths, such as Polars, need every file at a partition's depth), named `delta-*.parquet`
    (never `part-*`: vacuum and doctor tell it from a data file by its name)."""
    return f"{partition_dir(table, partition, list(catalog().partition_columns))}/{name}"


def is_derived(rel: str) -> bool:
    """Whether a warehouse-relative path is a publication's derived file."""
    return rel.rsplit("/", 1)[-1].startswith(DERIVED_PREFIX) and rel.endswith(".parquet")


def _write_derived(
    store: Store, table: str, partition: Mapping[str, str], name: str, rows: pa.Table
) -> tuple[str, int, bool]:
    """Write a derived file unless it exists (same name, same rows); returns (path, bytes, written)."""
    rel = derived_path(table, partition, name)
    if store.exists(rel):
        return rel, _size(store, rel), False
    rows = rows.cast(catalog().table(table).arrow)
    if store.is_local:
        path = store.full(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # `.tmp-*` beside data files: a publisher killed mid-write leaves what vacuum deletes as an orphan
        tmp = os.path.join(os.path.dirname(path), f".tmp-{name}-{os.getpid()}")
        pq.write_table(rows, tmp, **PARQUET_OPTIONS)
        os.replace(tmp, path)  # a reader never sees half a file under the final name
    else:
        sink = pa.BufferOutputStream()
        pq.write_table(rows, sink, **PARQUET_OPTIONS)
        with store.errors():
            store.write_bytes(rel, sink.getvalue().to_pybytes())
    return rel, _size(store, rel), True


def _size(store: Store, rel: str) -> int:
    size: int = store.call(store.fs.size, store.full(rel))
    return size


#: What a Delta log's own files are named (a commit, a checkpoint, its hint); anything else in the
#: folder, such as delta-rs' `_commit_<uuid>.json.tmp` of a commit in flight or killed, is not the log.
_LOG_FILE = re.compile(r"^\d{20}\.(json|crc|checkpoint(\.\d+\.\d+)?\.parquet)$|^_last_checkpoint$")


def log_present(store: Store, table: str) -> bool:
    """Whether `table`'s folder holds a `_delta_log` with a commit or checkpoint in it (a folder
    holding only the temp file of a first commit that was killed, or is still in flight, is no log)."""
    return any(_LOG_FILE.match(n.rsplit("/", 1)[-1]) for n in store.list_names(f"{table}/{DELTA_LOG}"))


def _content_name(prefix: str, *parts: str) -> str:
    h = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]
    return f"{DERIVED_PREFIX}{prefix}-{h}.parquet"


def _live_rows(store: Store, snapshot: Snapshot) -> pa.Table | None:
    """The rows the `executions` view shows for executions still in flight (their latest revision,
    while no final row exists), or None if none is in flight."""
    if not snapshot.table_files("executions_live"):
        return None
    con = reader.connect(store, snapshot)
    try:
        # The live branch of the `executions` view (schemas/views/10_executions.sql), verbatim.
        rows = con.sql(
            "select * exclude (rn) from (select *, row_number() over (partition by execution_id order by revision desc) "
            "as rn from raw_executions_live) as live where rn = 1 and not exists "
            "(select 1 from raw_executions_final_of_live f where f.execution_id = live.execution_id) "
            "order by execution_id"
        ).to_arrow_table()
    finally:
        con.close()
    return rows if rows.num_rows else None


def target(
    engine: Engine,
    snapshot: Snapshot,
    table: str,
    hidden: keys.Hidden,
    report: TablePublication,
    *,
    dry: bool = False,
) -> dict[str, Entry]:
    """The files (warehouse-relative path -> Entry) that `table`'s Delta version for `snapshot`
    names; derived files are written here (before the commit that names them). `dry` writes
    nothing: the paths are the same (derived files are named by their content), and the Entry of
    a derived file that does not exist has `bytes` -1 (doctor compares a log with this)."""
    store = engine.store
    out: dict[str, Entry] = {}
    for f in snapshot.table_files(table):
        n = hidden.count(f)
        if n == 0:
            out[f.path] = Entry(f.path, f.partition, f.rows, f.bytes, f.stats)
            continue
        if n == f.rows:
            continue  # every row belongs to superseded adds: the view shows none of them
        # The superseded adds of a file only grow while it is active: the count names the content.
        name = _content_name("kept", f.path, str(n))
        rel = derived_path(table, f.partition, name)
        if dry and not store.exists(rel):
            out[rel] = Entry(rel, f.partition, f.rows - n, -1, {}, derived=True)
            continue
        if store.exists(rel):
            out[rel] = Entry(rel, f.partition, f.rows - n, _size(store, rel), {}, derived=True)
            continue
        rows = hidden.drop(f, read_data_file(engine, f))
        rel, size, written = _write_derived(store, table, f.partition, name, rows)
        report.derived_files += written
        report.derived_bytes += size if written else 0
        out[rel] = Entry(rel, f.partition, rows.num_rows, size, {}, derived=True)
    if table == "executions":
        live = _live_rows(store, snapshot)
        if live is not None:
            pcols = list(catalog().partition_columns)
            keys_ = live.select(pcols).to_pylist()
            groups: dict[tuple[str, ...], list[int]] = {}
            for i, k in enumerate(keys_):
                groups.setdefault(tuple(k[c] for c in pcols), []).append(i)
            ids = live.column("execution_id").to_pylist()
            revs = live.column("revision").to_pylist()
            for k, idx in sorted(groups.items()):
                part = dict(zip(pcols, k))
                rows = live.take(pa.array(idx, pa.int64()))
                name = _content_name("live", *k, *(f"{ids[i]}@{revs[i]}" for i in idx))
                if dry:
                    rel = derived_path(table, part, name)
                    size = _size(store, rel) if store.exists(rel) else -1
                    out[rel] = Entry(rel, part, rows.num_rows, size, {}, derived=True)
                    continue
                rel, size, written = _write_derived(store, table, part, name, rows)
                report.derived_files += written
                report.derived_bytes += size if written else 0
                out[rel] = Entry(rel, part, rows.num_rows, size, {}, derived=True)
    return out


# -- the Delta side ----------------------------------------------------------------------------------
def open_table(uri: str, options: Mapping[str, str] | None, *, version: int | None = None) -> DeltaTable | None:
    """The Delta table at `uri` (at `version`), or None if there is none."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    opts = dict(options) if options else None
    # Not `DeltaTable.is_deltatable`: it holds the GIL while it waits for S3, which freezes every
    # other thread of the process (a writer's, or the one its S3 requests need to finish).
    try:
        return DeltaTable(uri, version=version, storage_options=opts)
    except TableNotFoundError:
        return None


def published_version(dt: DeltaTable) -> int | None:
    """The warehouse version `dt`'s latest Delta version reflects (None: not a publication's log)."""
    v = dt.transaction_version(APP_ID)
    return None if v is None else int(v)


def delta_files(dt: DeltaTable, table: str) -> set[str]:
    """The warehouse-relative paths of the files `dt`'s version names."""
    batch = dt.get_add_actions(flatten=True)
    col = pa.table(batch).column("path") if not isinstance(batch, pa.Table) else batch.column("path")
    return {_file_path(table, p) for p in col.to_pylist()}


def _check_ours(uri: str, dt: DeltaTable, table: str) -> int:
    """The published version of `dt`, or PublishFailed if the log was not written by publication."""
    v = published_version(dt)
    if v is None:
        raise PublishFailed(
            f"{uri!r} holds a Delta log that this warehouse did not write (no '{APP_ID}' transaction in it); "
            f"publication never touches a foreign log: move it away, or publish with rebuild=True "
            f"(`warehouse publish delta --rebuild`) to replace it with the log of warehouse table {table!r}"
        )
    return v


def _actions(
    table: str, want: Mapping[str, Entry], have: Iterable[str], schema: pa.Schema, data_change: bool
) -> tuple[list[Any], int, int]:
    from deltalake.transaction import AddAction, RemoveAction

    now = int(time.time() * 1000)
    have = set(have)
    removes = [
        RemoveAction(path=_delta_path(table, p), data_change=data_change, deletion_timestamp=now)
        for p in sorted(have - want.keys())
    ]
    adds = [
        AddAction(
            _delta_path(table, e.path),
            e.bytes,
            dict(e.partition),
            now,
            data_change,
            _stats_json(e.rows, e.stats, schema),
        )
        for p, e in sorted(want.items())
        if p not in have
    ]
    return [*removes, *adds], len(removes), len(adds)


class _Retry(Exception):
    """Read the log again and start over (another publisher got there first, or the schema grew)."""


def _create(
    engine: Engine, table: str, uri: str, options: Mapping[str, str] | None, want: Mapping[str, Entry], props: Any
) -> tuple[int, int, bool]:
    """Create `table`'s Delta log naming `want`; returns (added, removed, data_change)."""
    from deltalake import Schema
    from deltalake.transaction import create_table_with_add_actions

    schema = delta_schema(table)
    if log_present(engine.store, table):
        if open_table(uri, options) is not None:
            raise _Retry  # another publisher created the table since we looked: read it
        # delta-rs sees no table in a log folder that holds commits: damaged; never write over it
        raise PublishFailed(
            f"{uri}/{DELTA_LOG} holds files but no readable Delta table; "
            "run `warehouse publish delta --rebuild` to write it again"
        )
    actions, _, n_add = _actions(table, want, (), schema, True)
    create_table_with_add_actions(
        uri,
        Schema.from_arrow(schema),
        actions,
        mode="error",
        partition_by=list(catalog().partition_columns),
        name=table,
        description=catalog().table(table).doc,
        storage_options=dict(options) if options else None,
        commit_properties=props,
    )
    return n_add, 0, True


def _append(
    engine: Engine, table: str, dt: DeltaTable, done: int, version: int, want: Mapping[str, Entry], props: Any
) -> tuple[int, int, bool] | None:
    """Commit to `dt` the difference between the files it names and `want`; returns (added, removed,
    data_change), or None if there is no difference (the log already names exactly these files: it
    reflects this version too, and no empty Delta commit is made)."""
    schema = delta_schema(table)
    if _schema_grew(dt, schema):
        dt.alter.add_columns(_new_fields(dt, schema))  # schema evolution: its own Delta commit
        raise _Retry
    have = delta_files(dt, table)
    if have == want.keys():
        return None
    data_change = _data_change(engine, table, done, version)
    actions, n_rm, n_add = _actions(table, want, have, schema, data_change)
    dt.create_write_transaction(
        actions, mode="append", schema=schema, partition_by=list(catalog().partition_columns), commit_properties=props
    )
    return n_add, n_rm, data_change


def publish_table(
    engine: Engine,
    table: str,
    snapshot: Snapshot,
    *,
    hidden: keys.Hidden,
    rebuild: bool = False,
) -> TablePublication:
    """Bring `table`'s Delta log to `snapshot` (see the module docstring); idempotent."""
    from deltalake.exceptions import CommitFailedError
    from deltalake.transaction import CommitProperties, Transaction

    store = engine.store
    uri = table_uri(store, table)
    options = storage_options(store)
    report = TablePublication(table, snapshot.version, None)
    if rebuild:
        remove_log(store, table)
    want: dict[str, Entry] | None = None
    for _attempt in range(RETRIES):
        dt = open_table(uri, options)
        done = -1
        if dt is not None:
            done = _check_ours(uri, dt, table)
            if done >= snapshot.version:
                report.warehouse_version, report.delta_version = done, dt.version()
                return report
        if want is None:
            want = target(engine, snapshot, table, hidden, report)
        meta = {"warehouse.version": snapshot.version, "warehouse.table": table}
        txn = [Transaction(APP_ID, snapshot.version)]
        props = CommitProperties(custom_metadata=meta, app_transactions=txn, max_commit_retries=0)
        try:
            if dt is None:
                done_ = _create(engine, table, uri, options, want, props)
            else:
                maybe = _append(engine, table, dt, done, snapshot.version, want, props)
                if maybe is None:
                    report.warehouse_version, report.delta_version = done, dt.version()
                    return report
                done_ = maybe
        except (_Retry, CommitFailedError):
            continue  # another publisher committed this Delta version (or the schema grew): read the log again
        except Exception as exc:
            if _is_conflict(exc):
                continue
            if not _landed(uri, options, snapshot.version):
                raise
            # The commit's answer was lost (S3: the connection broke after the put): its transaction
            # in the log says it landed, so it counts as this publication's commit, made once.
            have = delta_files(dt, table) if dt is not None else set()
            _, n_rm, n_add = _actions(table, want, have, delta_schema(table), True)
            done_ = (n_add, n_rm, _data_change(engine, table, done, snapshot.version) if dt is not None else True)
        report.added, report.removed, report.data_change = done_
        report.committed = True
        dt = open_table(uri, options)
        report.delta_version = dt.version() if dt is not None else None
        return report
    raise PublishFailed(f"{uri!r}: other publishers kept committing to this Delta log; run publish again")


def _landed(uri: str, options: Mapping[str, str] | None, version: int) -> bool:
    """Whether the Delta log at `uri` now reflects warehouse `version` (a commit whose answer was lost)."""
    try:
        dt = open_table(uri, options)
    except Exception:  # the log cannot be read either: the commit's error is the one to report
        return False
    done = None if dt is None else published_version(dt)
    return done is not None and done >= version


def _is_conflict(exc: Exception) -> bool:
    """Whether delta-rs refused the commit because its version was taken (a concurrent publisher)."""
    text = str(exc).lower()
    return (
        type(exc).__name__ in ("CommitFailedError",)
        or "already exists" in text
        or "version" in text
        and "exists" in text
    )


def _schema_grew(dt: DeltaTable, schema: pa.Schema) -> bool:
    have = {f.name for f in dt.schema().fields}
    return any(name not in have for name in schema.names)


def _new_fields(dt: DeltaTable, schema: pa.Schema) -> list[Any]:
    from deltalake import Field, Schema

    have = {f.name for f in dt.schema().fields}
    delta = Schema.from_arrow(schema)
    return [Field(f.name, f.type, nullable=True) for f in delta.fields if f.name not in have]


def touched(commit: Commit) -> set[str]:
    """The tables whose published rows `commit` may change."""
    out = {f.table for f in commit.add} | {r.table for r in commit.remove}
    if keys.SUPERSEDED in out:
        out |= set(keys.KEYED_TABLES)  # superseded adds hide rows of these
    if "executions_live" in out:
        out.add("executions")  # running executions show in the executions view
    return out & set(catalog().tables)


def _data_change(engine: Engine, table: str, after: int, upto: int) -> bool:
    """False if every warehouse commit after..upto that touched `table` only moved rows between
    files (compaction). Commits that left `table` alone do not count: a table's log records the
    last version that changed it, so the range usually holds other tables' writes too."""
    if after < 0 or upto <= after or upto - after > DATA_CHANGE_SCAN:
        return True  # (a long range: reading every commit in it costs more than the flag is worth)
    names = [commit_name(v) for v in range(after + 1, upto + 1)]
    try:
        blobs = engine.store.read_many(names)
        commits = [Commit.from_bytes(b, name=n) for n, b in blobs.items() if b is not None]
    except Exception:  # unreadable commits: say the data changed (always true to say)
        return True
    if len(commits) != len(names):
        return True  # folded commits (vacuum): likewise
    return not all(c.operation in REWRITE_OPERATIONS for c in commits if table in touched(c))


def remove_log(store: Store, table: str) -> int:
    """Delete `table`'s Delta log (for a rebuild); returns the number of log files deleted."""
    rel = f"{table}/{DELTA_LOG}"
    names = store.list_file_info(rel)
    for p in sorted(names):
        store.remove(p)
    if store.is_local and os.path.isdir(store.full(rel)):
        import shutil

        shutil.rmtree(store.full(rel), ignore_errors=True)
    return len(names)


def tables(names: Iterable[str] | str | None = None) -> list[str]:
    """The tables to publish: every table of `schemas/tables.yaml`, or the named ones (checked)."""
    known = list(catalog().tables)
    if names is None:
        return known
    chosen = [names] if isinstance(names, str) else list(names)
    for t in chosen:
        if t not in known:
            raise PublishFailed(f"unknown table {t!r}; tables: {', '.join(known)}")
    return chosen


def publish(
    engine: Engine, *, tables_: Iterable[str] | str | None = None, rebuild: bool = False, refresh: bool = True
) -> PublishReport:
    """Bring every table's Delta log (or those of `tables_`) to the warehouse's current version;
    `rebuild` deletes each log first and writes it again from the current snapshot."""
    t0 = time.perf_counter()
    if refresh and not engine.read_only:
        engine.refresh()
    snapshot = engine.snapshot
    hidden = keys.Hidden(engine.keys, engine.store, snapshot)
    report = PublishReport("delta", engine.url, snapshot.version)
    for t in tables(tables_):
        report.tables[t] = publish_table(engine, t, snapshot, hidden=hidden, rebuild=rebuild)
    report.seconds = time.perf_counter() - t0
    return report


def referenced(engine: Engine) -> set[str]:
    """Warehouse-relative paths of every file the latest Delta version of a published table names
    (vacuum keeps them). A table whose log cannot be read keeps nothing extra."""
    store = engine.store
    options = storage_options(store)
    out: set[str] = set()
    for t in catalog().tables:
        if not log_present(store, t):
            continue
        dt = open_table(table_uri(store, t), options)
        if dt is not None and published_version(dt) is not None:
            out |= delta_files(dt, t)
    return out


__all__ = [
    "APP_ID",
    "DERIVED_PREFIX",
    "derived_path",
    "is_derived",
    "PublishReport",
    "TablePublication",
    "delta_files",
    "delta_schema",
    "open_table",
    "publish",
    "publish_table",
    "published_version",
    "referenced",
    "storage_options",
    "table_uri",
    "target",
    "touched",
]
