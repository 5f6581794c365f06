"""The engine: one object owning a warehouse's store, log and cached snapshot, the commit path, DuckDB
connections over the snapshot, row queries and id lookups.

Every feature (writers, analytics, agent state, maintenance, sync, importers, exporters) takes an
`Engine`; the public `Warehouse` facade owns one (`wh.engine`) and is never called back. Functions
that users call with a `Warehouse` accept either and take its engine with `of`.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from warehouse.core import arguments, records
from warehouse.core.errors import (
    ExecutionNotFound,
    InvalidArgument,
    InvalidArgumentType,
    NotAWarehouse,
    ReadOnlyWarehouse,
    WarehouseNotFound,
)
from warehouse.core.partition_filter import check_partition
from warehouse.core.schemas import catalog
from warehouse.core.storage import Store
from warehouse.engine import keys, reader
from warehouse.manifest import MANIFEST_DIR, Commit, DataFile, Listing, Log, Snapshot, replay, vacuum_hint, writer_info

if TYPE_CHECKING:
    import polars as pl


class Engine:
    """A warehouse at one URL: its store, its log and the cached snapshot that reads see.

    Thread-safe. `read_only` engines (opened at a past version) refuse commits. Not public API: its
    methods may change; use the `Warehouse` facade.
    """

    def __init__(
        self, store: Store, snapshot: Snapshot, *, read_only: bool, checkpoint_interval: int | None = None
    ) -> None:
        self.store = store
        self.log = Log(store, checkpoint_interval=checkpoint_interval)
        self._snapshot = snapshot
        self.read_only = read_only
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_version = -1
        self.keys = keys.KeyCache()  # execution-id columns of files read to find earlier adds
        self._sandbox: duckdb.DuckDBPyConnection | None = None
        self._sandbox_version = -1
        self._listeners: list[Callable[[Commit], None]] = []
        #: Names of `_manifest/_*` hint files when the engine was opened; None if not listed.
        self.manifest_hints: frozenset[str] | None = None

    def __repr__(self) -> str:
        ro = ", read-only" if self.read_only else ""
        return f"<Engine {self.store.url!r} version={self.version}{ro}>"

    @property
    def engine(self) -> Engine:
        """Itself: an engine can be passed wherever a `Warehouse` can."""
        return self

    # -- snapshot ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.store.url

    @property
    def snapshot(self) -> Snapshot:
        """The cached snapshot (the set of active files) that reads see."""
        return self._snapshot

    @property
    def version(self) -> int:
        """The version of the cached snapshot."""
        return self._snapshot.version

    def refresh(self) -> int:
        """Read the commits made since the cached snapshot; returns the new version (a read-only
        engine stays at its version). A snapshot more than a checkpoint interval behind is rebuilt
        from the newest checkpoint instead."""
        if self.read_only:
            return self.version
        with self._lock:
            self._snapshot, _ = self.log.refresh(self._snapshot, catch_up=True)
            return self._snapshot.version

    def refresh_commits(self) -> tuple[int, list[Commit]]:
        """`refresh`, also returning the new commits it read (every one since the cached version,
        unless vacuum folded them meanwhile: then none)."""
        if self.read_only:
            return self.version, []
        with self._lock:
            self._snapshot, new = self.log.refresh(self._snapshot)
            return self._snapshot.version, new

    def files(self, table: str, where: Mapping[str, str] | None = None) -> list[DataFile]:
        """The active data files of `table`, optionally only partitions matching `where` (a dict of
        partition column -> value; InvalidArgument for a key that is not a partition column)."""
        catalog().table(table)
        return self._snapshot.table_files(table, check_partition(where))

    # -- committing --------------------------------------------------------------------------------
    def require_writable(self) -> None:
        """Refuse writes to a time-travel snapshot, and to a store without create-if-absent writes
        (probed once per store: a commit there could silently overwrite another)."""
        if self.read_only:
            raise ReadOnlyWarehouse(
                f"this warehouse was opened at version {self.version} (time travel) and is read-only; "
                "open it without version=/as_of= to write"
            )
        with self.store.errors():
            self.store.check_conditional_writes(MANIFEST_DIR)

    def commit(
        self,
        *,
        operation: str,
        writer: Mapping[str, Any],
        token: str | None,
        add: Iterable[DataFile] = (),
        remove: Iterable[Any] = (),
        token_since: int | None = None,
        info: Mapping[str, Any] | None = None,
        conflict: Callable[[Commit], str | None] | None = None,
    ) -> Commit:
        """Commit through the log, then bring the cached snapshot up to (at least) that commit."""
        self.require_writable()
        seen: list[Commit] = []
        commit = self.log.commit(
            self._snapshot,
            operation=operation,
            writer=writer,
            token=token,
            add=add,
            remove=remove,
            token_since=token_since,
            info=info,
            seen=seen,
            conflict=conflict,
        )
        with self._lock:
            base = self._snapshot
            if commit.version > base.version:
                # The commits between our snapshot and ours were read while committing: replay them
                # rather than reading them again (on S3 each read is a round trip).
                chain = {c.version: c for c in [*seen, commit] if c.version > base.version}
                if sorted(chain) == list(range(base.version + 1, commit.version + 1)):
                    self._snapshot = replay([chain[v] for v in sorted(chain)], base)
                else:
                    self._snapshot, _ = self.log.refresh(base)
        for listener in list(self._listeners):
            listener(commit)
        return commit

    def on_commit(self, listener: Callable[[Commit], None]) -> None:
        """Call `listener(commit)` after each commit this engine makes (in the committing thread, after
        the cached snapshot holds it). Listeners must be quick and must not raise: the commit is done.
        Automatic publication (`warehouse.ops.publish.auto`) uses it."""
        with self._lock:
            self._listeners.append(listener)

    # -- reading -----------------------------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with every view defined over the cached snapshot."""
        return reader.connect(self.store, self._snapshot)

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The engine's own DuckDB connection, its views over the cached snapshot."""
        with self._lock:
            if self._con is None or self._con_version != self.version:
                if self._con is None:
                    self._con = duckdb.connect()
                reader.define_views(self._con, self.store, self._snapshot)
                self._con_version = self.version
            return self._con

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Run SQL over the cached snapshot's views; returns a DuckDB relation. Full DuckDB SQL, run
        as given: pass values as `params`, never formatted into `query`."""
        con = self.connection()
        return con.sql(query, params=params) if params is not None else con.sql(query)

    def sql_sandboxed(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> duckdb.DuckDBPyRelation:
        """`sql` on a connection that reads this warehouse's files and nothing else, its
        configuration locked (`reader.connect(files_only=True)`): for the queries that embed a
        caller's `where` condition (analytics, compare, the exports' filters)."""
        with self._lock:
            if self._sandbox is None:
                self._sandbox = reader.connect(self.store, self._snapshot, files_only=True)
            elif self._sandbox_version != self.version:
                reader.define_views(self._sandbox, self.store, self._snapshot)
            self._sandbox_version = self.version
            con = self._sandbox
        return con.sql(query, params=params) if params is not None else con.sql(query)

    def scan(self, table: str, where: Mapping[str, str] | None = None) -> pl.LazyFrame:
        """A Polars LazyFrame over `table`'s files in the cached snapshot (only partitions matching
        `where`), without the rows of superseded adds (see `warehouse.engine.keys`)."""
        lf = reader.scan(self.store, self._snapshot, table, where)
        if table in keys.KEYED_TABLES and self._snapshot.table_files(keys.SUPERSEDED):
            lf = keys.hide_polars(lf, reader.scan(self.store, self._snapshot, keys.SUPERSEDED))
        return lf

    def records(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of `query` (over the views) as dicts."""
        cur = self.connection().execute(query, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def lookup(
        self, table: str, column: str, value: str, query: str, params: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        """Run `query` (which reads `t`, the rows of `table`) over only the files whose manifest
        min/max of `column` can hold `value`: an id lookup opens a few files, not every file."""
        files = reader.files_holding(self._snapshot.table_files(table), column, value)
        return self.query_files(table, files, query, params)

    def query_files(
        self, table: str, files: list[DataFile], query: str, params: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        """Run `query`, which reads `t`, over the rows of the given files of `table` only."""
        self.connection()  # on a remote store, registers the filesystem that serves the files
        rows_sql = reader.table_sql(self.store, catalog().table(table), files)
        return self.records(f"with t as ({rows_sql}) {query}", params)

    def find_execution(self, execution_id: str) -> dict[str, Any]:
        """The latest revision of the execution whose id is, starts with or ends with `execution_id`."""
        found = self.records(
            "select * from executions where starts_with(execution_id, $id) or ends_with(execution_id, $id) "
            "order by execution_id <> $id, execution_id limit 4",
            {"id": execution_id},
        )
        if not found:
            raise ExecutionNotFound(f"no execution with id {execution_id!r} at version {self.version}")
        if len(found) > 1 and found[0]["execution_id"] != execution_id:
            ids = ", ".join(repr(f["execution_id"]) for f in found[:3])
            raise ExecutionNotFound(
                f"execution id part {execution_id!r} is ambiguous: it starts or ends {ids}"
                f"{', ...' if len(found) > 3 else ''}; give more of the id's first or last "
                "characters (ids are time-ordered, so their ends tell executions apart)"
            )
        return found[0]

    def execution(self, execution_id: str) -> dict[str, Any]:
        """One execution (latest revision) by id or unique id prefix/suffix, with `messages` and
        `attacks`; see `Warehouse.execution`."""
        if not isinstance(execution_id, str):
            raise InvalidArgumentType(
                f"execution_id must be a string, got {type(execution_id).__name__} {execution_id!r:.80}"
            )
        ex = self.find_execution(execution_id)
        eid = ex["execution_id"]
        part = [ex[c] for c in catalog().partition_columns]
        pfilter = " and ".join(f"{c} = ?" for c in catalog().partition_columns)
        msgs = self.records(f"select * from messages where {pfilter} and execution_id = ? order by seq", [*part, eid])
        ex["messages"] = [records.message_from_row(m) for m in msgs]
        ex["attacks"] = self.records(
            f"select vector_id, type, content, metadata from attacks where {pfilter} "
            "and execution_id = ? order by vector_id",
            [*part, eid],
        )
        return ex


#: Called with every engine `open_engine` opens: layers above register here what each engine gets
#: (automatic publication attaches its commit listener: `warehouse.ops.publish.auto`).
OPEN_HOOKS: list[Callable[[Engine], object]] = []


def open_engine(
    url: str | os.PathLike[str] = "warehouse-data",
    *,
    create: bool = False,
    version: int | None = None,
    as_of: datetime | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    checkpoint_interval: int | None = None,
) -> Engine:
    """The engine of the warehouse at `url`; see `warehouse.open` for the arguments and errors."""
    if not isinstance(url, (str, os.PathLike)):
        raise InvalidArgumentType(f"url must be a path or URL string, got {type(url).__name__} {url!r:.80}")
    url = os.fspath(url)
    create = arguments.boolean("create", create)
    version = arguments.optional_integer("version", version)  # a negative one is VersionNotFound, like any absent one
    as_of = None if as_of is None else arguments.moment("as_of", as_of)
    checkpoint_interval = arguments.optional_integer("checkpoint_interval", checkpoint_interval, minimum=0)
    if version is not None and as_of is not None:
        raise InvalidArgument("give version= or as_of=, not both")
    store = Store.from_url(url, storage_options)
    log = Log(store, checkpoint_interval=checkpoint_interval)
    with store.errors():
        listing = log.listing()  # commits and checkpoints: a warehouse whose old commits were folded has both
        known: Listing | None = listing
        if listing.empty:
            if not create:
                raise WarehouseNotFound(
                    f"no warehouse at {url!r}; create one with `warehouse init` or open(..., create=True)"
                )
            names = store.list_names(".")
            if names and names != [MANIFEST_DIR]:
                raise NotAWarehouse(f"{url!r} holds files but no warehouse manifest; choose an empty or new location")
            store.check_conditional_writes(MANIFEST_DIR)
            log.create(writer_info(uuid.uuid4().hex))
            known = None
        snapshot = log.snapshot(version=version, as_of=as_of, listing=known)
        if version is not None or as_of is not None:
            vacuum_hint.check_readable(store, snapshot.version)  # vacuum may have deleted its data files
    engine = Engine(
        store, snapshot, read_only=version is not None or as_of is not None, checkpoint_interval=checkpoint_interval
    )
    # The hint files `_manifest/_*.json` the opening listing saw (the publication setting, ...): what
    # needs no request to know it is absent.
    engine.manifest_hints = frozenset(n for n in listing.names if n.startswith("_"))
    for hook in OPEN_HOOKS:
        hook(engine)
    return engine


class HasEngine(Protocol):
    """Anything that carries an engine: an `Engine` itself, or the `Warehouse` facade."""

    @property
    def engine(self) -> Engine: ...


def of(source: HasEngine) -> Engine:
    """The engine of `source` (a `Warehouse` or an `Engine`)."""
    eng = getattr(source, "engine", None)
    if not isinstance(eng, Engine):
        raise InvalidArgumentType(f"expected a Warehouse, got {type(source).__name__} {source!r:.80}")
    return eng
