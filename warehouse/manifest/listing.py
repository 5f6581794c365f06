"""One listing of `_manifest/`, and the errors for commits missing from it."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property

from warehouse.core.errors import CorruptCommit
from warehouse.manifest.model import CHECKPOINT_SUFFIX


class Listing:
    """One listing of `_manifest/`: which commits and checkpoints it holds.

    The names are only sorted (zero-padded versions sort as numbers); the questions opening asks
    (the newest commit and checkpoint, is commit v there) are answered by bisection, without
    parsing 10,000 names.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        # Names of commits and checkpoints start with a digit; temp files with ".", hints with "_".
        self._lo = bisect.bisect_left(self.names, "0")
        self._hi = bisect.bisect_left(self.names, ":")

    @staticmethod
    def _commit_version(name: str) -> int | None:
        return int(name[:20]) if len(name) == 25 and name.endswith(".json") and name[:20].isdigit() else None

    @staticmethod
    def _checkpoint_version(name: str) -> int | None:
        ok = len(name) == 20 + len(CHECKPOINT_SUFFIX) and name.endswith(CHECKPOINT_SUFFIX) and name[:20].isdigit()
        return int(name[:20]) if ok else None

    @cached_property
    def commits(self) -> list[int]:
        """Every commit version listed, ascending."""
        parse = self._commit_version
        return [v for n in self.names[self._lo : self._hi] if (v := parse(n)) is not None]

    @cached_property
    def checkpoints(self) -> list[int]:
        """Every checkpoint version listed, ascending."""
        return [
            v
            for n in self.names[self._lo : self._hi]
            if n.endswith(CHECKPOINT_SUFFIX) and (v := self._checkpoint_version(n)) is not None
        ]

    def _scan(self, parse: Callable[[str], int | None], descending: bool) -> int | None:
        rng = range(self._hi - 1, self._lo - 1, -1) if descending else range(self._lo, self._hi)
        for i in rng:
            v = parse(self.names[i])
            if v is not None:
                return v
        return None

    @cached_property
    def latest_commit(self) -> int | None:
        return self._scan(self._commit_version, True)

    @cached_property
    def oldest_commit(self) -> int | None:
        """The oldest commit file there (0 unless vacuum folded older ones into a checkpoint)."""
        return self._scan(self._commit_version, False)

    @cached_property
    def retained(self) -> list[int]:
        """The commits of the log: from `log_start` to the newest, ascending."""
        start = self.log_start
        return [] if start is None else [v for v in self.commits if v >= start]

    @cached_property
    def log_start(self) -> int | None:
        """Where the unbroken run of commits that ends at the newest one starts: the oldest version
        the log still has (below it, only what a writer behind a fold may have left)."""
        v = self.latest_commit
        while v is not None and v > 0 and self.has_commit(v - 1):
            v -= 1
        return v

    @cached_property
    def newest_checkpoint(self) -> int | None:
        return self._scan(self._checkpoint_version, True)

    @property
    def empty(self) -> bool:
        return self.latest_commit is None and self.newest_checkpoint is None

    @property
    def latest(self) -> int:
        """The newest version (a checkpoint is never newer than the commit it was made at)."""
        return max(
            -1 if self.latest_commit is None else self.latest_commit,
            -1 if self.newest_checkpoint is None else self.newest_checkpoint,
        )

    def checkpoints_desc(self, upto: int | None = None) -> Iterator[int]:
        """Checkpoint versions at or before `upto` (default: all), newest first (found lazily)."""
        hi = self._hi if upto is None else bisect.bisect_right(self.names, f"{upto:020d}.json", self._lo, self._hi)
        parse = self._checkpoint_version
        for i in range(hi - 1, self._lo - 1, -1):
            name = self.names[i]
            if name.endswith(CHECKPOINT_SUFFIX) and (v := parse(name)) is not None:
                yield v

    def has(self, name: str) -> bool:
        i = bisect.bisect_left(self.names, name, self._lo, self._hi)
        return i < self._hi and self.names[i] == name

    def has_commit(self, version: int) -> bool:
        return self.has(f"{version:020d}.json")

    def has_commits(self, first: int, last: int) -> bool:
        """True if every commit first..last (inclusive) is listed."""
        return all(self.has_commit(v) for v in range(first, last + 1))

    def oldest_openable(self) -> int:
        """The oldest version `Log.snapshot` can rebuild (its own checkpoint, or commit 0 onwards)."""
        candidates = list(self.checkpoints[:1])
        if self.has_commit(0):
            candidates.append(0)
        return min(candidates, default=self.latest)


class Vanished(Exception):
    """A file the listing showed was gone when read (vacuum folded it meanwhile): list again."""


def gap(name: str, url: str, listing: Listing | None = None) -> CorruptCommit:
    """The error for a commit missing from the middle of the log; with the `listing`, it says where
    the gap lies and which commit files lie beyond it (files copied in by mistake look like this)."""
    version = int(name.rsplit("/", 1)[-1][:20])
    beyond = [v for v in listing.commits if v > version] if listing is not None else []
    if listing is None or not beyond:
        return CorruptCommit(f"manifest file {name} is missing from {url}; the log has a gap: restore it from a backup")
    below = [v for v in listing.commits if v < version]
    upto = f"runs from {below[0]} to {below[-1]}" if below else "has no commit before it"
    shown = ", ".join(f"{v:020d}.json" for v in beyond[:3]) + (
        f" and {len(beyond) - 3} more" if len(beyond) > 3 else ""
    )
    return CorruptCommit(
        f"the log of {url} has a gap: commits {version}..{beyond[0] - 1} are missing; it {upto}, and "
        f"{len(beyond)} commit file(s) lie beyond the gap ({shown}). Run `warehouse doctor`: commit files "
        "that do not belong to this warehouse (copied into _manifest/ by mistake) are set aside by "
        "`warehouse doctor --repair`; if the missing commits were lost, restore them from a backup"
    )


def vanished(name: str, url: str) -> Vanished:
    """The error for a listed commit file that was gone when read."""
    return Vanished(f"manifest file {name} vanished from {url} while being read")
