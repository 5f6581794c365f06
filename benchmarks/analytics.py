"""Analytics benchmark: scores by agent x attack and pass@k per agent over 1M executions (10M messages),
side by side with the legacy way (pandas over `index.jsonl`, plus the JSON files) and raw DuckDB over one file.

The data (generated once, outside every timed region):
- the demo grid's 18 configurations (2 datasets x 3 agents x 3 attacks); each task runs SAMPLES times
  (`sample` 0..4), with a per-task success probability drawn around the demo's rates, so pass@k
  rises with k; FAIL_RATE of the runs fail (status 'failed', no scores: excluded from the rates,
  and a task left with fewer than k scored runs is excluded from pass@k and counted);
- every execution has the 10 messages (tool calls, tool results) of a demo execution: each
  configuration draws a pool of POOL demo executions and reuses their conversations with fresh task
  ids, samples and scores (generating a million conversations would take many minutes);
- the warehouse: the public writer, one per configuration, big flushes (`flush_rows`,
  `flush_bytes`), in WORKERS processes;
- raw DuckDB: every row of the `executions` view written once to ONE Parquet file with the
  warehouse's Parquet settings (benchmarks/raw_duckdb.py);
- legacy, at full size: `index.jsonl` with one line per execution in `LegacyPersistence`'s exact
  line format, written in bulk (one open file, no lock, no JSON files: the write is not what is
  measured);
- legacy with files, capped: run 0 of the first tasks of every configuration (about `--legacy-files`
  executions in all) written by `LegacyPersistence.save` (one pretty-printed JSON file per execution
  with its messages, plus its own `index.jsonl`); its time is also shown scaled linearly to the full
  size. One run per task because the reference's file name `{YYYYmmdd_HHMMSS}_{task_id}.json` makes
  the runs of a task saved within one second overwrite each other's file.

Timed, interleaved (rep 1 of every competitor, then rep 2, ...), median of the repetitions:
1. scores by agent, attack: `wh.scores(by=["agent", "attack"])` on an open handle and from
   `warehouse.open()`; raw DuckDB, the same SQL over the one file; legacy pandas over the index
   (n, n_tasks, utility, asr) and over index + JSON files (also tokens and cost).
2. pass@k, k = 1..5, per agent, for benign_score and attack_score (threshold 1.0):
   `warehouse.analytics.pass_at_k`; raw DuckDB, the same SQL text (`analytics.pass_at_k_sql`) on a
   connection where `executions` is a view over the one file; legacy pandas over the index,
   `math.comb` per task.
Every answer is checked against the warehouse's before any time is reported.

    python -m benchmarks.analytics [--executions 1000000] [--reps 5] [--legacy-reps 3]
                                   [--legacy-files 20000] [--workdir DIR] [--out FILE]

Prints Markdown tables and one JSON document, also written to --out. Ratios, not absolute times, are
what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

import warehouse
from warehouse.cli import demo
from warehouse.core.schemas import catalog
from warehouse.read import analytics

from . import legacy, raw_duckdb
from .harness import diff, interleaved, keyed, load_average, publish, settle, source_line, source_state, split

if TYPE_CHECKING:
    import polars as pl

SAMPLES = 5  # runs of every task
KS = tuple(range(1, SAMPLES + 1))
THRESHOLD = 1.0  # a run succeeds when its score >= THRESHOLD
FAIL_RATE = 0.02  # share of runs that fail (no scores)
POOL = 64  # demo conversations per configuration, reused with fresh task ids
WORKERS = 2  # writer processes
FLUSH_ROWS = 100_000
FLUSH_BYTES = 256 << 20
BY = ("agent", "attack")
PASS_BY = ("agent",)
METRICS = ("benign_score", "attack_score")

Run = tuple[int, int, bool, "float | None", "float | None"]  # task, sample, failed, benign_score, attack_score


# -- data ------------------------------------------------------------------------------------------
def configs() -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]]:
    """The demo grid: 18 (dataset, agent, attack) configurations."""
    return list(demo.configs())


def _rate(p: float, rng: random.Random) -> float:
    """A task's success probability: Beta-distributed around the rate `p` (mean p, concentration 2)."""
    p = min(max(p, 0.02), 0.98)
    return rng.betavariate(2 * p, 2 * (1 - p))


def plan(index: int, count: int, seed: int) -> list[Run]:
    """The `count` runs of configuration `index`: tasks 0, 1, ... with SAMPLES runs each (the last
    task may have fewer), deterministic in `seed`. The warehouse and legacy get the same runs."""
    d, a, k = configs()[index]
    rng = random.Random(f"{seed}:analytics:{index}")
    factor = demo.DATASET_FACTOR[d["type"]]
    p_benign = demo.UTILITY[a["type"]] * factor - (demo.UTILITY_DROP[k["type"]] if k else 0.0)
    p_attack = demo.ASR[(a["type"], k["type"])] * factor if k else None
    out: list[Run] = []
    task = 0
    while len(out) < count:
        pb = _rate(p_benign, rng)
        pa = _rate(p_attack, rng) if p_attack is not None else None
        for sample in range(min(SAMPLES, count - len(out))):
            if rng.random() < FAIL_RATE:
                out.append((task, sample, True, None, None))
            else:
                out.append(
                    (
                        task,
                        sample,
                        False,
                        float(rng.random() < pb),
                        float(rng.random() < pa) if pa is not None else None,
                    )
                )
        task += 1
    return out


def pool(index: int, seed: int) -> list[dict[str, Any]]:
    """POOL demo executions (10 messages each) of configuration `index`."""
    d, a, k = configs()[index]
    rng = random.Random(f"{seed}:pool:{index}")
    return [demo.execution(rng, d["type"], a["type"], k["type"] if k else None, t) for t in range(POOL)]


def executions(index: int, runs: Sequence[Run], seed: int) -> Iterator[dict[str, Any]]:
    """`add_execution` keyword arguments for `runs` of configuration `index` (conversations from the pool)."""
    convs = pool(index, seed)
    for task, sample, failed, benign, attack in runs:
        e = {
            **convs[(task * SAMPLES + sample) % POOL],
            "task_id": f"user_task_{task}",
            "sample": sample,
            "benign_score": benign,
            "attack_score": attack,
        }
        if failed:
            e["status"], e["error"] = "failed", "TimeoutError: the agent did not finish in 600 s"
        yield e


def given_id(index: int, task: int, sample: int) -> str:
    """The execution id a job with deterministic ids gives run (`task`, `sample`) of configuration `index`."""
    return f"job-{index}-{task}-{sample}"


def _write_configs(
    root: str,
    indices: Sequence[int],
    counts: Sequence[int],
    seed: int,
    flush_rows: int,
    flush_bytes: int,
    given_ids: bool = False,
) -> int:
    """Write configurations `indices` through the public writer (a worker process), with the ids of
    `given_id` if `given_ids` (else the writer's); returns executions written."""
    wh = warehouse.open(root)
    n = 0
    for index, count in zip(indices, counts):
        d, a, k = configs()[index]
        runs = plan(index, count, seed)
        with wh.writer(
            dataset=d, agent=a, attack=k, flush_rows=flush_rows, flush_bytes=flush_bytes, flush_interval=None
        ) as w:
            for (task, sample, *_), e in zip(runs, executions(index, runs, seed)):
                if given_ids:
                    e["execution_id"] = given_id(index, task, sample)
                w.add_execution(**e)
                n += 1
    return n


def build_warehouse(root: Path, n: int, seed: int, workers: int = WORKERS, *, given_ids: bool = False) -> int:
    """`n` executions over the 18 configurations, written by `workers` processes (ids of `given_id`
    if `given_ids`); returns how many."""
    warehouse.open(str(root), create=True)
    counts = split(n, len(configs()))
    parts = [list(range(w, len(counts), workers)) for w in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        futures = [
            ex.submit(_write_configs, str(root), p, [counts[i] for i in p], seed, FLUSH_ROWS, FLUSH_BYTES, given_ids)
            for p in parts
            if p
        ]
        return sum(f.result() for f in futures)


def write_legacy_index(root: Path, n: int, seed: int) -> int:
    """`index.jsonl` for all `n` executions, in `LegacyPersistence.save`'s line format (no JSON files);
    returns its size in bytes."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    iso = stamp.isoformat().replace("+00:00", "Z")
    rng = random.Random(f"{seed}:legacy-ids")
    with open(root / "index.jsonl", "w", encoding="utf-8") as f:
        for index, count in enumerate(split(n, len(configs()))):
            d, a, k = configs()[index]
            p = legacy.LegacyPersistence(root, d, a, k)
            head = {
                "dataset": p.dataset["type"],
                "dataset_config": p.dataset.get("config", {}),
                "agent_type": p.agent["type"],
                "agent_name": p.agent_name,
                "attack_type": p.attack_type,
                "config_hash": p.config_hash,
            }
            prefix = f"{p.dir}/{stamp:%Y%m%d_%H%M%S}_"
            lines = []
            for task, _sample, _failed, benign, attack in plan(index, count, seed):
                task_id = f"user_task_{task}"
                lines.append(
                    json.dumps(
                        {
                            "execution_id": f"{rng.getrandbits(128):032x}",
                            "task_id": task_id,
                            "timestamp": iso,
                            **head,
                            "benign_score": benign,
                            "attack_score": attack,
                            "path": f"{prefix}{task_id}.json",
                        },
                        separators=(",", ":"),
                    )
                )
            f.write("\n".join(lines) + "\n")
    return (root / "index.jsonl").stat().st_size


def legacy_files_tasks(n: int, cap: int) -> int:
    """Tasks per configuration in the capped legacy-with-files layout (one run each): about `cap` executions."""
    per_config = min(split(n, len(configs())))
    return max(1, min(cap // len(configs()), per_config // SAMPLES))


def write_legacy_files(root: Path, n: int, tasks: int, seed: int) -> int:
    """Run 0 of the first `tasks` tasks of every configuration through `LegacyPersistence.save` (JSON
    files + index.jsonl); returns executions written.

    One run per task: the reference names a file `{YYYYmmdd_HHMMSS}_{task_id}.json`, so the runs of a
    task saved within one second overwrite each other's file (the index keeps a line for each)."""
    batches = []
    for index, count in enumerate(split(n, len(configs()))):
        d, a, k = configs()[index]
        runs = [r for r in plan(index, count, seed) if r[0] < tasks and r[1] == 0]
        batches.append((d, a, k, executions(index, runs, seed)))
    return legacy.write(root, batches)


# -- pass@k ----------------------------------------------------------------------------------------
#: The view files the pass@k SQL needs besides `executions`: the macros (Wilson, pass_at_k_estimate).
RAW_VIEW_FILES = ("00_", "55_", "56_")


def pass_at_k_sql() -> str:
    """The warehouse's own pass@k query (`warehouse.analytics.pass_at_k_sql`) per agent, k = 1..5, over `executions`."""
    return analytics.pass_at_k_sql(PASS_BY, list(KS), THRESHOLD)


def warehouse_pass_at_k(wh: warehouse.Warehouse) -> pl.DataFrame:
    """pass@k per agent through the public API, `warehouse.analytics.pass_at_k`."""
    return analytics.pass_at_k(wh, k=list(KS), by=PASS_BY, threshold=THRESHOLD)


def raw_connect(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A connection where `executions` is a plain view over the ONE Parquet file, with the warehouse's
    macros and the view files pass@k builds on: the warehouse's SQL text runs unchanged."""
    con = duckdb.connect()
    con.execute(f"create view executions as select * from read_parquet({_sql_str(str(path))})")
    for name, sql in catalog().views:
        if name.startswith(RAW_VIEW_FILES):
            con.execute(sql)
    return con


def _rows(df: pl.DataFrame) -> list[tuple]:
    return [tuple(r) for r in df.select([*PASS_BY, "metric", "k", "pass_at_k", "n_tasks", "n_excluded"]).iter_rows()]


def legacy_pass_at_k(root: Path, ks: Sequence[int] = KS, threshold: float = THRESHOLD) -> list[tuple]:
    """pass@k per agent the way users do it today: pandas over `index.jsonl`, `math.comb` per task.
    Rows (agent, metric, k, pass_at_k, n_tasks, n_excluded)."""
    idx = legacy.read_index(root)
    out = []
    for metric in METRICS:
        df = idx.assign(ok=idx[metric] >= threshold)
        g = (
            df.groupby(["agent_type", "attack_type", "config_hash", "task_id"])
            .agg(n=(metric, "count"), c=("ok", "sum"))
            .reset_index()
        )
        if metric == "attack_score":  # a task of the attack metric: attacked, or with an attack score
            g = g[(g["attack_type"] != legacy.BENIGN) | (g["n"] > 0)]
        for agent, tasks in g.groupby("agent_type"):
            ns, cs = tasks["n"].tolist(), tasks["c"].tolist()
            for k in ks:
                est = [1.0 - math.comb(n - c, k) / math.comb(n, k) for n, c in zip(ns, cs) if n >= k]
                out.append((agent, metric, k, sum(est) / len(est) if est else None, len(est), len(ns) - len(est)))
    return sorted(out, key=lambda r: (r[0], r[1], r[2]))


# -- timing ----------------------------------------------------------------------------------------
def _ms(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 2),
        "min_ms": round(min(values) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "reps": len(values),
    }


# -- the run ---------------------------------------------------------------------------------------
def run(
    n: int,
    reps: int = 5,
    legacy_reps: int = 3,
    legacy_files: int = 20_000,
    seed: int = 0,
    workdir: str | None = None,
    say: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict[str, Any]:
    """Generate, time and check everything; returns the JSON document (temporary data is deleted)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-", dir=workdir))
    try:
        return _run(tmp, n, reps, legacy_reps, legacy_files, seed, say)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(
    tmp: Path, n: int, reps: int, legacy_reps: int, legacy_files: int, seed: int, say: Callable[[str], None]
) -> dict[str, Any]:
    t_start, load0 = time.perf_counter(), load_average()
    root = tmp / "warehouse"
    say(f"writing {n:,} executions ({n * 10:,} messages) into the warehouse with {WORKERS} writer processes")
    t0 = time.perf_counter()
    written = build_warehouse(root, n, seed)
    write_s = time.perf_counter() - t0
    wh = warehouse.open(str(root))
    one = tmp / "one.parquet"
    t0 = time.perf_counter()
    one_bytes = raw_duckdb.write_one_file(wh, one)
    one_s = time.perf_counter() - t0
    say(f"legacy index.jsonl for {n:,} executions")
    t0 = time.perf_counter()
    index_bytes = write_legacy_index(tmp / "legacy-index", n, seed)
    index_s = time.perf_counter() - t0
    tasks = legacy_files_tasks(n, legacy_files)
    say(f"legacy JSON files: the first {tasks} tasks of each configuration")
    t0 = time.perf_counter()
    files_n = write_legacy_files(tmp / "legacy-files", n, tasks, seed)
    files_s = time.perf_counter() - t0
    ((messages,),) = wh.sql("select count(*) from messages").fetchall()
    ((n_rows, n_ids),) = wh.sql("select count(*), count(distinct execution_id) from executions").fetchall()
    settle()  # the harness's objects are not the competitors' garbage

    q_scores, q_pass = analytics.scores_sql(list(BY)), pass_at_k_sql()
    con = raw_connect(one)
    root_s, leg_index, leg_files = str(root), tmp / "legacy-index", tmp / "legacy-files"
    wh.scores(by=list(BY)).fetchall()  # warm-ups: a handle's connection and views are made once
    warehouse_pass_at_k(wh)
    con.sql(q_scores).fetchall()
    con.sql(q_pass).pl()

    load_q = load_average()
    runs: list[tuple[str, Callable[[], Any], int]] = [
        ("scores: warehouse (open handle)", lambda: wh.scores(by=list(BY)).fetchall(), reps),
        ("scores: raw duckdb (open handle)", lambda: con.sql(q_scores).fetchall(), reps),
        ("scores: warehouse (open + query)", lambda: warehouse.open(root_s).scores(by=list(BY)).fetchall(), reps),
        ("scores: raw duckdb (connect + query)", lambda: raw_connect(one).sql(q_scores).fetchall(), reps),
        ("scores: legacy (index.jsonl)", lambda: legacy.scores_from_index(leg_index), legacy_reps),
        ("scores: legacy (index + JSON files, capped)", lambda: legacy.scores_with_files(leg_files), legacy_reps),
        ("pass@k: warehouse (open handle)", lambda: warehouse_pass_at_k(wh), reps),
        ("pass@k: raw duckdb (open handle)", lambda: con.sql(q_pass).pl(), reps),
        ("pass@k: warehouse (open + query)", lambda: warehouse_pass_at_k(warehouse.open(root_s)), reps),
        ("pass@k: raw duckdb (connect + query)", lambda: raw_connect(one).sql(q_pass).pl(), reps),
        ("pass@k: legacy (index.jsonl, math.comb)", lambda: legacy_pass_at_k(leg_index), legacy_reps),
    ]
    times, answers = interleaved(runs, max(reps, legacy_reps), say)
    load_q1 = load_average()

    # -- checks: every answer equals the warehouse's
    cols = list(wh.scores(by=list(BY)).columns)
    ref = keyed(answers["scores: warehouse (open handle)"], cols, len(BY))
    subset = keyed(
        wh.scores(by=list(BY), where=f"sample = 0 and cast(substr(task_id, 11) as integer) < {tasks}").fetchall(),
        cols,
        len(BY),
    )
    pcols = [*PASS_BY, "metric", "k", "pass_at_k", "n_tasks", "n_excluded"]
    pref = keyed(_rows(answers["pass@k: warehouse (open handle)"]), pcols, len(PASS_BY) + 2)
    basic, full = ["n", "n_tasks", "utility", "asr"], ["n", "n_tasks", "utility", "asr", "total_tokens", "cost"]
    pvals = ["pass_at_k", "n_tasks", "n_excluded"]
    diffs = {
        "scores: raw duckdb equals the warehouse (every column)": diff(
            ref, keyed(answers["scores: raw duckdb (open handle)"], cols, len(BY)), cols[len(BY) :]
        ),
        "scores: a fresh open equals the open handle": diff(
            ref, keyed(answers["scores: warehouse (open + query)"], cols, len(BY)), cols[len(BY) :]
        ),
        "scores: legacy index equals the warehouse (n, n_tasks, utility, asr)": diff(
            ref, legacy.scores_by_group(answers["scores: legacy (index.jsonl)"], basic), basic
        ),
        f"scores: legacy index + files equals the warehouse over the same {files_n:,} executions": diff(
            subset, legacy.scores_by_group(answers["scores: legacy (index + JSON files, capped)"], full), full
        ),
        "pass@k: a fresh open equals the open handle": diff(
            pref, keyed(_rows(answers["pass@k: warehouse (open + query)"]), pcols, 3), pvals
        ),
        "pass@k: raw duckdb equals the warehouse": diff(
            pref, keyed(_rows(answers["pass@k: raw duckdb (open handle)"]), pcols, 3), pvals
        ),
        "pass@k: legacy pandas (math.comb) equals the warehouse": diff(
            pref, keyed(answers["pass@k: legacy (index.jsonl, math.comb)"], pcols, 3), pvals
        ),
    }
    checks = {name: {"ok": not d, "detail": "; ".join(d[:3]) or "equal"} for name, d in diffs.items()}
    checks["warehouse holds every execution once"] = {
        "ok": n_rows == n_ids == written == n and sum(r["n"] for r in ref.values()) == n,
        "detail": f"{n_rows:,} rows, {n_ids:,} distinct ids, {written:,} written, {n:,} asked",
    }
    checks["warehouse holds every message"] = {"ok": messages == 10 * n, "detail": f"{messages:,} of {10 * n:,}"}
    checks["pass@k rises with k"] = {"ok": _monotone(pref), "detail": "per agent and metric, k = 1..5"}
    checks["some tasks are excluded for k = 5 (failed runs)"] = {
        "ok": any(v["n_excluded"] > 0 for (_, _, k), v in pref.items() if k == SAMPLES),
        "detail": "n_excluded > 0 at k = 5",
    }

    med = {name: statistics.median(v) for name, v in times.items()}
    scale = n / files_n
    extrapolated = med["scores: legacy (index + JSON files, capped)"] * scale
    ratios = {
        "scores: legacy index / warehouse (open + query)": med["scores: legacy (index.jsonl)"]
        / med["scores: warehouse (open + query)"],
        "scores: legacy index + files, extrapolated / warehouse (open + query)": extrapolated
        / med["scores: warehouse (open + query)"],
        "scores: warehouse / raw duckdb (open handle)": med["scores: warehouse (open handle)"]
        / med["scores: raw duckdb (open handle)"],
        "scores: warehouse / raw duckdb (open + query)": med["scores: warehouse (open + query)"]
        / med["scores: raw duckdb (connect + query)"],
        "pass@k: legacy / warehouse (open + query)": med["pass@k: legacy (index.jsonl, math.comb)"]
        / med["pass@k: warehouse (open + query)"],
        "pass@k: warehouse / raw duckdb (open handle)": med["pass@k: warehouse (open handle)"]
        / med["pass@k: raw duckdb (open handle)"],
        "pass@k: warehouse / raw duckdb (open + query)": med["pass@k: warehouse (open + query)"]
        / med["pass@k: raw duckdb (connect + query)"],
    }
    goals = [
        {
            "goal": ">= 50x faster than legacy pandas: scores (open + query vs index.jsonl at full size)",
            "ratio": ratios["scores: legacy index / warehouse (open + query)"],
        },
        {
            "goal": ">= 50x faster than legacy pandas: pass@k (open + query vs index.jsonl, math.comb)",
            "ratio": ratios["pass@k: legacy / warehouse (open + query)"],
        },
        {
            "goal": "<= 1.25x raw DuckDB on one file: scores (open handle)",
            "ratio": ratios["scores: warehouse / raw duckdb (open handle)"],
        },
        {
            "goal": "<= 1.25x raw DuckDB on one file: pass@k (open handle)",
            "ratio": ratios["pass@k: warehouse / raw duckdb (open handle)"],
        },
    ]
    for g in goals:
        g["ratio"] = round(g["ratio"], 2)
        g["met"] = g["ratio"] >= 50 if g["goal"].startswith(">=") else g["ratio"] <= 1.25
    return {
        "params": {
            "executions": n,
            "messages": messages,
            "configs": len(configs()),
            "samples_per_task": SAMPLES,
            "fail_rate": FAIL_RATE,
            "threshold": THRESHOLD,
            "ks": list(KS),
            "reps": reps,
            "legacy_reps": legacy_reps,
            "legacy_files_executions": files_n,
            "legacy_files_tasks_per_config": tasks,
            "writer": {"processes": WORKERS, "flush_rows": FLUSH_ROWS, "flush_bytes": FLUSH_BYTES},
            "cpu_count": os.cpu_count(),
        },
        "source": source_state(),
        "setup": {
            "warehouse_write_s": round(write_s, 1),
            "warehouse_files": {t: len(wh.files(t)) for t in ("executions", "messages")},
            "warehouse_bytes": sum(f.bytes for f in wh.files("executions"))
            + sum(f.bytes for f in wh.files("messages")),
            "one_file_s": round(one_s, 1),
            "one_file_bytes": one_bytes,
            "legacy_index_s": round(index_s, 1),
            "legacy_index_bytes": index_bytes,
            "legacy_files_s": round(files_s, 1),
        },
        "times": {name: _ms(v) for name, v in times.items()},
        "legacy_files_extrapolated_ms": round(extrapolated * 1000, 1),
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "goals": goals,
        "checks": checks,
        "answers": {
            "scores": [list(r) for r in answers["scores: warehouse (open handle)"]],
            "pass_at_k": [list(r) for r in _rows(answers["pass@k: warehouse (open handle)"])],
        },
        "load_average_1min": [load0, load_q, load_q1],
        "seconds": round(time.perf_counter() - t_start, 1),
    }


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _monotone(pref: dict[tuple, dict[str, Any]]) -> bool:
    for (agent, metric, k), v in pref.items():
        prev = pref.get((agent, metric, k - 1))
        if (
            prev
            and v["pass_at_k"] is not None
            and prev["pass_at_k"] is not None
            and v["pass_at_k"] < prev["pass_at_k"] - 1e-12
        ):
            return False
    return True


# -- report ----------------------------------------------------------------------------------------
def markdown(doc: dict[str, Any]) -> str:
    """The tables of a run (times, ratios, goals, checks) as Markdown."""
    p, s, t = doc["params"], doc["setup"], doc["times"]
    lines = [
        f"**Scores and pass@k over {p['executions']:,} executions, {p['messages']:,} messages** "
        f"({p['configs']} configurations, {p['samples_per_task']} runs per task, {p['fail_rate']:.0%} failed runs; "
        f"warehouse: {s['warehouse_files']['executions']} executions files and {s['warehouse_files']['messages']} "
        f"messages files, written in {s['warehouse_write_s']} s; raw DuckDB: one file of "
        f"{s['one_file_bytes'] / 2**20:.1f} MiB; legacy: index.jsonl of {s['legacy_index_bytes'] / 2**20:.0f} MiB "
        f"for every execution, and {p['legacy_files_executions']:,} executions with their JSON files)",
        "",
        "| query | competitor | median | min – max | reps |",
        "|---|---|---:|---:|---:|",
    ]
    for name, v in t.items():
        what, comp = name.split(": ", 1)
        lines.append(
            f"| {what} | {comp} | {_fmt(v['median_ms'])} | {_fmt(v['min_ms'])} – {_fmt(v['max_ms'])} | {v['reps']} |"
        )
    lines.append(
        f"| scores | legacy (index + JSON files), x{p['executions'] / p['legacy_files_executions']:g} "
        f"extrapolated | {_fmt(doc['legacy_files_extrapolated_ms'])} | | |"
    )
    lines += ["", "| ratio | value |", "|---|---:|"] + [f"| {k} | {v:.2f}x |" for k, v in doc["ratios"].items()]
    lines += ["", "| goal | measured | met |", "|---|---:|---|"] + [
        f"| {g['goal']} | {g['ratio']:.2f}x | {'yes' if g['met'] else 'no'} |" for g in doc["goals"]
    ]
    lines += [
        "",
        "Checks: "
        + "; ".join(f"{k}: {'ok' if v['ok'] else 'FAILED (' + v['detail'] + ')'}" for k, v in doc["checks"].items())
        + ".",
        f"{doc['seconds']} s in all; load average "
        f"{' → '.join(map(str, doc['load_average_1min']))}; {source_line(doc['source'])}.",
    ]
    return "\n".join(lines)


def _fmt(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The command line: run, print the Markdown and the JSON, write --out; exit non-zero if a check fails."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executions", type=int, default=1_000_000, help="executions (10 messages each)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the warehouse and raw DuckDB queries")
    ap.add_argument("--legacy-reps", type=int, default=3, help="repetitions of the legacy pandas analyses")
    ap.add_argument("--legacy-files", type=int, default=20_000, help="about this many executions get legacy JSON files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where the temporary directory goes (default: the system's)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    minimum = len(configs()) * SAMPLES
    if a.executions < minimum:
        ap.error(
            f"--executions must be at least {minimum} (one task of {SAMPLES} runs per configuration), got {a.executions}"
        )
    if a.reps < 1 or a.legacy_reps < 1:
        ap.error(f"--reps and --legacy-reps must be at least 1, got {a.reps} and {a.legacy_reps}")
    if a.legacy_files < 1:
        ap.error(f"--legacy-files must be at least 1, got {a.legacy_files}")
    doc = run(a.executions, a.reps, a.legacy_reps, a.legacy_files, a.seed, workdir=a.workdir)
    failed = [k for k, v in doc["checks"].items() if not v["ok"]]
    publish("analytics", doc, markdown(doc), a.out, failed)
    return doc


if __name__ == "__main__":
    main()
