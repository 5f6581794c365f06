"""Doctor's checks of the log: commit files read leniently (one bad file hides no other), stray
commits beyond a gap told from lost ones, and checkpoints compared with a replay of the commits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from warehouse.core.errors import CorruptCommit, UnsupportedFormatVersion
from warehouse.core.storage import Store
from warehouse.manifest import Commit, DataFile, commit_name
from warehouse.ops.doctor.report import (
    READ_CHUNK,
    RESTORE,
    SET_ASIDE,
    DoctorReport,
    Finding,
)


# -- reading, leniently --------------------------------------------------------------------------
def read_commits(store: Store, versions: list[int], report: DoctorReport) -> dict[int, Commit]:
    """Every commit that parses; a Finding for each that does not."""
    out: dict[int, Commit] = {}
    for i in range(0, len(versions), READ_CHUNK):
        chunk = versions[i : i + READ_CHUNK]
        blobs = store.read_many([commit_name(v) for v in chunk])
        for v in chunk:
            name = commit_name(v)
            data = blobs.get(name)
            if data is None:
                report.findings.append(
                    Finding("error", "missing-commit", "vanished while being read", RESTORE, path=name, version=v)
                )
                continue
            try:
                c = Commit.from_bytes(data, name=name)
                if c.version != v:
                    raise CorruptCommit(f"manifest file {name} claims version {c.version}")
            except CorruptCommit as exc:
                msg = str(exc).split("; run `warehouse doctor`")[0].replace(f"manifest file {name} ", "")
                report.findings.append(
                    Finding(
                        "error",
                        "corrupt-commit",
                        f"{msg}; the file has {len(data)} bytes",
                        RESTORE,
                        path=name,
                        version=v,
                    )
                )
                continue
            except UnsupportedFormatVersion as exc:
                report.findings.append(
                    Finding(
                        "error",
                        "corrupt-commit",
                        str(exc),
                        "upgrade the warehouse package, then run doctor again",
                        path=name,
                        version=v,
                    )
                )
                continue
            out[v] = c
    report.commits_checked += len(out)
    return out


def checkpoint_module() -> Any:
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


def encoded_row(f: DataFile) -> tuple:
    """A file as a checkpoint's row holds it: (table, partition JSON, rows, bytes, stats JSON)."""
    return f.table, _text(dict(f.partition)), f.rows, f.bytes, _text(dict(f.stats)) if f.stats else "{}"


def _same(a: tuple, b: tuple) -> bool:
    """Two encoded rows hold the same file, whatever the JSON spelling of partition and stats."""
    return a == b or (a[0], _parsed(a[1]), a[2], a[3], _parsed(a[4])) == (
        b[0],
        _parsed(b[1]),
        b[2],
        b[3],
        _parsed(b[4]),
    )


_COLUMNS = ("table", "partition", "rows", "bytes", "stats")


def compare_checkpoint(
    mc: Any, store: Store, cp: int, mine: Mapping[str, tuple], commits: dict[int, Commit], report: DoctorReport
) -> None:
    """The checkpoint at `cp` against `mine`, the replay of the log up to it (path -> encoded row:
    a checkpoint of 100,000 files is compared without a Python object per file)."""
    name = mc.checkpoint_name(cp)
    fix = (
        f"move {name} aside (the log up to it is complete, so readers then replay the commits instead), "
        "or restore it from a backup"
    )
    try:
        ck = mc.load(store, cp)
        t = ck.files().to_arrow()
        rows = ck.commits()
    except FileNotFoundError:
        return  # folded away by a vacuum meanwhile
    except (mc.CorruptCheckpoint, UnsupportedFormatVersion) as exc:
        report.findings.append(
            Finding(
                "error",
                "unreadable-checkpoint",
                str(exc).replace(f"checkpoint {name} ", "") + "; readers skip it",
                fix,
                path=name,
                version=cp,
            )
        )
        return
    report.checkpoints_checked += 1
    why: list[str] = []
    theirs = dict(zip(t.column("path").to_pylist(), zip(*(t.column(c).to_pylist() for c in _COLUMNS))))
    if theirs != mine:
        only_ck = sorted(theirs.keys() - mine.keys())
        only_log = sorted(mine.keys() - theirs.keys())
        differ = sorted(p for p in theirs.keys() & mine.keys() if not _same(theirs[p], mine[p]))
        for what, paths in (
            ("only in the checkpoint", only_ck),
            ("missing from the checkpoint", only_log),
            ("recorded differently", differ),
        ):
            if paths:
                why.append(f"{len(paths)} file(s) {what} (e.g. {paths[0]})")
    c = commits.get(cp)
    if c is not None and ck.committed_at != c.committed_at:
        why.append(f"its time {ck.committed_at.isoformat()} is not commit {cp}'s {c.committed_at.isoformat()}")
    for v, token, op, at in zip(
        *(rows.column(k).to_pylist() for k in ("version", "token", "operation", "committed_at"))
    ):
        c = commits.get(v)
        if c is not None and (token, op, at) != (c.token, c.operation, c.committed_at):
            why.append(f"its commits section disagrees with commit {v} (token, operation or time)")
            break
    if why:
        report.findings.append(
            Finding(
                "error",
                "checkpoint-mismatch",
                "disagrees with the log: " + "; ".join(why) + "; readers that load it see a wrong snapshot",
                fix,
                path=name,
                version=cp,
            )
        )


def stray_commits(versions: list[int], checkpoints: list[int]) -> dict[int, tuple[int, int]]:
    """Candidate strays: commit versions beyond a gap in the log, in runs that no checkpoint
    anchors (a run of the log starts at 0 or at a checkpoint that vacuum folded the older commits
    into): version -> the gap (first, last missing version) below its run. The newest anchored
    run is the log's; none is a candidate if no run is anchored. `foreign_runs` decides."""
    runs = version_runs(versions)
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


def foreign_runs(
    store: Store, candidates: dict[int, tuple[int, int]], log: Mapping[int, Commit], listed: Mapping[str, int]
) -> dict[int, tuple[int, int]]:
    """Those of `candidates` (`stray_commits`) whose whole run is foreign to this warehouse, every
    commit of it either unreadable or claiming another version, or a copy of a commit of the log
    (its token), or adding only files that are not in storage: commits of another warehouse, or
    copies. A run with a commit of its own here (files in storage) is the log's, with commits lost
    below it: reported as missing commits, never set aside."""
    out: dict[int, tuple[int, int]] = {}
    tokens = {c.token for c in log.values() if c.token is not None}
    for lo, hi in version_runs(sorted(candidates)):
        names = [commit_name(v) for v in range(lo, hi + 1)]
        blobs = store.read_many(names)

        def foreign(v: int, name: str) -> bool:
            data = blobs.get(name)  # noqa: B023 - foreign is called within this iteration
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


def stray_finding(version: int, gap: tuple[int, int]) -> Finding:
    lo, hi = gap
    return Finding(
        "error",
        "stray-commit",
        f"a commit file beyond a gap in the log (commits {lo}..{hi} are missing, and no checkpoint anchors it): "
        f"the log runs up to {lo - 1}, and readers refuse to open it while this file is there",
        f"if it does not belong to this warehouse (copied in by mistake), `warehouse doctor --repair` moves it "
        f"to {SET_ASIDE}/; if commits {lo}..{hi} were lost, restore them from a backup instead",
        path=commit_name(version),
        version=version,
    )


def manifest_versions(names: list[str]) -> tuple[list[int], list[int]]:
    """(commit versions, checkpoint versions), ascending, of a listing of `_manifest/`."""
    mc = checkpoint_module()
    suffix = mc.SUFFIX if mc else None
    commits = sorted(int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit())
    checkpoints = sorted(
        int(n[:20]) for n in names if suffix and n.endswith(suffix) and n[:20].isdigit() and len(n) == 20 + len(suffix)
    )
    return commits, checkpoints


def version_runs(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values:
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out
