"""Retention: expire old rows in one commit (`Warehouse.expire`, `warehouse expire`).

What goes, for `expire(wh, older_than, tables=..., statuses=...)` with cutoff = now - older_than
(a row is old when its age column is strictly before the cutoff):

- `events` (age: `timestamp`) and `snapshots` (age: `created_at`): old rows, except those of a
  *protected* execution. Rows with a NULL `execution_id`, or of an execution that has no row in
  `executions`/`executions_live` at all, are aged by time alone.
- `executions`: every execution whose final rows (table `executions`) all have a status in
  `statuses` and are old by coalesce(finished_at, started_at) (a row with neither is never old).
  Expiring an execution cascades: its rows in `executions`, `executions_live`, `messages`,
  `attacks`, `events` and `snapshots` all go, whatever their own age (also when `events` or
  `snapshots` are not in `tables`).
- `sessions` are not expirable here (they have their own delete); their messages are never touched.

Protected, never removed: everything of an execution that is still running (it has revisions in
`executions_live` and no final row: the `executions` view shows it as running), whatever its age,
so its checkpoints stay available to resume it; and, when `statuses` leaves out a final status,
the events and snapshots of the executions with that status (statuses=("failed",) keeps the logs
of completed executions). Final rows are always completed or failed, so with both statuses (the
default) only running executions are protected.

How: the manifest's per-file min/max stats decide most files without reading them (every row
old and no protected execution in the file's partition: dropped whole; no row old and nothing to
cascade there: left alone); only files that straddle the cutoff, or that may hold a protected or
expiring execution's rows, are read, and rewritten without the expired rows (`rewrite.py`). An
execution's rows of every table live in its partition (a writer writes only its own config's
partition, and executions are resumed only by a writer of their config; the `executions` view
relies on the same fact), so protection and cascades are worked out partition by partition, and
only partitions with expiring executions are searched for their messages, attacks, events, ...

Everything one call removes is one commit (operation `delete`, with an `info.expire` record).
Nothing is deleted from disk: the files leave the snapshot, time travel to an earlier version
still sees their rows, and vacuum deletes them later. Rows that concurrent writers commit in new
files are never touched. `plan_expire` (which writes the rewritten files) and `commit_expire` are
separate steps; `expire` runs both, planning again from a refreshed snapshot when a concurrent
delete or compaction removed one of the planned files.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.core import arguments
from warehouse.core.errors import CommitConflict, InvalidArgument, InvalidArgumentType
from warehouse.core.schemas import catalog
from warehouse.engine.rewrite import RewritePlan, commit_rewrite, plan_rewrite
from warehouse.manifest import DataFile, Snapshot, utcnow

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Tables `expire` accepts, and the column that ages the rows of the time-based ones.
EXPIRABLE_TABLES = ("events", "snapshots", "executions")
AGE_COLUMNS = {"events": "timestamp", "snapshots": "created_at"}
#: Statuses of final execution rows (a running execution is never expired).
FINAL_STATUSES = ("completed", "failed")
#: Tables holding rows of an execution, which go with it when it expires.
CASCADE_TABLES = ("executions", "executions_live", "messages", "attacks", "events", "snapshots")
#: Plans made by `expire` before giving up on concurrent removals of the same files.
ATTEMPTS = 3

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhms])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_EXEC_COLUMNS = ["execution_id", "status", "started_at", "finished_at"]
_TS = pa.timestamp("us", tz="UTC")

PartitionKey = tuple[tuple[str, str], ...]


def _pkey(f: DataFile) -> PartitionKey:
    return tuple(sorted(f.partition.items()))


@dataclass(frozen=True)
class ExpireResult:
    """What an expire removed (or, for a dry run, would remove)."""

    cutoff: datetime  # rows older than this (UTC) were expired
    rows_removed: Mapping[str, int]  # table -> rows, only tables that lose rows
    files_dropped: int  # files that left the snapshot whole
    files_rewritten: int  # files replaced by a copy without the expired rows
    version: int | None  # the commit made; None for a dry run or when nothing was old
    dry_run: bool
    executions_expired: int = 0  # execution ids whose rows went (table `executions` expired)
    files_by_table: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # table -> (dropped, rewritten)

    @property
    def rows(self) -> int:
        """Rows removed over all tables."""
        return sum(self.rows_removed.values())


@dataclass
class ExpirePlan:
    """An expire worked out against one snapshot: the rewrite to commit and its counts.

    Unless `dry_run`, the rewritten files already exist (invisible until `commit_expire`)."""

    cutoff: datetime
    tables: tuple[str, ...]
    statuses: tuple[str, ...]
    base_version: int
    dry_run: bool
    rewrite: RewritePlan
    executions_expired: int
    files_by_table: dict[str, tuple[int, int]]

    def result(self, version: int | None) -> ExpireResult:
        return ExpireResult(
            self.cutoff,
            dict(sorted(self.rewrite.by_table.items())),
            self.rewrite.files_dropped,
            self.rewrite.files_rewritten,
            version,
            self.dry_run,
            self.executions_expired,
            dict(sorted(self.files_by_table.items())),
        )

    def info(self) -> dict[str, Any]:
        """The commit's `info.expire` record."""
        return {
            "cutoff": self.cutoff.isoformat().replace("+00:00", "Z"),
            "tables": list(self.tables),
            "statuses": list(self.statuses),
            "planned_at_version": self.base_version,
            "rows_removed": dict(sorted(self.rewrite.by_table.items())),
            "executions_expired": self.executions_expired,
            "files_dropped": self.rewrite.files_dropped,
            "files_rewritten": self.rewrite.files_rewritten,
        }


# -- input ---------------------------------------------------------------------------------------
def parse_duration(text: str, *, zero: bool = False) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s` (a positive number and one unit; 0 too if `zero`) -> timedelta.

    Raises WarehouseError naming the text otherwise."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidArgument(
            f"bad duration {text!r}: give a number and a unit d, h, m or s, e.g. 30d, 12h, 90m, 3600s"
        )
    age = timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    if age < timedelta(0) or (age == timedelta(0) and not zero):
        raise InvalidArgument(f"bad duration {text!r}: it must be more than 0")
    return age


_HINTS = {"sessions": " (sessions have their own delete)", "running": " (running executions are never expired)"}


def _names(kind: str, given: Any, valid: tuple[str, ...]) -> tuple[str, ...]:
    """`given` (one name or an iterable of names) checked against `valid`, de-duplicated in order."""
    try:
        values = (given,) if isinstance(given, str) else tuple(given)
    except TypeError:
        raise InvalidArgumentType(f"{kind}s must be names, got {given!r}; choose from {', '.join(valid)}") from None
    for v in values:
        if v not in valid:
            raise InvalidArgument(f"cannot expire {kind} {v!r}{_HINTS.get(v, '')}; choose from {', '.join(valid)}")
    if not values:
        raise InvalidArgument(f"no {kind} given to expire; choose from {', '.join(valid)}")
    return tuple(dict.fromkeys(values))


def _validate(
    older_than: Any, tables: Any, statuses: Any, now: datetime | None
) -> tuple[datetime, tuple[str, ...], tuple[str, ...]]:
    """The cutoff and the de-duplicated tables and statuses; WarehouseError for anything invalid."""
    if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
        raise (InvalidArgument if isinstance(older_than, timedelta) else InvalidArgumentType)(
            f"older_than must be a positive timedelta (e.g. timedelta(days=30)), got {older_than!r}"
        )
    tables = _names("table", tables, EXPIRABLE_TABLES)
    statuses = _names("status", statuses, FINAL_STATUSES)
    if now is None:
        now = utcnow()
    elif not isinstance(now, datetime):
        raise InvalidArgumentType(f"now must be a datetime, got {now!r}")
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # naive = UTC, as everywhere in the warehouse
    return arguments.before(now, older_than), tables, statuses


# -- manifest stats ------------------------------------------------------------------------------
def _stat_ts(v: Any) -> datetime | None:
    if not isinstance(v, str):
        return None
    try:
        ts = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _age_from_stats(f: DataFile, column: str, cutoff: datetime) -> bool | None:
    """From the manifest alone: True if every row is old, False if none is, None if unknown."""
    s = f.stats.get(column)
    if not isinstance(s, Mapping):
        return None
    lo, hi = _stat_ts(s.get("min")), _stat_ts(s.get("max"))
    if lo is None or hi is None:
        return None
    if lo >= cutoff:
        return False  # NULLs (no age) are not old either
    if hi < cutoff and s.get("nulls") == 0:
        return True
    return None


def _no_old_final_rows(f: DataFile, cutoff: datetime) -> bool:
    """True if the manifest proves that no row of an `executions` file is old by
    coalesce(finished_at, started_at) (a row with neither is never old)."""
    fin, st = f.stats.get("finished_at"), f.stats.get("started_at")
    if not isinstance(fin, Mapping) or not isinstance(st, Mapping) or "nulls" not in fin or "nulls" not in st:
        return False
    if fin.get("min") is not None:
        lo = _stat_ts(fin["min"])
        if lo is None or lo < cutoff:
            return False
    if fin["nulls"] == 0:
        return True
    # Some rows have no finished_at: they are aged by started_at.
    if st.get("min") is None:
        return True
    lo = _stat_ts(st["min"])
    return lo is not None and lo >= cutoff


# -- planning ------------------------------------------------------------------------------------
def read_columns(wh: Engine, f: DataFile, columns: list[str]) -> pa.Table:
    """Only `columns` of a data file (Parquet reads just their column chunks), typed by the table's
    schema; a column the file predates reads as NULL."""
    from warehouse.engine.datafiles import checked, parquet_file

    schema = catalog().table(f.table).arrow
    pf = parquet_file(wh.store, f)  # pages checked against their checksums: CorruptDataFile names a damaged file
    names = set(pf.schema_arrow.names)
    present = [c for c in columns if c in names]
    t = checked(f, lambda: pf.read(columns=present))
    arrays = [
        t.column(c).cast(schema.field(c).type) if c in present else pa.nulls(t.num_rows, schema.field(c).type)
        for c in columns
    ]
    return pa.table(arrays, names=columns)


class _Facts:
    """What planning needs to know about executions, read once per file and per partition."""

    def __init__(self, wh: Engine, snap: Snapshot, cutoff: datetime, statuses: tuple[str, ...]) -> None:
        self.wh, self.snap, self.cutoff, self.statuses = wh, snap, cutoff, statuses
        self._final: dict[str, pa.Table] = {}
        self.finals: dict[PartitionKey, list[DataFile]] = defaultdict(list)
        for f in snap.table_files("executions"):
            self.finals[_pkey(f)].append(f)
        self.live: dict[PartitionKey, list[DataFile]] = defaultdict(list)
        for f in snap.table_files("executions_live"):
            self.live[_pkey(f)].append(f)

    def final_rows(self, f: DataFile) -> pa.Table:
        """execution_id, status, started_at, finished_at of a file of `executions`."""
        if f.path not in self._final:
            self._final[f.path] = read_columns(self.wh, f, _EXEC_COLUMNS)
        return self._final[f.path]

    def final_ids(self, p: PartitionKey, where: Callable[[pa.Table], Any] | None = None) -> set[str]:
        out: set[str] = set()
        for f in self.finals.get(p, ()):
            t = self.final_rows(f)
            ids = (
                t.column("execution_id")
                if where is None
                else t.column("execution_id").filter(pc.fill_null(where(t), False))
            )
            out.update(ids.unique().to_pylist())
        return out

    def protected(self, p: PartitionKey) -> set[str]:
        """Ids in partition `p` whose events and snapshots must stay: running executions (revisions
        in `executions_live`, no final row: exactly what the `executions` view shows as running),
        and executions with a final status outside `statuses`."""
        ids: set[str] = set()
        if self.live.get(p):
            for f in self.live[p]:
                ids.update(read_columns(self.wh, f, ["execution_id"]).column("execution_id").unique().to_pylist())
            ids -= self.final_ids(p)
        if set(self.statuses) != set(FINAL_STATUSES):
            keep = pa.array(self.statuses, pa.string())
            ids |= self.final_ids(p, lambda t: pc.invert(pc.is_in(t.column("status"), value_set=keep)))
        ids.discard(None)
        return ids

    def expiring(self, p: PartitionKey) -> set[str]:
        """Ids in partition `p` of executions that expire: every final row old and of a status in `statuses`."""
        keep = pa.array(self.statuses, pa.string())
        cutoff = pa.scalar(self.cutoff, _TS)

        def qualifies(t: pa.Table) -> Any:
            age = pc.coalesce(t.column("finished_at"), t.column("started_at"))
            return pc.and_(pc.is_in(t.column("status"), value_set=keep), pc.less(age, cutoff))

        yes = self.final_ids(p, qualifies)
        if not yes:
            return set()
        no = self.final_ids(p, lambda t: pc.invert(pc.fill_null(qualifies(t), False)))
        return yes - no


def _is_in(col: Any, value_set: pa.Array) -> Any:
    return pc.is_in(col, value_set=value_set)


def _drop_ids(t: pa.Table, gone: pa.Array) -> Any:
    """The mask of `t`'s rows whose execution is in `gone`."""
    return _is_in(t.column("execution_id"), gone)


def _id_set(ids: set[str] | None) -> pa.Array | None:
    return pa.array(sorted(ids), pa.string()) if ids else None


def plan_expire(
    wh: Engine,
    older_than: timedelta,
    *,
    tables: Iterable[str] | str = ("events",),
    statuses: Iterable[str] | str = FINAL_STATUSES,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ExpirePlan:
    """Work out an expire against `wh`'s cached snapshot (see the module docstring for what goes).

    Unless `dry_run`, writes the rewritten files now (invisible until `commit_expire`). Raises
    WarehouseError for invalid arguments, ReadOnlyWarehouse (unless `dry_run`) on a time-travel
    snapshot, StorageError if a file it must read cannot be read.
    """
    cutoff, tables, statuses = _validate(older_than, tables, statuses, now)
    if not dry_run:
        wh.engine.require_writable()
    snap = wh.snapshot
    facts = _Facts(wh, snap, cutoff, statuses)
    cut = pa.scalar(cutoff, _TS)

    # Executions that expire, per partition: only partitions where the stats allow an old final row.
    expiring: dict[PartitionKey, set[str]] = {}
    if "executions" in tables:
        for p, files in facts.finals.items():
            if any(not _no_old_final_rows(f, cutoff) for f in files) and (ids := facts.expiring(p)):
                expiring[p] = ids

    # Protected ids, only for partitions whose events/snapshots may hold old rows.
    protected: dict[PartitionKey, set[str]] = {}
    timed = [t for t in tables if t in AGE_COLUMNS]
    for t in timed:
        for f in snap.table_files(t):
            p = _pkey(f)
            if p not in protected and _age_from_stats(f, AGE_COLUMNS[t], cutoff) is not False:
                protected[p] = facts.protected(p)

    plan = RewritePlan()
    files_by_table: dict[str, tuple[int, int]] = {}

    def add(
        table: str,
        files: list[DataFile],
        drop: Callable[[pa.Table], Any],
        whole_file: Callable[[DataFile], bool | None],
    ) -> None:
        sub = plan_rewrite(wh, files, drop, dry_run=dry_run, whole_file=whole_file)
        if sub.remove:
            d, r = files_by_table.get(table, (0, 0))
            files_by_table[table] = (d + sub.files_dropped, r + sub.files_rewritten)
            plan.merge(sub)

    by_partition: dict[str, dict[PartitionKey, list[DataFile]]] = {}
    for table in CASCADE_TABLES:
        groups: dict[PartitionKey, list[DataFile]] = defaultdict(list)
        for f in snap.table_files(table):
            groups[_pkey(f)].append(f)
        by_partition[table] = groups

    def by_ids(f: DataFile, value_set: pa.Array) -> bool | None:
        """From a file's execution ids alone (one column read): do all its rows (True), none (False)
        or some (None) belong to `value_set`?"""
        n = pc.sum(_is_in(read_columns(wh, f, ["execution_id"]).column("execution_id"), value_set)).as_py() or 0
        return True if n == f.rows else (False if n == 0 else None)

    for table in CASCADE_TABLES:
        age_col = AGE_COLUMNS.get(table) if table in tables else None
        for p, files in sorted(by_partition[table].items()):
            keep_ids = protected.get(p, set())
            gone, keep = _id_set(expiring.get(p, set()) - keep_ids), _id_set(keep_ids)  # protected always wins
            if age_col is None and gone is None:
                continue
            if table == "executions":
                assert gone is not None
                counts = {
                    f.path: pc.sum(_is_in(facts.final_rows(f).column("execution_id"), gone)).as_py() or 0 for f in files
                }

                def whole_by_count(f: DataFile, counts: dict[str, int] = counts) -> bool | None:
                    return True if counts[f.path] == f.rows else (False if counts[f.path] == 0 else None)

                add(table, files, partial(_drop_ids, gone=gone), whole_by_count)
                continue
            if age_col is None:  # only the rows of expiring executions go
                add(table, files, partial(_drop_ids, gone=gone), partial(by_ids, value_set=gone))
                continue

            def drop(
                t: pa.Table, col: str = age_col, gone: pa.Array | None = gone, keep: pa.Array | None = keep
            ) -> Any:
                old = pc.less(t.column(col), cut)
                if gone is not None:
                    old = pc.or_(pc.fill_null(old, False), _is_in(t.column("execution_id"), gone))
                if keep is not None:
                    old = pc.and_(old, pc.invert(_is_in(t.column("execution_id"), keep)))
                return old

            def whole(
                f: DataFile, col: str = age_col, gone: pa.Array | None = gone, keep: pa.Array | None = keep
            ) -> bool | None:
                decided = _age_from_stats(f, col, cutoff)
                if decided is True:  # every row is old: all go unless a protected execution has some
                    return True if keep is None or by_ids(f, keep) is False else None
                if decided is False:  # no row is old: only an expiring execution's rows go
                    return False if gone is None else by_ids(f, gone)
                return None

            add(table, files, drop, whole)

    return ExpirePlan(
        cutoff,
        tables,
        statuses,
        snap.version,
        dry_run,
        plan,
        sum(len(ids) for ids in expiring.values()),
        files_by_table,
    )


def commit_expire(wh: Engine, plan: ExpirePlan) -> ExpireResult:
    """Commit a plan made by `plan_expire` (one commit, operation `delete`; none if nothing goes).

    Raises InvalidArgument for a dry-run plan (it wrote no replacement files), CommitConflict if a
    commit since the plan's snapshot removed one of its files (plan again from a refreshed snapshot).
    """
    if plan.dry_run:
        raise InvalidArgument(
            "a dry-run expire plan cannot be committed (it wrote no rewritten files); plan again without dry_run"
        )
    commit = commit_rewrite(wh, plan.rewrite, operation="delete", info={"expire": plan.info()})
    return plan.result(commit.version if commit is not None else None)


def expire(
    wh: Engine,
    older_than: timedelta,
    tables: Iterable[str] | str = ("events",),
    statuses: Iterable[str] | str = FINAL_STATUSES,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ExpireResult:
    """Remove rows older than `older_than` (before `now`, default the current time) from `tables`
    (`events`, `snapshots`, `executions` with everything of the expired executions) in one commit;
    running executions are never touched. See the module docstring for exactly what goes.

    Refreshes the snapshot first. `dry_run` computes the same counts and writes nothing. Raises
    WarehouseError for an unknown table or status or a non-positive `older_than`;
    ReadOnlyWarehouse on a time-travel snapshot (unless `dry_run`); CommitConflict if concurrent
    deletes or compactions removed planned files on every one of ATTEMPTS plans.
    """
    now = utcnow() if now is None else now  # fixed across attempts
    cutoff, tables, statuses = _validate(older_than, tables, statuses, now)
    last: CommitConflict | None = None
    for _ in range(ATTEMPTS):
        wh.refresh()
        plan = plan_expire(wh, older_than, tables=tables, statuses=statuses, dry_run=dry_run, now=now)
        if dry_run:
            return plan.result(None)
        try:
            return commit_expire(wh, plan)
        except CommitConflict as exc:  # a file it removes was removed meanwhile: plan again
            last = exc
    raise CommitConflict(
        f"expire gave up after {ATTEMPTS} attempts: concurrent deletes or compactions kept "
        f"removing the files it rewrites (last: {last}); run it again"
    ) from last


__all__ = [
    "expire",
    "plan_expire",
    "commit_expire",
    "parse_duration",
    "ExpireResult",
    "ExpirePlan",
    "EXPIRABLE_TABLES",
    "FINAL_STATUSES",
]
