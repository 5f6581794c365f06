"""Publication as Delta in place: what it writes and costs, next to exporting a copy.

Three parts, one run:

1. **Publish vs export.** A warehouse of `--executions` executions (10 messages each, the analytics
   benchmark's data over its 18 configurations) written by the public writer in exactly `--flushes`
   flushes (one commit each), in WORKERS processes. Then, once each: `wh.publish("delta")` (the
   first publication: one Delta commit per table naming the warehouse's own files) and
   `wh.export("delta", out)` (a copy). Bytes of data written by the publication are measured by
   listing the tree before and after: every file it created must be under a `_delta_log/` folder
   and no file may have changed (derived files would count as data: batch results need none).
2. **Automatic mode.** `--small-flushes` flushes of `--flush-size` executions (the small-flush case's
   medium sizes) into a fresh warehouse, each flush timed alone (p50, p90, p99), without and with
   `publish=["delta"]` (a background thread publishes after each commit), the two alternating for
   `--reps` runs; plus the seconds from the last flush's return until `wh.wait_for_publication()`
   returns (the logs caught up) and the Delta versions the publisher made.
3. **A long Delta log.** `--commits` one-execution flushes, each followed by `wh.publish("delta")`
   (so the `executions` Delta table has one version per warehouse commit; delta-rs writes a
   checkpoint every 100 versions). Then, median of `--reps`, interleaved: opening
   `DeltaTable(uri)` and `polars.scan_delta(uri).select(pl.len()).collect()`. The count is checked.

Delta is read with deltalake's `DeltaTable` (no `to_pyarrow_*`: those may abort the interpreter at
exit) and Polars.

    python -m benchmarks.publication [--executions 100000] [--flushes 1000] [--small-flushes 200]
        [--flush-size 100] [--commits 1000] [--reps 3] [--workdir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import warehouse

from .analytics import configs, executions, plan
from .harness import disk_usage, interleaved, load_average, percentile, publish, source_state, split

WORKERS = 2
TABLES = ("executions", "messages")


# -- building --------------------------------------------------------------------------------------
def _write_flushes(root: str, indices: Sequence[int], counts: Sequence[int], flushes: Sequence[int], seed: int) -> int:
    """Write configurations `indices` (counts[i] executions in flushes[i] flushes each) through the
    public writer (a worker process); returns the flushes made."""
    wh = warehouse.open(root)
    made = 0
    for index, count, nf in zip(indices, counts, flushes):
        d, a, k = configs()[index]
        runs = plan(index, count, seed)
        sizes = split(count, nf)
        with wh.writer(dataset=d, agent=a, attack=k, flush_rows=1 << 30, flush_bytes=1 << 40, flush_interval=None) as w:
            it = executions(index, runs, seed)
            for size in sizes:
                for _ in range(size):
                    w.add_execution(**next(it))
                w.flush()
                made += 1
    return made


def build(root: Path, n: int, flushes: int, seed: int = 0, workers: int = WORKERS) -> int:
    """`n` executions over the 18 configurations in exactly `flushes` flushes (near-equal sizes),
    written by `workers` processes; returns the warehouse version."""
    warehouse.open(str(root), create=True)
    counts = split(n, len(configs()))
    nflush = split(flushes, len(configs()))
    parts = [list(range(w, len(counts), workers)) for w in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        futures = [
            ex.submit(_write_flushes, str(root), p, [counts[i] for i in p], [nflush[i] for i in p], seed)
            for p in parts
            if p
        ]
        for f in futures:
            f.result()
    return warehouse.open(str(root)).version


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root`: relative path -> (size, mtime in ns)."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def written(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """What changed between two listings: files created (log vs data), changed, deleted, and bytes."""
    new = [p for p in after if p not in before]
    log = [p for p in new if "_delta_log" in Path(p).parts]
    data = [p for p in new if "_delta_log" not in Path(p).parts]
    changed = [p for p in after if p in before and after[p] != before[p]]
    return {
        "log_files": len(log),
        "log_bytes": sum(after[p][0] for p in log),
        "checkpoints": sum(p.endswith(".checkpoint.parquet") for p in log),
        "data_files": len(data),
        "data_bytes": sum(after[p][0] for p in data) + sum(after[p][0] for p in changed),
        "changed_files": len(changed),
        "deleted_files": sum(p not in after for p in before),
        "examples_outside_log": sorted(data + changed)[:5],
    }


# -- part 1 ----------------------------------------------------------------------------------------
def publish_vs_export(tmp: Path, n: int, flushes: int, say: Callable[[str], None]) -> dict[str, Any]:
    root = tmp / "wh"
    say(f"part 1: writing {n:,} executions in {flushes:,} flushes")
    t0 = time.perf_counter()
    version = build(root, n, flushes)
    build_s = time.perf_counter() - t0
    wh = warehouse.open(str(root))
    before = listing(root)
    data = disk_usage(root)
    load = load_average()
    t0 = time.perf_counter()
    report = wh.publish("delta")
    publish_s = time.perf_counter() - t0
    w = written(before, listing(root))
    out = tmp / "export"
    t0 = time.perf_counter()
    wh.export("delta", str(out))
    export_s = time.perf_counter() - t0
    exported = disk_usage(out)
    say(f"part 1: publish {publish_s:.2f} s, export {export_s:.2f} s")
    import polars as pl

    counts = {t: pl.scan_delta(str(root / t)).select(pl.len()).collect().item() for t in TABLES}
    exp_counts = {t: pl.scan_delta(str(out / t)).select(pl.len()).collect().item() for t in TABLES}
    want = {t: wh.sql(f"select count(*) from {t}").fetchall()[0][0] for t in TABLES}
    result = {
        "executions": n,
        "messages": want["messages"],
        "flushes": flushes,
        "warehouse_version": version,
        "build_s": round(build_s, 1),
        "warehouse_bytes": data["bytes"],
        "warehouse_files": data["files"],
        "warehouse_manifest_bytes": data["manifest_bytes"],
        "load_before": load,
        "publish": {
            "seconds": round(publish_s, 3),
            "delta_commits": report.commits,
            "derived_bytes": report.derived_bytes,
            **w,
        },
        "export": {"seconds": round(export_s, 3), "bytes": exported["bytes"], "files": exported["files"]},
        "export_over_publish": round(export_s / publish_s, 1),
        "rows": {"warehouse": want, "published delta (polars)": counts, "exported delta (polars)": exp_counts},
    }
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    return result


# -- part 2 ----------------------------------------------------------------------------------------
def _small_batches(flushes: int, size: int, seed: int) -> tuple[tuple[Any, Any, Any], list[list[dict[str, Any]]]]:
    d, a, k = configs()[0]
    runs = plan(0, flushes * size, seed)
    records = list(executions(0, runs, seed))
    return (d, a, k), [records[i * size : (i + 1) * size] for i in range(flushes)]


def _flush_run(
    root: Path, cfg: tuple[Any, Any, Any], batches: list[list[dict[str, Any]]], auto: bool
) -> dict[str, Any]:
    """One run of small flushes into a fresh warehouse at `root`; flush seconds and catch-up."""
    wh = warehouse.open(str(root), create=True, publish=["delta"] if auto else None)
    d, a, k = cfg
    flush: list[float] = []
    with wh.writer(dataset=d, agent=a, attack=k, flush_rows=1 << 30, flush_bytes=1 << 40, flush_interval=None) as w:
        for batch in batches:
            for e in batch:
                w.add_execution(**e)
            t0 = time.perf_counter()
            w.flush()
            flush.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    caught_up = wh.wait_for_publication(600)
    catch_up = time.perf_counter() - t0
    out: dict[str, Any] = {"flush": flush, "version": wh.version}
    if auto:
        from deltalake import DeltaTable

        dt = DeltaTable(str(root / "executions"))
        out |= {
            "caught_up": caught_up,
            "catch_up_s": catch_up,
            "delta_versions": dt.version() + 1,
            "published_version": int(dt.transaction_version("warehouse") or -1),
        }
    return out


def automatic(tmp: Path, flushes: int, size: int, reps: int, say: Callable[[str], None]) -> dict[str, Any]:
    cfg, batches = _small_batches(flushes, size, 1)
    runs: dict[str, list[dict[str, Any]]] = {"without publication": [], 'publish=["delta"]': []}
    loads = []
    for rep in range(reps):
        loads.append(load_average())
        for name in runs:
            root = tmp / f"auto-{rep}-{'on' if 'delta' in name else 'off'}"
            r = _flush_run(root, cfg, batches, "delta" in name)
            runs[name].append(r)
            say(f"part 2 rep {rep + 1}: {name} flush p50 {percentile(r['flush'], 50) * 1000:.1f} ms")
            shutil.rmtree(root, ignore_errors=True)
    stats: dict[str, Any] = {}
    for name, rs in runs.items():
        stats[name] = {
            f"flush_p{q}_ms": round(statistics.median(percentile(r["flush"], q) * 1000 for r in rs), 1)
            for q in (50, 90, 99)
        }
        stats[name] |= {
            "p50_per_rep_ms": [round(percentile(r["flush"], 50) * 1000, 1) for r in rs],
        }
        if "delta" in name:
            stats[name] |= {
                "catch_up_s": [round(r["catch_up_s"], 3) for r in rs],
                "caught_up": all(r["caught_up"] for r in rs),
                "delta_versions_of_executions": [r["delta_versions"] for r in rs],
                "published_version": [r["published_version"] for r in rs],
                "warehouse_version": [r["version"] for r in rs],
            }
    off, on = stats["without publication"], stats['publish=["delta"]']
    return {
        "flushes": flushes,
        "executions_per_flush": size,
        "reps": reps,
        "load_before_reps": loads,
        "runs": stats,
        "ratio_p50": round(on["flush_p50_ms"] / off["flush_p50_ms"], 2),
        "ratio_p90": round(on["flush_p90_ms"] / off["flush_p90_ms"], 2),
    }


# -- part 3 ----------------------------------------------------------------------------------------
def long_log(tmp: Path, commits: int, reps: int, say: Callable[[str], None]) -> dict[str, Any]:
    root = tmp / "long"
    wh = warehouse.open(str(root), create=True)
    cfg, batches = _small_batches(commits, 1, 2)
    d, a, k = cfg
    say(f"part 3: {commits:,} commits, each published")
    t0 = time.perf_counter()
    with wh.writer(dataset=d, agent=a, attack=k, flush_rows=1 << 30, flush_bytes=1 << 40, flush_interval=None) as w:
        for i, batch in enumerate(batches):
            w.add_execution(**batch[0])
            w.flush()
            wh.publish("delta", tables=["executions"])
            if (i + 1) % 1000 == 0:
                say(f"part 3: {i + 1:,} commits, {time.perf_counter() - t0:.0f} s")
    build_s = time.perf_counter() - t0
    import polars as pl
    from deltalake import DeltaTable

    uri = str(root / "executions")
    log = Path(uri) / "_delta_log"
    checkpoints = sorted(p.name for p in log.glob("*.checkpoint.parquet"))
    versions = len(list(log.glob("*.json")))
    runs = [
        ("DeltaTable(uri)", lambda: DeltaTable(uri).version(), reps),
        ("polars scan_delta count", lambda: pl.scan_delta(uri).select(pl.len()).collect().item(), reps),
    ]
    load = load_average()
    times, answers = interleaved(runs, reps, say)
    return {
        "commits": commits,
        "build_s": round(build_s, 1),
        "build_per_commit_ms": round(build_s / commits * 1000, 1),
        "delta_version": answers["DeltaTable(uri)"],
        "log_json_files": versions,
        "checkpoints": len(checkpoints),
        "last_checkpoint": checkpoints[-1] if checkpoints else None,
        "rows": answers["polars scan_delta count"],
        "load_before": load,
        "times": {name: {"median_ms": round(statistics.median(v) * 1000, 1)} for name, v in times.items()},
    }


# -- the run ---------------------------------------------------------------------------------------
def run(
    n: int,
    flushes: int,
    small_flushes: int,
    flush_size: int,
    commits: int,
    reps: int,
    workdir: str | None = None,
    parts: Sequence[int] = (1, 2, 3),
    say: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-publication-", dir=workdir))
    t0 = time.perf_counter()
    try:
        p1 = publish_vs_export(tmp, n, flushes, say) if 1 in parts else None
        p2 = automatic(tmp, small_flushes, flush_size, reps, say) if 2 in parts else None
        p3 = long_log(tmp, commits, reps, say) if 3 in parts else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    checks: dict[str, dict[str, Any]] = {}
    if p1 is not None:
        checks |= _checks_1(p1)
    if p2 is not None:
        checks |= _checks_2(p2)
    if p3 is not None:
        checks |= _checks_3(p3, commits)
    return {
        "params": {
            "executions": n,
            "flushes": flushes,
            "small_flushes": small_flushes,
            "flush_size": flush_size,
            "commits": commits,
            "reps": reps,
            "parts": list(parts),
        },
        "source": source_state(),
        "publish_vs_export": p1,
        "automatic": p2,
        "long_log": p3,
        "checks": checks,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _checks_1(p1: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "publication wrote no data (every new file under _delta_log, none changed)": {
            "ok": p1["publish"]["data_bytes"] == 0
            and p1["publish"]["data_files"] == 0
            and p1["publish"]["changed_files"] == 0,
            "detail": f"{p1['publish']['data_files']} data files, {p1['publish']['changed_files']} changed: "
            f"{p1['publish']['examples_outside_log']}",
        },
        "published and exported Delta tables hold the warehouse's rows": {
            "ok": p1["rows"]["warehouse"]
            == p1["rows"]["published delta (polars)"]
            == p1["rows"]["exported delta (polars)"],
            "detail": str(p1["rows"]),
        },
    }


def _checks_2(p2: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "automatic publication caught up with the last commit": {
            "ok": p2["runs"]['publish=["delta"]']["caught_up"]
            and p2["runs"]['publish=["delta"]']["published_version"]
            == p2["runs"]['publish=["delta"]']["warehouse_version"],
            "detail": str(p2["runs"]['publish=["delta"]']),
        },
    }


def _checks_3(p3: dict[str, Any], commits: int) -> dict[str, dict[str, Any]]:
    return {
        "long log: one Delta version per commit, checkpoints present, every row": {
            "ok": p3["delta_version"] == commits - 1
            and p3["checkpoints"] == commits // 100  # delta-rs: after versions 99, 199, ...
            and p3["rows"] == commits,
            "detail": f"version {p3['delta_version']}, {p3['checkpoints']} checkpoints, {p3['rows']} rows",
        },
    }


def markdown(doc: dict[str, Any]) -> str:
    p1, p2, p3 = doc["publish_vs_export"], doc["automatic"], doc["long_log"]
    lines: list[str] = []
    if p1:
        lines += [
            f"Publication at {p1['executions']:,} executions / {p1['messages']:,} messages in {p1['flushes']:,} "
            f"flushes (warehouse {p1['warehouse_bytes'] / 2**20:.1f} MiB in {p1['warehouse_files']:,} files)",
            "",
            "| | seconds | data bytes written | log bytes | files created |",
            "|---|---|---|---|---|",
            f'| wh.publish("delta") | {p1["publish"]["seconds"]} | {p1["publish"]["data_bytes"]} | '
            f"{p1['publish']['log_bytes']:,} | {p1['publish']['log_files']} (all under _delta_log) |",
            f'| wh.export("delta", out) | {p1["export"]["seconds"]} | {p1["export"]["bytes"]:,} | | '
            f"{p1['export']['files']:,} |",
            "",
        ]
    if p2:
        off, on = p2["runs"]["without publication"], p2["runs"]['publish=["delta"]']
        lines += [
            f"Automatic mode: {p2['flushes']} flushes of {p2['executions_per_flush']} executions, "
            f"median of {p2['reps']} runs",
            "",
            "| | flush p50 | flush p90 | flush p99 | catch-up after last flush |",
            "|---|---|---|---|---|",
            f"| without publication | {off['flush_p50_ms']} ms | {off['flush_p90_ms']} ms | {off['flush_p99_ms']} ms | |",
            f'| publish=["delta"] | {on["flush_p50_ms"]} ms ({p2["ratio_p50"]}x) | {on["flush_p90_ms"]} ms '
            f"({p2['ratio_p90']}x) | {on['flush_p99_ms']} ms | {on['catch_up_s']} s |",
            "",
        ]
    if p3:
        lines += [
            f"Delta log of {p3['commits']:,} versions ({p3['checkpoints']} checkpoints; built in {p3['build_s']} s, "
            f"{p3['build_per_commit_ms']} ms per commit + publish)",
            "",
            "| open | median |",
            "|---|---|",
            *(f"| {k} | {v['median_ms']} ms |" for k, v in p3["times"].items()),
            "",
        ]
    lines.append(
        "Checks: " + ", ".join(f"{k}: {'ok' if v['ok'] else 'FAILED ' + v['detail']}" for k, v in doc["checks"].items())
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executions", type=int, default=100_000)
    ap.add_argument("--flushes", type=int, default=1000)
    ap.add_argument("--small-flushes", type=int, default=200)
    ap.add_argument("--flush-size", type=int, default=100)
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 3 or 1,2")
    ap.add_argument("--workdir")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    doc = run(
        args.executions,
        args.flushes,
        args.small_flushes,
        args.flush_size,
        args.commits,
        args.reps,
        args.workdir,
        [int(p) for p in args.parts.split(",")],
    )
    failed = [k for k, v in doc["checks"].items() if not v["ok"]]
    publish("benchmarks.publication", doc, markdown(doc), args.out, failed)
    return doc


if __name__ == "__main__":
    main()
