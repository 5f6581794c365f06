"""Doctor: check a warehouse's manifest against its storage, say what is wrong and what to do, and
repair what a new commit can repair (`Warehouse.doctor`, `warehouse doctor [--repair]`).

What is checked, reading every commit file one by one (so that one bad file does not hide others):

- every commit file parses and holds the version its name says (else `corrupt-commit`), and the
  versions are contiguous from commit 0, or from a checkpoint that vacuum folded older commits
  into (else `missing-commit`). Neither can be repaired by a new commit, since every later version
  builds on it: restore the file from a backup or a replica.
- every data file of the latest snapshot exists (`missing-file`) with the size (`wrong-size`) and
  row count (`wrong-rows`: from the Parquet footer, the only part read) the manifest records, and
  has a readable footer (`unreadable-file`);
- with `deep=True` (`warehouse doctor --deep`), every page of every data file that passed the
  checks above is read, decompressed, decoded and checked against the CRC-32 in its header
  (`damaged-file`); damage inside a page passes every other check, and DuckDB and Polars read such
  a page without error, as other values. Files written before the warehouse wrote page checksums
  have none: in them only damage that breaks decoding is found. It reads every byte, so it costs
  about what reading the whole warehouse with pyarrow does (BENCHMARKS.md);
- every manifest checkpoint agrees with a replay of the commits up to its version: same files with
  the same table, partition, rows, bytes and stats, same commit time, and a commits section with the
  log's tokens and times (`checkpoint-mismatch`, `unreadable-checkpoint`);
- commit times: a commit earlier than the one before it (`clock-backwards`) is a warning, never an
  error: commits are ordered by version, not time. Time travel by timestamp treats such a clock as
  standing still: `open(url, as_of=t)` opens the newest version v such that no commit up to v has a
  time later than t, so it never skips commits;
- stray commit files (`stray-commit`): commit-named files beyond a gap in the log, that no
  checkpoint anchors and that do not belong here (unreadable or claiming another version, copies of
  a commit of the log, or adding only files that are not in storage: copied into `_manifest/` by
  mistake); readers refuse such a log. They are left out of the replay checked below; `repair=True`
  moves them, unchanged, to `_manifest/_set_aside/` (never deleting them). A run beyond a gap that
  does belong here means commits were lost: `missing-commit`, never set aside. A checkpoint newer
  than the newest commit (`stray-checkpoint`) is set aside the same way. Stray `.parquet` files under a table directory but
  not at a partition's depth (`stray-file`, a warning): no snapshot ever holds them, but plain globs
  such as `read_parquet('root/executions/**/*.parquet')` read them;
- orphans (`orphan`): data files under the tables' partition directories that no commit ever
  added (a crashed writer's, an abandoned compaction's), and `_manifest/.tmp-*` / `.probe-*` files.
  Not problems: `warehouse vacuum` deletes them once older than its orphan window.

`repair=True` only ever writes one new commit (operation `repair`; history is never rewritten or
deleted): a data file that is missing, unreadable, damaged inside a page, or of another size than
committed (these are not the committed bytes) is removed from the snapshot (its rows leave every view; the file, if any,
stays on disk until vacuum); a file of the committed size whose row count differs from the
manifest's (a hand-edited commit), and that reads as rows of its table and partition, is
re-recorded as it is: removed and added again in the same commit with its real rows and stats, so
no row is lost. The commit's `info` says what and why. Damaged commits and checkpoints are reported
with what to do, and left alone.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import pyarrow.parquet as pq

from warehouse.core.errors import CorruptCommit, UnsupportedFormatVersion, WarehouseError
from warehouse.manifest import MANIFEST_DIR, Commit, DataFile, RemovedFile, commit_name, writer_info
from warehouse.core.schemas import catalog
from warehouse.core.storage import Store, arrow_reader
from warehouse.engine.engine import Engine, HasEngine, open_engine
from warehouse.ops.vacuum import is_data_path

#: Severities: an `error` is a problem (exit code 1 unless repaired); a `warning` and an `orphan` are not.
SEVERITIES = ("error", "warning", "orphan")
#: Commit files read at a time (concurrently on remote stores).
READ_CHUNK = 256
#: Footers read at a time on remote stores.
FOOTER_WORKERS = 16
_TAIL = 64 << 10  # bytes read from a file's end for its footer (more if the footer is larger)

RESTORE = ("restore it from a backup, or copy it from a replica (e.g. the source or target of `warehouse sync`); "
           "a new commit cannot replace it, since every later version builds on it")


@dataclass(frozen=True)
class Finding:
    """One thing doctor found: how bad (`severity`), which check (`kind`), where (`version` of a
    commit or checkpoint, `path` of a file), what (`message`) and what to do (`fix`)."""

    severity: str
    kind: str
    message: str
    fix: str
    path: str | None = None
    version: int | None = None
    repaired: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorReport:
    """The result of `Warehouse.doctor()`: findings, what was checked, and what a repair did."""

    url: str
    version: int | None  # the newest version in the log
    commits_checked: int = 0
    files_checked: int = 0
    checkpoints_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repair_version: int | None = None  # the repair commit, if one was written
    seconds: float = 0.0
    deep: bool = False  # every page of every data file was read and checked

    def _of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def problems(self) -> list[Finding]:
        """Errors a repair did not fix."""
        return [f for f in self._of("error") if not f.repaired]

    @property
    def repaired(self) -> list[Finding]:
        return [f for f in self.findings if f.repaired]

    @property
    def warnings(self) -> list[Finding]:
        return self._of("warning")

    @property
    def orphans(self) -> list[Finding]:
        return self._of("orphan")

    @property
    def healthy(self) -> bool:
        """True if no problem remains (warnings and orphans are not problems)."""
        return not self.problems

    @property
    def exit_code(self) -> int:
        """`warehouse doctor`'s exit code: 0 if healthy (orphans and warnings allowed), else 1."""
        return 0 if self.healthy else 1

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "version": self.version, "healthy": self.healthy,
                "commits_checked": self.commits_checked, "files_checked": self.files_checked,
                "checkpoints_checked": self.checkpoints_checked, "deep": self.deep, "problems": len(self.problems),
                "warnings": len(self.warnings), "orphans": len(self.orphans), "repair_version": self.repair_version,
                "findings": [f.to_json() for f in self.findings], "notes": list(self.notes),
                "seconds": round(self.seconds, 3)}


# -- reading, leniently --------------------------------------------------------------------------
def _read_commits(store: Store, versions: list[int], report: DoctorReport) -> dict[int, Commit]:
    """Every commit that parses; a Finding for each that does not."""
    out: dict[int, Commit] = {}
    for i in range(0, len(versions), READ_CHUNK):
        chunk = versions[i:i + READ_CHUNK]
        blobs = store.read_many([commit_name(v) for v in chunk])
        for v in chunk:
            name = commit_name(v)
            data = blobs.get(name)
            if data is None:
                report.findings.append(Finding("error", "missing-commit", "vanished while being read", RESTORE,
                                               path=name, version=v))
                continue
            try:
                c = Commit.from_bytes(data, name=name)
                if c.version != v:
                    raise CorruptCommit(f"manifest file {name} claims version {c.version}")
            except CorruptCommit as exc:
                msg = str(exc).split("; run `warehouse doctor`")[0].replace(f"manifest file {name} ", "")
                report.findings.append(Finding("error", "corrupt-commit", f"{msg}; the file has {len(data)} bytes",
                                               RESTORE, path=name, version=v))
                continue
            except UnsupportedFormatVersion as exc:
                report.findings.append(Finding("error", "corrupt-commit", str(exc),
                                               "upgrade the warehouse package, then run doctor again", path=name, version=v))
                continue
            out[v] = c
    report.commits_checked += len(out)
    return out


def _checkpoint_module() -> Any:
    try:
        from warehouse.manifest import checkpoint as manifest_checkpoint
    except ImportError:  # a library without manifest checkpoints
        return None
    return manifest_checkpoint


def _text(value: Any) -> str:
    """JSON as checkpoints spell it (compact, UTF-8); another spelling only costs a parse in `_same`."""
    return orjson.dumps(value).decode()


def _parsed(text: str | None) -> Any:
    return json.loads(text) if text else {}


def _encoded(f: DataFile) -> tuple:
    """A file as a checkpoint's row holds it: (table, partition JSON, rows, bytes, stats JSON)."""
    return f.table, _text(dict(f.partition)), f.rows, f.bytes, _text(dict(f.stats)) if f.stats else "{}"


def _same(a: tuple, b: tuple) -> bool:
    """Two encoded rows hold the same file, whatever the JSON spelling of partition and stats."""
    return a == b or (a[0], _parsed(a[1]), a[2], a[3], _parsed(a[4])) == (b[0], _parsed(b[1]), b[2], b[3], _parsed(b[4]))


_COLUMNS = ("table", "partition", "rows", "bytes", "stats")


def _compare_checkpoint(mc: Any, store: Store, cp: int, mine: Mapping[str, tuple], commits: dict[int, Commit],
                        report: DoctorReport) -> None:
    """The checkpoint at `cp` against `mine`, the replay of the log up to it (path -> encoded row:
    a checkpoint of 100,000 files is compared without a Python object per file)."""
    name = mc.checkpoint_name(cp)
    fix = (f"move {name} aside (the log up to it is complete, so readers then replay the commits instead), "
           "or restore it from a backup")
    try:
        ck = mc.load(store, cp)
        t = ck.files().to_arrow()
        rows = ck.commits()
    except FileNotFoundError:
        return  # folded away by a vacuum meanwhile
    except (mc.CorruptCheckpoint, UnsupportedFormatVersion) as exc:
        report.findings.append(Finding("error", "unreadable-checkpoint", str(exc).replace(f"checkpoint {name} ", "")
                                       + "; readers skip it", fix, path=name, version=cp))
        return
    report.checkpoints_checked += 1
    why: list[str] = []
    theirs = dict(zip(t.column("path").to_pylist(), zip(*(t.column(c).to_pylist() for c in _COLUMNS))))
    if theirs != mine:
        only_ck = sorted(theirs.keys() - mine.keys())
        only_log = sorted(mine.keys() - theirs.keys())
        differ = sorted(p for p in theirs.keys() & mine.keys() if not _same(theirs[p], mine[p]))
        for what, paths in (("only in the checkpoint", only_ck), ("missing from the checkpoint", only_log),
                            ("recorded differently", differ)):
            if paths:
                why.append(f"{len(paths)} file(s) {what} (e.g. {paths[0]})")
    c = commits.get(cp)
    if c is not None and ck.committed_at != c.committed_at:
        why.append(f"its time {ck.committed_at.isoformat()} is not commit {cp}'s {c.committed_at.isoformat()}")
    for v, token, op, at in zip(*(rows.column(k).to_pylist() for k in ("version", "token", "operation", "committed_at"))):
        c = commits.get(v)
        if c is not None and (token, op, at) != (c.token, c.operation, c.committed_at):
            why.append(f"its commits section disagrees with commit {v} (token, operation or time)")
            break
    if why:
        report.findings.append(Finding(
            "error", "checkpoint-mismatch", "disagrees with the log: " + "; ".join(why)
            + "; readers that load it see a wrong snapshot", fix, path=name, version=cp))


def _footer_rows(store: Store, rel: str, size: int) -> int:
    """The row count in a Parquet file's footer (only the footer is read)."""
    if store.is_local:
        return pq.read_metadata(store.full(rel)).num_rows
    path = store.full(rel)
    tail = store.call(store.fs.cat_file, path, start=max(0, size - _TAIL), end=size)
    if len(tail) >= 8 and tail[-4:] == b"PAR1":
        n = struct.unpack("<I", tail[-8:-4])[0]
        if len(tail) < n + 8 <= size:
            tail = store.call(store.fs.cat_file, path, start=size - n - 8, end=size)
    return pq.read_metadata(arrow_reader(tail)).num_rows


def _size(store: Store, rel: str) -> int | None:
    """The size of one file, None if it does not exist."""
    try:
        with store.errors():
            return int(store.call(store.fs.size, store.full(rel)))
    except FileNotFoundError:
        return None


def _data_paths(paths: list[str]) -> list[str]:
    """Those of `paths` that vacuum counts as data files or writers' temp files (the same rule, so
    that what doctor calls an orphan is what vacuum deletes)."""
    tables, pcols = catalog().tables, catalog().partition_columns
    return [p for p in paths if is_data_path(p, tables, pcols)]


# -- the checks -----------------------------------------------------------------------------------
def diagnose(store: Store, *, footers: bool = True, deep: bool = False
             ) -> tuple[DoctorReport, dict[str, DataFile], dict[str, tuple[int, Finding]]]:
    """Run every check (with `deep`, also read every page of every data file); returns the report,
    the latest snapshot's files as replayed (leniently: past damaged commits), and the data files a
    repair may fix (path -> (real size, finding))."""
    t0 = time.perf_counter()
    mc = _checkpoint_module()
    with store.errors():
        names = store.list_names(MANIFEST_DIR)
    commit_versions, checkpoints = _manifest_versions(names)
    latest = max(commit_versions[-1:] + checkpoints[-1:], default=None)
    report = DoctorReport(store.url, latest)
    if latest is None:
        raise WarehouseError(f"no warehouse at {store.url!r} (no {MANIFEST_DIR}/ with commits)")
    if mc is None:
        report.notes.append("this library has no manifest checkpoints: none were checked")

    # The data files are listed before the log is read (as vacuum does): a file committed in between
    # is then known to the log, never taken for an orphan.
    with store.errors():
        listed: dict[str, int] = {}
        for t in catalog().tables:
            listed.update(store.list_files(t))
        # Commit files beyond a gap that no checkpoint anchors are read apart: if they are foreign
        # (see `_foreign_runs`), they are strays, left out of the log checked below.
        candidates = _stray_commits(commit_versions, checkpoints)
        commits = _read_commits(store, [v for v in commit_versions if v not in candidates], report)
        strays = _foreign_runs(store, candidates, commits, listed)
        commits.update(_read_commits(store, [v for v in candidates if v not in strays], report))
    if strays:
        commit_versions = [v for v in commit_versions if v not in strays]
        report.findings += [_stray_finding(v, strays[v]) for v in sorted(strays)]
    # A checkpoint is written after its commit, which vacuum never folds: one newer than every
    # commit is not this log's (readers refuse it).
    beyond = [c for c in checkpoints if commit_versions and c > commit_versions[-1]]
    if beyond:
        checkpoints = [c for c in checkpoints if c not in beyond]
        report.findings += [Finding(
            "error", "stray-checkpoint", f"a checkpoint newer than the newest commit ({commit_versions[-1]}): it "
            "is not this log's (copied in by mistake?), and readers refuse to open the warehouse while it is there",
            f"`warehouse doctor --repair` moves it to {SET_ASIDE}/; if commits up to {c} were lost, restore them "
            "from a backup instead", path=mc.checkpoint_name(c), version=c) for c in beyond]
    report.version = max(commit_versions[-1:] + checkpoints[-1:], default=None)

    # Where the replay starts: commit 0, or the checkpoint vacuum folded the older commits into.
    files: dict[str, DataFile] = {}
    ever: set[str] = set()
    oldest = commit_versions[0] if commit_versions else latest + 1
    start = 0
    if oldest > 0:
        bases = [c for c in checkpoints if c >= oldest - 1]
        base = None
        for cp in bases:
            try:
                base = mc.read_checkpoint(store, cp)
                break
            except (FileNotFoundError, mc.CorruptCheckpoint, UnsupportedFormatVersion):
                continue
        if base is None:
            report.findings.append(Finding(
                "error", "missing-commit", f"commits 0..{oldest - 1} are missing and no readable checkpoint holds them",
                RESTORE, path=commit_name(0), version=0))
        else:
            files = dict(base.files.items())
            start = base.version + 1
            report.notes.append(f"commits before {oldest} were folded away by vacuum: the replay starts from "
                                f"checkpoint {base.version}, which nothing older is left to check against")
    ever.update(files)

    exact = not any(f.kind in ("missing-commit", "corrupt-commit") for f in report.findings)
    gaps: list[int] = []
    previous: Commit | None = None
    to_compare = {cp for cp in checkpoints if cp >= start}
    # The replayed files as checkpoint rows, kept up to date beside `files` if there are checkpoints to compare.
    encoded = {p: _encoded(f) for p, f in files.items()} if to_compare else {}
    for v in range(start, (commit_versions[-1] if commit_versions else -1) + 1):
        c = commits.get(v)
        if c is None:
            exact = False
            if v not in commit_versions:
                gaps.append(v)
        else:
            for r in c.remove:
                files.pop(r.path, None)
                encoded.pop(r.path, None)
                ever.add(r.path)
            for a in c.add:
                files[a.path] = a
                ever.add(a.path)
                if to_compare:
                    encoded[a.path] = _encoded(a)
            if previous is not None and c.committed_at < previous.committed_at:
                report.findings.append(Finding(
                    "warning", "clock-backwards",
                    f"committed at {c.committed_at.isoformat()}, earlier than commit {previous.version} "
                    f"({previous.committed_at.isoformat()}): a writer's clock was behind",
                    "nothing to do: commits are ordered by version, not time; open(as_of=t) treats the clock as "
                    "standing still (the newest version with no commit up to it later than t)",
                    path=commit_name(v), version=v))
            previous = c
        if v in to_compare:
            if exact and mc is not None:
                _compare_checkpoint(mc, store, v, encoded, commits, report)
            else:
                report.notes.append(f"checkpoint {v} was not checked: the log before it is damaged")
    for lo, hi in _runs(gaps):
        report.findings.append(Finding(
            "error", "missing-commit", f"commit{'s' if hi > lo else ''} {lo}{f'..{hi}' if hi > lo else ''} "
            f"{'are' if hi > lo else 'is'} missing: the log has a gap", RESTORE, path=commit_name(lo), version=lo))
    if not exact:
        report.notes.append("the snapshot checked below skips damaged or missing commits: it may differ from the real one")

    # Data files: sizes from the listing (or, for a file committed since, from the store), then footers.
    repairable: dict[str, tuple[int, Finding]] = {}

    def bad(f: DataFile, kind: str, message: str, size: int, repair: str = "--repair") -> None:
        finding = Finding("error", kind, message, f"run `warehouse doctor {repair}` (one new commit fixes the "
                          "snapshot), or restore the file from a backup or replica and run doctor again",
                          path=f.path)
        report.findings.append(finding)
        repairable[f.path] = (size, finding)

    to_read: list[DataFile] = []
    for f in sorted(files.values(), key=lambda f: f.path):
        size = listed.get(f.path)
        if size is None:
            size = _size(store, f.path)
        if size is None:
            bad(f, "missing-file", f"in the snapshot ({f.table}, {f.rows} rows) but not in storage", -1)
        elif size != f.bytes:
            bad(f, "wrong-size", f"{size} bytes; the manifest records {f.bytes}", size)
        elif footers:
            to_read.append(f)
    report.files_checked = len(files)

    def rows_of(f: DataFile) -> tuple[DataFile, int | None, str | None]:
        try:
            return f, _footer_rows(store, f.path, f.bytes), None
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
        _check_pages(store, [f for f in to_read if f.path not in repairable] if footers else to_read, report, bad)
        report.deep = True

    # Orphans: files that look like data no commit ever added, and manifest temp files.
    damaged = "" if exact else "; or added by a damaged commit: restore the log before any vacuum"
    for p in _data_paths(sorted(listed.keys() - ever)):
        report.findings.append(Finding("orphan", "orphan", f"{listed[p]} bytes, never committed "
                                       f"(left by a crashed writer or compaction{damaged})", VACUUM, path=p))
    for p in _stray_parquet(sorted(listed.keys() - ever)):
        report.findings.append(Finding(
            "warning", "stray-file", f"{listed[p]} bytes: a Parquet file where the warehouse never writes one (not at "
            "a partition's depth), so no snapshot holds it, but a plain glob such as "
            f"read_parquet('<root>/{p.split('/', 1)[0]}/**/*.parquet') reads it",
            "move it out of the warehouse (vacuum never deletes it: it does not look like a data file)", path=p))
    for n in sorted(names):
        if n.startswith((".tmp-", ".probe-")):
            report.findings.append(Finding("orphan", "temp-file", "a leftover temp file of a commit or probe",
                                           VACUUM, path=f"{MANIFEST_DIR}/{n}"))
    hint = mc.read_hint(store) if mc is not None else None
    if hint is not None and hint not in checkpoints:
        report.notes.append(f"_last_checkpoint names checkpoint {hint}, which is gone (a hint only: harmless)")
    report.seconds = time.perf_counter() - t0
    return report, files, repairable


VACUUM = "`warehouse vacuum` deletes it once older than its orphan window (1 hour by default)"
#: Where `repair` moves stray commit files (under `_manifest/`, where no reader looks).
SET_ASIDE = f"{MANIFEST_DIR}/_set_aside"


def _stray_commits(versions: list[int], checkpoints: list[int]) -> dict[int, tuple[int, int]]:
    """Candidate strays: commit versions beyond a gap in the log, in runs that no checkpoint
    anchors (a run of the log starts at 0 or at a checkpoint that vacuum folded the older commits
    into): version -> the gap (first, last missing version) below its run. The newest anchored
    run is the log's; none is a candidate if no run is anchored. `_foreign_runs` decides."""
    runs = _runs(versions)
    anchored = [i for i, (lo, hi) in enumerate(runs) if lo == 0 or any(lo <= c <= hi for c in checkpoints)]
    if not anchored:
        return {}
    log_run = anchored[-1]
    out: dict[int, tuple[int, int]] = {}
    for i in range(log_run + 1, len(runs)):
        gap = (runs[i - 1][1] + 1, runs[i][0] - 1)
        for v in range(runs[i][0], runs[i][1] + 1):
            out[v] = gap
    return out


def _foreign_runs(store: Store, candidates: dict[int, tuple[int, int]], log: Mapping[int, Commit],
                  listed: Mapping[str, int]) -> dict[int, tuple[int, int]]:
    """Those of `candidates` (`_stray_commits`) whose whole run is foreign to this warehouse, every
    commit of it either unreadable or claiming another version, or a copy of a commit of the log
    (its token), or adding only files that are not in storage: commits of another warehouse, or
    copies. A run with a commit of its own here (files in storage) is the log's, with commits lost
    below it: reported as missing commits, never set aside."""
    out: dict[int, tuple[int, int]] = {}
    tokens = {c.token for c in log.values() if c.token is not None}
    for lo, hi in _runs(sorted(candidates)):
        names = [commit_name(v) for v in range(lo, hi + 1)]
        blobs = store.read_many(names)

        def foreign(v: int, name: str) -> bool:
            data = blobs.get(name)
            if data is None:
                return False  # gone meanwhile: nothing to set aside
            try:
                c = Commit.from_bytes(data, name=name)
            except (CorruptCommit, UnsupportedFormatVersion):
                return True
            if c.version != v or (c.token is not None and c.token in tokens):
                return True
            return bool(c.add) and not any(a.path in listed for a in c.add)

        if all(foreign(v, n) for v, n in zip(range(lo, hi + 1), names)):
            out.update((v, candidates[v]) for v in range(lo, hi + 1))
    return out


def _stray_finding(version: int, gap: tuple[int, int]) -> Finding:
    lo, hi = gap
    return Finding(
        "error", "stray-commit",
        f"a commit file beyond a gap in the log (commits {lo}..{hi} are missing, and no checkpoint anchors it): "
        f"the log runs up to {lo - 1}, and readers refuse to open it while this file is there",
        f"if it does not belong to this warehouse (copied in by mistake), `warehouse doctor --repair` moves it "
        f"to {SET_ASIDE}/; if commits {lo}..{hi} were lost, restore them from a backup instead",
        path=commit_name(version), version=version)


def _stray_parquet(paths: list[str]) -> list[str]:
    """Those of `paths` (under the tables' directories) that end in .parquet but are not where a
    writer puts data files (`vacuum.is_data_path`)."""
    data = set(_data_paths(paths))
    return [p for p in paths if p.endswith(".parquet") and p not in data]


def set_aside_strays(store: Store, report: DoctorReport) -> None:
    """Move the stray commit and checkpoint files the report found to SET_ASIDE (unchanged; never
    deleted), each only if a fresh listing still shows it stray (a writer may have filled a gap)."""
    strays = [f for f in report.findings if f.kind in ("stray-commit", "stray-checkpoint") and not f.repaired]
    if not strays:
        return
    with store.errors():
        commits, checkpoints = _manifest_versions(store.list_names(MANIFEST_DIR))
    still = set(_stray_commits(commits, checkpoints))
    real = [v for v in commits if v not in still]
    still |= {c for c in checkpoints if real and c > real[-1]}
    moved: list[Finding] = []
    for f in strays:
        if f.version not in still:
            report.notes.append(f"{f.path} is no longer beyond a gap: not moved")
            continue
        name = f.path.rsplit("/", 1)[-1]
        target, n = f"{SET_ASIDE}/{name}", 1
        while store.exists(target):  # never over a file set aside earlier
            n += 1
            target = f"{SET_ASIDE}/{name}.{n}"
        with store.errors():  # a copy, then the original removed: the same on every store
            store.write_bytes(target, store.read_bytes(f.path))
            store.remove(f.path)
        report.notes.append(f"moved {f.path}, unchanged, to {target}")
        moved.append(f)
    report.findings = [Finding(**{**asdict(f), "repaired": True}) if f in moved else f for f in report.findings]


def _manifest_versions(names: list[str]) -> tuple[list[int], list[int]]:
    """(commit versions, checkpoint versions), ascending, of a listing of `_manifest/`."""
    mc = _checkpoint_module()
    suffix = mc.SUFFIX if mc else None
    commits = sorted(int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit())
    checkpoints = sorted(int(n[:20]) for n in names if suffix and n.endswith(suffix) and n[:20].isdigit()
                         and len(n) == 20 + len(suffix))
    return commits, checkpoints


#: Files DuckDB reads in one query in `--deep` (one by one only within a batch that fails).
DEEP_DUCKDB_BATCH = 256


def _check_pages(store: Store, files: list[DataFile], report: DoctorReport, bad: Any) -> None:
    """`--deep`: read every page of `files` twice, with pyarrow checking each page against its
    checksum, and with DuckDB as the views read it (a damaged page header, which no checksum
    covers, can fail DuckDB's decoding alone); a file either cannot read is a `damaged-file`.
    (Polars is not asked: on some damaged pages it aborts the whole process.)"""
    import duckdb

    from warehouse.core.errors import CorruptDataFile
    from warehouse.engine.reader import table_sql
    from warehouse.engine.datafiles import check_pages
    from warehouse.core.storage import SnapshotFileSystem

    def pages(f: DataFile) -> tuple[DataFile, str | None]:
        try:
            rows = check_pages(store, f)
        except CorruptDataFile as exc:
            cause = str(exc.__cause__ or exc).splitlines()[0]
            return f, f"a page is damaged ({cause}): queries may fail or, worse, return other values"
        except FileNotFoundError:
            return f, None  # removed by a commit and deleted by a vacuum meanwhile: not ours to judge
        return f, None if rows == f.rows else f"its pages hold {rows} rows; the manifest records {f.rows}"

    if store.is_local or len(files) < 2:
        results = [pages(f) for f in files]
    else:
        with ThreadPoolExecutor(FOOTER_WORKERS) as pool:
            results = list(pool.map(pages, files))
    found = {f.path: why for f, why in results}  # path -> what is wrong (None: nothing found)

    con = duckdb.connect()
    if not store.is_local:
        con.register_filesystem(SnapshotFileSystem(store.fs, {store.full(f.path): f.bytes for f in files},
                                                   call=store.call))

    def duckdb_check(batch: list[DataFile]) -> None:
        """Read `batch` (files of one table) in one query; on a failure or a wrong count, one by one."""
        why = None
        try:
            rel = con.sql(f"select * from ({table_sql(store, catalog().table(batch[0].table), batch)})")
            to_reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
            rows = sum(b.num_rows for b in to_reader(64 * 1024))
            if rows == sum(f.rows for f in batch):
                return
            why = f"DuckDB reads {rows} rows; the manifest records {sum(f.rows for f in batch)}"
        except duckdb.Error as exc:
            why = f"DuckDB cannot decode it ({str(exc).splitlines()[0]}): queries over it fail"
        if len(batch) > 1:
            for f in batch:
                duckdb_check([f])
        elif store.exists(batch[0].path):  # (else deleted by a vacuum meanwhile)
            found[batch[0].path] = why

    try:
        sound = sorted((f for f in files if found[f.path] is None), key=lambda f: (f.table, f.path))
        for table in sorted({f.table for f in sound}):
            of_table = [f for f in sound if f.table == table]
            for i in range(0, len(of_table), DEEP_DUCKDB_BATCH):
                duckdb_check(of_table[i:i + DEEP_DUCKDB_BATCH])
    finally:
        con.close()
    for f in sorted(files, key=lambda f: f.path):
        if found[f.path] is not None:
            bad(f, "damaged-file", found[f.path], f.bytes, "--deep --repair")
    report.notes.append(f"deep: read every page of {len(files)} data file(s) ({sum(f.bytes for f in files):,} bytes) "
                        "with pyarrow, checking each against its checksum (files written before page checksums "
                        "have none: decoding only), and with DuckDB")


def _runs(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values:
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


# -- repair ---------------------------------------------------------------------------------------
def _rerecord(wh: "Engine", f: DataFile, size: int) -> DataFile | None:
    """`f` as it really is (size, rows, stats) if it is a readable file of its table and partition."""
    from warehouse.engine.datafiles import read_data_file
    from warehouse.engine.datafiles import file_stats

    schema = catalog().table(f.table)
    pcols = list(catalog().partition_columns)
    try:
        t = read_data_file(wh, f, columns=pcols + [c for c in schema.stats_columns if c not in pcols])
    except Exception:  # unreadable: it is removed instead
        return None
    for c in pcols:
        values = set(t.column(c).unique().to_pylist())
        if values != {f.partition.get(c)} and not (t.num_rows == 0 and not values):
            return None
    return DataFile(f.table, f.path, dict(f.partition), t.num_rows, size, file_stats(t, schema.stats_columns))


def write_repair(wh: "Engine", report: DoctorReport, repairable: Mapping[str, tuple[int, Finding]]) -> None:
    """Write the one commit that fixes the repairable findings (see the module docstring)."""
    if not repairable:
        return
    wh.refresh()
    active = wh.snapshot.files
    removes: list[RemovedFile] = []
    adds: list[DataFile] = []
    done: list[dict[str, Any]] = []
    fixed: set[str] = set()
    for path, (size, finding) in sorted(repairable.items()):
        if path not in active:
            report.notes.append(f"{path} left the snapshot meanwhile: nothing to repair")
            continue
        f = active[path]
        # Same size as committed: the bytes are the committed ones and the manifest's count is what
        # is wrong. Another size: these are not the committed bytes (another file copied over it, a
        # torn copy), so its rows cannot be trusted.
        again = _rerecord(wh, f, size) if finding.kind == "wrong-rows" else None
        removes.append(RemovedFile(f.table, path))
        if again is not None:
            adds.append(again)
        done.append({"path": path, "problem": finding.kind, "detail": finding.message,
                     "action": "re-recorded" if again is not None else "removed"})
        fixed.add(path)
    if not removes:
        return
    info = {"doctor": {"reason": "data files that do not match the manifest", "files": done}}
    commit = wh.engine.commit(operation="repair", writer=writer_info(f"doctor-{uuid.uuid4().hex[:8]}"), token=None,
                        remove=removes, add=adds, info=info)
    report.repair_version = commit.version
    report.findings = [Finding(**{**asdict(f), "repaired": True}) if f.path in fixed and f.severity == "error" else f
                       for f in report.findings]
    actions = {d["path"]: d["action"] for d in done}
    n_removed = sum(a == "removed" for a in actions.values())
    report.notes.append(f"repair commit {commit.version}: {n_removed} file(s) removed from the snapshot, "
                        f"{len(actions) - n_removed} re-recorded with their real size, rows and stats")


def run(target: "str | HasEngine", *, repair: bool = False, storage_options: Mapping[str, Any] | None = None,
        footers: bool = True, deep: bool = False) -> DoctorReport:
    """Check the warehouse at `target` (a URL or an open Warehouse), and repair it if asked; `deep`
    also reads every page of every data file (see the module docstring).

    Works on a warehouse that cannot be opened (a damaged commit): only `repair` needs it open.
    Raises WarehouseError if there is no warehouse at the URL, StorageError if the store is unusable.
    """
    wh = target.engine if not isinstance(target, str) else None
    store = wh.store if wh is not None else Store.from_url(str(target), storage_options)
    t0 = time.perf_counter()
    report, _, repairable = diagnose(store, footers=footers, deep=deep)
    if repair and any(f.kind in ("stray-commit", "stray-checkpoint") for f in report.problems):
        set_aside_strays(store, report)
        set_aside = [f for f in report.findings if f.kind in ("stray-commit", "stray-checkpoint")]
        notes = report.notes
        report, _, repairable = diagnose(store, footers=footers, deep=deep)  # the log as it is now
        report.findings[:0] = set_aside
        report.notes[:0] = [n for n in notes if n.startswith(("moved ", "_manifest/"))]
    if repair and any(f.kind in ("corrupt-commit", "missing-commit") for f in report.problems):
        report.notes.append("no repair: the log itself is damaged (see the commit findings); restore it first, "
                            "then run doctor --repair again")
    elif repair and repairable:
        if wh is None:
            try:
                wh = open_engine(store.url, storage_options=storage_options)
            except WarehouseError as exc:
                report.notes.append(f"no repair: the warehouse cannot be opened ({str(exc).splitlines()[0]})")
        if wh is not None and wh.read_only:
            report.notes.append("no repair on a time-travel snapshot: open the warehouse without version=/as_of=")
        elif wh is not None:
            write_repair(wh, report, repairable)
    report.seconds = time.perf_counter() - t0
    return report


__all__ = ["run", "diagnose", "write_repair", "DoctorReport", "Finding", "SEVERITIES"]
