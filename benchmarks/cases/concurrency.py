"""Case 3: concurrency. Several writer processes released at once on one store: commits and
executions per second, and nothing lost or duplicated (the warehouse, legacy, Delta)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import warehouse
from warehouse.cli import demo

from .. import delta, legacy, raw_pyarrow
from ..harness import CaseResult
from ..workers import spawn, tail
from .workload import Context, wh_counts


def run_concurrent(
    competitor: str, root: Path, procs: int, flushes: int, per_flush: int, seed: int
) -> tuple[float, list[dict]]:
    """Start `procs` writer processes, release them at once, wait for all; (wall seconds, their reports)."""
    children: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for i in range(procs):
            log = root.parent / f"{competitor}-{i}.stderr"
            children.append(
                (
                    spawn(["concurrent", competitor, str(root), str(i), str(flushes), str(per_flush), str(seed)], log),
                    log,
                )
            )
        for c, log in children:
            line = c.stdout.readline()
            if line.strip() != "ready":
                c.wait(timeout=60)
                raise RuntimeError(f"{competitor} writer did not start: {line!r} {tail(log)}")
        t0 = time.perf_counter()
        for c, _ in children:
            c.stdin.write("go\n")
            c.stdin.flush()
        lines = [c.stdout.readline() for c, _ in children]  # each writer prints its report when done
        wall = time.perf_counter() - t0  # the last report's arrival (interpreter teardown not included)
        reports = []
        for (c, log), line in zip(children, lines):
            c.communicate(timeout=600)
            if c.returncode != 0 or not line.strip():
                raise RuntimeError(f"{competitor} writer failed (exit {c.returncode}): {tail(log)}")
            reports.append(json.loads(line))
        return wall, reports
    finally:
        for c, _ in children:
            if c.poll() is None:
                c.kill()
                c.wait()


def _delta_create(root: Path) -> None:
    """Create the three Delta tables (empty, with their schemas) before the writers race."""
    from deltalake import write_deltalake

    d, a, k = next(iter(demo.configs()))
    e = demo.execution(random.Random(0), d["type"], a["type"], k["type"] if k else None, 0)
    for name, t in raw_pyarrow.to_arrow([e], warehouse.RunConfig.of(d, a, k).partition).items():
        write_deltalake(f"{root}/{name}", t.slice(0, 0), mode="append", partition_by=raw_pyarrow.PARTITION_COLUMNS)


def concurrency(ctx: Context) -> CaseResult:
    """Case 3: `processes` writers of each competitor on one store, released at once."""
    sc = ctx.scale
    p, f, s = sc.processes, sc.process_flushes, sc.process_flush_size
    res = CaseResult(3, "concurrency", f"Concurrency: {p} processes x {f} flushes of {s} executions, one store")
    total, flushes = p * f * s, p * f
    res.params = {
        "processes": p,
        "flushes_per_process": f,
        "executions_per_flush": s,
        "messages_per_execution": 10,
        "competitors": list(sc.concurrency_competitors),
    }
    comps = sc.concurrency_competitors
    walls: dict[str, list[float]] = {c: [] for c in comps}
    commits: dict[str, list[int]] = {c: [] for c in comps}
    for rep in range(ctx.reps):
        for comp in comps:
            root = ctx.dir("concurrency", comp)
            if comp == "warehouse":
                warehouse.open(str(root), create=True)
            elif comp == "legacy":
                root.mkdir(parents=True)
            else:
                _delta_create(root)
            wall, reports = run_concurrent(comp, root, p, f, s, ctx.seed + rep)
            walls[comp].append(wall)
            commits[comp].append(sum(r["commits"] for r in reports))
            errors = sum(r["errors"] for r in reports)
            ctx.say(f"case 3 rep {rep + 1}: {comp} {wall:.2f} s, {commits[comp][-1]} commits, {errors} failed flushes")
            _concurrency_check(res, comp, root, reports, total, flushes, rep)
            shutil.rmtree(root)
    for comp in comps:
        res.add(comp, "commits/s", "/s", [c / w for c, w in zip(commits[comp], walls[comp])], lower_is_better=False)
    for comp in comps:
        res.add(comp, "executions/s", "/s", [total / w for w in walls[comp]], lower_is_better=False)
    for comp in comps:
        res.add(comp, "wall time", "s", walls[comp])
    lost = [c for c in res.checks if c.name.startswith("warehouse") and not c.ok]
    res.goal("0 rows lost or duplicated (warehouse)", "0" if not lost else lost[0].detail, not lost)
    res.notes.append(
        "A commit is: warehouse = one manifest commit per flush; delta = one append per table "
        "(3 per flush); legacy = one locked index.jsonl append per execution. Wall time runs from "
        "the start signal (all writers have generated their records and imported everything) until "
        "the last writer reports it is done; it includes opening the store and the writer."
    )
    if "delta" not in comps:
        res.notes.append(
            "delta is left out at this scale: its 2,400 concurrent appends (3 tables x 800 flushes) take "
            "about two minutes per repetition on 2 cores; it runs at --scale small."
        )
    return res


def _concurrency_check(
    res: CaseResult, comp: str, root: Path, reports: list[dict], total: int, flushes: int, rep: int
) -> None:
    failed = sum(r["errors"] for r in reports)
    if comp == "warehouse":
        wh = warehouse.open(str(root))
        n, ids, m = wh_counts(wh)
        tokens = [c.token for c in wh.log.commits() if c.operation == "append"]
        ok = n == ids == total and m == 10 * total and len(tokens) == len(set(tokens)) == flushes
        detail = (
            f"executions {n} (distinct {ids}) of {total}, messages {m} of {10 * total}, "
            f"append commits {len(tokens)} (distinct tokens {len(set(tokens))}) of {flushes}"
        )
    elif comp == "legacy":
        lines, ids, files = legacy.count(root)
        ok = lines == ids == files == total
        detail = f"index lines {lines} (distinct ids {ids}), JSON files {files}, of {total}"
    else:
        # an append that raised is not silent loss (the caller knows); what succeeded must all be there, once
        done = sum(r["executions"] for r in reports)
        n = delta.count_rows(root, "executions")
        ids = delta.distinct(root, "executions", "execution_id") if n else 0
        m = delta.count_rows(root, "messages")
        ok = n == ids == done and m == 10 * done
        detail = (
            f"executions {n} (distinct {ids}) of {done} acknowledged ({total} attempted), messages {m} of "
            f"{10 * done}; flushes that raised: {failed}"
        )
        errs = [r["error"] for r in reports if r["error"]]
        if errs:
            detail += f"; first error: {errs[0]}"
    if rep == 0 or not ok:
        res.check(f"{comp}: 0 rows lost or duplicated (rep {rep + 1})", ok, detail)
