"""A Delta log at many warehouse commits, kept current by automatic publication: how fast it opens.

One process makes N one-execution flushes to a warehouse opened with `publish=["delta"]` (so the
background publisher coalesces commits into fewer Delta versions, as in production), waits for the
logs to catch up, then times `DeltaTable(uri)` and a Polars count over the `executions` log; then
compacts (published as one `dataChange=false` Delta commit) and times both again.

    python -m benchmarks.publication_long_log --commits 10000 --out bench-long-log.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

import warehouse


def _open_times(uri: str, reps: int) -> dict[str, Any]:
    import polars as pl
    from deltalake import DeltaTable

    opens, counts = [], []
    rows = 0
    for _ in range(reps):
        t = time.perf_counter()
        dt = DeltaTable(uri)
        opens.append(time.perf_counter() - t)
        t = time.perf_counter()
        rows = pl.scan_delta(uri).select(pl.len()).collect().item()
        counts.append(time.perf_counter() - t)
    logs = os.listdir(os.path.join(uri, "_delta_log"))
    return {
        "delta_versions": dt.version() + 1,
        "txn": dt.transaction_version("warehouse"),
        "checkpoints": sum(1 for f in logs if ".checkpoint." in f),
        "files": len(dt.file_uris()),
        "rows": rows,
        "deltatable_open_ms_median": round(statistics.median(opens) * 1000, 1),
        "deltatable_open_ms_min": round(min(opens) * 1000, 1),
        "polars_count_ms_median": round(statistics.median(counts) * 1000, 1),
        "polars_count_ms_min": round(min(counts) * 1000, 1),
    }


def run(root: str, commits: int, reps: int = 7) -> dict[str, Any]:
    """Build the warehouse at `root` with `commits` flushes and measure; returns the figures."""
    wh = warehouse.open(root, create=True, publish=["delta"])
    t0 = time.perf_counter()
    with wh.writer(dataset="d", agent="a", attack="k") as w:
        for i in range(commits):
            w.add_execution(task_id=f"t{i}", benign_score=1.0, attack_score=0.0)
            w.flush()
    build = time.perf_counter() - t0
    t = time.perf_counter()
    wh.wait_for_publication(600)
    catch_up = time.perf_counter() - t
    uri = os.path.join(root, "executions")
    before = _open_times(uri, reps)
    t = time.perf_counter()
    wh.maintenance.compact()
    wh.wait_for_publication(600)
    compacted = time.perf_counter() - t
    after = _open_times(uri, reps)
    [(n,)] = wh.sql("select count(*) from executions").fetchall()
    return {
        "warehouse_commits": commits,
        "build_s": round(build, 2),
        "ms_per_flush": round(build / max(commits, 1) * 1000, 2),
        "catch_up_s": round(catch_up, 3),
        "log": before,
        "compact_and_publish_s": round(compacted, 2),
        "log_after_compaction": after,
        "rows_in_view": int(n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-long-log-") as tmp:
        out = run(os.path.join(tmp, "wh"), args.commits, args.reps)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
