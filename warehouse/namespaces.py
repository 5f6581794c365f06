"""The namespaces of the `Warehouse` facade, in the style of pyiceberg's `table.maintenance` and
delta-rs's `dt.optimize`: `wh.maintenance`, `wh.executions`, `wh.simulations` (and `wh.sessions`,
which is `warehouse.agent.sessions.Sessions`).

Each is a thin, typed delegation to the feature functions with the warehouse's engine; the
documentation of each call lives here, and the old top-level names on `Warehouse` are aliases of these.
Feature modules are imported inside the calls so that `import warehouse` stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from warehouse.core import arguments
from warehouse.engine.engine import Engine
from warehouse.write.live import Checkpoint

if TYPE_CHECKING:
    import polars as pl

    from warehouse.agent import state as agent_state
    from warehouse.agent.simulation import RunRecorder
    from warehouse.ops import doctor as doctor_mod
    from warehouse.ops import maintenance as maintenance_mod
    from warehouse.ops import retention


class Maintenance:
    """`wh.maintenance`: compaction, vacuum, retention, the health check and manifest checkpoints.
    Query answers never change through any of these (except `expire`, which deletes old rows)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def compact(
        self,
        table: str | Iterable[str] | None = None,
        partition: str | Mapping[str, str] | None = None,
        *,
        target_file_size: int = 128 << 20,
        min_files: int = 2,
        dry_run: bool = False,
    ) -> maintenance_mod.CompactResult:
        """Rewrite the small files of each (table, partition) into few files of about
        `target_file_size` bytes, rows sorted by the table's `sort_by`, one commit (operation
        `compact`) per partition; query answers do not change. Only partitions with at least
        `min_files` files under the target size are touched; `table` (one or several names) and
        `partition` narrow it. Safe while writers append; a partition whose inputs another commit
        removed meanwhile is planned again once, then given up on (status "conflict"). `dry_run`
        plans from the manifest and writes nothing.
        `partition` is an SQL condition on the partition columns (dataset, agent, attack,
        config_hash: `"agent = 'react' and attack <> 'none'"`) or a dict of them
        (`{"agent": ..., "attack": "none"}`); see `warehouse.core.partition_filter` and
        `warehouse.ops.maintenance`. Raises SchemaMismatch for an unknown table, InvalidCondition for
        SQL that is not one condition on the partition columns, InvalidArgument for a filter that
        selects no partition or a bad size, ReadOnlyWarehouse on a time-travel snapshot (unless `dry_run`).
        """
        from warehouse.ops import maintenance as maintenance_mod

        return maintenance_mod.compact(
            self._engine, table, partition, target_file_size=target_file_size, min_files=min_files, dry_run=dry_run
        )

    def vacuum(
        self,
        retain: timedelta | None = None,
        orphan_window: timedelta | None = None,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> maintenance_mod.VacuumResult:
        """Delete from storage the data files removed from the snapshot more than `retain` (default
        7 days) before `now` (default: the current time), files no commit ever added (crashed
        writers) last modified more than `orphan_window` (default and minimum 1 hour,
        `manifest.MIN_ORPHAN_WINDOW`: writers' files in flight are never taken) before it, and stale
        `_manifest/` temp files; then fold old commits into checkpoints if the log can. Files of
        the current snapshot, configs, run claims, commits and checkpoints are never deleted.
        Time travel to a version that referenced a deleted file then raises VersionNotFound.
        `dry_run` lists the same files and deletes nothing. See `warehouse.ops.maintenance`.
        Raises InvalidArgument for a negative duration, OrphanWindowTooShort for a window under the
        minimum, ReadOnlyWarehouse on a time-travel snapshot (unless `dry_run`).
        """
        from warehouse.ops import maintenance as maintenance_mod

        return maintenance_mod.vacuum(
            self._engine,
            timedelta(days=7) if retain is None else retain,
            timedelta(hours=1) if orphan_window is None else orphan_window,
            dry_run=dry_run,
            now=now,
        )

    def expire(
        self,
        older_than: timedelta,
        *,
        tables: Iterable[str] = ("events",),
        statuses: Iterable[str] = ("completed", "failed"),
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> retention.ExpireResult:
        """Remove rows older than `older_than` in one commit (operation `delete`), dropping whole
        files where the manifest's stats allow and rewriting files that straddle the cutoff.

        `tables`: `events` (aged by timestamp), `snapshots` (by created_at), `executions` (finished
        executions with a status in `statuses`, aged by finished_at, else started_at; their
        messages, attacks, events, snapshots and live revisions go with them). Anything of a
        running execution stays. Nothing is deleted from disk (time travel still sees the rows).
        `dry_run` reports the same counts and changes nothing. See `warehouse.ops.retention`.
        Raises InvalidArgument for an unknown table or status or a non-positive `older_than`,
        ReadOnlyWarehouse on a time-travel snapshot, CommitConflict if concurrent deletes kept
        removing the same files.
        """
        from warehouse.ops import retention

        return retention.expire(self._engine, older_than, tables=tables, statuses=statuses, dry_run=dry_run, now=now)

    def doctor(self, repair: bool = False, *, footers: bool = True, deep: bool = False) -> doctor_mod.DoctorReport:
        """Check the whole log and every active data file against storage: commit files that do
        not parse, gaps in the log, data files missing or with another size or row count than the
        manifest records (`footers=False` skips reading Parquet footers), checkpoints that disagree
        with the log, commit times going backwards (a warning), orphans. `deep=True` also reads
        every page of every data file and checks it against its checksum (damage inside a page
        passes every other check, and DuckDB and Polars read it as other values). With `repair`,
        one new commit (operation `repair`) removes or re-records the data files that do not match
        (with `deep`, the damaged ones too); history is never rewritten. See `warehouse.ops.doctor`.
        Raises StorageError if the store is unusable, InvalidArgumentType for a flag that is not a bool.
        """
        from warehouse.ops import doctor as doctor_mod

        return doctor_mod.run(
            self._engine,
            repair=arguments.boolean("repair", repair),
            footers=arguments.boolean("footers", footers),
            deep=arguments.boolean("deep", deep),
        )

    def checkpoint_manifest(self) -> int:
        """Write a manifest checkpoint (the whole snapshot in one file) at the current version
        (after a refresh), so that opening the warehouse replays no commit; returns that version.
        Nothing is written if one exists. Manifest checkpoints are also written automatically every
        `checkpoint_interval` commits (see `warehouse.open`). Not to be confused with an agent's
        checkpoints (`wh.executions.checkpoints`). Raises ReadOnlyWarehouse on a time-travel snapshot.
        """
        engine = self._engine
        engine.require_writable()
        engine.refresh()
        snap = engine.snapshot
        with engine.store.errors():
            engine.log.write_checkpoint(snap)
        return snap.version


class Executions:
    """`wh.executions`: the agent state of executions: their checkpoints, resuming, the live event
    stream and RL trajectories. (One execution with its messages: `wh.execution(id)`.)"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def checkpoints(self, execution_id: str) -> list[Checkpoint]:
        """Every checkpoint of an execution, oldest first (state parsed from JSON).
        Raises ExecutionNotFound for an unknown id."""
        from warehouse.agent import state as agent_state

        return agent_state.checkpoints(self._engine, execution_id)

    def latest_checkpoint(self, execution_id: str, owner: str | None = None) -> Checkpoint | None:
        """The newest checkpoint (state, step, created_at, ...) of an execution, or None.
        Raises PermissionDenied if `owner` is given and the execution belongs to another owner,
        ExecutionNotFound for an unknown id."""
        from warehouse.agent import state as agent_state

        return agent_state.latest_checkpoint(self._engine, execution_id, owner)

    def load_checkpoint(
        self, checkpoint_id: str, *, execution_id: str | None = None, owner: str | None = None
    ) -> Checkpoint:
        """One checkpoint by id (e.g. "turn_2"), within `execution_id` if given. Raises
        CheckpointNotFound (none, or an id shared by several executions), PermissionDenied."""
        from warehouse.agent import state as agent_state

        return agent_state.load_checkpoint(self._engine, checkpoint_id, execution_id, owner)

    def resume_plan(
        self, config: Any, task_ids: Sequence[str], *, runs: int = 1, retry_failed: bool = True
    ) -> list[agent_state.TaskPlan]:
        """Per task: completed and failed runs under `config`, runs still needed, and the
        interrupted execution (with its latest checkpoint) to resume; see `warehouse.agent.state.resume_plan`."""
        from warehouse.agent import state as agent_state

        return agent_state.resume_plan(self._engine, config, task_ids, runs=runs, retry_failed=retry_failed)

    def follow(
        self,
        execution_id: str | None = None,
        *,
        follow: bool = True,
        last: int | None = None,
        poll_interval: float = 0.5,
        timeout: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The event stream (logs, spans, status changes) as dicts in time order: committed events
        (the `last` N), then, with `follow`, new ones as their commits appear, until `timeout`
        seconds pass without one (None: forever). `warehouse tail` prints it."""
        from warehouse.agent import state as agent_state

        return agent_state.follow(
            self._engine, execution_id, follow=follow, last=last, poll_interval=poll_interval, timeout=timeout
        )

    def trajectories(
        self,
        where: str | Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        metadata_keys: Sequence[str] = (),
        with_messages: bool = False,
    ) -> pl.LazyFrame:
        """RL trajectories (`Writer.add_trajectory`) as a Polars LazyFrame, kept where `where` (an
        SQL condition over `executions`, e.g. `"reward > 0"`) holds and the metadata has every
        key -> value of `metadata` (`{"difficulty": "hard"}`; `a.b` is key b inside key a);
        groupable by `group`. `where` given a dict is read as `metadata` (the form before 0.2).
        See `warehouse.agent.state.trajectories`. Raises InvalidCondition for SQL that is not one
        condition or a metadata key that is not a key name."""
        from warehouse.agent import state as agent_state

        return agent_state.trajectories(
            self._engine, where, metadata=metadata, metadata_keys=metadata_keys, with_messages=with_messages
        )


class Simulations:
    """`wh.simulations`: recorded simulation runs and their saved states (see `warehouse.agent.simulation`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def recorder(
        self,
        scenario: str,
        save_frequency: int = 1,
        max_steps: int | None = None,
        started_at: datetime | str | None = None,
    ) -> RunRecorder:
        """A recorder of one simulation run, with a fresh unique run id `run_<scenario>_<UTC start>`
        (see `warehouse.agent.simulation.RunRecorder`). Raises InvalidRecord for a bad scenario,
        save_frequency (< 0 or not an int) or max_steps; ReadOnlyWarehouse on a time-travel snapshot."""
        from warehouse.agent.simulation import RunRecorder

        return RunRecorder(
            self._engine, scenario, save_frequency=save_frequency, max_steps=max_steps, started_at=started_at
        )

    def snapshots(self, run_id: str) -> list[dict[str, Any]]:
        """A simulation run's saved states in step order: dicts of step, kind ("snapshot" or
        "final"), game_state, global_vars, agent_vars, messages, created_at. (Not the manifest's
        `wh.snapshot`.) Raises RunNotFound."""
        from warehouse.agent.simulation import snapshots

        return snapshots(self._engine, run_id)

    def runs(self) -> pl.DataFrame:
        """Simulation runs, newest first: run_id, scenario, started_at, snapshots, last_step, finished."""
        from warehouse.agent.simulation import runs

        return runs(self._engine)
