"""Reading the manifest log: listing `_manifest/`, reading commits, and rebuilding the snapshot at
a version or a time from the newest usable checkpoint and the commits after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

from warehouse.core.errors import (
    CorruptCheckpoint,
    CorruptCommit,
    UnsupportedFormatVersion,
    VersionNotFound,
    WarehouseNotFound,
)
from warehouse.core.storage import Store
from warehouse.manifest import checkpoint as mc
from warehouse.manifest.listing import Listing, Vanished, gap, vanished
from warehouse.manifest.model import MANIFEST_DIR, Commit, commit_name, iso
from warehouse.manifest.snapshot import Snapshot, replay

#: Listings `LogReader.commits` takes at most when vacuums keep folding the commits it listed.
FOLD_RETRIES = 8

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LogReader:
    """Reads the commit log under `<root>/_manifest/` and its checkpoints; never writes (see `log.Log`).

    Readers load the newest checkpoint they can and replay only the commits after it; see
    `checkpoint`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- listing ---------------------------------------------------------------------------------
    def listing(self) -> Listing:
        """One listing of `_manifest/` (empty if it does not exist)."""
        if self.store.is_local:
            # A plain directory read: fsspec's local `ls` costs ~5x more for 10,000 names.
            try:
                return Listing(os.listdir(self.store.full(MANIFEST_DIR)))
            except (FileNotFoundError, NotADirectoryError):
                return Listing(())
        return Listing(self.store.list_names(MANIFEST_DIR))

    def versions(self) -> list[int]:
        """Every commit still in the log, ascending (one listing of `_manifest/`). Starts at 0
        unless vacuum folded older commits into a checkpoint (`fold_commits`); a commit file a
        writer behind a fold left below the log (if killed before taking it back) is not one."""
        return self.listing().retained

    def checkpoint_versions(self) -> list[int]:
        """The versions that have a checkpoint file, ascending (one listing; unreadable ones included)."""
        return self.listing().checkpoints

    # -- reading commits -------------------------------------------------------------------------
    def read(self, version: int) -> Commit | None:
        """The commit at `version`, or None if it does not exist."""
        name = commit_name(version)
        try:
            data = self.store.read_bytes(name)
        except FileNotFoundError:
            return None
        commit = Commit.from_bytes(data, name=name)
        if commit.version != version:
            raise CorruptCommit(f"manifest file {name} claims version {commit.version}")
        return commit

    def read_many(self, versions: list[int]) -> list[Commit]:
        """The commits at `versions` (read concurrently on remote stores); CorruptCommit if one is missing."""
        return self._read_many(versions, gap)

    def _read_many(self, versions: list[int], missing: Callable[[str, str], Exception]) -> list[Commit]:
        """`read_many`, raising `missing(name, url)` for a commit that is not there."""
        names = [commit_name(v) for v in versions]
        blobs = self.store.read_many(names)
        out = []
        for v, n in zip(versions, names):
            data = blobs.get(n)
            if data is None:
                raise missing(n, self.store.url)
            commit = Commit.from_bytes(data, name=n)
            if commit.version != v:
                raise CorruptCommit(f"manifest file {n} claims version {commit.version}")
            out.append(commit)
        return out

    def read_range(self, listing: Listing, first: int, last: int) -> list[Commit]:
        """Commits first..last, which `listing` must show: CorruptCommit for a gap in the log,
        Vanished for a listed commit deleted (folded) since."""
        if first > last:
            return []
        if not listing.has_commits(first, last):
            hole = next(v for v in range(first, last + 1) if not listing.has(f"{v:020d}.json"))
            raise gap(commit_name(hole), self.store.url, listing)
        return self._read_many(list(range(first, last + 1)), vanished)

    def commits(self, upto: int | None = None) -> list[Commit]:
        """Every commit still in the log up to `upto` (default: the latest), oldest first: from
        commit 0, unless vacuum folded the older ones into a checkpoint (see `versions`)."""
        folded_from = None
        for attempt in range(FOLD_RETRIES):
            listing = self.listing()
            if listing.empty:
                raise WarehouseNotFound(
                    f"no warehouse at {self.store.url!r} (no {MANIFEST_DIR}/); open it with create=True"
                )
            latest = listing.latest
            if upto is not None and (upto < 0 or upto > latest):
                raise VersionNotFound(f"version {upto} does not exist; the latest version is {latest}")
            last = latest if upto is None else upto
            wanted = [v for v in listing.retained if v <= last]
            try:
                return self.read_many(wanted)
            except CorruptCommit:
                # Vacuums may have folded listed commits into a checkpoint between the listing and
                # the reads: list again while the oldest commit listed moves forward (another fold);
                # a commit missing from a listing that did not move is a real gap.
                oldest = wanted[0] if wanted else None
                if attempt == FOLD_RETRIES - 1 or (folded_from is not None and oldest == folded_from):
                    raise
                folded_from = oldest
        raise AssertionError("unreachable")

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(
        self, version: int | None = None, as_of: datetime | None = None, *, listing: Listing | None = None
    ) -> Snapshot:
        """The snapshot at `version` (default: the latest), or at the last commit at or before
        `as_of` (a commit time earlier than one before it counts as that one's: a clock that went
        backwards never makes time travel skip commits).

        Loads the newest readable checkpoint at or before the version and replays the commits
        after it; an unreadable checkpoint is skipped with a CheckpointWarning (an older one, or the
        whole log, is used instead). `listing`: a listing of `_manifest/` made just before.
        Raises WarehouseNotFound, VersionNotFound (no such version, or folded by vacuum),
        CorruptCommit (a damaged commit, a gap in the log, or no readable checkpoint where the log
        was folded), UnsupportedFormatVersion.
        """
        for attempt in range(3):
            if listing is None or attempt:
                listing = self.listing()
            if listing.empty:
                raise WarehouseNotFound(
                    f"no warehouse at {self.store.url!r} (no {MANIFEST_DIR}/); open it with create=True"
                )
            stray = listing.newest_checkpoint
            if listing.latest_commit is not None and stray is not None and stray > listing.latest_commit:
                # A checkpoint is written after its commit, which vacuum never folds: this one is not
                # the log's. Loading it would show another snapshot under a version never committed.
                raise CorruptCommit(
                    f"{mc.checkpoint_name(stray)} of {self.store.url} is newer than the newest commit "
                    f"({listing.latest_commit}), so it is not this log's (copied in by mistake?); "
                    "`warehouse doctor --repair` sets it aside; if commits were lost, restore them from a backup"
                )
            try:
                if as_of is not None:
                    return self._as_of(listing, as_of)
                latest = listing.latest
                target = latest if version is None else version
                if target < 0 or target > latest:
                    raise VersionNotFound(f"version {target} does not exist; the latest version is {latest}")
                return self._load(listing, target)
            except Vanished as exc:  # vacuum folded commits between our listing and our reads
                lost = exc
        raise CorruptCommit(f"{lost}; files kept vanishing while reading {self.store.url}")

    def _checkpoint(self, version: int) -> mc.CheckpointFile | None:
        """The parsed checkpoint at `version`, or None (with a warning) if it is unreadable."""
        try:
            return mc.load(self.store, version)
        except FileNotFoundError:
            raise Vanished(f"checkpoint {mc.checkpoint_name(version)} vanished") from None
        except (CorruptCheckpoint, UnsupportedFormatVersion) as exc:
            mc.warn(f"{exc}; using an older checkpoint or the log instead")
            return None

    def _load(self, listing: Listing, target: int) -> Snapshot:
        """The snapshot at `target`: newest usable checkpoint at or before it, plus later commits."""
        unreadable: list[int] = []
        for cp in listing.checkpoints_desc(target):
            if cp < target and not listing.has_commit(cp + 1):
                break  # the commits after it were folded; older checkpoints are no better
            ck = self._checkpoint(cp)
            if ck is None:
                unreadable.append(cp)
                continue
            try:
                base = ck.snapshot()
            except (CorruptCheckpoint, UnsupportedFormatVersion) as exc:
                mc.warn(f"{exc}; using an older checkpoint or the log instead")
                unreadable.append(cp)
                continue
            return replay(self.read_range(listing, cp + 1, target), base)
        if listing.has_commit(0):
            return replay(self.read_range(listing, 0, target))
        if unreadable:
            raise CorruptCommit(
                f"cannot rebuild version {target} of {self.store.url}: checkpoint {mc.checkpoint_name(unreadable[0])} "
                "is unreadable and the commits before it were folded by vacuum; restore it from a backup"
            )
        raise self._folded(listing, target)

    def _folded(self, listing: Listing, target: int) -> VersionNotFound:
        into = next((c for c in listing.checkpoints if c >= target), None)
        where = f"checkpoint {into}" if into is not None else "a checkpoint"
        return VersionNotFound(
            f"version {target} was folded into {where} by vacuum (its commit file is gone); "
            f"the oldest version you can open is {listing.oldest_openable()}"
        )

    def _as_of(self, listing: Listing, as_of: datetime) -> Snapshot:
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
        unreadable: list[int] = []
        for cp in listing.checkpoints_desc():
            ck = self._checkpoint(cp)
            if ck is None:
                unreadable.append(cp)
                continue
            if ck.max_committed_at <= as_of:
                # At or after this checkpoint: walk the commits after it up to the first one after as_of.
                if cp < listing.latest and not listing.has_commit(cp + 1):
                    break  # the commits after it were folded
                after = self._commits_until(listing, cp + 1, as_of)
                return replay(after, ck.snapshot())
            # Before it: its commits section holds the commit times up to it.
            try:
                rows = ck.commits()
            except CorruptCheckpoint as exc:
                mc.warn(f"{exc}; using an older checkpoint or the log instead")
                unreadable.append(cp)
                continue
            # The commits whose time, and every earlier commit's, is at or before as_of: a prefix.
            micros = rows.column("committed_at").cast(pa.int64())
            cutoff = (as_of - _EPOCH) // timedelta(microseconds=1)
            n = pc.sum(pc.less_equal(pc.cumulative_max(micros), cutoff)).as_py() or 0
            target = rows.column("version")[n - 1].as_py() if n else None
            if target is None:
                if rows.column("version")[0].as_py() == 0:
                    raise VersionNotFound(f"the warehouse did not exist yet at {iso(as_of)}")
                raise VersionNotFound(
                    f"at {iso(as_of)} the warehouse was at a version folded by vacuum; the "
                    f"oldest version you can open is {listing.oldest_openable()}"
                )
            return self._load(listing, target)
        if not listing.has_commit(0):
            if unreadable:
                raise CorruptCommit(
                    f"cannot tell the version of {self.store.url} at {iso(as_of)}: checkpoint "
                    f"{mc.checkpoint_name(unreadable[0])} is unreadable and the commits before it "
                    "were folded by vacuum; restore it from a backup"
                )
            raise VersionNotFound(
                f"at {iso(as_of)} the warehouse was at a version folded by vacuum; the oldest "
                f"version you can open is {listing.oldest_openable()}"
            )
        commits = self._commits_until(listing, 0, as_of)
        if not commits:
            raise VersionNotFound(f"the warehouse did not exist yet at {iso(as_of)}")
        return replay(commits)

    def _commits_until(self, listing: Listing, first: int, as_of: datetime, chunk: int = 64) -> list[Commit]:
        """The commits from `first` on, up to (not including) the first one committed after `as_of`."""
        out: list[Commit] = []
        v = first
        while v <= listing.latest:
            for c in self.read_range(listing, v, min(v + chunk - 1, listing.latest)):
                if c.committed_at > as_of:
                    return out
                out.append(c)
            v += chunk
        return out
