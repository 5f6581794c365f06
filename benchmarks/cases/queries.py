"""Cases 4 and 5: queries. Scores by agent x attack (the warehouse next to raw DuckDB over one file
and legacy pandas, equal answers checked) and partition pruning (the bytes one partition's query reads)."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import warehouse
from warehouse.read import analytics

from .. import legacy, raw_duckdb
from ..harness import CaseResult, keyed, split, timed
from .workload import Context, query_batches, wh_write


def query_warehouse(ctx: Context) -> tuple[Path, float]:
    """The case 4/5 warehouse (built once, shared by both cases); (root, seconds it took to write)."""
    if "query_wh" not in ctx.cache:
        root = ctx.dir("query", "warehouse")
        batches = query_batches(ctx)
        ctx.say(f"writing {ctx.scale.query_executions:,} executions into the warehouse")
        seconds, _ = timed(lambda: wh_write(root, batches))
        ctx.cache["query_wh"] = (root, seconds)
    return ctx.cache["query_wh"]


def scores_query(ctx: Context) -> CaseResult:
    """Case 4: scores by agent x attack, on an open handle and from a fresh open, against every competitor."""
    sc = ctx.scale
    res = CaseResult(
        4, "scores_query", f"Scores (ASR, utility) by agent x attack over {sc.query_executions:,} executions"
    )
    root, write_s = query_warehouse(ctx)
    batches = query_batches(ctx)
    cap = sc.legacy_query_cap
    legacy_n = min(sc.query_executions, cap) if cap else sc.query_executions
    res.params = {
        "executions": sc.query_executions,
        "configs": sc.configs,
        "messages_per_execution": 0,
        "legacy_executions": legacy_n,
    }
    leg_root = ctx.dir("query", "legacy")
    per_cfg = split(legacy_n, len(batches))
    seconds_leg, _ = timed(
        lambda: legacy.write(leg_root, [(d, a, k, ex[:c]) for (d, a, k, ex), c in zip(batches, per_cfg)])
    )
    one = ctx.workdir / "query" / "one.parquet"
    wh = warehouse.open(str(root))
    one_bytes = raw_duckdb.write_one_file(wh, one)
    res.add("warehouse", "setup: write", "s", [write_s], note="public writer, once")
    res.add("legacy", "setup: write", "s", [seconds_leg], note=f"{legacy_n:,} JSON files + index.jsonl, once")
    res.params["warehouse_files"] = len(wh.files("executions"))
    res.params["one_file_bytes"] = one_bytes
    ctx.say(f"case 4: data written (warehouse {write_s:.1f} s, legacy {seconds_leg:.1f} s)")

    by = ["agent", "attack"]
    q_one = raw_duckdb.scores_sql(one, by)
    con = raw_duckdb.connect()
    wh.scores(by=by).fetchall()  # warm-up: the connection and its views are made once per handle
    con.sql(q_one).fetchall()

    def wh_cold():
        return warehouse.open(str(root)).scores(by=by).fetchall()

    def duck_cold():
        return raw_duckdb.connect().sql(q_one).fetchall()

    runs: list[tuple[str, str, Callable[[], Any]]] = [
        ("warehouse", "query (open handle)", lambda: wh.scores(by=by).fetchall()),
        ("raw duckdb (1 file)", "query (open handle)", lambda: con.sql(q_one).fetchall()),
        ("warehouse", "open + query", wh_cold),
        ("raw duckdb (1 file)", "open + query", duck_cold),
        ("legacy (index.jsonl)", "open + query", lambda: legacy.scores_from_index(leg_root)),
        ("legacy (index + JSON files)", "open + query", lambda: legacy.scores_with_files(leg_root)),
    ]
    times: dict[tuple[str, str], list[float]] = {(c, m): [] for c, m, _ in runs}
    answers: dict[tuple[str, str], Any] = {}
    for rep in range(ctx.reps):
        for comp, metric, fn in runs:
            seconds, out = timed(fn)
            times[(comp, metric)].append(seconds)
            answers[(comp, metric)] = out
        ctx.say(
            f"case 4 rep {rep + 1}: " + ", ".join(f"{c} [{m}] {v[-1] * 1000:.1f} ms" for (c, m), v in times.items())
        )
    scale_up = sc.query_executions / legacy_n
    for (comp, metric), values in times.items():
        res.add(comp, metric, "s", values)
    if scale_up != 1:
        for comp in ("legacy (index.jsonl)", "legacy (index + JSON files)"):
            res.add(
                f"{comp} x{scale_up:g} extrapolated",
                "open + query",
                "s",
                [v * scale_up for v in times[(comp, "open + query")]],
                note=f"measured on {legacy_n:,} executions, scaled linearly",
            )

    cols = [c for c in wh.scores(by=by).columns]
    ref = keyed(answers[("warehouse", "query (open handle)")], cols, len(by))
    res.compare(
        "raw duckdb answers equal the warehouse's",
        ref,
        keyed(answers[("raw duckdb (1 file)", "query (open handle)")], cols, len(by)),
        [c for c in cols if c not in by],
    )
    n_total = sum(r["n"] for r in ref.values())
    res.check("warehouse holds every execution", n_total == sc.query_executions, f"{n_total} of {sc.query_executions}")
    leg_ref, against = ref, "the warehouse's"
    if legacy_n != sc.query_executions:
        # legacy holds the first `per_cfg` tasks of each configuration: compare with the same slice
        leg_ref = keyed(
            wh.scores(by=by, where=f"cast(substr(task_id, 11) as integer) < {min(per_cfg)}").fetchall(), cols, len(by)
        )
        against = f"the warehouse's over the same {legacy_n:,} executions"
        res.notes.append(
            f"Legacy holds only {legacy_n:,} of the {sc.query_executions:,} executions (capped: the "
            f"first {min(per_cfg):,} tasks of each configuration); its answers are compared with the "
            "warehouse's over the same tasks, and its times are also shown scaled linearly to the full size."
        )
    if len(set(per_cfg)) == 1 or legacy_n == sc.query_executions:
        basic = ["n", "n_tasks", "utility", "asr"]
        res.compare(
            f"legacy (index.jsonl) answers equal {against}",
            leg_ref,
            legacy.scores_by_group(answers[("legacy (index.jsonl)", "open + query")], basic),
            basic,
        )
        full = basic + ["total_tokens", "cost"]
        res.compare(
            f"legacy (index + JSON files) answers equal {against}",
            leg_ref,
            legacy.scores_by_group(answers[("legacy (index + JSON files)", "open + query")], full),
            full,
        )
    leg_name = "legacy (index.jsonl)" + (f" x{scale_up:g} extrapolated" if scale_up != 1 else "")
    leg = res.get(leg_name, "open + query")
    wh_cold_t = res.get("warehouse", "open + query")
    res.goal(
        ">= 50x faster than legacy/pandas (open + query, legacy reading index.jsonl only)",
        f"{leg / wh_cold_t:.2f}x (with JSON files: "
        f"{res.get(leg_name.replace('index.jsonl', 'index + JSON files'), 'open + query') / wh_cold_t:.2f}x)",
        leg / wh_cold_t >= 50,
    )
    wh_q, duck_q = res.get("warehouse", "query (open handle)"), res.get("raw duckdb (1 file)", "query (open handle)")
    res.goal(
        "<= 1.25x raw DuckDB on one file (query on an open handle)",
        f"{wh_q / duck_q:.2f}x (open + query: {wh_cold_t / res.get('raw duckdb (1 file)', 'open + query'):.2f}x)",
        wh_q / duck_q <= 1.25,
    )
    res.notes.append(
        f"Executions carry no messages here (generation of full conversations at this size takes too "
        f"long); each of the {sc.configs} configurations repeats a pool of up to 50 demo executions with "
        f"fresh task ids. The warehouse holds {res.params['warehouse_files']} executions files (one flush "
        "per configuration); raw DuckDB reads one file with the same rows. 'open handle' reuses an "
        "opened Warehouse / DuckDB connection (first query excluded); 'open + query' starts from "
        "warehouse.open() / duckdb.connect(). The legacy analysis has no handle: pandas reads the files "
        "every time. Caches: the OS page cache is warm for every competitor."
    )
    return res


def _rchar() -> int:
    """Bytes this process has read through read(2)/pread(2) so far (all threads), from /proc/self/io."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def _profiled_bytes(wh: warehouse.Warehouse, query: Callable[[], Any], path: Path) -> int:
    """DuckDB's own count of bytes read by one query (JSON profiling output, io.total_bytes_read)."""
    wh.sql("pragma enable_profiling='json'")
    wh.sql(f"pragma profiling_output='{path}'")
    try:
        query()
    finally:
        wh.sql("pragma disable_profiling")
    doc = json.loads(path.read_text())
    return int(doc.get("io", {}).get("total_bytes_read", -1))


def partition_pruning(ctx: Context) -> CaseResult:
    """Case 5: the same scores query over every partition and over one config_hash: time and bytes read."""
    sc = ctx.scale
    res = CaseResult(
        5, "partition_pruning", f"Partition pruning: one config_hash of {sc.configs}", baseline="full scan"
    )
    root, _ = query_warehouse(ctx)
    wh = warehouse.open(str(root))
    hashes = sorted(f.partition["config_hash"] for f in wh.files("configs"))
    target = hashes[len(hashes) // 2]
    by = ["agent", "attack"]
    where = f"config_hash = '{target}'"
    full = lambda: wh.scores(by=by).fetchall()  # noqa: E731
    one = lambda: wh.scores(by=by, where=where).fetchall()  # noqa: E731
    full(), one()  # warm-up
    t: dict[str, list[float]] = {"full scan": [], "one config": []}
    r: dict[str, list[float]] = {"full scan": [], "one config": []}
    for _ in range(max(ctx.reps, 5)):  # cheap: a few more repetitions steady the small timings
        for name, fn in (("full scan", full), ("one config", one)):
            gc.collect()
            r0 = _rchar()
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            r[name].append(_rchar() - r0)
            t[name].append(t1 - t0)
    # Profiled on `wh.sql`'s connection, running the same SQL text as `scores`: the connection
    # `scores` runs on cannot write files (not even a profile).
    prof = {
        "full scan": _profiled_bytes(
            wh, lambda: wh.sql(analytics.scores_sql(by)).fetchall(), ctx.workdir / "profile-full.json"
        ),
        "one config": _profiled_bytes(
            wh, lambda: wh.sql(analytics.scores_sql(by, where)).fetchall(), ctx.workdir / "profile-one.json"
        ),
    }
    files_all = wh.files("executions")
    files_one = wh.files("executions", {"config_hash": target})
    manifest = {"full scan": sum(f.bytes for f in files_all), "one config": sum(f.bytes for f in files_one)}
    for name in t:
        res.add(name, "query time", "s", t[name])
    for name in t:
        res.add(name, "bytes read (rchar)", "bytes", r[name])
    for name in t:
        res.add(name, "bytes read (DuckDB profile)", "bytes", [prof[name]])
    for name in t:
        res.add(name, "bytes of the files the manifest selects", "bytes", [manifest[name]])
    ok_answer = sum(row[2] for row in one()) == sum(f.rows for f in files_one)
    res.check(
        "filtered query counts exactly the selected partition's rows",
        ok_answer,
        f"{sum(row[2] for row in one())} rows vs {sum(f.rows for f in files_one)} in the manifest",
    )
    frac = res.get("one config", "bytes read (rchar)") / res.get("full scan", "bytes read (rchar)")
    frac_t = res.get("one config", "query time") / res.get("full scan", "query time")
    frac_p = prof["one config"] / prof["full scan"] if prof["full scan"] > 0 else float("nan")
    res.params = {
        "configs": sc.configs,
        "config_hash": target,
        "files_full": len(files_all),
        "files_selected": len(files_one),
    }
    res.goal(
        "filtered query reads <= 2% of the bytes of the full scan",
        f"{100 * frac:.2f}% (rchar), {100 * frac_p:.2f}% (DuckDB profile)",
        frac <= 0.02,
    )
    res.goal(
        "and takes proportionally less time (<= 2%)",
        f"{100 * frac_t:.1f}% of the time "
        f"({1000 * res.get('one config', 'query time'):.1f} ms vs {1000 * res.get('full scan', 'query time'):.1f} ms)",
        frac_t <= 0.02,
    )
    res.notes.append(
        "Query: Warehouse.scores(by=[agent, attack]) with and without where config_hash = ... on an open "
        "handle. 'rchar' is the bytes the process read through read/pread during the query "
        "(/proc/self/io, all threads; page-cache hits count too); 'DuckDB profile' is DuckDB's own "
        "io.total_bytes_read; the manifest line is the sizes of the executions files that the "
        "manifest selects for the filter (what a perfectly pruning reader would open)."
    )
    return res
