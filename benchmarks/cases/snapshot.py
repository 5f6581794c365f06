"""Case 6: snapshot load. Opening a warehouse with many commits (every one replayed) and
refreshing a handle after one new commit."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import warehouse
from warehouse.cli import demo
from warehouse.manifest import commit_name

from ..harness import CaseResult, disk_usage, timed
from .workload import Context


def _clone_commits(root: Path, upto: int) -> Callable[[int], None]:
    """Commits 3..`upto` as clones of the real commit 2 (same shape, fresh file paths and token)."""
    wh = warehouse.open(str(root))
    template = wh.log.read(2)

    def write(version: int) -> None:
        add = tuple(
            replace(f, path=f"{f.path.rsplit('/', 1)[0]}/part-{uuid.uuid4().hex}.parquet") for f in template.add
        )
        c = replace(
            template,
            version=version,
            committed_at=datetime.now(UTC),
            add=add,
            token=f"{template.writer.get('writer_id', 'x')}:{version}",
        )
        with open(root / commit_name(version), "xb") as fh:
            fh.write(c.to_bytes())

    for v in range(3, upto + 1):
        write(v)
    return write


def snapshot_load(ctx: Context) -> CaseResult:
    """Case 6: `warehouse.open` over `commits` commits, and `refresh` after one more."""
    sc = ctx.scale
    res = CaseResult(6, "snapshot_load", f"Snapshot load: open a warehouse with {sc.commits:,} commits")
    root = ctx.dir("snapshot", "warehouse")
    wh = warehouse.open(str(root), create=True)
    d, a, k = list(demo.configs())[1]
    rng = random.Random(ctx.seed)
    with wh.writer(dataset=d, agent=a, attack=k, flush_interval=None) as w:
        for _ in range(2):
            w.add_execution(**demo.execution(rng, d["type"], a["type"], k["type"] if k else None, 0))
            w.flush()
    write = _clone_commits(root, sc.commits)
    res.params = {
        "commits": sc.commits,
        "files_per_commit": len(wh.log.read(2).add),
        "manifest_bytes": disk_usage(root / "_manifest")["bytes"],
    }
    opens, refreshes = [], []
    next_version = sc.commits + 1
    for rep in range(ctx.reps):
        seconds, opened = timed(lambda: warehouse.open(str(root)))
        opens.append(seconds)
        if opened.version != next_version - 1:
            res.check("open sees every commit", False, f"version {opened.version}, expected {next_version - 1}")
        write(next_version)
        seconds, v = timed(opened.refresh)
        refreshes.append(seconds)
        res.check(
            f"refresh reads the new commit (rep {rep + 1})", v == next_version, f"version {v}, expected {next_version}"
        )
        next_version += 1
        ctx.say(f"case 6 rep {rep + 1}: open {opens[-1] * 1000:.0f} ms, refresh {refreshes[-1] * 1000:.2f} ms")
    log = wh.log
    first, per_commit = len(log.read(1).add), len(log.read(2).add)
    expected_files = first + per_commit * (opened.version - 1)
    res.check(
        "open sees every commit and file",
        opened.version == next_version - 1 and len(opened.snapshot.files) == expected_files,
        f"version {opened.version} (expected {next_version - 1}), {len(opened.snapshot.files)} active files "
        f"(expected {expected_files})",
    )
    res.add("warehouse", "open (replay every commit)", "s", opens)
    res.add("warehouse", "refresh (1 new commit)", "s", refreshes)
    res.add("warehouse", "open per 1,000 commits", "s", [o * 1000 / sc.commits for o in opens])
    ms = res.get("warehouse", "open (replay every commit)") * 1000
    res.goal(
        f"open with {sc.commits:,} commits <= 100 ms (needs checkpoints, a later issue)", f"{ms:.0f} ms", ms <= 100
    )
    res.notes.append(
        "Commits 1-2 are real flushes; commits 3..N are clones of commit 2 (same JSON shape: 3 data "
        "files with stats, fresh paths and tokens) written directly to _manifest/ to keep setup fast; "
        "their data files do not exist, which open() never looks at. No checkpoints exist yet, so "
        "open() lists _manifest/ and parses every commit."
    )
    return res
