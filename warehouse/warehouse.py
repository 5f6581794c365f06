"""The facade: `warehouse.open(url)` returns a `Warehouse`, the object every other API hangs off."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from warehouse.agent import state as agent_state
from warehouse.core import arguments
from warehouse.core.errors import InvalidArgument, ReadOnlyWarehouse, WarehouseNotFound
from warehouse.core.schemas import catalog
from warehouse.core.storage import Store
from warehouse.engine.engine import Engine, open_engine
from warehouse.manifest import Commit, DataFile, Log, Snapshot, replay
from warehouse.namespaces import Executions, Maintenance, Simulations
from warehouse.ops import publish as publish_mod
from warehouse.ops import sync as sync_mod
from warehouse.read import analytics
from warehouse.write.live import EVENT_LIMIT, Checkpoint
from warehouse.write.options import WriterOptions
from warehouse.write.writer import Writer

if TYPE_CHECKING:
    from datetime import timedelta
    from pathlib import Path

    import polars as pl

    from warehouse.agent.sessions import Sessions
    from warehouse.agent.simulation import RunRecorder
    from warehouse.interop.exporters import ExportReport
    from warehouse.interop.importers import ImportReport
    from warehouse.ops import doctor as doctor_mod
    from warehouse.ops import maintenance as maintenance_mod
    from warehouse.ops import retention
    from warehouse.write.aio import AsyncWriter

#: Columns `Warehouse.scores(by=...)` may group by: the execution columns, then the configuration's
#: (also `metadata.KEY`, `dataset_config.KEY`, `agent_config.KEY`, `attack_config.KEY` and `all`;
#: see `warehouse.read.analytics.groups`).
SCORE_GROUPS = (*analytics.EXECUTION_GROUPS, *analytics.CONFIG_GROUPS)


@dataclass(frozen=True)
class CommitInfo:
    """One line of `Warehouse.history()`."""

    version: int
    committed_at: datetime
    operation: str
    writer: Mapping[str, Any]
    files_added: int
    rows_added: int
    files_removed: int
    tables: tuple[str, ...]

    @classmethod
    def of(cls, c: Commit) -> CommitInfo:
        tables = tuple(sorted({a.table for a in c.add} | {r.table for r in c.remove}))
        return cls(c.version, c.committed_at, c.operation, c.writer, len(c.add), c.rows_added, len(c.remove), tables)


class Warehouse:
    """A warehouse at one URL, holding a cached snapshot of its manifest.

    Reads (`sql`, `connect`, `scan`) see the cached snapshot; `refresh()` reads only the commits
    made since. A warehouse opened at an older `version` or `as_of` a time is read-only.

    Its public members are a few verbs (`sql`, `scan`, `connect`, `execution`, `scores`, `report`,
    `files`, `table_summary`, `history`, `refresh`, `writer`, `async_writer`, `import_`, `export`,
    `sync_to`, `publish`, `wait_for_publication`), a few properties (`url`, `version`, `read_only`, `snapshot`, `tables`, `engine`) and
    the namespaces `maintenance`, `executions`, `simulations` and `sessions`. The other names
    (`compact`, `checkpoints`, `run_recorder`, ...) are aliases of namespace calls kept for scripts
    written before 0.2.
    """

    def __init__(
        self, store: Store, snapshot: Snapshot, *, read_only: bool, checkpoint_interval: int | None = None
    ) -> None:
        self._engine = Engine(store, snapshot, read_only=read_only, checkpoint_interval=checkpoint_interval)

    @classmethod
    def of(cls, engine: Engine) -> Warehouse:
        """The facade over an open engine."""
        wh = cls.__new__(cls)
        wh._engine = engine
        return wh

    def __repr__(self) -> str:
        ro = ", read-only" if self.read_only else ""
        return f"<Warehouse {self.store.url!r} version={self.version}{ro}>"

    # -- state ---------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The engine this facade is composed over (store, log, snapshot, commit, lookups); what
        the package's own features take. Internal: its methods may change between releases."""
        return self._engine

    @property
    def read_only(self) -> bool:
        """True for a warehouse opened at a past version (time travel): it refuses writes."""
        return self._engine.read_only

    @property
    def url(self) -> str:
        return self._engine.url

    @property
    def snapshot(self) -> Snapshot:
        """The cached snapshot (the set of active files) that reads see."""
        return self._engine.snapshot

    @property
    def version(self) -> int:
        """The version of the cached snapshot."""
        return self._engine.version

    def refresh(self) -> int:
        """Read the commits made since the cached snapshot; returns the new version.

        Costs one read when nothing is new, and one per new commit; a snapshot more than a
        checkpoint interval behind is rebuilt from the newest checkpoint instead.
        A read-only (time-travel) warehouse stays at its version.
        """
        return self._engine.refresh()

    def history(self, limit: int | None = None) -> list[CommitInfo]:
        """The commits up to the cached version, newest first (at most `limit`; None = all, 0 = none).

        Commits that vacuum folded into a checkpoint are gone: then the last entry has operation
        "folded" and stands for every version up to its own (no files or rows are counted for it;
        its time is that version's commit time). Raises InvalidArgument (a ValueError) for a
        negative `limit`.
        """
        limit = arguments.optional_integer("limit", limit, minimum=0)
        if limit == 0:
            return []
        with self.store.errors():
            listing = self.log.listing()
            start = listing.log_start  # (below it, only leftovers of writers that were behind a fold)
            versions = [v for v in listing.commits if start is not None and start <= v <= self.version]
            if limit is not None:
                versions = versions[-limit:]
            out = [CommitInfo.of(c) for c in reversed(self.log.read_many(versions))]
            folded_upto = min(self.version, start - 1) if start is not None else self.version
            if folded_upto >= 0 and (limit is None or len(out) < limit):
                out.append(CommitInfo(folded_upto, self._folded_time(listing, folded_upto), "folded", {}, 0, 0, 0, ()))
        return out

    def _folded_time(self, listing: Any, version: int) -> datetime:
        """The commit time of a folded version, from the first checkpoint's commits section that has it."""
        from warehouse.manifest import checkpoint as mc

        for cp in listing.checkpoints:
            if cp >= version:
                try:
                    rows = mc.load(self.store, cp).commits()
                    v0 = rows.column("version")[0].as_py()
                    return rows.column("committed_at")[version - v0].as_py()
                except Exception:  # unreadable, or too old for it: try the next one
                    continue
        return self.snapshot.committed_at

    def files(
        self, table: str, partition: Mapping[str, str] | None = None, *, where: Mapping[str, str] | None = None
    ) -> list[DataFile]:
        """The active data files of `table`, optionally only partitions matching `partition` (a dict
        of partition column -> value; InvalidArgument for a key that is not a partition column).
        `where=` is the same dict under its name before 0.2, kept as an alias (elsewhere `where` is SQL)."""
        return self._engine.files(table, _partition_alias(partition, where))

    @property
    def tables(self) -> list[str]:
        return list(catalog().tables)

    # -- writing -------------------------------------------------------------------------------
    def writer(
        self,
        *,
        dataset: Any,
        agent: Any,
        attack: Any = None,
        run_id: str | None = None,
        flush_rows: int = 10_000,
        flush_bytes: int = 64 << 20,
        flush_interval: float | None = 30.0,
        event_limit: int = EVENT_LIMIT,
        max_buffered_events: int = 200_000,
        wal: str | os.PathLike[str] | None = None,
        wal_sync: str = "flush",
        config_hash: str | None = None,
    ) -> Writer:
        """A buffered writer for one run configuration ({type, config} dicts; attack None = benign).

        `flush_rows` records or `flush_bytes` buffered, or `flush_interval` seconds, trigger a
        flush (one commit). Events (logs, spans) longer than `event_limit` characters are cut; past
        `max_buffered_events` waiting for a flush, further events are dropped and counted.
        `wal="dir/"`: a local write-ahead log; every record is appended to it before `add_*`
        returns, and a writer opened later on the same directory first commits, exactly once,
        what a crashed writer left there. `wal_sync` ("always", "flush" or "never") says when
        it is fsynced; see `warehouse.wal`. `config_hash` keeps a hash computed by another scheme
        (imported legacy results) instead of this package's; `configs.hash_scheme` says `legacy`.
        Raises InvalidRecord/InvalidPartitionValue for a malformed config, ConfigHashCollision if a
        different config already owns its hash, ReadOnlyWarehouse on a time-travel snapshot,
        wal.WalLocked if another live writer uses the WAL directory, wal.WalError if it holds
        records of another warehouse.
        """
        # The options are the WriterOptions fields (tests/test_writer.py checks the two lists match).
        return Writer(
            self._engine,
            dataset=dataset,
            agent=agent,
            attack=attack,
            run_id=run_id,
            options=WriterOptions.pick(locals()),
        )

    def async_writer(
        self,
        *,
        dataset: Any,
        agent: Any,
        attack: Any = None,
        run_id: str | None = None,
        flush_rows: int = 10_000,
        flush_bytes: int = 64 << 20,
        flush_interval: float = 5.0,
        event_limit: int = EVENT_LIMIT,
        max_buffered_events: int = 200_000,
        wal: str | os.PathLike[str] | None = None,
        wal_sync: str = "flush",
        config_hash: str | None = None,
    ) -> AsyncWriter:
        """A writer for asyncio code: `async with wh.async_writer(...) as w:`. Same arguments as
        `writer`; every flush and commit runs on a worker thread, never on the event loop (so
        does the WAL's recovery, when the writer opens)."""
        from warehouse.write.aio import AsyncWriter

        return AsyncWriter(
            self._engine,
            dataset=dataset,
            agent=agent,
            attack=attack,
            run_id=run_id,
            options=WriterOptions.pick(locals()),
        )

    def sync_to(
        self,
        dst: str | Warehouse,
        *,
        storage_options: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        workers: int = 16,
        batch_files: int = sync_mod.BATCH_FILES,
        on_progress: Callable[[sync_mod.Progress], None] | None = None,
        progress: Callable[[sync_mod.Progress], None] | None = None,
    ) -> sync_mod.SyncResult:
        """Copy to `dst` (a URL, created if absent, or an open Warehouse) the data files its snapshot
        lacks from this warehouse's current snapshot, and commit them there (operation `sync`, at most
        `batch_files` files per commit, whole source commits at a time), so that `dst` answers every
        query like this one. Incremental, idempotent and resumable; see `warehouse.sync`. Copies
        `workers` files at a time; `on_progress` is called with files and bytes done after each file
        (`progress=` is its name before 0.2, kept as an alias: elsewhere `progress` is a bool).

        A file `dst` took in before is never copied again, whatever `dst` did with it since (its own
        compaction, expire or delete stands); see `warehouse.sync` for how rewrites on both sides meet.

        Raises StorageError/ConditionalWritesUnsupported for an unusable DST, NotAWarehouse if DST
        holds other files, ConfigHashCollision if the two hold different configs under one hash,
        SyncDiverged (nothing committed) if this warehouse rewrote files that `dst` had rewritten or
        deleted itself and the result cannot be mirrored exactly.
        """
        if isinstance(dst, str):
            try:
                target = open(dst, storage_options=storage_options, create=not dry_run)
            except WarehouseNotFound:  # a dry run against a DST that does not exist yet
                store = Store.from_url(dst, storage_options)
                target = Warehouse(store, replay([]), read_only=True)
        else:
            target = dst
        if on_progress is not None and progress is not None:
            raise InvalidArgument("give on_progress or its old name progress, not both")
        return sync_mod.sync(
            self._engine,
            target.engine,
            dry_run=dry_run,
            workers=workers,
            progress=on_progress if on_progress is not None else progress,
            batch_files=batch_files,
        )

    # -- reading -------------------------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with every view defined over the cached snapshot."""
        return self._engine.connect()

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Run SQL over the cached snapshot's views; returns a DuckDB relation (`.pl()`, `.arrow()`, `.fetchall()`).

        Full DuckDB SQL, run as given (it may read or write other files): pass values as `params`,
        never formatted into `query`. The `where=` arguments elsewhere are checked conditions instead
        (`warehouse.core.condition`)."""
        return self._engine.sql(query, params)

    def scan(
        self, table: str, partition: Mapping[str, str] | None = None, *, where: Mapping[str, str] | None = None
    ) -> pl.LazyFrame:
        """A Polars LazyFrame over `table`'s files in the cached snapshot (only partitions matching
        `partition`, a dict of partition column -> value); for executions, messages and attacks without
        the rows of superseded adds (an execution id added again shows its last add only, as in the
        views; see `warehouse.engine.keys`). `where=` is the same dict under its name before 0.2, kept
        as an alias (elsewhere `where` is SQL). Raises InvalidArgument for a key that is not a
        partition column."""
        return self._engine.scan(table, _partition_alias(partition, where))

    def execution(self, execution_id: str) -> dict[str, Any]:
        """One execution (latest revision) by id, or by a unique prefix or suffix of its id (ids are
        time-ordered, so a suffix is the distinctive part), with `messages` (as written,
        in order) and `attacks`. Raises ExecutionNotFound if none or several match,
        InvalidArgumentType if `execution_id` is not a string."""
        return self._engine.execution(execution_id)

    def table_summary(self, partitions: bool = False) -> list[dict[str, Any]]:
        """Files, rows and bytes per table (or per table and partition) from the manifest alone."""
        groups: dict[tuple, dict[str, Any]] = {}
        for f in self.snapshot.files.values():
            key = (f.table, *(f.partition.get(c) for c in catalog().partition_columns)) if partitions else (f.table,)
            g = groups.setdefault(key, {"table": f.table, "partitions": set(), "files": 0, "rows": 0, "bytes": 0})
            g["partitions"].add(tuple(sorted(f.partition.items())))
            g["files"] += 1
            g["rows"] += f.rows
            g["bytes"] += f.bytes
        out = []
        for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
            g = groups[key]
            row = {"table": g["table"]}
            if partitions:
                row.update(zip(catalog().partition_columns, key[1:]))
            else:
                row["partitions"] = len(g["partitions"])
            row.update(files=g["files"], rows=g["rows"], bytes=g["bytes"])
            out.append(row)
        return out

    def scores(
        self,
        by: str | Sequence[str] | None = ("dataset", "agent", "attack"),
        where: str | None = None,
        k: int | Sequence[int] | None = None,
        threshold: float = 1.0,
        *,
        checks: bool = False,
    ) -> duckdb.DuckDBPyRelation:
        """Utility and attack success rate with 95% Wilson intervals, grouped by `by` (a list or a
        comma-separated string; empty or 'all' = overall), over finished executions (running ones are
        not counted until they complete or fail).

        Groupings: SCORE_GROUPS (execution columns), `suite` and `agent_model` (from the
        configuration), `metadata.KEY`, `dataset_config.KEY`, `agent_config.KEY`, `attack_config.KEY`.
        Columns: the groups, then n, n_tasks, utility(_low/_high), asr(_low/_high), n_failed,
        total_tokens, cost, n_utility, n_asr, n_errors, utility_under_attack(_low/_high), mean_tokens,
        mean_cost (see schemas/queries/score_columns.sql). With `k` (an int or a list), also
        `pass_at_<k>` and `attack_pass_at_<k>` (pass@k of benign and attack scores, a run succeeding
        when its score >= `threshold`) and `pass_at_<k>_excluded` / `attack_pass_at_<k>_excluded`
        (tasks with fewer than k scored runs). `where` is an SQL condition over the `executions` view.
        Checks (executions of a dataset named `<name>.checks`, e.g. AgentDojo's injection tasks run
        alone) are not measurements and are left out unless `checks=True`.
        Raises InvalidArgument for an unknown grouping or a bad k/threshold. See `warehouse.read.analytics`.
        """
        return analytics.scores(self._engine, by, where, k, threshold, checks=checks)

    # -- report (report.py) --------------------------------------------------------------------------
    def report(
        self, out: str | os.PathLike[str] = "report.html", *, title: str = "Evaluation report", top: int = 10
    ) -> Path:
        """Write the self-contained HTML report of this snapshot (ASR heatmap, utility vs ASR,
        pass@k curves, most compromised tasks, tokens and cost; see `warehouse.report`); returns
        its path."""
        from warehouse.read import report

        return report.build_report(self._engine, out, title=title, top=top)

    # -- import and export (importers/, exporters/) -----------------------------------------------
    def import_(
        self, kind: str, path: str | os.PathLike[str], *, strict: bool = False, progress: bool = False
    ) -> ImportReport:
        """Import every new source of `kind` under `path` (a directory, file, or for `postgres` a
        connection URL): legacy, sessions, checkpoints, trajectories, simulation, postgres,
        agentdojo, inspect (see `warehouse.importers`).

        Idempotent: a source whose content was imported before is skipped (the `imports` table
        records each one, in the same commit as its rows). Sources are committed in batches; one
        that cannot be read or mapped is reported in `report.failed` with its path and reason and
        the import goes on, unless `strict`, which raises ImportFailed at the first (after
        committing the sources read before it). Raises WarehouseError for an unknown kind.
        """
        from warehouse.interop.importers import importer, run_import

        return run_import(self._engine, importer(kind), path, strict=strict, progress=progress)

    def publish(
        self,
        format: str = "delta",
        *,
        tables: str | Iterable[str] | None = None,
        rebuild: bool = False,
        catalog: str | None = None,
    ) -> publish_mod.PublishReport:
        """Bring the open-format log of every table (or of `tables`) to the current version, in place:
        `<root>/<table>/_delta_log/` names the warehouse's own data files, so Spark, Trino,
        Databricks, DataFusion, Polars and DuckDB read the tables as Delta tables with no data copied
        (see `warehouse.ops.publish.delta` and docs/open-format.md). Incremental and idempotent: one
        Delta commit per table that changed, each recording the warehouse version it reflects (the
        Delta transaction `warehouse`). `rebuild=True` deletes each log first and writes it again
        (a damaged log, or one behind a foreign `_delta_log`). To keep the logs current after every
        commit, open with `publish=["delta"]`.

        `format="iceberg"` with `catalog=` (an SQLAlchemy URL, e.g. "sqlite:////abs/path/catalog.db"):
        every table as the Iceberg table `warehouse.<table>` of that pyiceberg SqlCatalog, its
        snapshots naming the same files as the Delta logs would (see `warehouse.ops.publish.iceberg`
        and docs/iceberg.md); `rebuild=True` drops and creates the catalog's tables again. Local
        warehouses only, and on demand only (automatic publication is Delta's).

        Raises PublishFailed for a foreign or damaged `_delta_log` (without `rebuild`), an unknown table,
        or a local root path delta-rs cannot use; InvalidArgument for an unknown format, a missing
        `catalog` for iceberg or a `catalog` given for delta.
        """
        if format == "iceberg":
            if catalog is None:
                raise InvalidArgument(
                    "publish('iceberg') needs catalog=, an SQLAlchemy URL such as 'sqlite:////abs/path/catalog.db'"
                )
            publish_mod.iceberg.check_catalog(catalog)
        elif format in publish_mod.settings.FORMATS:
            if catalog is not None:
                raise InvalidArgument(f"catalog={catalog!r} is for format 'iceberg'; {format} publishes in place")
        else:
            known = ", ".join([*publish_mod.settings.FORMATS, "iceberg"])
            raise InvalidArgument(f"unknown publication format {format!r}; known: {known}")
        if self.read_only:
            raise ReadOnlyWarehouse(
                f"this warehouse was opened at version {self.version} (time travel) and is read-only; "
                "open it without version=/as_of= to publish"
            )
        if format == "iceberg":
            assert catalog is not None
            return publish_mod.iceberg.publish(self._engine, catalog, tables_=tables, rebuild=rebuild)
        return publish_mod.publish(self._engine, tables_=tables, rebuild=rebuild)

    def wait_for_publication(self, timeout: float | None = None) -> bool:
        """Wait until automatic publication (`open(..., publish=["delta"])`) has published this
        process's commits; False if `timeout` seconds passed first. True at once without it."""
        p = publish_mod.auto.publisher_of(self._engine)
        return True if p is None else p.wait(timeout)

    def export(self, kind: str, out: str, **options: Any) -> ExportReport:
        """Export the current snapshot as `kind` (delta, parquet, trajectories, legacy) to `out`;
        see `warehouse.exporters`. Raises ExportFailed for an unknown kind or an unusable target."""
        from warehouse.interop.exporters import export

        return export(self._engine, kind, out, **options)

    # -- namespaces (warehouse/namespaces.py) -------------------------------------------------------
    @property
    def maintenance(self) -> Maintenance:
        """Compaction, vacuum, retention (`expire`), `doctor` and manifest checkpoints."""
        return Maintenance(self._engine)

    @property
    def executions(self) -> Executions:
        """Agent state of executions: checkpoints, `resume_plan`, `follow`, `trajectories`."""
        return Executions(self._engine)

    @property
    def simulations(self) -> Simulations:
        """Simulation runs: `recorder`, `snapshots` (a run's saved states), `runs`."""
        return Simulations(self._engine)

    @property
    def sessions(self) -> Sessions:
        """The conversation sessions: `save`, `append`, `load`, `list`, `delete` (see warehouse.agent.sessions)."""
        from warehouse.agent.sessions import Sessions

        return Sessions(self._engine)

    # -- aliases of the namespaces' calls, kept for scripts written before 0.2 ----------------------
    @property
    def store(self) -> Store:
        """Alias of `wh.engine.store`; kept for scripts written before 0.2."""
        return self._engine.store

    @property
    def log(self) -> Log:
        """Alias of `wh.engine.log`; kept for scripts written before 0.2."""
        return self._engine.log

    def checkpoint(self) -> int:
        """Alias of `wh.maintenance.checkpoint_manifest`; kept for scripts written before 0.2."""
        return self.maintenance.checkpoint_manifest()

    def checkpoints(self, execution_id: str) -> list[Checkpoint]:
        """Alias of `wh.executions.checkpoints`; kept for scripts written before 0.2."""
        return self.executions.checkpoints(execution_id)

    def latest_checkpoint(self, execution_id: str, owner: str | None = None) -> Checkpoint | None:
        """Alias of `wh.executions.latest_checkpoint`; kept for scripts written before 0.2."""
        return self.executions.latest_checkpoint(execution_id, owner)

    def load_checkpoint(
        self, checkpoint_id: str, *, execution_id: str | None = None, owner: str | None = None
    ) -> Checkpoint:
        """Alias of `wh.executions.load_checkpoint`; kept for scripts written before 0.2."""
        return self.executions.load_checkpoint(checkpoint_id, execution_id=execution_id, owner=owner)

    def resume_plan(
        self, config: Any, task_ids: Sequence[str], *, runs: int = 1, retry_failed: bool = True
    ) -> list[agent_state.TaskPlan]:
        """Alias of `wh.executions.resume_plan`; kept for scripts written before 0.2."""
        return self.executions.resume_plan(config, task_ids, runs=runs, retry_failed=retry_failed)

    def follow(
        self,
        execution_id: str | None = None,
        *,
        follow: bool = True,
        last: int | None = None,
        poll_interval: float = 0.5,
        timeout: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Alias of `wh.executions.follow`; kept for scripts written before 0.2."""
        return self.executions.follow(
            execution_id, follow=follow, last=last, poll_interval=poll_interval, timeout=timeout
        )

    def trajectories(
        self,
        where: Mapping[str, Any] | str | None = None,
        *,
        metadata_keys: Sequence[str] = (),
        with_messages: bool = False,
    ) -> pl.LazyFrame:
        """Alias of `wh.executions.trajectories`; kept for scripts written before 0.2 (there, a
        metadata dict goes in `metadata=`; `where` is for SQL)."""
        return self.executions.trajectories(where, metadata_keys=metadata_keys, with_messages=with_messages)

    def run_recorder(
        self,
        scenario: str,
        save_frequency: int = 1,
        max_steps: int | None = None,
        started_at: datetime | str | None = None,
    ) -> RunRecorder:
        """Alias of `wh.simulations.recorder`; kept for scripts written before 0.2."""
        return self.simulations.recorder(scenario, save_frequency, max_steps, started_at)

    def snapshots(self, run_id: str) -> list[dict[str, Any]]:
        """Alias of `wh.simulations.snapshots`; kept for scripts written before 0.2."""
        return self.simulations.snapshots(run_id)

    def runs(self) -> pl.DataFrame:
        """Alias of `wh.simulations.runs`; kept for scripts written before 0.2."""
        return self.simulations.runs()

    def expire(
        self,
        older_than: timedelta,
        *,
        tables: Iterable[str] = ("events",),
        statuses: Iterable[str] = ("completed", "failed"),
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> retention.ExpireResult:
        """Alias of `wh.maintenance.expire`; kept for scripts written before 0.2."""
        return self.maintenance.expire(older_than, tables=tables, statuses=statuses, dry_run=dry_run, now=now)

    def compact(
        self,
        table: str | Iterable[str] | None = None,
        partition: str | Mapping[str, str] | None = None,
        *,
        target_file_size: int = 128 << 20,
        min_files: int = 2,
        dry_run: bool = False,
    ) -> maintenance_mod.CompactResult:
        """Alias of `wh.maintenance.compact`; kept for scripts written before 0.2."""
        return self.maintenance.compact(
            table, partition, target_file_size=target_file_size, min_files=min_files, dry_run=dry_run
        )

    def vacuum(
        self,
        retain: timedelta | None = None,
        orphan_window: timedelta | None = None,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> maintenance_mod.VacuumResult:
        """Alias of `wh.maintenance.vacuum`; kept for scripts written before 0.2."""
        return self.maintenance.vacuum(retain, orphan_window, dry_run=dry_run, now=now)

    def doctor(self, repair: bool = False, *, footers: bool = True, deep: bool = False) -> doctor_mod.DoctorReport:
        """Alias of `wh.maintenance.doctor`; kept for scripts written before 0.2."""
        return self.maintenance.doctor(repair, footers=footers, deep=deep)


def _partition_alias(partition: Mapping[str, str] | None, where: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """`partition`, or `where` (its name before 0.2) when only that is given."""
    if partition is not None and where is not None:
        raise InvalidArgument("give partition or its old name where, not both")
    return where if partition is None else partition


def open(
    url: str = "warehouse-data",
    *,
    create: bool = False,
    version: int | None = None,
    as_of: datetime | None = None,
    storage_options: Mapping[str, Any] | None = None,
    checkpoint_interval: int | None = None,
    publish: Iterable[str] | None = None,
) -> Warehouse:
    """Open the warehouse at `url` (a local path, `s3://bucket/prefix`, or any fsspec URL).

    `storage_options` go to the fsspec filesystem (for S3: `endpoint_url`, `key`, `secret`, ...; by
    default the AWS environment variables and config files are used).
    `create=True` creates it if absent (refusing a location that holds other files), after checking
    that the store supports create-if-absent writes.
    `version=N` or `as_of=datetime` opens a read-only snapshot of the past.
    `checkpoint_interval`: write a manifest checkpoint every this many commits (default
    `manifest.CHECKPOINT_INTERVAL`, 100; 0: never). Opening loads the newest checkpoint and replays
    only the commits after it.
    `publish=["delta"]` publishes every table as a Delta table in place now and keeps the logs current
    after every commit of every process from then on (a setting persisted in the warehouse:
    `_manifest/_publish.json`); `publish=[]` turns that off; None (the default) keeps the setting.
    See `Warehouse.publish`.
    Raises WarehouseNotFound, NotAWarehouse, VersionNotFound, CorruptCommit, UnsupportedFormatVersion,
    StorageError (missing bucket, access denied, endpoint unreachable), ConditionalWritesUnsupported,
    InvalidArgument/InvalidArgumentType for a bad argument (a version that is not an int, an
    `as_of` that is not a datetime or ISO-8601 string).
    """
    formats = None if publish is None else publish_mod.settings.check_formats(publish)
    wh = Warehouse.of(
        open_engine(
            url,
            create=create,
            version=version,
            as_of=as_of,
            storage_options=storage_options,
            checkpoint_interval=checkpoint_interval,
        )
    )
    if formats is not None:
        if wh.read_only:
            raise InvalidArgument("publish= changes a setting: open the warehouse without version=/as_of=")
        if publish_mod.settings.read(wh.store) != formats:
            publish_mod.auto.enable(wh.engine, formats)
        if formats:
            wh.publish("delta")
    return wh
