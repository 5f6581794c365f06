"""The manifest log: an append-only log of JSON commits under `_manifest/`, and its checkpoints.

`Log` is the only code that creates commit files, with create-if-absent so that exactly one writer
wins each version; it reads them as a `reader.LogReader`, and writes, verifies and folds
checkpoints with `fold`.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from warehouse.core.errors import CommitConflict
from warehouse.core.storage import Store
from warehouse.manifest import fold
from warehouse.manifest.listing import Vanished
from warehouse.manifest.model import (
    FORMAT_VERSION,
    OPERATIONS,
    Commit,
    DataFile,
    RemovedFile,
    check_deadline,
    commit_name,
    utcnow,
)
from warehouse.manifest.reader import LogReader
from warehouse.manifest.snapshot import Snapshot, replay

#: Every this many versions a checkpoint is written (by the writer whose commit lands there).
CHECKPOINT_INTERVAL = 100
#: `Log.refresh` reads this many new commits one at a time before listing `_manifest/` for the rest.
PROBE_LIMIT = 8

log = logging.getLogger("warehouse.manifest")


class Log(LogReader):
    """Reads and appends the commit log under `<root>/_manifest/`, and its checkpoints.

    Every `checkpoint_interval` versions (0: never) the writer whose commit lands on a multiple of
    it also writes a checkpoint of the snapshot at that version (best effort: a failure is logged
    and never fails the commit). Readers load the newest checkpoint they can and replay only the
    commits after it; see `checkpoint`.
    """

    def __init__(self, store: Store, *, checkpoint_interval: int | None = None) -> None:
        super().__init__(store)
        self.checkpoint_interval = CHECKPOINT_INTERVAL if checkpoint_interval is None else int(checkpoint_interval)
        if self.checkpoint_interval < 0:
            raise ValueError(f"checkpoint_interval must be >= 0, got {checkpoint_interval}")

    def refresh(self, snap: Snapshot, *, catch_up: bool = False) -> tuple[Snapshot, list[Commit]]:
        """Read only the commits after `snap` and apply them; returns the new snapshot and those commits.

        Probes version after version (one request each; one when nothing is new); past
        PROBE_LIMIT new commits it lists `_manifest/` once and reads the rest at once. With
        `catch_up`, a snapshot more than a checkpoint interval behind is rebuilt from the newest
        checkpoint instead (the commits skipped are then not returned). If the commits after
        `snap` were folded into a checkpoint meanwhile (a process idle across a vacuum), the
        snapshot is rebuilt from the newest checkpoint, with a warning, and no commits returned.
        """
        new: list[Commit] = []
        v = snap.version + 1
        while (c := self.read(v)) is not None:
            new.append(c)
            v += 1
            if len(new) == PROBE_LIMIT:
                listing = self.listing()
                if v > listing.latest:
                    continue
                behind = listing.latest - v
                if (
                    catch_up
                    and self.checkpoint_interval
                    and behind > self.checkpoint_interval
                    and (listing.newest_checkpoint or -1) >= v
                ):
                    return self.snapshot(listing=listing), []
                try:
                    new += self.read_range(listing, v, listing.latest)
                except Vanished:  # folded while we read: rebuild from the newest checkpoint
                    return self.snapshot(), []
                v = listing.latest + 1
        if fold.folded_away(self, v):
            # Commit v is not missing for being in the future: vacuum folded it (this process was
            # behind a checkpoint and a fold). Rebuild from the checkpoint.
            fresh = self.snapshot()
            log.warning(
                "the commits after version %d of %s were folded into a checkpoint while this process "
                "was behind; reloaded at version %d",
                v - 1,
                self.store.url,
                fresh.version,
            )
            return fresh, []
        return (replay(new, snap) if new else snap), new

    # -- writing ---------------------------------------------------------------------------------
    def create(self, writer: Mapping[str, Any]) -> bool:
        """Write commit 0 (format version); False if the warehouse already exists."""
        c = Commit(0, utcnow(), "create", writer, None, format_version=FORMAT_VERSION)
        return self.store.put_if_absent(commit_name(0), c.to_bytes())

    def commit(
        self,
        base: Snapshot,
        *,
        operation: str,
        writer: Mapping[str, Any],
        token: str | None,
        add: Iterable[DataFile] = (),
        remove: Iterable[RemovedFile] = (),
        token_since: int | None = None,
        max_attempts: int = 10_000,
        info: Mapping[str, Any] | None = None,
        seen: list[Commit] | None = None,
        conflict: Callable[[Commit], str | None] | None = None,
    ) -> Commit:
        """Commit `add`/`remove` as the version after the latest, retrying on conflict.

        If a commit carrying `token` already exists after version `token_since` (a retry of a commit
        whose acknowledgement was lost), that commit is returned and nothing new is written; the same
        holds within one call, when the store's answer to our create was lost and its retry was refused
        because the object exists: the version is read back and its token compared. Without a `token`
        one is made up for the call. Commits of other writers read on the way are appended to `seen`
        (if given), so that the caller can bring its snapshot up to date without reading them again.
        A token found in a commit that vacuum folded into a checkpoint is found there (`find_token`).
        A commit that lands on a version vacuum had folded (our snapshot was older than the fold,
        so the name was free again) is taken back and made after the newest checkpoint instead;
        `seen` is then emptied (it no longer leads from the caller's snapshot to the commit).
        If the commit lands on a multiple of `checkpoint_interval`, a checkpoint of that version is
        written after it (best effort).
        `conflict(other)` is asked about every commit of another writer found on the way (those that
        landed after `base`); a message from it is raised as CommitConflict and nothing is committed.
        Raises CommitConflict if a file to remove was removed by someone else meanwhile, or if
        `max_attempts` versions were all taken by other writers; StaleDataFile (before any request)
        if a file of `add` began to be written longer than COMMIT_DEADLINE ago (`DataFile.staged`).
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        # Every commit carries a token, so that a create whose answer was lost and that is retried
        # (and refused as existing) is recognised as our own rather than committed again.
        token = token if token is not None else f"{operation}:{uuid.uuid4().hex}"
        add, remove = tuple(add), tuple(remove)
        removing = {r.path for r in remove}
        for r in remove:
            if r.path not in base.files:
                raise CommitConflict(f"cannot remove {r.path}: it is not in version {base.version}")
        version = base.version + 1
        if token_since is not None and token_since < base.version:
            found = self.find_token(token, token_since, base.version)
            if found is not None:
                return found
        read: list[Commit] = []
        staged = [(a.staged, a.path) for a in add if a.staged is not None]
        for attempt in range(max_attempts):
            commit = Commit(version, utcnow(), operation, writer, token, add, remove, info=info or {})
            data = commit.to_bytes()
            check_deadline(staged)  # last thing before the request: nothing slow in between
            if self.store.put_if_absent(commit_name(version), data):
                if fold.landed_in_fold(self, version, token):
                    # Our snapshot was older than a fold: take our commit back and go on from the
                    # newest checkpoint. The caller's snapshot is stale too: `seen` no longer leads to it.
                    log.warning(
                        "version %d of %s had been folded into a checkpoint; committing after the newest one instead",
                        version,
                        self.store.url,
                    )
                    again = self.read(version)
                    if again is not None and again.token == token:
                        self.store.remove(commit_name(version))
                    base = self.snapshot()
                    for r in remove:
                        if r.path not in base.files:
                            raise CommitConflict(f"cannot remove {r.path}: it is not in version {base.version}")
                    read.clear()
                    if seen is not None:
                        seen.clear()
                    version = base.version + 1
                    continue
                if self.checkpoint_interval and version % self.checkpoint_interval == 0:
                    self._checkpoint_after(base, [*read, commit])
                return commit
            # Someone else took `version` (or our own create was retried after its answer was lost):
            # read what is there, then try the next version straight away; the conditional create
            # answers "is it free?" and takes it in one request.
            other = self.read(version)
            if other is None:  # a concurrent create still in flight (409): wait for it
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                continue
            if other.token == token:
                return other
            read.append(other)
            if seen is not None:
                seen.append(other)
            lost = removing.intersection(r.path for r in other.remove)
            if lost:
                raise CommitConflict(
                    f"version {other.version} ({other.operation}) already removed {sorted(lost)[0]}; "
                    "reload the warehouse and retry"
                )
            if conflict is not None and (why := conflict(other)):
                raise CommitConflict(why)
            version += 1
        raise CommitConflict(f"gave up after {max_attempts} attempts to commit; the log is too contended")

    def _checkpoint_after(self, base: Snapshot, chain: list[Commit]) -> None:
        """Best effort: write the checkpoint of the version the last of `chain` committed."""
        version = chain[-1].version
        try:
            got = {c.version: c for c in chain if c.version > base.version}
            if sorted(got) == list(range(base.version + 1, version + 1)):
                snap = replay([got[v] for v in sorted(got)], base)
            else:
                snap = self.snapshot(version)
            self.write_checkpoint(snap)
        except Exception as exc:  # never fail the commit, which has landed
            log.warning(
                "could not write the checkpoint of version %d of %s (%s: %s); readers replay the log instead",
                version,
                self.store.url,
                type(exc).__name__,
                exc,
            )

    # -- checkpoints and folded commits (see `fold`) ---------------------------------------------
    def find_token(self, token: str, after: int, upto: int) -> Commit | None:
        """The commit among versions after..upto (exclusive, inclusive) that carries `token`, or
        None; `fold.find_token`."""
        return fold.find_token(self, token, after, upto)

    def operations(self, versions: Iterable[int]) -> dict[int, tuple[str, Mapping[str, Any]]]:
        """(operation, info) of each commit in `versions`, folded ones included; `fold.operations`."""
        return fold.operations(self, versions)

    def write_checkpoint(self, snapshot: Snapshot) -> bool:
        """Write the checkpoint of `snapshot`; False if one already existed; `fold.write_checkpoint`."""
        return fold.write_checkpoint(self, snapshot)

    def verify_checkpoint(self, version: int) -> list[str]:
        """How the checkpoint at `version` disagrees with the log (empty if it agrees);
        `fold.verify_checkpoint`."""
        return fold.verify_checkpoint(self, version)

    def fold_commits(self, older_than: datetime) -> list[int]:
        """Delete the commit files older than the newest checkpoint and committed before
        `older_than`; returns the versions deleted; `fold.fold_commits`."""
        return fold.fold_commits(self, older_than)
