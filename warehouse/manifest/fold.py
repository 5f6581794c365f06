"""Checkpoint upkeep and the commits vacuum folded: writing and verifying checkpoints, folding the
commits older than the newest checkpoint away (`fold_commits`), and finding a folded commit's token
or operation in a checkpoint's commits section. Functions of a `reader.LogReader`; `log.Log`
offers them as its methods.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

from warehouse.core.errors import CorruptCheckpoint, CorruptCommit, UnsupportedFormatVersion, VersionNotFound
from warehouse.manifest import checkpoint as mc
from warehouse.manifest.listing import Listing, gap
from warehouse.manifest.model import CHECKPOINT_SUFFIX, Commit, commit_name, iso, writer_info
from warehouse.manifest.reader import LogReader
from warehouse.manifest.snapshot import FileMap, Snapshot, replay

log = logging.getLogger("warehouse.manifest")


def find_token(reader: LogReader, token: str, after: int, upto: int) -> Commit | None:
    """The commit among versions after..upto (exclusive, inclusive) that carries `token`, or None.

    Commits that vacuum folded are looked up in the newest checkpoint's commits section; the
    Commit returned for one of those has its version, time, operation and token, and no files.
    Raises CorruptCommit if the log has a gap, or if folded commits are covered by no readable
    checkpoint (then whether the token was committed cannot be told).
    """
    if after >= upto:
        return None
    versions = list(range(after + 1, upto + 1))
    names = [commit_name(v) for v in versions]
    blobs = reader.store.read_many(names)
    missing = []
    for v, n in zip(versions, names):
        data = blobs.get(n)
        if data is None:
            missing.append(v)
            continue
        c = Commit.from_bytes(data, name=n)
        if c.version != v:
            raise CorruptCommit(f"manifest file {n} claims version {c.version}")
        if c.token == token and not landed_in_fold(reader, v, token):
            return c  # (a commit of ours left in a folded range by a crash is not one)
    if not missing:
        return None
    listing = reader.listing()
    newest = listing.newest_checkpoint
    if newest is None or missing[-1] >= newest:  # not folded (vacuum folds below the newest checkpoint only)
        raise gap(commit_name(next(v for v in missing if newest is None or v >= newest)), reader.store.url, listing)
    for cp in listing.checkpoints_desc():
        try:
            ck = mc.load(reader.store, cp)
            rows = ck.commits()
        except (FileNotFoundError, CorruptCheckpoint, UnsupportedFormatVersion) as exc:
            mc.warn(f"{exc}; looking for token {token!r} in an older checkpoint")
            continue
        if ck.oldest_commit > missing[0]:
            continue
        hit = rows.filter(_token_is(rows.column("token"), token)).to_pylist()
        for row in hit:
            if after < row["version"] <= upto:
                return Commit(
                    row["version"], row["committed_at"], row["operation"], {}, row["token"], info={"folded_into": cp}
                )
        return None
    raise CorruptCommit(
        f"cannot tell whether token {token!r} was committed in {reader.store.url}: versions "
        f"{missing[0]}..{missing[-1]} were folded and no readable checkpoint holds their tokens"
    )


def operations(reader: LogReader, versions: Iterable[int]) -> dict[int, tuple[str, Mapping[str, Any]]]:
    """(operation, info) of each commit in `versions`: from its file, or, for a commit vacuum
    folded, from a checkpoint's commits section. A version found in neither is left out."""
    versions = sorted(set(versions))
    names = [commit_name(v) for v in versions]
    blobs = reader.store.read_many(names)
    out: dict[int, tuple[str, Mapping[str, Any]]] = {}
    missing = []
    for v, n in zip(versions, names):
        data = blobs.get(n)
        if data is None:
            missing.append(v)
        else:
            c = Commit.from_bytes(data, name=n)
            out[v] = (c.operation, dict(c.info))
    if missing:
        for cp in reader.listing().checkpoints_desc():
            try:
                rows = mc.load(reader.store, cp).commits()
            except (FileNotFoundError, CorruptCheckpoint, UnsupportedFormatVersion):
                continue
            first = rows.column("version")[0].as_py()
            for v in missing:
                if first <= v <= cp:
                    row = rows.slice(v - first, 1).to_pylist()[0]
                    out[v] = (row["operation"], json.loads(row["info"]) if row["info"] else {})
            if first <= missing[0]:
                break
    return out


def landed_in_fold(reader: LogReader, version: int, token: str) -> bool:
    """Whether our commit at `version`, just created, re-created a version vacuum had folded
    (a writer whose snapshot was older than the fold: the name was free again). Such a commit
    is below the newest checkpoint, where no reader looks. Decided by the checkpoints' commits
    sections, which hold the token of the commit that really was `version`; the hint spares
    that look-up when no checkpoint can be at or after `version`."""
    present, hint = mc.hint_state(reader.store)
    if hint is not None and hint < version:
        return False
    if not present and (version == 0 or reader.store.exists(commit_name(version - 1))):
        return False  # no fold ever raised the hint (or it was deleted and the log is contiguous)
    for cp in reader.listing().checkpoints_desc():
        if cp < version:
            break
        try:
            ck = mc.load(reader.store, cp)
            rows = ck.commits()
        except (FileNotFoundError, CorruptCheckpoint, UnsupportedFormatVersion):
            continue
        if ck.oldest_commit <= version:
            theirs: str | None = rows.column("token")[version - ck.oldest_commit].as_py()
            return theirs != token
    return False


def folded_away(reader: LogReader, version: int) -> bool:
    """Whether commit `version`, just found missing, was folded by vacuum (rather than not made yet).

    Vacuum raises `_last_checkpoint` to its checkpoint before deleting commits below it, and a
    checkpoint at or after `version` exists only if commit `version` did: so a hint naming an
    existing checkpoint at or after it says folded; a hint before it says not. Without a usable
    hint, the commit before it decides (vacuum deletes the oldest first)."""
    present, hint = mc.hint_state(reader.store)
    if hint is not None:
        if hint < version:
            return False
        if reader.store.exists(mc.checkpoint_name(hint)):
            return True
    return version > 0 and not reader.store.exists(commit_name(version - 1))


def write_checkpoint(reader: LogReader, snapshot: Snapshot) -> bool:
    """Write the checkpoint of `snapshot` (which must be the log's snapshot at its version) and
    point `_manifest/_last_checkpoint` at it. Returns False if one already existed there.

    Created with create-if-absent in one piece (a temp file linked into place locally, a single
    conditional PUT on S3): never clobbered, never seen half-written. Raises CorruptCommit if
    the commits before the version were folded and no readable checkpoint holds their tokens.
    """
    listing = reader.listing()
    if listing.has(f"{snapshot.version:020d}{CHECKPOINT_SUFFIX}"):
        return False
    rows = _commit_rows(reader, listing, snapshot.version)
    files = FileMap.of(snapshot.files)
    files.base.arrow_files()  # kept by the base, which later snapshots share: the next checkpoint reuses it
    data = mc.encode(snapshot, files.flattened(), rows, writer=writer_info(f"checkpoint-{uuid.uuid4().hex[:8]}"))
    created = reader.store.put_if_absent(mc.checkpoint_name(snapshot.version), data)
    if created:
        try:
            mc.write_hint(reader.store, snapshot.version, len(data))
        except Exception as exc:  # a hint only
            log.warning("could not update %s: %s", mc.LAST_CHECKPOINT, exc)
    return created


def _commit_rows(reader: LogReader, listing: Listing, version: int) -> Any:
    """The commits section of a checkpoint at `version`: the previous checkpoint's, plus the commits since."""
    for cp in listing.checkpoints_desc(version - 1):
        if not listing.has_commit(cp + 1):
            break
        try:
            prev = mc.load(reader.store, cp).commits()
        except (FileNotFoundError, CorruptCheckpoint, UnsupportedFormatVersion):
            continue
        return pa.concat_tables([prev, mc.commit_rows(reader.read_range(listing, cp + 1, version))])
    if listing.has_commit(0):
        return mc.commit_rows(reader.read_range(listing, 0, version))
    raise CorruptCommit(
        f"cannot checkpoint version {version} of {reader.store.url}: the commits before "
        f"{listing.log_start} were folded and no readable checkpoint holds them"
    )


def verify_checkpoint(reader: LogReader, version: int) -> list[str]:
    """How the checkpoint at `version` disagrees with the log (empty if it agrees): its files
    and its commits section against those of the newest older readable checkpoint (or of
    nothing, from commit 0) plus the commits since, which must all be there.

    Raises FileNotFoundError, CorruptCheckpoint if it is unreadable, CorruptCommit if nothing
    independent of it is left to compare it with (the commits before it were folded).
    """
    listing = reader.listing()
    ck = mc.load(reader.store, version)
    base: Snapshot | None = None
    rows = mc.COMMIT_SCHEMA.empty_table()
    start = 0
    for cp in listing.checkpoints_desc(version - 1):
        if not listing.has_commit(cp + 1):
            break
        try:
            prev = mc.load(reader.store, cp)
            base, rows, start = prev.snapshot(), prev.commits(), cp + 1
            break
        except (FileNotFoundError, CorruptCheckpoint, UnsupportedFormatVersion):
            continue
    if base is None and not listing.has_commit(0):
        raise CorruptCommit(
            f"the checkpoint at {version} cannot be checked: the commits before it were folded "
            "and no older readable checkpoint is left"
        )
    tail = reader.read_many(list(range(start, version + 1)))
    expected = replay(tail, base)
    problems = []
    if ck.committed_at != expected.committed_at:
        problems.append(f"committed_at {iso(ck.committed_at)} != {iso(expected.committed_at)} in commit {version}")
    problems += _compare_files(ck.files().to_arrow(), FileMap.of(expected.files).flattened().arrow_files().to_arrow())
    want = {r["version"]: r for r in pa.concat_tables([rows, mc.commit_rows(tail)]).to_pylist()}
    for r in ck.commits().to_pylist():
        w = want.get(r["version"])
        if w is not None and w != r:
            problems.append(f"its commits section disagrees with the log at version {r['version']}")
            break
    return problems


def fold_commits(reader: LogReader, older_than: datetime) -> list[int]:
    """Delete the commit files older than the newest checkpoint and committed before
    `older_than`, oldest first; returns the versions deleted. Vacuum calls this.

    Only a checkpoint that agrees with the log (`verify_checkpoint`) is folded into; otherwise
    nothing is deleted and a CheckpointWarning says why. Only a prefix of the log goes (a
    commit with a later time stops it, whatever its successors' times), so the log stays
    contiguous from its oldest commit. Before deleting anything, `_last_checkpoint` is raised
    to the checkpoint: writers and refreshes read it to tell a folded version from a free one.
    Checkpoints older than the oldest commit kept are deleted too (the newest checkpoint holds
    all they held). Afterwards versions before the newest checkpoint cannot be opened
    (VersionNotFound says so); their tokens and commit times live on in the checkpoint's
    commits section. Raises CorruptCommit if the hint cannot be raised (nothing is deleted).
    """
    if older_than.tzinfo is None:
        older_than = older_than.replace(tzinfo=UTC)
    listing = reader.listing()
    if not listing.checkpoints or listing.oldest_commit is None or listing.oldest_commit >= listing.checkpoints[-1]:
        return []
    newest = listing.checkpoints[-1]
    try:
        problems = verify_checkpoint(reader, newest)
        times = dict(
            zip(*(mc.load(reader.store, newest).commits().column(c).to_pylist() for c in ("version", "committed_at")))
        )
    except (FileNotFoundError, CorruptCommit, UnsupportedFormatVersion, VersionNotFound) as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
    if problems:
        mc.warn(
            f"not folding commits into checkpoint {newest} of {reader.store.url}: it does not agree with the "
            f"log ({problems[0]}); run `warehouse doctor`"
        )
        return []
    # First the floor: `_landed_in_fold` and `_folded_away` rely on the hint naming a checkpoint
    # at least this new before any commit below it is gone. If it cannot be written, nothing is.
    mc.write_hint(reader.store, newest)
    if (mc.read_hint(reader.store) or -1) < newest:
        raise CorruptCommit(
            f"cannot fold: {mc.LAST_CHECKPOINT} of {reader.store.url} does not name checkpoint {newest}"
        )
    folded: list[int] = []
    for v in listing.commits:
        t = times.get(v)
        if v >= newest or t is None or t >= older_than:
            break
        reader.store.remove(commit_name(v))
        folded.append(v)
    first_kept = max(listing.log_start or 0, folded[-1] + 1 if folded else 0)
    for cp in listing.checkpoints[:-1]:
        if cp + 1 < first_kept:
            reader.store.remove(mc.checkpoint_name(cp))
    if folded:
        log.info("folded commits %d..%d of %s into checkpoint %d", folded[0], folded[-1], reader.store.url, newest)
    return folded


def _token_is(column: Any, value: str) -> Any:
    return pc.fill_null(pc.equal(column, value), False)


def _compare_files(got: pa.Table, want: pa.Table) -> list[str]:
    """How two files sections differ (by path), in words; at most a few lines."""
    by_path = [("path", "ascending")]
    if got.take(pc.sort_indices(got, sort_keys=by_path)).equals(want.take(pc.sort_indices(want, sort_keys=by_path))):
        return []
    g = {r["path"]: r for r in got.to_pylist()}
    w = {r["path"]: r for r in want.to_pylist()}
    out = []
    extra, lacking = sorted(g.keys() - w.keys()), sorted(w.keys() - g.keys())
    if extra:
        out.append(f"{len(extra)} file(s) the log does not have, e.g. {extra[0]}")
    if lacking:
        out.append(f"{len(lacking)} file(s) of the log missing, e.g. {lacking[0]}")
    for p in sorted(g.keys() & w.keys()):
        a, b = g[p], w[p]
        for k in ("table", "rows", "bytes", "version", "partition", "stats"):
            same = a[k] == b[k] or (
                k in ("partition", "stats") and json.loads(a[k] or "{}") == json.loads(b[k] or "{}")
            )
            if not same and not (k == "version" and -1 in (a[k], b[k])):
                out.append(f"{p}: {k} {a[k]!r} in the checkpoint, {b[k]!r} in the log")
                break
        if len(out) >= 5:
            break
    return out
