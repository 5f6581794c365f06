"""Manifest checkpoints: how fast a warehouse with a long commit log opens and refreshes.

Builds a local warehouse of `--commits` commits adding `--files-per-commit` data files each (10,000 x
10 = 100,000 active files by default), with a checkpoint every 100 commits, then measures:

- open: `warehouse.open(url)` in this process (a fresh Warehouse object each time, page cache
  warm), and in a new process: the wall time of `python -c "import warehouse; warehouse.open(url)"`
  minus that of `python -c "import warehouse"` (interpreter start and imports), plus the open as
  timed inside the child;
- open with 99 commits to replay after the newest checkpoint (the worst case between two checkpoints);
- refresh after one new commit (another writer's, written between the refreshes), and with nothing new;
- open without checkpoints (the way before manifest checkpoints): the same commit files, no checkpoint files;
- time travel: `open(version=5,000)` (a checkpointed version), `open(version=5,050)` (checkpoint
  plus 50 commits) and `open(as_of=<time of commit 5,050>)`;
- what a first query pays on top: building every DataFile of the snapshot (`table_files` of each
  table), which open leaves for later;
- writing one checkpoint of all the files (what the writer whose commit lands on a multiple of
  100 pays once, after its commit) and the checkpoint's size.

What is measured is the manifest alone: the commits are written straight into `_manifest/` through
`Commit.to_bytes()` (not by flushing writers: that would take an hour), shaped like real flushes (one
file per table of a run configuration, with real-looking paths, partitions and min/max stats), and
the checkpoints through `Log.write_checkpoint`, the code writers use. The data files themselves do
not exist; open and refresh never look at them.

    python -m benchmarks.manifest [--commits 10000] [--files-per-commit 10] [--reps 7] [--out FILE] [--workdir DIR]

Prints a table (Markdown) and one JSON document, also written to --out.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import warehouse
from warehouse.manifest import CHECKPOINT_INTERVAL, Commit, DataFile, Log, commit_name, replay, writer_info
from warehouse.manifest.checkpoint import checkpoint_name

from .harness import load_average, ms, publish, repeat

TABLES = ("executions", "messages", "attacks", "events", "snapshots", "executions_live", "sessions", "configs")
GOAL_OPEN_MS, GOAL_REFRESH_MS = 100.0, 5.0


def _median_ms(fn: Callable[[], Any], reps: int) -> tuple[float, list[float], Any]:
    """The median and every one of `reps` timings of `fn` in ms, and its last result."""
    times, out = repeat(fn, reps)
    return ms(statistics.median(times)), [ms(t) for t in times], out


def _files(rng: random.Random, version: int, per_commit: int) -> tuple[DataFile, ...]:
    """One flush of one run configuration: a file per table, paths and stats like the writer's."""
    cfg = rng.randrange(60)
    partition = {
        "dataset": ("agentdojo", "injecagent", "asb")[cfg % 3],
        "agent": f"agent_{cfg % 7}",
        "attack": ("none", "important_instructions", "tool_knowledge", "direct")[cfg % 4],
        "config_hash": f"{cfg * 2654435761 % 2**32:08x}",
    }
    hive = "/".join(f"{k}={v}" for k, v in partition.items())
    t0 = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=version * 30)
    ts = {
        "min": t0.isoformat().replace("+00:00", "Z"),
        "max": (t0 + timedelta(seconds=29)).isoformat().replace("+00:00", "Z"),
        "nulls": 0,
    }
    ids = sorted(uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(2))
    out = []
    for i in range(per_commit):
        table = TABLES[i % len(TABLES)]
        stats: dict[str, Any] = {}
        if table in ("executions", "executions_live"):
            stats = {
                "execution_id": {"min": ids[0], "max": ids[1], "nulls": 0},
                "started_at": ts,
                "finished_at": ts,
                "benign_score": {"min": 0.0, "max": 1.0, "nulls": rng.randrange(3)},
                "attack_score": {"min": 0.0, "max": 1.0, "nulls": rng.randrange(3)},
            }
        elif table in ("messages", "events", "attacks", "snapshots"):
            stats = {"execution_id": {"min": ids[0], "max": ids[1], "nulls": 0}, "timestamp": ts}
        out.append(
            DataFile(
                table,
                f"{table}/{hive}/part-{uuid.UUID(int=rng.getrandbits(128)).hex}.parquet",
                partition,
                rng.randint(1, 2000),
                rng.randint(2_000, 2_000_000),
                stats,
            )
        )
    return tuple(out)


class Builder:
    """Writes commits straight into `_manifest/` and a checkpoint every CHECKPOINT_INTERVAL versions."""

    def __init__(self, root: Path, files_per_commit: int, seed: int = 7) -> None:
        self.root = root
        self.wh = warehouse.open(str(root), create=True, checkpoint_interval=0)
        self.log = Log(self.wh.store, checkpoint_interval=0)
        self.rng = random.Random(seed)
        self.per_commit = files_per_commit
        self.snap = self.wh.snapshot
        self.pending: list[Commit] = []
        self.writer = writer_info("bench-manifest")
        self.checkpoint_seconds: list[float] = []

    def commit(self, checkpoint: bool = True) -> Commit:
        v = self.snap.version + len(self.pending) + 1
        c = Commit(v, datetime.now(UTC), "append", self.writer, f"bench:{v}", _files(self.rng, v, self.per_commit))
        with open(self.root / commit_name(v), "xb") as fh:
            fh.write(c.to_bytes())
        self.pending.append(c)
        if checkpoint and v % CHECKPOINT_INTERVAL == 0:
            self.flush()
            t0 = time.perf_counter()
            self.log.write_checkpoint(self.snap)
            self.checkpoint_seconds.append(time.perf_counter() - t0)
        return c

    def flush(self) -> None:
        self.snap = replay(self.pending, self.snap)
        self.pending = []


def _subprocess_open(url: str, reps: int) -> dict[str, Any]:
    """Wall time of a new process that opens the warehouse, minus one that only imports the package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    probe = (
        "import time; t0 = time.perf_counter(); import warehouse; t1 = time.perf_counter(); "
        "wh = warehouse.open({url!r}) if {do_open} else None; t2 = time.perf_counter(); "
        "print(t1 - t0, t2 - t1, wh.version if wh else -1)"
    )
    walls: dict[bool, list[float]] = {False: [], True: []}
    inside: list[float] = []
    imports: list[float] = []
    for _ in range(reps):
        for do_open in (False, True):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", probe.format(url=url, do_open=do_open)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            walls[do_open].append(time.perf_counter() - t0)
            if do_open:
                inside.append(float(out[1]))
                imports.append(float(out[0]))
    return {
        "process_wall_ms_import_only": ms(statistics.median(walls[False])),
        "process_wall_ms_import_and_open": ms(statistics.median(walls[True])),
        "open_ms_wall_difference": ms(statistics.median(walls[True]) - statistics.median(walls[False])),
        "open_ms_inside_child": ms(statistics.median(inside)),
        "import_ms_inside_child": ms(statistics.median(imports)),
        "open_ms_inside_child_all": [ms(t) for t in inside],
    }


def _materialize(wh: warehouse.Warehouse) -> int:
    return sum(len(wh.snapshot.table_files(t)) for t in TABLES)


def run(commits: int, files_per_commit: int, reps: int, workdir: str | None = None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-manifest-", dir=workdir))
    try:
        return _run(tmp, commits, files_per_commit, reps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(tmp: Path, commits: int, files_per_commit: int, reps: int) -> dict[str, Any]:
    root = tmp / "warehouse"
    url = str(root)
    doc: dict[str, Any] = {
        "commits": commits,
        "files_per_commit": files_per_commit,
        "reps": reps,
        "checkpoint_interval": CHECKPOINT_INTERVAL,
        "load_average_1min_before": load_average(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    t0 = time.perf_counter()
    b = Builder(root, files_per_commit)
    times: dict[int, datetime] = {}
    for _ in range(commits):
        c = b.commit()
        times[c.version] = c.committed_at
    b.flush()
    doc["build_seconds"] = round(time.perf_counter() - t0, 1)
    latest = b.snap.version
    n_files = len(b.snap.files)
    newest_cp = Log(b.wh.store).checkpoint_versions()[-1]
    cp_bytes = (root / checkpoint_name(newest_cp)).stat().st_size
    manifest_bytes = sum(p.stat().st_size for p in (root / "_manifest").iterdir())
    doc.update(
        version=latest,
        active_files=n_files,
        newest_checkpoint=newest_cp,
        checkpoint_bytes=cp_bytes,
        manifest_bytes=manifest_bytes,
        checkpoints=len(Log(b.wh.store).checkpoint_versions()),
        checkpoint_write_ms_median=ms(statistics.median(b.checkpoint_seconds)),
        checkpoint_write_ms_last=ms(b.checkpoint_seconds[-1]),
    )
    checks: dict[str, bool] = {}
    m: dict[str, Any] = {}

    # 1. open at a checkpointed version (nothing to replay), in this process and in a new one
    m["open_ms"], m["open_ms_all"], wh = _median_ms(lambda: warehouse.open(url), reps)
    checks["open sees every commit and file"] = wh.version == latest and len(wh.snapshot.files) == n_files
    m["first_query_materialize_ms"], _, count = _median_ms(lambda: _materialize(warehouse.open(url)), 1)
    m["first_query_materialize_ms"] = round(m["first_query_materialize_ms"] - m["open_ms"], 3)
    checks["every DataFile built"] = count == n_files
    m["subprocess"] = _subprocess_open(url, max(3, reps // 2))

    # 2. refresh after one new commit (written by "another writer" between refreshes), and with nothing new
    wh = warehouse.open(url)
    refresh_s, idle_s = [], []
    for _ in range(reps):
        b.commit(checkpoint=False)
        t0 = time.perf_counter()
        v = wh.refresh()
        refresh_s.append(time.perf_counter() - t0)
        checks.setdefault("refresh sees the new commit", True)
        checks["refresh sees the new commit"] &= v == b.snap.version + len(b.pending)
        t0 = time.perf_counter()
        wh.refresh()
        idle_s.append(time.perf_counter() - t0)
    m["refresh_one_commit_ms"] = ms(statistics.median(refresh_s))
    m["refresh_one_commit_ms_all"] = [ms(t) for t in refresh_s]
    m["refresh_nothing_new_ms"] = ms(statistics.median(idle_s))

    # 3. open with 99 commits after the newest checkpoint (the worst case between two checkpoints)
    while (b.snap.version + len(b.pending)) % CHECKPOINT_INTERVAL != CHECKPOINT_INTERVAL - 1:
        b.commit(checkpoint=False)
    b.flush()
    m["open_99_after_checkpoint_ms"], m["open_99_after_checkpoint_ms_all"], wh = _median_ms(
        lambda: warehouse.open(url), reps
    )
    checks["open replays the commits after the checkpoint"] = wh.snapshot == b.snap
    m["subprocess_99_after_checkpoint"] = _subprocess_open(url, max(3, reps // 2))

    # 4. time travel
    mid = (commits // 2) // CHECKPOINT_INTERVAL * CHECKPOINT_INTERVAL
    m["time_travel_version"] = mid
    m["open_version_checkpointed_ms"], _, old = _median_ms(lambda: warehouse.open(url, version=mid), reps)
    checks[f"open(version={mid}) is version {mid}"] = (
        old.version == mid and len(old.snapshot.files) == mid * files_per_commit
    )
    mid50 = mid + CHECKPOINT_INTERVAL // 2
    m["open_version_plus_50_ms"], _, old = _median_ms(lambda: warehouse.open(url, version=mid50), reps)
    checks[f"open(version={mid50})"] = old.version == mid50 and len(old.snapshot.files) == mid50 * files_per_commit
    m["open_as_of_ms"], _, old = _median_ms(lambda: warehouse.open(url, as_of=times[mid50]), reps)
    checks["open(as_of=time of that commit)"] = old.version == mid50

    # 5. the old way: the same commit files without any checkpoint
    bare = tmp / "no-checkpoints"
    (bare / "_manifest").mkdir(parents=True)
    for p in (root / "_manifest").iterdir():
        if p.name.endswith(".json") and not p.name.startswith(("_", ".")):
            os.link(p, bare / "_manifest" / p.name)
    bare_reps = max(3, reps // 2)
    m["open_no_checkpoints_ms"], m["open_no_checkpoints_ms_all"], wh = _median_ms(
        lambda: warehouse.open(str(bare)), bare_reps
    )
    checks["open without checkpoints gives the same snapshot"] = wh.snapshot == b.snap
    m["open_speedup"] = round(m["open_no_checkpoints_ms"] / m["open_99_after_checkpoint_ms"], 1)

    doc["measures"] = m
    doc["checks"] = checks
    worst_open = max(m["open_ms"], m["open_99_after_checkpoint_ms"])
    doc["goals"] = {
        f"open {commits:,} commits / {n_files:,} files <= {GOAL_OPEN_MS:.0f} ms": {
            "value_ms": worst_open,
            "met": worst_open <= GOAL_OPEN_MS,
        },
        f"refresh after one new commit <= {GOAL_REFRESH_MS:.0f} ms": {
            "value_ms": m["refresh_one_commit_ms"],
            "met": m["refresh_one_commit_ms"] <= GOAL_REFRESH_MS,
        },
    }
    doc["load_average_1min_after"] = load_average()
    return doc


def markdown(doc: dict[str, Any]) -> str:
    m = doc["measures"]
    s, s99 = m["subprocess"], m["subprocess_99_after_checkpoint"]
    rows = [
        ("open, newest checkpoint = latest version (in process, fresh Warehouse)", f"{m['open_ms']:.1f} ms"),
        ("open, 99 commits after the newest checkpoint (in process)", f"{m['open_99_after_checkpoint_ms']:.1f} ms"),
        (
            "open in a new process: wall(import + open) - wall(import)",
            f"{s['open_ms_wall_difference']:.1f} ms (99 after: {s99['open_ms_wall_difference']:.1f} ms)",
        ),
        (
            "open in a new process, timed inside the child",
            f"{s['open_ms_inside_child']:.1f} ms (99 after: {s99['open_ms_inside_child']:.1f} ms)",
        ),
        ("new process: interpreter + `import warehouse` (wall)", f"{s['process_wall_ms_import_only']:.0f} ms"),
        ("refresh after one new commit", f"{m['refresh_one_commit_ms']:.2f} ms"),
        ("refresh, nothing new", f"{m['refresh_nothing_new_ms']:.2f} ms"),
        (
            "open without checkpoints (every commit parsed; before checkpoints)",
            f"{m['open_no_checkpoints_ms']:.0f} ms ({m['open_speedup']}x the 99-after open)",
        ),
        (
            f"open(version={m['time_travel_version']:,}) (a checkpointed version)",
            f"{m['open_version_checkpointed_ms']:.1f} ms",
        ),
        (
            f"open(version={m['time_travel_version'] + 50:,}) (checkpoint + 50 commits)",
            f"{m['open_version_plus_50_ms']:.1f} ms",
        ),
        (f"open(as_of=time of commit {m['time_travel_version'] + 50:,})", f"{m['open_as_of_ms']:.1f} ms"),
        (
            "first query's extra: build every DataFile (open leaves it for later)",
            f"{m['first_query_materialize_ms']:.0f} ms",
        ),
        (
            f"write one checkpoint of {doc['active_files']:,} files (median of {doc['checkpoints']})",
            f"{doc['checkpoint_write_ms_median']:.0f} ms (last: {doc['checkpoint_write_ms_last']:.0f} ms)",
        ),
        (
            "checkpoint size / whole _manifest/",
            f"{doc['checkpoint_bytes'] / 2**20:.1f} MiB / {doc['manifest_bytes'] / 2**20:.0f} MiB",
        ),
    ]
    lines = [
        f"**Manifest: {doc['commits']:,} commits x {doc['files_per_commit']} files = {doc['active_files']:,} active files, "
        f"checkpoint every {doc['checkpoint_interval']}** (median of {doc['reps']}; load average "
        f"{doc['load_average_1min_before']} → {doc['load_average_1min_after']}; build {doc['build_seconds']} s)",
        "",
        "| measure | value |",
        "|---|---:|",
    ]
    lines += [f"| {a} | {b} |" for a, b in rows]
    lines.append("")
    for goal, g in doc["goals"].items():
        lines.append(f"- goal {goal}: {g['value_ms']:.2f} ms, {'met' if g['met'] else 'MISSED'}")
    bad = [k for k, ok in doc["checks"].items() if not ok]
    lines.append(f"- checks: {'all passed' if not bad else 'FAILED: ' + ', '.join(bad)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--files-per-commit", type=int, default=10)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--workdir", default=None, help="where the temporary directory goes (default: the system's)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    if a.commits < 2 * CHECKPOINT_INTERVAL or a.files_per_commit < 1 or a.reps < 1:
        ap.error(f"--commits must be at least {2 * CHECKPOINT_INTERVAL}; --files-per-commit and --reps at least 1")
    doc = run(a.commits, a.files_per_commit, a.reps, workdir=a.workdir)
    bad = [k for k, ok in doc["checks"].items() if not ok]
    publish("benchmarks.manifest", doc, markdown(doc), a.out, bad)
    return doc


if __name__ == "__main__":
    main()
