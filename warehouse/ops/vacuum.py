"""Vacuum (`Warehouse.vacuum`, `warehouse vacuum`).

Vacuum deletes from storage what no current version needs, and nothing else:

- (a) data files removed from the snapshot by a commit older than `retain` (removal time = that
  commit's committed_at; a file still in the current snapshot is never deleted);
- (b) orphans: `part-*.parquet` and `.tmp-*` files in the partition directories of the tables that
  no commit ever added (left by crashed writers or abandoned compactions), last modified more than
  `orphan_window` before vacuum began (never later than the real time, whatever `now` says). The
  window protects files a writer has written but not yet committed: the directories are listed
  *before* the log is read, and the log is read again just before deleting. It is at least
  `manifest.MIN_ORPHAN_WINDOW` (1 hour; shorter is refused), and every commit refuses files that
  began to be written more than `manifest.COMMIT_DEADLINE` (30 minutes) before it (StaleDataFile;
  writers then write them again): a commit either lands before the vacuum reads the log again,
  which keeps its files, or its files were younger than the window. So a commit never names a file
  vacuum deleted;
- (c) stale `_manifest/.tmp-*` and `_manifest/.probe-*` files older than the window;
- (d) then folds commits older than `retain` into checkpoints, with `Log.fold_commits` when the
  manifest provides it.

Publication (`warehouse.ops.publish.delta`): a file the latest Delta version of its table names is
never deleted, even if removed from the snapshot long ago (a log that has not caught up yet still
reads); the Delta logs are read after the listing and again after the log, just before deleting.
Derived files (`delta-*.parquet` in partition folders, written by publication) that the latest Delta
version of their table no longer names are deleted once last modified more than `retain` and the
orphan window ago (so Delta time travel within the retention keeps working, and a derived file a
publisher has just written for a commit still in flight is never taken).

Never touched: `configs/*.yaml`, `runs/*.json`, commits, checkpoints, `_last_checkpoint`, and any
file that does not look like one of the above. Empty directories are left in place (a writer may be
about to write into one).

Time travel after a vacuum: the versions before the newest commit that removed a deleted file may
reference deleted files. Vacuum records the oldest version still readable in `_manifest/_vacuum.json`
(before deleting anything, so a crash mid-vacuum leaves it too) and `check_readable` raises
VersionNotFound for an older version, naming the version, the retention and the oldest readable one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from warehouse.core import arguments
from warehouse.core.errors import InvalidArgument, InvalidArgumentType, OrphanWindowTooShort
from warehouse.core.schemas import catalog
from warehouse.core.storage import Store, file_mtime
from warehouse.manifest import MANIFEST_DIR, Commit, utcnow, vacuum_hint
from warehouse.manifest import model as manifest_model
from warehouse.ops.publish import delta as delta_publication
from warehouse.ops.publish import iceberg as iceberg_publication

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Files deleted at a time on a remote store.
DELETE_WORKERS = 16


def _timedelta(name: str, value: Any) -> timedelta:
    if not isinstance(value, timedelta):
        raise InvalidArgumentType(f"{name} must be a timedelta of 0 or more (e.g. timedelta(days=7)), got {value!r}")
    if value < timedelta(0):
        raise InvalidArgument(f"{name} must be a timedelta of 0 or more (e.g. timedelta(days=7)), got {value!r}")
    return value


def check_orphan_window(window: timedelta) -> None:
    """Raise OrphanWindowTooShort if `window` is under `manifest.MIN_ORPHAN_WINDOW` (read at each call)."""
    minimum = manifest_model.MIN_ORPHAN_WINDOW
    if window < minimum:
        raise OrphanWindowTooShort(
            f"orphan_window {_describe(window)} is shorter than the minimum, {_describe(minimum)}: files that "
            f"writers have written but not yet committed could be deleted (commits refuse files older than "
            f"{_describe(manifest_model.COMMIT_DEADLINE)}, and the rest is the margin for slow requests and "
            f"clock skew); give {_describe(minimum)} or more"
        )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if not isinstance(now, datetime):
        raise InvalidArgumentType(f"now must be a datetime, got {now!r}")
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)  # naive = UTC


# -- vacuum --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VacuumResult:
    """What a vacuum deleted (or, for a dry run, would delete)."""

    cutoff: datetime  # files removed from the snapshot before this time (UTC) were deleted
    orphan_cutoff: datetime  # orphans and temp files last modified before this time were deleted
    removed: tuple[str, ...]  # data files removed from the snapshot longer than `retain` ago
    orphans: tuple[str, ...]  # data files no commit ever added, older than the window
    temp: tuple[str, ...]  # stale temp and probe files of `_manifest/`
    bytes: int  # of everything above
    young_orphans: int  # uncommitted files inside the window: kept (a writer may still commit them)
    readable_from: int | None  # the oldest version time travel can open afterwards (None: every version)
    folded: Any  # what `Log.fold_commits` returned; None if not run (dry run, or not available)
    dry_run: bool
    seconds: float
    by_table: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # table -> (removed, orphans)
    derived: tuple[str, ...] = ()  # publication's derived files no Delta log names any more, older than retain
    kept_for_delta: tuple[
        str, ...
    ] = ()  # removed files kept: the latest Delta version (or Iceberg snapshot) names them

    @property
    def files(self) -> int:
        """Files deleted in all."""
        return len(self.removed) + len(self.orphans) + len(self.temp) + len(self.derived)


def _listing(store: Store, rel: str) -> dict[str, tuple[int, datetime | None]]:
    """Every file under `rel`, recursively: root-relative path -> (size, last modified)."""
    with store.errors():
        return store.list_file_info(rel)


def _modified(store: Store, rel: str, known: datetime | None) -> datetime | None:
    if known is not None:
        return known
    try:
        return file_mtime({"modified": store.call(store.fs.modified, store.full(rel))})
    except (FileNotFoundError, NotImplementedError):
        return None


def is_data_path(rel: str, tables: Mapping[str, Any], pcols: tuple[str, ...]) -> bool:
    """`<table>/<c1>=<v>/.../<cn>=<v>/part-*.parquet` or `.tmp-*` beside one: what writers and
    compaction write (anything else under a table directory, e.g. configs/<hash>.yaml, is not)."""
    parts = rel.split("/")
    if len(parts) != len(pcols) + 2 or parts[0] not in tables:
        return False
    if any(not seg.startswith(f"{c}=") for seg, c in zip(parts[1:-1], pcols)):
        return False
    name = parts[-1]
    return (name.startswith("part-") and name.endswith(".parquet")) or name.startswith(".tmp-")


def is_derived_path(rel: str, tables: Mapping[str, Any], pcols: tuple[str, ...]) -> bool:
    """`<table>/<c1>=<v>/.../<cn>=<v>/delta-*.parquet`: a derived file of publication
    (`warehouse.ops.publish.delta.is_derived`), where publication writes them."""
    parts = rel.split("/")
    if len(parts) != len(pcols) + 2 or parts[0] not in tables:
        return False
    return all(seg.startswith(f"{c}=") for seg, c in zip(parts[1:-1], pcols)) and delta_publication.is_derived(rel)


def _describe(td: timedelta) -> str:
    s = int(td.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def _commits(wh: Engine, upto: int) -> list[Commit]:
    """The commits still in the log up to `upto` (older ones may have been folded into checkpoints;
    commits a concurrent vacuum folds between the listing and the reads are listed again)."""
    with wh.store.errors():
        return wh.log.commits(upto)  # (lists again while other vacuums fold what it listed)


def _delete(store: Store, paths: list[str]) -> None:
    with store.errors():
        if store.is_local or len(paths) < 2:
            for p in paths:
                store.remove(p)
            return
        with ThreadPoolExecutor(DELETE_WORKERS) as pool:
            list(pool.map(store.remove, paths))


def vacuum(
    wh: Engine,
    retain: timedelta = timedelta(days=7),
    orphan_window: timedelta = timedelta(hours=1),
    dry_run: bool = False,
    now: datetime | None = None,
) -> VacuumResult:
    """Delete data files removed from the snapshot more than `retain` (0 or more) before `now`
    (default: the current time), orphans and stale temp files last modified more than
    `orphan_window` before it (or before the real time, if `now` is later), then fold old commits
    into checkpoints if the log can; see the module docstring.

    `dry_run` reports the same lists and deletes nothing. Afterwards `open(url, version=N)` of a
    version that referenced a deleted file raises VersionNotFound. Raises WarehouseError for a
    negative duration, OrphanWindowTooShort for a window under `manifest.MIN_ORPHAN_WINDOW`,
    ReadOnlyWarehouse on a time-travel snapshot (unless `dry_run`).
    """
    t0 = time.perf_counter()
    retain, orphan_window = _timedelta("retain", retain), _timedelta("orphan_window", orphan_window)
    check_orphan_window(orphan_window)
    now = _now(now)
    # Files in flight are judged by the real time: a `now` in the future must not shorten the window.
    cutoff, orphan_cutoff = arguments.before(now, retain), arguments.before(min(now, utcnow()), orphan_window)
    if not dry_run:
        wh.engine.require_writable()
    store = wh.store
    tables, pcols = catalog().tables, catalog().partition_columns

    # List first, read the log after: a file committed in between is then known, not an orphan.
    listed: dict[str, tuple[int, datetime | None]] = {}
    derived_listed: dict[str, tuple[int, datetime | None]] = {}
    for t in tables:
        for p, v in _listing(store, t).items():
            if is_data_path(p, tables, pcols):
                listed[p] = v
            elif is_derived_path(p, tables, pcols):
                derived_listed[p] = v
    manifest = _listing(store, MANIFEST_DIR)
    wh.refresh()
    snap = wh.snapshot
    commits = _commits(wh, snap.version)

    committed: set[str] = set(snap.files)  # every file a commit still in the log added or removed
    removed_at: dict[str, tuple[datetime, int]] = {}  # path -> (time, version) of its last removal
    for c in commits:
        for r in c.remove:
            removed_at[r.path] = (c.committed_at, c.version)
            committed.add(r.path)  # added by a commit that may since have been folded into a checkpoint
        for a in c.add:
            committed.add(a.path)
            removed_at.pop(a.path, None)

    removed = sorted(p for p, (at, _) in removed_at.items() if at < cutoff and p not in snap.files and p in listed)
    orphans: list[str] = []
    young = 0
    for p, (_, mtime) in sorted(listed.items()):
        if p in committed:
            continue
        mtime = _modified(store, p, mtime)
        if mtime is not None and mtime < orphan_cutoff:
            orphans.append(p)
        else:
            young += 1
    temp = []
    for p, (_, mtime) in sorted(manifest.items()):
        name = p.rsplit("/", 1)[-1]
        if p.count("/") == 1 and name.startswith((".tmp-", ".probe-")):
            mtime = _modified(store, p, mtime)
            if mtime is not None and mtime < orphan_cutoff:
                temp.append(p)

    # Just before deleting, read what was committed meanwhile: never delete a file a commit now holds.
    if not wh.read_only:
        _, new = wh.engine.refresh_commits()
        added_since = {a.path for c in new for a in c.add} | set(wh.snapshot.files)
        removed = [p for p in removed if p not in added_since]
        orphans = [p for p in orphans if p not in added_since]
    # The Delta logs (and the Iceberg tables, if the warehouse was published to a catalog), read after
    # the listing and the log: a file their latest versions name stays (a log behind the warehouse
    # still reads), and so does every derived file they name.
    named = delta_publication.referenced(wh.engine) | iceberg_publication.referenced(wh.engine)
    kept_for_delta = tuple(p for p in removed if p in named)
    removed = [p for p in removed if p not in named]
    derived_cutoff = min(cutoff, orphan_cutoff)
    derived = []
    for p, (_, mtime) in sorted(derived_listed.items()):
        if p in named:
            continue
        mtime = _modified(store, p, mtime)
        if mtime is not None and mtime < derived_cutoff:
            derived.append(p)

    readable_from = max((removed_at[p][1] for p in removed), default=None)
    hint = vacuum_hint.read(store)
    if hint is not None:
        readable_from = max(readable_from or 0, hint["readable_from"])
    folded = None
    if not dry_run:
        if removed:
            vacuum_hint.write(store, max(removed_at[p][1] for p in removed), now, _describe(retain))
        _delete(store, removed + orphans + temp + derived)
        fold = getattr(wh.log, "fold_commits", None)
        if fold is not None:
            with store.errors():
                folded = fold(older_than=cutoff)
    by_table: dict[str, tuple[int, int]] = {}
    for kind, paths in ((0, removed), (1, orphans)):
        for p in paths:
            t = p.split("/", 1)[0]
            counts = list(by_table.get(t, (0, 0)))
            counts[kind] += 1
            by_table[t] = (counts[0], counts[1])
    size = (
        sum(listed[p][0] for p in removed + orphans)
        + sum(manifest[p][0] for p in temp)
        + sum(derived_listed[p][0] for p in derived)
    )
    return VacuumResult(
        cutoff,
        orphan_cutoff,
        tuple(removed),
        tuple(orphans),
        tuple(temp),
        size,
        young,
        readable_from,
        folded,
        dry_run,
        time.perf_counter() - t0,
        dict(sorted(by_table.items())),
        tuple(derived),
        kept_for_delta,
    )
