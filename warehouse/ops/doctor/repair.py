"""Doctor's repairs: stray manifest files moved aside, and the one commit that takes damaged data
files out of the snapshot (or re-records them as they are). History is never rewritten."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from warehouse.core.schemas import catalog
from warehouse.core.storage import Store
from warehouse.engine.engine import Engine
from warehouse.manifest import MANIFEST_DIR, DataFile, RemovedFile, writer_info
from warehouse.ops.doctor.log import manifest_versions, stray_commits
from warehouse.ops.doctor.report import SET_ASIDE, DoctorReport, Finding


def set_aside_strays(store: Store, report: DoctorReport) -> None:
    """Move the stray commit and checkpoint files the report found to SET_ASIDE (unchanged; never
    deleted), each only if a fresh listing still shows it stray (a writer may have filled a gap)."""
    strays = [f for f in report.findings if f.kind in ("stray-commit", "stray-checkpoint") and not f.repaired]
    if not strays:
        return
    with store.errors():
        commits, checkpoints = manifest_versions(store.list_names(MANIFEST_DIR))
    still = set(stray_commits(commits, checkpoints))
    real = [v for v in commits if v not in still]
    still |= {c for c in checkpoints if real and c > real[-1]}
    moved: list[Finding] = []
    for f in strays:
        if f.path is None:  # a stray's finding always names its file
            continue
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


def _rerecord(wh: Engine, f: DataFile, size: int) -> DataFile | None:
    """`f` as it really is (size, rows, stats) if it is a readable file of its table and partition."""
    from warehouse.engine.datafiles import file_stats, read_data_file

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


def write_repair(wh: Engine, report: DoctorReport, repairable: Mapping[str, tuple[int, Finding]]) -> None:
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
        done.append(
            {
                "path": path,
                "problem": finding.kind,
                "detail": finding.message,
                "action": "re-recorded" if again is not None else "removed",
            }
        )
        fixed.add(path)
    if not removes:
        return
    info = {"doctor": {"reason": "data files that do not match the manifest", "files": done}}
    commit = wh.engine.commit(
        operation="repair",
        writer=writer_info(f"doctor-{uuid.uuid4().hex[:8]}"),
        token=None,
        remove=removes,
        add=adds,
        info=info,
    )
    report.repair_version = commit.version
    report.findings = [
        Finding(**{**asdict(f), "repaired": True}) if f.path in fixed and f.severity == "error" else f
        for f in report.findings
    ]
    actions = {d["path"]: d["action"] for d in done}
    n_removed = sum(a == "removed" for a in actions.values())
    report.notes.append(
        f"repair commit {commit.version}: {n_removed} file(s) removed from the snapshot, "
        f"{len(actions) - n_removed} re-recorded with their real size, rows and stats"
    )
