"""The facade: `warehouse.open(url)` returns a `Warehouse`, the object every other API hangs off."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from . import agent_state, arguments, keys, reader, records
from . import sync as sync_mod
from .errors import (ExecutionNotFound, InvalidArgument, InvalidArgumentType, NotAWarehouse, ReadOnlyWarehouse,
                     WarehouseNotFound)
from .manifest import MANIFEST_DIR, Commit, DataFile, Log, Snapshot, replay, writer_info
from .schemas import catalog
from .storage import Store
from .live import EVENT_LIMIT, Checkpoint
from .writer import Writer

if TYPE_CHECKING:
    from pathlib import Path

    from .exporters import ExportReport
    from .importers import ImportReport
    from datetime import timedelta

    import polars as pl

    from . import doctor as doctor_mod
    from . import maintenance, retention
    from .aio import AsyncWriter
    from .sessions import Sessions
    from .simulation import RunRecorder

#: Columns `Warehouse.scores(by=...)` may group by (also `metadata.KEY`, `dataset_config.KEY`,
#: `agent_config.KEY`, `attack_config.KEY` and `all`; see `warehouse.analytics.groups`).
SCORE_GROUPS = ("dataset", "agent", "attack", "config_hash", "model", "run_id", "task_id", "status", "suite",
                "agent_model")


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
    def of(cls, c: Commit) -> "CommitInfo":
        tables = tuple(sorted({a.table for a in c.add} | {r.table for r in c.remove}))
        return cls(c.version, c.committed_at, c.operation, c.writer, len(c.add), c.rows_added, len(c.remove), tables)


class Warehouse:
    """A warehouse at one URL, holding a cached snapshot of its manifest.

    Reads (`sql`, `connect`, `scan`) see the cached snapshot; `refresh()` reads only the commits
    made since. A warehouse opened at an older `version` or `as_of` a time is read-only.
    """

    def __init__(self, store: Store, snapshot: Snapshot, *, read_only: bool, checkpoint_interval: int | None = None) -> None:
        self.store = store
        self.log = Log(store, checkpoint_interval=checkpoint_interval)
        self._snapshot = snapshot
        self.read_only = read_only
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_version = -1
        self._keys = keys.KeyCache()  # execution-id columns of files read to find earlier adds
        self._sandbox: duckdb.DuckDBPyConnection | None = None
        self._sandbox_version = -1

    def __repr__(self) -> str:
        ro = ", read-only" if self.read_only else ""
        return f"<Warehouse {self.store.url!r} version={self.version}{ro}>"

    # -- state ---------------------------------------------------------------------------------
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
        """Read the commits made since the cached snapshot; returns the new version.

        Costs one read when nothing is new, and one per new commit; a snapshot more than a
        checkpoint interval behind is rebuilt from the newest checkpoint instead.
        A read-only (time-travel) warehouse stays at its version.
        """
        if self.read_only:
            return self.version
        with self._lock:
            self._snapshot, _ = self.log.refresh(self._snapshot, catch_up=True)
            return self._snapshot.version

    def _refresh_commits(self) -> tuple[int, list[Commit]]:
        """`refresh`, also returning the new commits it read (every one since the cached version,
        unless vacuum folded them meanwhile: then none)."""
        if self.read_only:
            return self.version, []
        with self._lock:
            self._snapshot, new = self.log.refresh(self._snapshot)
            return self._snapshot.version, new

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
        from . import manifest_checkpoint as mc

        for cp in listing.checkpoints:
            if cp >= version:
                try:
                    rows = mc.load(self.store, cp).commits()
                    v0 = rows.column("version")[0].as_py()
                    return rows.column("committed_at")[version - v0].as_py()
                except Exception:  # unreadable, or too old for it: try the next one
                    continue
        return self._snapshot.committed_at

    def checkpoint(self) -> int:
        """Write a checkpoint of the warehouse at its current version (after a refresh), so that
        opening it replays no commit; returns that version. Nothing is written if one exists.
        Checkpoints are also written automatically every `manifest.CHECKPOINT_INTERVAL` commits.
        Raises ReadOnlyWarehouse on a time-travel snapshot.
        """
        self._require_writable()
        self.refresh()
        snap = self._snapshot
        with self.store.errors():
            self.log.write_checkpoint(snap)
        return snap.version

    def files(self, table: str, where: Mapping[str, str] | None = None) -> list[DataFile]:
        """The active data files of `table`, optionally only partitions matching `where` (a dict of
        partition column -> value; WarehouseError for a key that is not a partition column)."""
        from .partition_filter import check_partition

        catalog().table(table)
        return self._snapshot.table_files(table, check_partition(where))

    @property
    def tables(self) -> list[str]:
        return list(catalog().tables)

    # -- writing -------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        """Refuse writes to a time-travel snapshot, and to a store without create-if-absent writes
        (probed once per store: a commit there could silently overwrite another)."""
        if self.read_only:
            raise ReadOnlyWarehouse(
                f"this warehouse was opened at version {self.version} (time travel) and is read-only; "
                "open it without version=/as_of= to write"
            )
        with self.store.errors():
            self.store.check_conditional_writes(MANIFEST_DIR)

    def writer(self, *, dataset: Any, agent: Any, attack: Any = None, run_id: str | None = None,
               flush_rows: int = 10_000, flush_bytes: int = 64 << 20, flush_interval: float | None = 30.0,
               event_limit: int = EVENT_LIMIT, max_buffered_events: int = 200_000,
               wal: str | os.PathLike[str] | None = None, wal_sync: str = "flush",
               config_hash: str | None = None) -> Writer:
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
        return Writer(self, dataset=dataset, agent=agent, attack=attack, run_id=run_id, flush_rows=flush_rows,
                      flush_bytes=flush_bytes, flush_interval=flush_interval, event_limit=event_limit,
                      max_buffered_events=max_buffered_events, wal=wal, wal_sync=wal_sync, config_hash=config_hash)

    def async_writer(self, *, dataset: Any, agent: Any, attack: Any = None, run_id: str | None = None,
                     flush_rows: int = 10_000, flush_bytes: int = 64 << 20, flush_interval: float = 5.0,
                     event_limit: int = EVENT_LIMIT, max_buffered_events: int = 200_000,
                     wal: str | os.PathLike[str] | None = None, wal_sync: str = "flush") -> "AsyncWriter":
        """A writer for asyncio code: `async with wh.async_writer(...) as w:`. Same arguments as
        `writer`; every flush and commit runs on a worker thread, never on the event loop (so
        does the WAL's recovery, when the writer opens)."""
        from .aio import AsyncWriter

        return AsyncWriter(self, dict(dataset=dataset, agent=agent, attack=attack, run_id=run_id, flush_rows=flush_rows,
                                      flush_bytes=flush_bytes, flush_interval=flush_interval, event_limit=event_limit,
                                      max_buffered_events=max_buffered_events, wal=wal, wal_sync=wal_sync))

    def _commit(self, *, operation: str, writer: Mapping[str, Any], token: str | None, add: Iterable[DataFile] = (),
                remove: Iterable[Any] = (), token_since: int | None = None, info: Mapping[str, Any] | None = None,
                conflict: "Callable[[Commit], str | None] | None" = None) -> Commit:
        """Commit through the log, then bring the cached snapshot up to (at least) that commit."""
        self._require_writable()
        seen: list[Commit] = []
        commit = self.log.commit(self._snapshot, operation=operation, writer=writer, token=token, add=add,
                                 remove=remove, token_since=token_since, info=info, seen=seen, conflict=conflict)
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
        return commit

    def sync_to(self, dst: "str | Warehouse", *, storage_options: Mapping[str, Any] | None = None,
                dry_run: bool = False, workers: int = 16, batch_files: int = sync_mod.BATCH_FILES,
                progress: "Callable[[sync_mod.Progress], None] | None" = None) -> "sync_mod.SyncResult":
        """Copy to `dst` (a URL, created if absent, or an open Warehouse) the data files its snapshot
        lacks from this warehouse's current snapshot, and commit them there (operation `sync`, at most
        `batch_files` files per commit, whole source commits at a time), so that `dst` answers every
        query like this one. Incremental, idempotent and resumable; see `warehouse.sync`. Copies
        `workers` files at a time; `progress` is called with files and bytes done after each file.

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
        return sync_mod.sync(self, target, dry_run=dry_run, workers=workers, progress=progress,
                             batch_files=batch_files)

    # -- reading -------------------------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection with every view defined over the cached snapshot."""
        return reader.connect(self.store, self._snapshot)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None or self._con_version != self.version:
                if self._con is None:
                    self._con = duckdb.connect()
                reader.define_views(self._con, self.store, self._snapshot)
                self._con_version = self.version
            return self._con

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Run SQL over the cached snapshot's views; returns a DuckDB relation (`.pl()`, `.arrow()`, `.fetchall()`).

        Full DuckDB SQL, run as given (it may read or write other files): pass values as `params`,
        never formatted into `query`. The `where=` arguments elsewhere are checked conditions instead
        (`warehouse.condition`)."""
        con = self._connection()
        return con.sql(query, params=params) if params is not None else con.sql(query)

    def _sql_sandboxed(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> duckdb.DuckDBPyRelation:
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

    def scan(self, table: str, where: Mapping[str, str] | None = None) -> "pl.LazyFrame":
        """A Polars LazyFrame over `table`'s files in the cached snapshot (only partitions matching
        `where`, a dict of partition column -> value); for executions, messages and attacks without
        the rows of superseded adds (an execution id added again shows its last add only, as in the
        views; see `warehouse.keys`). Raises WarehouseError for a key of `where` that is not a
        partition column."""
        lf = reader.scan(self.store, self._snapshot, table, where)
        if table in keys.KEYED_TABLES and self._snapshot.table_files(keys.SUPERSEDED):
            lf = keys.hide_polars(lf, reader.scan(self.store, self._snapshot, keys.SUPERSEDED))
        return lf

    def _records(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        cur = self._connection().execute(query, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    def _lookup(self, table: str, column: str, value: str, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run `query` (which reads `t`, the rows of `table`) over only the files whose manifest
        min/max of `column` can hold `value`: an id lookup opens a few files, not every file."""
        files = reader.files_holding(self._snapshot.table_files(table), column, value)
        return self._query_files(table, files, query, params)

    def _query_files(self, table: str, files: list[DataFile], query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run `query`, which reads `t`, over the rows of the given files of `table` only."""
        self._connection()  # on a remote store, registers the filesystem that serves the files
        rows_sql = reader.table_sql(self.store, catalog().table(table), files)
        return self._records(f"with t as ({rows_sql}) {query}", params)

    def _find_execution(self, execution_id: str) -> dict[str, Any]:
        """The latest revision of the execution whose id is, starts with or ends with `execution_id`."""
        found = self._records("select * from executions where starts_with(execution_id, $id) or ends_with(execution_id, $id) "
                              "order by execution_id <> $id, execution_id limit 4", {"id": execution_id})
        if not found:
            raise ExecutionNotFound(f"no execution with id {execution_id!r} at version {self.version}")
        if len(found) > 1 and found[0]["execution_id"] != execution_id:
            ids = ", ".join(repr(f["execution_id"]) for f in found[:3])
            raise ExecutionNotFound(f"execution id part {execution_id!r} is ambiguous: it starts or ends {ids}"
                                    f"{', ...' if len(found) > 3 else ''}; give more of the id's first or last "
                                    "characters (ids are time-ordered, so their ends tell executions apart)")
        return found[0]

    def execution(self, execution_id: str) -> dict[str, Any]:
        """One execution (latest revision) by id, or by a unique prefix or suffix of its id (ids are
        time-ordered, so a suffix is the distinctive part), with `messages` (as written,
        in order) and `attacks`. Raises ExecutionNotFound if none or several match,
        InvalidArgumentType if `execution_id` is not a string."""
        if not isinstance(execution_id, str):
            raise InvalidArgumentType(f"execution_id must be a string, got {type(execution_id).__name__} {execution_id!r:.80}")
        ex = self._find_execution(execution_id)
        eid = ex["execution_id"]
        part = [ex[c] for c in catalog().partition_columns]
        pfilter = " and ".join(f"{c} = ?" for c in catalog().partition_columns)
        msgs = self._records(f"select * from messages where {pfilter} and execution_id = ? order by seq", [*part, eid])
        ex["messages"] = [records.message_from_row(m) for m in msgs]
        ex["attacks"] = self._records(f"select vector_id, type, content, metadata from attacks where {pfilter} "
                                      "and execution_id = ? order by vector_id", [*part, eid])
        return ex

    def table_summary(self, partitions: bool = False) -> list[dict[str, Any]]:
        """Files, rows and bytes per table (or per table and partition) from the manifest alone."""
        groups: dict[tuple, dict[str, Any]] = {}
        for f in self._snapshot.files.values():
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

    def scores(self, by: str | Sequence[str] | None = ("dataset", "agent", "attack"), where: str | None = None,
               k: int | Sequence[int] | None = None, threshold: float = 1.0, *,
               checks: bool = False) -> duckdb.DuckDBPyRelation:
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
        Raises WarehouseError for an unknown grouping or a bad k/threshold. See `warehouse.analytics`.
        """
        from . import analytics

        return analytics.scores(self, by, where, k, threshold, checks=checks)

    # -- agent state: live executions, checkpoints, resume, follow (live.py) -----------------------
    def checkpoints(self, execution_id: str) -> list[Checkpoint]:
        """Every checkpoint of an execution, oldest first (state parsed from JSON).
        Raises ExecutionNotFound for an unknown id."""
        return agent_state.checkpoints(self, execution_id)

    def latest_checkpoint(self, execution_id: str, owner: str | None = None) -> Checkpoint | None:
        """The newest checkpoint (state, step, created_at, ...) of an execution, or None.
        Raises PermissionDenied if `owner` is given and the execution belongs to another owner,
        ExecutionNotFound for an unknown id."""
        return agent_state.latest_checkpoint(self, execution_id, owner)

    def load_checkpoint(self, checkpoint_id: str, *, execution_id: str | None = None,
                        owner: str | None = None) -> Checkpoint:
        """One checkpoint by id (e.g. "turn_2"), within `execution_id` if given. Raises
        CheckpointNotFound (none, or an id shared by several executions), PermissionDenied."""
        return agent_state.load_checkpoint(self, checkpoint_id, execution_id, owner)

    def resume_plan(self, config: Any, task_ids: Sequence[str], *, runs: int = 1,
                    retry_failed: bool = True) -> "list[agent_state.TaskPlan]":
        """Per task: completed and failed runs under `config`, runs still needed, and the
        interrupted execution (with its latest checkpoint) to resume; see `agent_state.resume_plan`."""
        return agent_state.resume_plan(self, config, task_ids, runs=runs, retry_failed=retry_failed)

    def follow(self, execution_id: str | None = None, *, follow: bool = True, last: int | None = None,
               poll_interval: float = 0.5, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The event stream (logs, spans, status changes) as dicts in time order: committed events
        (the `last` N), then, with `follow`, new ones as their commits appear, until `timeout`
        seconds pass without one (None: forever). `warehouse tail` prints it."""
        return agent_state.follow(self, execution_id, follow=follow, last=last, poll_interval=poll_interval,
                                  timeout=timeout)

    def trajectories(self, where: Mapping[str, Any] | str | None = None, *, metadata_keys: Sequence[str] = (),
                     with_messages: bool = False) -> "pl.LazyFrame":
        """RL trajectories (`Writer.add_trajectory`) as a Polars LazyFrame, filterable by metadata
        (`where={"difficulty": "hard"}`) or an SQL condition over `executions` (`where="reward > 0"`)
        and groupable by `group`; see `agent_state.trajectories`."""
        return agent_state.trajectories(self, where, metadata_keys=metadata_keys, with_messages=with_messages)

    # -- agent state: sessions and simulation runs (sessions.py, simulation.py) --------------------
    @property
    def sessions(self) -> "Sessions":
        """The conversation sessions: `save`, `append`, `load`, `list`, `delete` (see warehouse.sessions)."""
        from .sessions import Sessions

        return Sessions(self)

    def run_recorder(self, scenario: str, save_frequency: int = 1, max_steps: int | None = None,
                     started_at: datetime | str | None = None) -> "RunRecorder":
        """A recorder of one simulation run, with a fresh unique run id `run_<scenario>_<UTC start>`
        (see warehouse.simulation.RunRecorder). Raises InvalidRecord for a bad scenario,
        save_frequency (< 0 or not an int) or max_steps; ReadOnlyWarehouse on a time-travel snapshot."""
        from .simulation import RunRecorder

        return RunRecorder(self, scenario, save_frequency=save_frequency, max_steps=max_steps, started_at=started_at)

    def snapshots(self, run_id: str) -> list[dict[str, Any]]:
        """A simulation run's saved snapshots in step order: dicts of step, kind ("snapshot" or
        "final"), game_state, global_vars, agent_vars, messages, created_at. Raises RunNotFound."""
        from .simulation import snapshots

        return snapshots(self, run_id)

    def runs(self) -> "pl.DataFrame":
        """Simulation runs, newest first: run_id, scenario, started_at, snapshots, last_step, finished."""
        from .simulation import runs

        return runs(self)

    # -- retention (retention.py) ------------------------------------------------------------------
    def expire(self, older_than: "timedelta", *, tables: Iterable[str] = ("events",),
               statuses: Iterable[str] = ("completed", "failed"), dry_run: bool = False,
               now: datetime | None = None) -> "retention.ExpireResult":
        """Remove rows older than `older_than` in one commit (operation `delete`), dropping whole
        files where the manifest's stats allow and rewriting files that straddle the cutoff.

        `tables`: `events` (aged by timestamp), `snapshots` (by created_at), `executions` (finished
        executions with a status in `statuses`, aged by finished_at, else started_at; their
        messages, attacks, events, snapshots and live revisions go with them). Anything of a
        running execution stays. Nothing is deleted from disk (time travel still sees the rows).
        `dry_run` reports the same counts and changes nothing. See `warehouse.retention`.
        Raises WarehouseError for an unknown table or status or a non-positive `older_than`,
        ReadOnlyWarehouse on a time-travel snapshot, CommitConflict if concurrent deletes kept
        removing the same files.
        """
        from . import retention

        return retention.expire(self, older_than, tables=tables, statuses=statuses, dry_run=dry_run, now=now)

    # -- maintenance: compaction and vacuum (maintenance.py) ---------------------------------------
    def compact(self, table: str | Iterable[str] | None = None, partition: str | Mapping[str, str] | None = None, *,
                target_file_size: int = 128 << 20, min_files: int = 2, dry_run: bool = False) -> "maintenance.CompactResult":
        """Rewrite the small files of each (table, partition) into few files of about
        `target_file_size` bytes, rows sorted by the table's `sort_by`, one commit (operation
        `compact`) per partition; query answers do not change. Only partitions with at least
        `min_files` files under the target size are touched; `table` (one or several names) and
        `partition` ({"agent": ..., "attack": "none"}) narrow it. Safe while writers append; a
        partition whose inputs another commit removed meanwhile is planned again once, then given
        up on (status "conflict"). `dry_run` plans from the manifest and writes nothing.
        `partition` is an SQL condition on the partition columns (dataset, agent, attack,
        config_hash: `"agent = 'react' and attack <> 'none'"`) or a dict of them; see
        `warehouse.partition_filter`. See `warehouse.maintenance`. Raises SchemaMismatch for an
        unknown table, InvalidCondition for SQL that is not one condition on the partition columns,
        WarehouseError for a filter that selects no partition or a bad size, ReadOnlyWarehouse on a
        time-travel snapshot (unless `dry_run`).
        """
        from . import maintenance

        return maintenance.compact(self, table, partition, target_file_size=target_file_size, min_files=min_files,
                                   dry_run=dry_run)

    def vacuum(self, retain: "timedelta | None" = None, orphan_window: "timedelta | None" = None, *,
               dry_run: bool = False, now: datetime | None = None) -> "maintenance.VacuumResult":
        """Delete from storage the data files removed from the snapshot more than `retain` (default
        7 days) before `now` (default: the current time), files no commit ever added (crashed
        writers) last modified more than `orphan_window` (default and minimum 1 hour,
        `manifest.MIN_ORPHAN_WINDOW`: writers' files in flight are never taken) before it, and stale
        `_manifest/` temp files; then fold old commits into checkpoints if the log can. Files of
        the current snapshot, configs, run claims, commits and checkpoints are never deleted.
        Time travel to a version that referenced a deleted file then raises VersionNotFound.
        `dry_run` lists the same files and deletes nothing. See `warehouse.maintenance`.
        Raises WarehouseError for a negative duration, OrphanWindowTooShort for a window under the
        minimum, ReadOnlyWarehouse on a time-travel snapshot (unless `dry_run`).
        """
        from datetime import timedelta

        from . import maintenance

        return maintenance.vacuum(self, timedelta(days=7) if retain is None else retain,
                                  timedelta(hours=1) if orphan_window is None else orphan_window,
                                  dry_run=dry_run, now=now)

    # -- doctor (doctor.py) ------------------------------------------------------------------------
    def doctor(self, repair: bool = False, *, footers: bool = True, deep: bool = False) -> "doctor_mod.DoctorReport":
        """Check the whole log and every active data file against storage: commit files that do
        not parse, gaps in the log, data files missing or with another size or row count than the
        manifest records (`footers=False` skips reading Parquet footers), checkpoints that disagree
        with the log, commit times going backwards (a warning), orphans. `deep=True` also reads
        every page of every data file and checks it against its checksum (damage inside a page
        passes every other check, and DuckDB and Polars read it as other values). With `repair`,
        one new commit (operation `repair`) removes or re-records the data files that do not match
        (with `deep`, the damaged ones too); history is never rewritten. See `warehouse.doctor`.
        Raises StorageError if the store is unusable, InvalidArgumentType for a flag that is not a bool.
        """
        from . import doctor as doctor_mod

        return doctor_mod.run(self, repair=arguments.boolean("repair", repair),
                              footers=arguments.boolean("footers", footers), deep=arguments.boolean("deep", deep))

    # -- report (report.py) --------------------------------------------------------------------------
    def report(self, out: "str | os.PathLike[str]" = "report.html", *, title: str = "Evaluation report",
               top: int = 10) -> "Path":
        """Write the self-contained HTML report of this snapshot (ASR heatmap, utility vs ASR,
        pass@k curves, most compromised tasks, tokens and cost; see `warehouse.report`); returns
        its path."""
        from . import report

        return report.build_report(self, out, title=title, top=top)

    # -- import and export (importers/, exporters/) -----------------------------------------------
    def import_(self, kind: str, path: "str | os.PathLike[str]", *, strict: bool = False,
                progress: bool = False) -> "ImportReport":
        """Import every new source of `kind` under `path` (a directory, file, or for `postgres` a
        connection URL): legacy, sessions, checkpoints, trajectories, simulation, postgres,
        agentdojo, inspect (see `warehouse.importers`).

        Idempotent: a source whose content was imported before is skipped (the `imports` table
        records each one, in the same commit as its rows). Sources are committed in batches; one
        that cannot be read or mapped is reported in `report.failed` with its path and reason and
        the import goes on, unless `strict`, which raises ImportFailed at the first (after
        committing the sources read before it). Raises WarehouseError for an unknown kind.
        """
        from .importers import importer, run_import

        return run_import(self, importer(kind), path, strict=strict, progress=progress)

    def export(self, kind: str, out: str, **options: Any) -> "ExportReport":
        """Export the current snapshot as `kind` (delta, parquet, trajectories, legacy) to `out`;
        see `warehouse.exporters`. Raises ExportFailed for an unknown kind or an unusable target."""
        from .exporters import export

        return export(self, kind, out, **options)


def open(url: str = "warehouse-data", *, create: bool = False, version: int | None = None, as_of: datetime | None = None,
         storage_options: Mapping[str, Any] | None = None, checkpoint_interval: int | None = None) -> Warehouse:
    """Open the warehouse at `url` (a local path, `s3://bucket/prefix`, or any fsspec URL).

    `storage_options` go to the fsspec filesystem (for S3: `endpoint_url`, `key`, `secret`, ...; by
    default the AWS environment variables and config files are used).
    `create=True` creates it if absent (refusing a location that holds other files), after checking
    that the store supports create-if-absent writes.
    `version=N` or `as_of=datetime` opens a read-only snapshot of the past.
    `checkpoint_interval`: write a manifest checkpoint every this many commits (default
    `manifest.CHECKPOINT_INTERVAL`, 100; 0: never). Opening loads the newest checkpoint and replays
    only the commits after it.
    Raises WarehouseNotFound, NotAWarehouse, VersionNotFound, CorruptCommit, UnsupportedFormatVersion,
    StorageError (missing bucket, access denied, endpoint unreachable), ConditionalWritesUnsupported,
    InvalidArgument/InvalidArgumentType for a bad argument (a version that is not an int, an
    `as_of` that is not a datetime or ISO-8601 string).
    """
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
        if listing.empty:
            if not create:
                raise WarehouseNotFound(f"no warehouse at {url!r}; create one with `warehouse init` or open(..., create=True)")
            names = store.list_names(".")
            if names and names != [MANIFEST_DIR]:
                raise NotAWarehouse(f"{url!r} holds files but no warehouse manifest; choose an empty or new location")
            store.check_conditional_writes(MANIFEST_DIR)
            log.create(writer_info(uuid.uuid4().hex))
            listing = None
        snapshot = log.snapshot(version=version, as_of=as_of, listing=listing)
        if version is not None or as_of is not None:
            from . import maintenance

            maintenance.check_readable(store, snapshot.version)  # vacuum may have deleted its data files
    return Warehouse(store, snapshot, read_only=version is not None or as_of is not None,
                     checkpoint_interval=checkpoint_interval)
