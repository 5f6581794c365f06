"""Case 7: memory. The peak RSS of a writer ingesting many messages with flush_bytes=64 MiB,
measured in a fresh subprocess."""

from __future__ import annotations

import json
import shutil

import warehouse

from ..harness import CaseResult, MiB
from ..workers import spawn, tail
from .workload import Context, wh_counts


def fmt_bytes(n: float) -> str:
    return f"{n / MiB:,.1f} MiB" if n >= MiB else f"{n / 1024:,.1f} KiB"


def memory(ctx: Context) -> CaseResult:
    """Case 7: the peak RSS of a writer process (benchmarks.workers memory), once per repetition."""
    sc = ctx.scale
    flush_bytes = 64 * MiB
    res = CaseResult(
        7, "memory", f"Memory: peak RSS of a writer ingesting {sc.memory_messages:,} messages, flush_bytes=64 MiB"
    )
    reports = []
    for rep in range(ctx.reps):
        root = ctx.dir("memory", "warehouse")
        log = root.parent / "memory.stderr"
        proc = spawn(["memory", str(root), str(sc.memory_messages), str(flush_bytes), str(ctx.seed + rep)], log)
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"memory worker failed (exit {proc.returncode}): {tail(log)}")
        rep_out = json.loads(out.strip().splitlines()[-1])
        reports.append(rep_out)
        n, ids, m = wh_counts(warehouse.open(str(root)))
        if rep == 0 or m != rep_out["messages"]:
            res.check(
                f"every message committed (rep {rep + 1})",
                m == rep_out["messages"] and n == ids == rep_out["executions"],
                f"messages {m} of {rep_out['messages']}, executions {n} (distinct {ids}) of {rep_out['executions']}",
            )
        ctx.say(f"case 7 rep {rep + 1}: peak RSS {fmt_bytes(rep_out['peak_rss'])}, {rep_out['commits']} commits")
        shutil.rmtree(root)
    res.params = {
        "messages": reports[0]["messages"],
        "executions": reports[0]["executions"],
        "flush_bytes": flush_bytes,
        "flush_rows": "1e9 (so that flush_bytes decides)",
        "commits": reports[0]["commits"],
    }
    res.add("warehouse", "peak RSS", "bytes", [r["peak_rss"] for r in reports], note="getrusage ru_maxrss")
    res.add("warehouse", "peak RSS (VmHWM)", "bytes", [r["vm_hwm"] for r in reports], note="/proc/self/status")
    res.add("warehouse", "RSS before writing (imports, open)", "bytes", [r["baseline_rss"] for r in reports])
    res.add("warehouse", "peak RSS - RSS before writing", "bytes", [r["peak_rss"] - r["baseline_rss"] for r in reports])
    res.add("warehouse", "ingest time", "s", [r["seconds"] for r in reports])
    peak = res.get("warehouse", "peak RSS")
    res.goal("peak RSS <= 64 MiB + 150 MiB", fmt_bytes(peak), peak <= 214 * MiB)
    res.notes.append(
        "Measured in a fresh subprocess with resource.getrusage (ru_maxrss), forked from a small "
        "launcher process because Linux carries the largest RSS across exec() (a child exec'd "
        "straight from the runner would report the runner's own peak); executions are generated "
        "one at a time by the demo generator while writing (10 messages each), so the writer's buffer "
        "is what grows."
        + ("" if sc.memory_messages >= 1_000_000 else f" Scaled down to {sc.memory_messages:,} messages at this scale.")
    )
    return res
