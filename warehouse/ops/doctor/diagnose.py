"""`diagnose`: every check doctor makes, in order, each a named step over one shared state.

The steps: list the manifest and the data files; read the log, setting stray commits and
checkpoints apart; find where the replay starts (commit 0 or a checkpoint); replay the log,
comparing checkpoints on the way; check the snapshot's data files; find orphans; check the Delta logs
of publication (`publication`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from warehouse.core.errors import UnsupportedFormatVersion, WarehouseNotFound
from warehouse.core.schemas import catalog
from warehouse.core.storage import Store
from warehouse.manifest import MANIFEST_DIR, Commit, DataFile, commit_name
from warehouse.ops.doctor.datafiles import (
    check_deep,
    data_paths,
    file_size,
    footer_rows,
    stray_parquet,
)
from warehouse.ops.doctor.log import (
    checkpoint_module,
    compare_checkpoint,
    encoded_row,
    foreign_runs,
    manifest_versions,
    read_commits,
    stray_commits,
    stray_finding,
    version_runs,
)
from warehouse.ops.doctor.publication import check_publication, is_publication_path
from warehouse.ops.doctor.report import (
    FOOTER_WORKERS,
    RESTORE,
    SET_ASIDE,
    VACUUM,
    DoctorReport,
    Finding,
)

#: path -> (its real size, -1 if missing; the finding a repair would fix)
Repairable = dict[str, tuple[int, Finding]]


@dataclass
class _State:
    """What the steps of one diagnosis share."""

    store: Store
    mc: Any  # the manifest checkpoint module, None if this library has none
    report: DoctorReport
    names: list[str]  # the listing of _manifest/
    latest: int
    commit_versions: list[int] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    listed: dict[str, int] = field(default_factory=dict)  # data files in storage -> size
    commits: dict[int, Commit] = field(default_factory=dict)
    files: dict[str, DataFile] = field(default_factory=dict)  # the snapshot as replayed
    ever: set[str] = field(default_factory=set)  # every path any commit ever added or removed
    start: int = 0  # the first version replayed
    exact: bool = True  # False once a commit is missing or damaged: the replay may differ from the truth
    repairable: Repairable = field(default_factory=dict)


def diagnose(
    store: Store, *, footers: bool = True, deep: bool = False, storage_options: Mapping[str, Any] | None = None
) -> tuple[DoctorReport, dict[str, DataFile], Repairable]:
    """Run every check (with `deep`, also read every page of every data file); returns the report,
    the latest snapshot's files as replayed (leniently: past damaged commits), and the data files a
    repair may fix (path -> (real size, finding)). `storage_options` open past versions to compare
    Delta logs with (`publication`).

    Raises WarehouseNotFound if there is no warehouse at the store's URL, StorageError if the store
    is unusable."""
    t0 = time.perf_counter()
    s = _open(store)
    _read_log(s)
    _set_apart_stray_checkpoints(s)
    _find_replay_start(s)
    _replay(s)
    _check_data_files(s, footers=footers, deep=deep)
    _find_orphans(s)
    check_publication(store, s.listed, s.commits, s.files, s.report, exact=s.exact, storage_options=storage_options)
    s.report.seconds = time.perf_counter() - t0
    return s.report, s.files, s.repairable


def _open(store: Store) -> _State:
    """List `_manifest/`; refuse a URL with no commits."""
    mc = checkpoint_module()
    with store.errors():
        names = store.list_names(MANIFEST_DIR)
    commit_versions, checkpoints = manifest_versions(names)
    latest = max(commit_versions[-1:] + checkpoints[-1:], default=None)
    report = DoctorReport(store.url, latest)
    if latest is None:
        raise WarehouseNotFound(f"no warehouse at {store.url!r} (no {MANIFEST_DIR}/ with commits)")
    if mc is None:
        report.notes.append("this library has no manifest checkpoints: none were checked")
    return _State(store, mc, report, names, latest, commit_versions, checkpoints)


def _read_log(s: _State) -> None:
    """List the data files, then read every commit; commits beyond a gap that are foreign to this
    warehouse become `stray-commit` findings and leave the log checked below."""
    store = s.store
    # The data files are listed before the log is read (as vacuum does): a file committed in between
    # is then known to the log, never taken for an orphan.
    with store.errors():
        for t in catalog().tables:
            s.listed.update(store.list_files(t))
        # Commit files beyond a gap that no checkpoint anchors are read apart: if they are foreign
        # (see `foreign_runs`), they are strays, left out of the log checked below.
        candidates = stray_commits(s.commit_versions, s.checkpoints)
        s.commits = read_commits(store, [v for v in s.commit_versions if v not in candidates], s.report)
        strays = foreign_runs(store, candidates, s.commits, s.listed)
        s.commits.update(read_commits(store, [v for v in candidates if v not in strays], s.report))
    if strays:
        s.commit_versions = [v for v in s.commit_versions if v not in strays]
        s.report.findings += [stray_finding(v, strays[v]) for v in sorted(strays)]


def _set_apart_stray_checkpoints(s: _State) -> None:
    """A checkpoint is written after its commit, which vacuum never folds: one newer than every
    commit is not this log's (readers refuse it): a `stray-checkpoint`."""
    beyond = [c for c in s.checkpoints if s.commit_versions and c > s.commit_versions[-1]]
    if beyond:
        s.checkpoints = [c for c in s.checkpoints if c not in beyond]
        s.report.findings += [
            Finding(
                "error",
                "stray-checkpoint",
                f"a checkpoint newer than the newest commit ({s.commit_versions[-1]}): it "
                "is not this log's (copied in by mistake?), and readers refuse to open the warehouse while it is there",
                f"`warehouse doctor --repair` moves it to {SET_ASIDE}/; if commits up to {c} were lost, restore them "
                "from a backup instead",
                path=s.mc.checkpoint_name(c),
                version=c,
            )
            for c in beyond
        ]
    s.report.version = max(s.commit_versions[-1:] + s.checkpoints[-1:], default=None)


def _find_replay_start(s: _State) -> None:
    """Where the replay starts: commit 0, or the checkpoint vacuum folded the older commits into
    (its files are the replay's first state); a `missing-commit` if neither is there."""
    oldest = s.commit_versions[0] if s.commit_versions else s.latest + 1
    if oldest > 0:
        base = None
        for cp in (c for c in s.checkpoints if c >= oldest - 1):
            try:
                base = s.mc.read_checkpoint(s.store, cp)
                break
            except (FileNotFoundError, s.mc.CorruptCheckpoint, UnsupportedFormatVersion):
                continue
        if base is None:
            s.report.findings.append(
                Finding(
                    "error",
                    "missing-commit",
                    f"commits 0..{oldest - 1} are missing and no readable checkpoint holds them",
                    RESTORE,
                    path=commit_name(0),
                    version=0,
                )
            )
        else:
            s.files = dict(base.files.items())
            s.start = base.version + 1
            s.report.notes.append(
                f"commits before {oldest} were folded away by vacuum: the replay starts from "
                f"checkpoint {base.version}, which nothing older is left to check against"
            )
    s.ever.update(s.files)


def _replay(s: _State) -> None:
    """Replay the log from `s.start` into `s.files`, reporting gaps (`missing-commit`) and clocks
    going backwards, and comparing each checkpoint on the way with the replay up to it."""
    report = s.report
    s.exact = not any(f.kind in ("missing-commit", "corrupt-commit") for f in report.findings)
    gaps: list[int] = []
    previous: Commit | None = None
    to_compare = {cp for cp in s.checkpoints if cp >= s.start}
    # The replayed files as checkpoint rows, kept up to date beside `files` if there are checkpoints to compare.
    encoded = {p: encoded_row(f) for p, f in s.files.items()} if to_compare else {}
    for v in range(s.start, (s.commit_versions[-1] if s.commit_versions else -1) + 1):
        c = s.commits.get(v)
        if c is None:
            s.exact = False
            if v not in s.commit_versions:
                gaps.append(v)
        else:
            _apply(s, c, encoded if to_compare else None)
            if previous is not None and c.committed_at < previous.committed_at:
                report.findings.append(_clock_backwards(c, previous))
            previous = c
        if v in to_compare:
            if s.exact and s.mc is not None:
                compare_checkpoint(s.mc, s.store, v, encoded, s.commits, report)
            else:
                report.notes.append(f"checkpoint {v} was not checked: the log before it is damaged")
    for lo, hi in version_runs(gaps):
        report.findings.append(
            Finding(
                "error",
                "missing-commit",
                f"commit{'s' if hi > lo else ''} {lo}{f'..{hi}' if hi > lo else ''} "
                f"{'are' if hi > lo else 'is'} missing: the log has a gap",
                RESTORE,
                path=commit_name(lo),
                version=lo,
            )
        )
    if not s.exact:
        report.notes.append(
            "the snapshot checked below skips damaged or missing commits: it may differ from the real one"
        )


def _apply(s: _State, c: Commit, encoded: dict[str, tuple] | None) -> None:
    """One commit's removes and adds, on the replayed files (and their checkpoint rows, if kept)."""
    for r in c.remove:
        s.files.pop(r.path, None)
        if encoded is not None:
            encoded.pop(r.path, None)
        s.ever.add(r.path)
    for a in c.add:
        s.files[a.path] = a
        s.ever.add(a.path)
        if encoded is not None:
            encoded[a.path] = encoded_row(a)


def _clock_backwards(c: Commit, previous: Commit) -> Finding:
    return Finding(
        "warning",
        "clock-backwards",
        f"committed at {c.committed_at.isoformat()}, earlier than commit {previous.version} "
        f"({previous.committed_at.isoformat()}): a writer's clock was behind",
        "nothing to do: commits are ordered by version, not time; open(as_of=t) treats the clock as "
        "standing still (the newest version with no commit up to it later than t)",
        path=commit_name(c.version),
        version=c.version,
    )


def _check_data_files(s: _State, *, footers: bool, deep: bool) -> None:
    """Each file of the replayed snapshot: its size from the listing (or, for a file committed
    since, from the store), then its footer's row count, then with `deep` every page."""
    store, report, repairable = s.store, s.report, s.repairable

    def bad(f: DataFile, kind: str, message: str, size: int, repair: str = "--repair") -> None:
        finding = Finding(
            "error",
            kind,
            message,
            f"run `warehouse doctor {repair}` (one new commit fixes the "
            "snapshot), or restore the file from a backup or replica and run doctor again",
            path=f.path,
        )
        report.findings.append(finding)
        repairable[f.path] = (size, finding)

    to_read: list[DataFile] = []
    for f in sorted(s.files.values(), key=lambda f: f.path):
        size = s.listed.get(f.path)
        if size is None:
            size = file_size(store, f.path)
        if size is None:
            bad(f, "missing-file", f"in the snapshot ({f.table}, {f.rows} rows) but not in storage", -1)
        elif size != f.bytes:
            bad(f, "wrong-size", f"{size} bytes; the manifest records {f.bytes}", size)
        elif footers:
            to_read.append(f)
    report.files_checked = len(s.files)

    def rows_of(f: DataFile) -> tuple[DataFile, int | None, str | None]:
        try:
            return f, footer_rows(store, f.path, f.bytes), None
        except Exception as exc:  # any failure to read a footer is a finding, not a crash
            return f, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    if store.is_local or len(to_read) < 2:
        results = [rows_of(f) for f in to_read]
    else:
        with ThreadPoolExecutor(FOOTER_WORKERS) as pool:
            results = list(pool.map(rows_of, to_read))
    for f, rows, error in results:
        if error is not None:
            bad(f, "unreadable-file", f"its Parquet footer cannot be read ({error})", f.bytes)
        elif rows != f.rows:
            bad(f, "wrong-rows", f"holds {rows} rows; the manifest records {f.rows}", f.bytes)
    if deep:
        check_deep(store, [f for f in to_read if f.path not in repairable] if footers else to_read, report, bad)
        report.deep = True


def _find_orphans(s: _State) -> None:
    """Files that look like data no commit ever added (`orphan`), Parquet files where no writer puts
    one (`stray-file`), manifest temp files, and a checkpoint hint naming a checkpoint that is gone."""
    report = s.report
    damaged = "" if s.exact else "; or added by a damaged commit: restore the log before any vacuum"
    never = sorted(p for p in s.listed.keys() - s.ever if not is_publication_path(p))
    for p in data_paths(never):
        report.findings.append(
            Finding(
                "orphan",
                "orphan",
                f"{s.listed[p]} bytes, never committed (left by a crashed writer or compaction{damaged})",
                VACUUM,
                path=p,
            )
        )
    for p in stray_parquet(never):
        report.findings.append(
            Finding(
                "warning",
                "stray-file",
                f"{s.listed[p]} bytes: a Parquet file where the warehouse never writes one (not at "
                "a partition's depth), so no snapshot holds it, but a plain glob such as "
                f"read_parquet('<root>/{p.split('/', 1)[0]}/**/*.parquet') reads it",
                "move it out of the warehouse (vacuum never deletes it: it does not look like a data file)",
                path=p,
            )
        )
    for n in sorted(s.names):
        if n.startswith((".tmp-", ".probe-")):
            report.findings.append(
                Finding(
                    "orphan",
                    "temp-file",
                    "a leftover temp file of a commit or probe",
                    VACUUM,
                    path=f"{MANIFEST_DIR}/{n}",
                )
            )
    hint = s.mc.read_hint(s.store) if s.mc is not None else None
    if hint is not None and hint not in s.checkpoints:
        report.notes.append(f"_last_checkpoint names checkpoint {hint}, which is gone (a hint only: harmless)")
