"""The seven benchmark cases, and the scales they run at.

Every case generates its records once (with the demo generator `warehouse.demo.execution`), outside
any timed region, and gives the same records to every competitor. Competitors run interleaved
(rep 1 of each, then rep 2 of each, ...) in fresh directories, so that drift of the machine hits
them alike; the median of the repetitions is reported. Correctness checks (counts, equal answers,
nothing lost) are recorded with the case and never timed.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import warehouse
from warehouse.read import analytics
from warehouse.cli import demo
from warehouse.core.config import RunConfig
from warehouse.manifest import Log, commit_name, utcnow

from . import CheckFailed, delta, legacy, raw_duckdb, raw_pyarrow

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20


# -- scales ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    name: str
    bulk_executions: int          # case 1 (10 messages each)
    flushes: int                  # case 2
    flush_size: int
    processes: int                # case 3
    process_flushes: int
    process_flush_size: int
    query_executions: int         # cases 4 and 5 (no messages)
    legacy_query_cap: int | None  # at most this many legacy JSON files in case 4 (None: all)
    configs: int                  # cases 4 and 5: configurations (partitions)
    commits: int                  # case 6
    memory_messages: int          # case 7
    concurrency_competitors: tuple[str, ...] = ("warehouse", "legacy")  # delta takes ~110 s a repetition at medium
    reps: int = 3


SCALES = {
    "small": Scale("small", bulk_executions=2_000, flushes=50, flush_size=20, processes=8, process_flushes=10,
                   process_flush_size=10, query_executions=5_000, legacy_query_cap=None, configs=100, commits=500,
                   memory_messages=20_000, concurrency_competitors=("warehouse", "legacy", "delta")),
    "medium": Scale("medium", bulk_executions=20_000, flushes=200, flush_size=100, processes=8, process_flushes=100,
                    process_flush_size=10, query_executions=100_000, legacy_query_cap=None, configs=100, commits=10_000,
                    memory_messages=200_000),
    "large": Scale("large", bulk_executions=200_000, flushes=200, flush_size=100, processes=8, process_flushes=100,
                   process_flush_size=10, query_executions=1_000_000, legacy_query_cap=100_000, configs=100,
                   commits=10_000, memory_messages=1_000_000),
}


# -- results ---------------------------------------------------------------------------------------
@dataclass
class Measurement:
    competitor: str
    metric: str
    unit: str                  # "s", "ms", "bytes", "/s", ...
    values: list[float]
    lower_is_better: bool = True
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass
class Goal:
    text: str
    measured: str
    met: bool | None           # None: cannot be judged at this scale


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class CaseResult:
    id: int
    name: str
    title: str
    baseline: str = "warehouse"   # ratios are value / value of this competitor, per metric
    params: dict[str, Any] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def add(self, competitor: str, metric: str, unit: str, values: Sequence[float], **kw: Any) -> Measurement:
        m = Measurement(competitor, metric, unit, [float(v) for v in values], **kw)
        self.measurements.append(m)
        return m

    def get(self, competitor: str, metric: str) -> float:
        for m in self.measurements:
            if m.competitor == competitor and m.metric == metric:
                return m.median
        raise KeyError((competitor, metric))

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))

    def goal(self, text: str, measured: str, met: bool | None) -> None:
        self.goals.append(Goal(text, measured, met))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for m, md in zip(self.measurements, d["measurements"]):
            md["median"] = m.median
            base = self.ratio(m)
            md["ratio_to_baseline"] = base
        return d

    def ratio(self, m: Measurement) -> float | None:
        """`m`'s median divided by the baseline competitor's median of the same metric."""
        for b in self.measurements:
            if b.competitor == self.baseline and b.metric == m.metric and b.median:
                return m.median / b.median
        return None


@dataclass
class Context:
    scale: Scale
    workdir: Path
    say: Callable[[str], None] = lambda s: None
    seed: int = 0
    repetitions: int | None = None  # overrides the scale's (tests use 1)
    cache: dict[str, Any] = field(default_factory=dict)

    def dir(self, *parts: str) -> Path:
        """A fresh, empty directory under the work directory."""
        p = self.workdir.joinpath(*parts)
        if p.exists():
            shutil.rmtree(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def reps(self) -> int:
        return self.repetitions or max(3, self.scale.reps)


# -- helpers ---------------------------------------------------------------------------------------
Batch = tuple[dict, dict, "dict | None", list[dict[str, Any]]]


def settle() -> None:
    """Collect, then move every live object (the generated records above all) out of the collector's
    sight, so that a competitor's garbage collections do not pay for scanning the harness's data."""
    gc.collect()
    gc.freeze()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of `fn()`; garbage collected first so that earlier garbage is not billed to it."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def disk_usage(root: Path) -> tuple[int, int]:
    """(apparent bytes = sum of file sizes, allocated bytes = blocks on disk) of every file under `root`."""
    apparent = allocated = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def split(n: int, parts: int) -> list[int]:
    """`n` as `parts` near-equal integers."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def grid_batches(ctx: Context, n: int) -> list[Batch]:
    """`n` demo executions (10 messages each) spread over the 18 configurations of the demo grid."""
    key = f"grid:{n}"
    if key not in ctx.cache:
        grid = list(demo.configs())
        out = []
        for (d, a, k), count in zip(grid, split(n, len(grid))):
            rng = random.Random(f"{ctx.seed}:{d['type']}:{a['type']}:{k['type'] if k else None}")
            out.append((d, a, k, [demo.execution(rng, d["type"], a["type"], k["type"] if k else None, t)
                                  for t in range(count)]))
        ctx.cache[key] = out
        settle()
    return ctx.cache[key]


def query_configs(n: int) -> list[tuple[dict, dict, dict | None]]:
    """`n` configurations: the demo grid, cycled, with an agent `variant` so that each hash differs."""
    grid = list(demo.configs())
    out = []
    for i in range(n):
        d, a, k = grid[i % len(grid)]
        out.append((d, {"type": a["type"], "config": {**a["config"], "variant": i // len(grid)}}, k))
    return out


def query_batches(ctx: Context) -> list[Batch]:
    """Case 4/5 data: `query_executions` executions without messages over `configs` configurations.

    Each configuration draws a pool of up to 50 demo executions (messages dropped) and repeats it
    with fresh task ids: generating a million full executions would take many minutes.
    """
    key = "query"
    if key not in ctx.cache:
        sc = ctx.scale
        out = []
        for i, ((d, a, k), count) in enumerate(zip(query_configs(sc.configs), split(sc.query_executions, sc.configs))):
            rng = random.Random(f"{ctx.seed}:query:{i}")
            pool = []
            for t in range(min(count, 50)):
                e = demo.execution(rng, d["type"], a["type"], k["type"] if k else None, t)
                del e["messages"]
                pool.append(e)
            out.append((d, a, k, [{**pool[t % len(pool)], "task_id": f"user_task_{t}"} for t in range(count)]))
        ctx.cache[key] = out
        settle()
    return ctx.cache[key]


def wh_write(root: Path, batches: Sequence[Batch], **writer_kw: Any) -> warehouse.Warehouse:
    """Every batch through the public writer (one writer per configuration)."""
    wh = warehouse.open(str(root), create=True)
    for d, a, k, executions in batches:
        with wh.writer(dataset=d, agent=a, attack=k, **writer_kw) as w:
            for e in executions:
                w.add_execution(**e)
    return wh


def arrow_write(root: Path, batches: Sequence[Batch], write: Callable, chunk: int = 10_000) -> None:
    """Every batch through `raw_pyarrow.to_arrow` and `write` (pyarrow or delta), `chunk` executions a flush."""
    for d, a, k, executions in batches:
        partition = RunConfig.of(d, a, k).partition
        for i in range(0, len(executions), chunk):
            write(root, raw_pyarrow.to_arrow(executions[i:i + chunk], partition))


def wh_counts(wh: warehouse.Warehouse) -> tuple[int, int, int]:
    """(executions, distinct execution ids, messages) in the warehouse's current snapshot."""
    wh.refresh()
    (n, ids), = wh.sql("select count(*), count(distinct execution_id) from executions").fetchall()
    (m,), = wh.sql("select count(*) from messages").fetchall()
    return n, ids, m


def fmt_bytes(n: float) -> str:
    return f"{n / MiB:,.1f} MiB" if n >= MiB else f"{n / 1024:,.1f} KiB"


# -- case 1 ----------------------------------------------------------------------------------------
def bulk_write(ctx: Context) -> CaseResult:
    sc = ctx.scale
    res = CaseResult(1, "bulk_write", f"Bulk write: {sc.bulk_executions:,} executions x 10 messages")
    batches = grid_batches(ctx, sc.bulk_executions)
    n = sum(len(b[3]) for b in batches)
    n_msgs = sum(len(e["messages"]) for b in batches for e in b[3])
    res.params = {"executions": n, "messages": n_msgs, "configs": len(batches),
                  "writer": "public writer, default flush settings (flush_rows=10,000, flush_bytes=64 MiB)"}
    runs: dict[str, Callable[[Path], Any]] = {
        "warehouse": lambda root: wh_write(root, batches),
        "legacy": lambda root: legacy.write(root, batches),
        "raw pyarrow": lambda root: arrow_write(root, batches, raw_pyarrow.write),
        "delta": lambda root: arrow_write(root, batches, delta.write),
    }
    times: dict[str, list[float]] = {c: [] for c in runs}
    sizes: dict[str, tuple[int, int]] = {}
    for rep in range(ctx.reps):
        for comp, run in runs.items():
            root = ctx.dir("bulk", comp.replace(" ", "_"))
            seconds, _ = timed(lambda: run(root))
            times[comp].append(seconds)
            ctx.say(f"case 1 rep {rep + 1}: {comp} {seconds:.2f} s")
            if rep == 0:
                sizes[comp] = disk_usage(root)
                _count_check(res, comp, root, n, n_msgs)
            shutil.rmtree(root)
    for comp in runs:
        res.add(comp, "write time", "s", times[comp])
    for comp in runs:
        res.add(comp, "executions/s", "/s", [n / t for t in times[comp]], lower_is_better=False)
    for comp in runs:
        res.add(comp, "bytes on disk (file sizes)", "bytes", [sizes[comp][0]])
    for comp in runs:
        res.add(comp, "bytes on disk (allocated blocks)", "bytes", [sizes[comp][1]])
    wh_t, leg_t, pa_t = res.get("warehouse", "write time"), res.get("legacy", "write time"), res.get("raw pyarrow", "write time")
    res.goal(">= 20x faster than legacy", f"{leg_t / wh_t:.2f}x", leg_t / wh_t >= 20)
    res.goal("<= 1.3x raw pyarrow", f"{wh_t / pa_t:.2f}x", wh_t / pa_t <= 1.3)
    ratio = sizes["legacy"][0] / sizes["warehouse"][0]
    res.goal(">= 5x smaller on disk than legacy (file sizes)", f"{ratio:.2f}x (allocated blocks: "
             f"{sizes['legacy'][1] / sizes['warehouse'][1]:.2f}x)", ratio >= 5)
    res.notes.append("All competitors start from an empty directory; timing includes creating it. Legacy JSON "
                     "files are pretty-printed (indent=2) as the reference shows them; 'file sizes' is the sum "
                     "of file lengths, 'allocated blocks' what the filesystem uses (one JSON file per execution "
                     "costs a 4 KiB block at least).")
    return res


def _count_check(res: CaseResult, comp: str, root: Path, n: int, n_msgs: int) -> None:
    if comp == "warehouse":
        got, ids, msgs = wh_counts(warehouse.open(str(root)))
    elif comp == "legacy":
        got, ids, files = legacy.count(root)
        msgs = legacy.count_messages(root) if files == n else -1
    elif comp == "raw pyarrow":
        got = ids = raw_pyarrow.count_rows(root, "executions")
        msgs = raw_pyarrow.count_rows(root, "messages")
    else:
        got = ids = delta.count_rows(root, "executions")
        msgs = delta.count_rows(root, "messages")
    res.check(f"{comp}: every execution and message stored once", got == ids == n and msgs == n_msgs,
              f"executions {got} (distinct ids {ids}) of {n}, messages {msgs} of {n_msgs}")


# -- case 2 ----------------------------------------------------------------------------------------
def small_flushes(ctx: Context) -> CaseResult:
    sc = ctx.scale
    res = CaseResult(2, "small_flushes", f"Small flushes: {sc.flushes} flushes of {sc.flush_size} executions")
    pool = [e for b in grid_batches(ctx, sc.bulk_executions) for e in b[3]]
    total = sc.flushes * sc.flush_size
    records = [pool[i % len(pool)] for i in range(total)]
    batches = [records[i * sc.flush_size:(i + 1) * sc.flush_size] for i in range(sc.flushes)]
    d, a, k = next(iter(demo.configs()))
    partition = RunConfig.of(d, a, k).partition
    res.params = {"flushes": sc.flushes, "executions_per_flush": sc.flush_size, "messages_per_execution": 10}

    def run_warehouse(root: Path) -> tuple[list[float], list[float]]:
        wh = warehouse.open(str(root), create=True)
        flush, batch_total = [], []
        with wh.writer(dataset=d, agent=a, attack=k) as w:
            gc.collect()
            for batch in batches:
                t0 = time.perf_counter()
                for e in batch:
                    w.add_execution(**e)
                t1 = time.perf_counter()
                w.flush()
                t2 = time.perf_counter()
                flush.append(t2 - t1)
                batch_total.append(t2 - t0)
        wh.refresh()
        n, ids, m = wh_counts(wh)
        res.check("warehouse: one commit per flush, nothing lost", wh.version == sc.flushes and n == ids == total
                  and m == 10 * total, f"version {wh.version} (expected {sc.flushes}), executions {n} "
                  f"(distinct {ids}) of {total}, messages {m}")
        return flush, batch_total

    def run_arrow(write: Callable, name: str, count: Callable) -> Callable[[Path], tuple[list[float], list[float]]]:
        def run(root: Path) -> tuple[list[float], list[float]]:
            flush, write_only = [], []
            gc.collect()
            for batch in batches:
                t0 = time.perf_counter()
                tables = raw_pyarrow.to_arrow(batch, partition)
                t1 = time.perf_counter()
                write(root, tables)
                t2 = time.perf_counter()
                flush.append(t2 - t0)
                write_only.append(t2 - t1)
            got, msgs = count(root, "executions"), count(root, "messages")
            res.check(f"{name}: nothing lost", got == total and msgs == 10 * total,
                      f"executions {got} of {total}, messages {msgs}")
            return flush, write_only
        return run

    runs = {"warehouse": run_warehouse, "delta": run_arrow(delta.write, "delta", delta.count_rows),
            "raw pyarrow": run_arrow(raw_pyarrow.write, "raw pyarrow", raw_pyarrow.count_rows)}
    stats: dict[str, dict[str, list[float]]] = {c: {"p50": [], "p99": [], "p50b": [], "mean": []} for c in runs}
    for rep in range(ctx.reps):
        for comp, run in runs.items():
            root = ctx.dir("flushes", comp.replace(" ", "_"))
            flush, other = run(root)
            s = stats[comp]
            s["p50"].append(percentile(flush, 50) * 1000)
            s["p99"].append(percentile(flush, 99) * 1000)
            s["p50b"].append(percentile(other, 50) * 1000)
            s["mean"].append(statistics.fmean(flush) * 1000)
            ctx.say(f"case 2 rep {rep + 1}: {comp} flush p50 {s['p50'][-1]:.1f} ms p99 {s['p99'][-1]:.1f} ms")
            shutil.rmtree(root)
    for metric, key in (("flush p50", "p50"), ("flush p99", "p99"), ("flush mean", "mean")):
        for comp in runs:
            res.add(comp, metric, "ms", stats[comp][key])
    res.add("warehouse", "batch p50 (add x N + flush)", "ms", stats["warehouse"]["p50b"])
    for comp in ("delta", "raw pyarrow"):
        res.add(comp, "write-only p50 (Arrow ready)", "ms", stats[comp]["p50b"])
    wh50, d50 = res.get("warehouse", "flush p50"), res.get("delta", "flush p50")
    res.goal("flush p50 <= 1/3 of delta", f"{wh50:.1f} ms vs {d50:.1f} ms ({wh50 / d50:.2f}x)", wh50 <= d50 / 3)
    res.notes.append("warehouse 'flush' = Writer.flush() (Arrow conversion of the buffered rows, Parquet files, "
                     "commit); its per-record validation happened in add_execution, outside the flush ('batch' "
                     "includes it). delta/raw pyarrow 'flush' = raw_pyarrow.to_arrow of the batch + the write "
                     "(delta: one append per table = 3 commits); 'write-only' excludes the conversion.")
    return res


# -- case 3 ----------------------------------------------------------------------------------------
def _spawn(args: Sequence[str], stderr: Path) -> subprocess.Popen:
    """`python -m benchmarks.workers ARGS` with pipes for stdin/stdout and stderr to a file."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with open(stderr, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "benchmarks.workers", *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=str(REPO))


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def run_concurrent(competitor: str, root: Path, procs: int, flushes: int, per_flush: int, seed: int) -> tuple[float, list[dict]]:
    """Start `procs` writer processes, release them at once, wait for all; (wall seconds, their reports)."""
    children: list[tuple[subprocess.Popen, Path]] = []
    try:
        for i in range(procs):
            log = root.parent / f"{competitor}-{i}.stderr"
            children.append((_spawn(["concurrent", competitor, str(root), str(i), str(flushes), str(per_flush),
                                     str(seed)], log), log))
        for c, log in children:
            line = c.stdout.readline()
            if line.strip() != "ready":
                c.wait(timeout=60)
                raise RuntimeError(f"{competitor} writer did not start: {line!r} {_tail(log)}")
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
                raise RuntimeError(f"{competitor} writer failed (exit {c.returncode}): {_tail(log)}")
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
    for name, t in raw_pyarrow.to_arrow([e], RunConfig.of(d, a, k).partition).items():
        write_deltalake(f"{root}/{name}", t.slice(0, 0), mode="append", partition_by=raw_pyarrow.PARTITION_COLUMNS)


def concurrency(ctx: Context) -> CaseResult:
    sc = ctx.scale
    p, f, s = sc.processes, sc.process_flushes, sc.process_flush_size
    res = CaseResult(3, "concurrency", f"Concurrency: {p} processes x {f} flushes of {s} executions, one store")
    total, flushes = p * f * s, p * f
    res.params = {"processes": p, "flushes_per_process": f, "executions_per_flush": s, "messages_per_execution": 10,
                  "competitors": list(sc.concurrency_competitors)}
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
    res.notes.append("A commit is: warehouse = one manifest commit per flush; delta = one append per table "
                     "(3 per flush); legacy = one locked index.jsonl append per execution. Wall time runs from "
                     "the start signal (all writers have generated their records and imported everything) until "
                     "the last writer reports it is done; it includes opening the store and the writer.")
    if "delta" not in comps:
        res.notes.append("delta is left out at this scale: its 2,400 concurrent appends (3 tables x 800 flushes) take "
                         "about two minutes per repetition on 2 cores; it runs at --scale small.")
    return res


def _concurrency_check(res: CaseResult, comp: str, root: Path, reports: list[dict], total: int, flushes: int, rep: int) -> None:
    failed = sum(r["errors"] for r in reports)
    if comp == "warehouse":
        wh = warehouse.open(str(root))
        n, ids, m = wh_counts(wh)
        tokens = [c.token for c in wh.log.commits() if c.operation == "append"]
        ok = n == ids == total and m == 10 * total and len(tokens) == len(set(tokens)) == flushes
        detail = (f"executions {n} (distinct {ids}) of {total}, messages {m} of {10 * total}, "
                  f"append commits {len(tokens)} (distinct tokens {len(set(tokens))}) of {flushes}")
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
        detail = (f"executions {n} (distinct {ids}) of {done} acknowledged ({total} attempted), messages {m} of "
                  f"{10 * done}; flushes that raised: {failed}")
        errs = [r["error"] for r in reports if r["error"]]
        if errs:
            detail += f"; first error: {errs[0]}"
    if rep == 0 or not ok:
        res.check(f"{comp}: 0 rows lost or duplicated (rep {rep + 1})", ok, detail)


# -- case 4 ----------------------------------------------------------------------------------------
def query_warehouse(ctx: Context) -> tuple[Path, float]:
    """The case 4/5 warehouse (built once, shared by both cases); (root, seconds it took to write)."""
    if "query_wh" not in ctx.cache:
        root = ctx.dir("query", "warehouse")
        batches = query_batches(ctx)
        ctx.say(f"writing {ctx.scale.query_executions:,} executions into the warehouse")
        seconds, _ = timed(lambda: wh_write(root, batches))
        ctx.cache["query_wh"] = (root, seconds)
    return ctx.cache["query_wh"]


def _rows(rel_rows: Sequence[Sequence[Any]], cols: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r[0], r[1]): dict(zip(cols, r)) for r in rel_rows}


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def _compare(res: CaseResult, name: str, ref: dict, other: dict, columns: Sequence[str]) -> None:
    diffs = []
    if set(ref) != set(other):
        diffs.append(f"groups differ: {sorted(set(ref) ^ set(other))[:4]}")
    for key in sorted(set(ref) & set(other)):
        for c in columns:
            if not _same(ref[key][c], other[key][c]):
                diffs.append(f"{key} {c}: {ref[key][c]} vs {other[key][c]}")
    res.check(name, not diffs, "equal " + ", ".join(columns) + f" in {len(ref)} groups" if not diffs else "; ".join(diffs[:3]))


def _pandas_rows(df, columns: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for rec in df.to_dict("records"):
        attack = "none" if rec["attack"] == legacy.BENIGN else rec["attack"]
        out[(rec["agent"], attack)] = {c: (None if rec[c] != rec[c] else (rec[c].item() if hasattr(rec[c], "item") else rec[c]))
                                       for c in columns}
    return out


def scores_query(ctx: Context) -> CaseResult:
    sc = ctx.scale
    res = CaseResult(4, "scores_query", f"Scores (ASR, utility) by agent x attack over {sc.query_executions:,} executions")
    root, write_s = query_warehouse(ctx)
    batches = query_batches(ctx)
    cap = sc.legacy_query_cap
    legacy_n = min(sc.query_executions, cap) if cap else sc.query_executions
    res.params = {"executions": sc.query_executions, "configs": sc.configs, "messages_per_execution": 0,
                  "legacy_executions": legacy_n}
    leg_root = ctx.dir("query", "legacy")
    per_cfg = split(legacy_n, len(batches))
    seconds_leg, _ = timed(lambda: legacy.write(leg_root, [(d, a, k, ex[:c]) for (d, a, k, ex), c in zip(batches, per_cfg)]))
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
        ctx.say(f"case 4 rep {rep + 1}: " + ", ".join(f"{c} [{m}] {v[-1] * 1000:.1f} ms" for (c, m), v in times.items()))
    scale_up = sc.query_executions / legacy_n
    for (comp, metric), values in times.items():
        res.add(comp, metric, "s", values)
    if scale_up != 1:
        for comp in ("legacy (index.jsonl)", "legacy (index + JSON files)"):
            res.add(f"{comp} x{scale_up:g} extrapolated", "open + query", "s",
                    [v * scale_up for v in times[(comp, "open + query")]],
                    note=f"measured on {legacy_n:,} executions, scaled linearly")

    cols = [c for c in wh.scores(by=by).columns]
    ref = _rows(answers[("warehouse", "query (open handle)")], cols)
    _compare(res, "raw duckdb answers equal the warehouse's", ref, _rows(answers[("raw duckdb (1 file)", "query (open handle)")], cols),
             [c for c in cols if c not in by])
    n_total = sum(r["n"] for r in ref.values())
    res.check("warehouse holds every execution", n_total == sc.query_executions, f"{n_total} of {sc.query_executions}")
    leg_ref, against = ref, "the warehouse's"
    if legacy_n != sc.query_executions:
        # legacy holds the first `per_cfg` tasks of each configuration: compare with the same slice
        leg_ref = _rows(wh.scores(by=by, where=f"cast(substr(task_id, 11) as integer) < {min(per_cfg)}").fetchall(), cols)
        against = f"the warehouse's over the same {legacy_n:,} executions"
        res.notes.append(f"Legacy holds only {legacy_n:,} of the {sc.query_executions:,} executions (capped: the "
                         f"first {min(per_cfg):,} tasks of each configuration); its answers are compared with the "
                         "warehouse's over the same tasks, and its times are also shown scaled linearly to the full size.")
    if len(set(per_cfg)) == 1 or legacy_n == sc.query_executions:
        basic = ["n", "n_tasks", "utility", "asr"]
        _compare(res, f"legacy (index.jsonl) answers equal {against}", leg_ref,
                 _pandas_rows(answers[("legacy (index.jsonl)", "open + query")], basic), basic)
        full = basic + ["total_tokens", "cost"]
        _compare(res, f"legacy (index + JSON files) answers equal {against}", leg_ref,
                 _pandas_rows(answers[("legacy (index + JSON files)", "open + query")], full), full)
    leg_name = "legacy (index.jsonl)" + (f" x{scale_up:g} extrapolated" if scale_up != 1 else "")
    leg = res.get(leg_name, "open + query")
    wh_cold_t = res.get("warehouse", "open + query")
    res.goal(">= 50x faster than legacy/pandas (open + query, legacy reading index.jsonl only)",
             f"{leg / wh_cold_t:.2f}x (with JSON files: "
             f"{res.get(leg_name.replace('index.jsonl', 'index + JSON files'), 'open + query') / wh_cold_t:.2f}x)",
             leg / wh_cold_t >= 50)
    wh_q, duck_q = res.get("warehouse", "query (open handle)"), res.get("raw duckdb (1 file)", "query (open handle)")
    res.goal("<= 1.25x raw DuckDB on one file (query on an open handle)", f"{wh_q / duck_q:.2f}x "
             f"(open + query: {wh_cold_t / res.get('raw duckdb (1 file)', 'open + query'):.2f}x)", wh_q / duck_q <= 1.25)
    res.notes.append(f"Executions carry no messages here (generation of full conversations at this size takes too "
                     f"long); each of the {sc.configs} configurations repeats a pool of up to 50 demo executions with "
                     f"fresh task ids. The warehouse holds {res.params['warehouse_files']} executions files (one flush "
                     "per configuration); raw DuckDB reads one file with the same rows. 'open handle' reuses an "
                     "opened Warehouse / DuckDB connection (first query excluded); 'open + query' starts from "
                     "warehouse.open() / duckdb.connect(). The legacy analysis has no handle: pandas reads the files "
                     "every time. Caches: the OS page cache is warm for every competitor.")
    return res


# -- case 5 ----------------------------------------------------------------------------------------
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
    sc = ctx.scale
    res = CaseResult(5, "partition_pruning", f"Partition pruning: one config_hash of {sc.configs}", baseline="full scan")
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
    prof = {"full scan": _profiled_bytes(wh, lambda: wh.sql(analytics.scores_sql(by)).fetchall(),
                                         ctx.workdir / "profile-full.json"),
            "one config": _profiled_bytes(wh, lambda: wh.sql(analytics.scores_sql(by, where)).fetchall(),
                                          ctx.workdir / "profile-one.json")}
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
    res.check("filtered query counts exactly the selected partition's rows", ok_answer,
              f"{sum(row[2] for row in one())} rows vs {sum(f.rows for f in files_one)} in the manifest")
    frac = res.get("one config", "bytes read (rchar)") / res.get("full scan", "bytes read (rchar)")
    frac_t = res.get("one config", "query time") / res.get("full scan", "query time")
    frac_p = prof["one config"] / prof["full scan"] if prof["full scan"] > 0 else float("nan")
    res.params = {"configs": sc.configs, "config_hash": target, "files_full": len(files_all), "files_selected": len(files_one)}
    res.goal("filtered query reads <= 2% of the bytes of the full scan", f"{100 * frac:.2f}% (rchar), "
             f"{100 * frac_p:.2f}% (DuckDB profile)", frac <= 0.02)
    res.goal("and takes proportionally less time (<= 2%)", f"{100 * frac_t:.1f}% of the time "
             f"({1000 * res.get('one config', 'query time'):.1f} ms vs {1000 * res.get('full scan', 'query time'):.1f} ms)",
             frac_t <= 0.02)
    res.notes.append("Query: Warehouse.scores(by=[agent, attack]) with and without where config_hash = ... on an open "
                     "handle. 'rchar' is the bytes the process read through read/pread during the query "
                     "(/proc/self/io, all threads; page-cache hits count too); 'DuckDB profile' is DuckDB's own "
                     "io.total_bytes_read; the manifest line is the sizes of the executions files that the "
                     "manifest selects for the filter (what a perfectly pruning reader would open).")
    return res


# -- case 6 ----------------------------------------------------------------------------------------
def _clone_commits(root: Path, upto: int) -> Callable[[int], None]:
    """Commits 3..`upto` as clones of the real commit 2 (same shape, fresh file paths and token)."""
    wh = warehouse.open(str(root))
    template = wh.log.read(2)

    def write(version: int) -> None:
        add = tuple(replace(f, path=f"{f.path.rsplit('/', 1)[0]}/part-{uuid.uuid4().hex}.parquet") for f in template.add)
        c = replace(template, version=version, committed_at=utcnow(), add=add,
                    token=f"{template.writer.get('writer_id', 'x')}:{version}")
        with open(root / commit_name(version), "xb") as fh:
            fh.write(c.to_bytes())

    for v in range(3, upto + 1):
        write(v)
    return write


def snapshot_load(ctx: Context) -> CaseResult:
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
    res.params = {"commits": sc.commits, "files_per_commit": len(Log(wh.store).read(2).add),
                  "manifest_bytes": disk_usage(root / "_manifest")[0]}
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
        res.check(f"refresh reads the new commit (rep {rep + 1})", v == next_version, f"version {v}, expected {next_version}")
        next_version += 1
        ctx.say(f"case 6 rep {rep + 1}: open {opens[-1] * 1000:.0f} ms, refresh {refreshes[-1] * 1000:.2f} ms")
    log = Log(wh.store)
    first, per_commit = len(log.read(1).add), len(log.read(2).add)
    expected_files = first + per_commit * (opened.version - 1)
    res.check("open sees every commit and file", opened.version == next_version - 1 and
              len(opened.snapshot.files) == expected_files,
              f"version {opened.version} (expected {next_version - 1}), {len(opened.snapshot.files)} active files "
              f"(expected {expected_files})")
    res.add("warehouse", "open (replay every commit)", "s", opens)
    res.add("warehouse", "refresh (1 new commit)", "s", refreshes)
    res.add("warehouse", "open per 1,000 commits", "s", [o * 1000 / sc.commits for o in opens])
    ms = res.get("warehouse", "open (replay every commit)") * 1000
    res.goal(f"open with {sc.commits:,} commits <= 100 ms (needs checkpoints, a later issue)", f"{ms:.0f} ms", ms <= 100)
    res.notes.append("Commits 1-2 are real flushes; commits 3..N are clones of commit 2 (same JSON shape: 3 data "
                     "files with stats, fresh paths and tokens) written directly to _manifest/ to keep setup fast; "
                     "their data files do not exist, which open() never looks at. No checkpoints exist yet, so "
                     "open() lists _manifest/ and parses every commit.")
    return res


# -- case 7 ----------------------------------------------------------------------------------------
def memory(ctx: Context) -> CaseResult:
    sc = ctx.scale
    flush_bytes = 64 * MiB
    res = CaseResult(7, "memory", f"Memory: peak RSS of a writer ingesting {sc.memory_messages:,} messages, flush_bytes=64 MiB")
    reports = []
    for rep in range(ctx.reps):
        root = ctx.dir("memory", "warehouse")
        log = root.parent / "memory.stderr"
        proc = _spawn(["memory", str(root), str(sc.memory_messages), str(flush_bytes), str(ctx.seed + rep)], log)
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"memory worker failed (exit {proc.returncode}): {_tail(log)}")
        rep_out = json.loads(out.strip().splitlines()[-1])
        reports.append(rep_out)
        n, ids, m = wh_counts(warehouse.open(str(root)))
        if rep == 0 or m != rep_out["messages"]:
            res.check(f"every message committed (rep {rep + 1})", m == rep_out["messages"] and n == ids == rep_out["executions"],
                      f"messages {m} of {rep_out['messages']}, executions {n} (distinct {ids}) of {rep_out['executions']}")
        ctx.say(f"case 7 rep {rep + 1}: peak RSS {fmt_bytes(rep_out['peak_rss'])}, {rep_out['commits']} commits")
        shutil.rmtree(root)
    res.params = {"messages": reports[0]["messages"], "executions": reports[0]["executions"], "flush_bytes": flush_bytes,
                  "flush_rows": "1e9 (so that flush_bytes decides)", "commits": reports[0]["commits"]}
    res.add("warehouse", "peak RSS", "bytes", [r["peak_rss"] for r in reports], note="getrusage ru_maxrss")
    res.add("warehouse", "peak RSS (VmHWM)", "bytes", [r["vm_hwm"] for r in reports], note="/proc/self/status")
    res.add("warehouse", "RSS before writing (imports, open)", "bytes", [r["baseline_rss"] for r in reports])
    res.add("warehouse", "peak RSS - RSS before writing", "bytes", [r["peak_rss"] - r["baseline_rss"] for r in reports])
    res.add("warehouse", "ingest time", "s", [r["seconds"] for r in reports])
    peak = res.get("warehouse", "peak RSS")
    res.goal("peak RSS <= 64 MiB + 150 MiB", fmt_bytes(peak), peak <= 214 * MiB)
    res.notes.append("Measured in a fresh subprocess with resource.getrusage (ru_maxrss), forked from a small "
                     "launcher process because Linux carries the largest RSS across exec() (a child exec'd "
                     "straight from the runner would report the runner's own peak); executions are generated "
                     "one at a time by the demo generator while writing (10 messages each), so the writer's buffer "
                     "is what grows." + ("" if sc.memory_messages >= 1_000_000 else
                                         f" Scaled down to {sc.memory_messages:,} messages at this scale."))
    return res


CASES: dict[str, Callable[[Context], CaseResult]] = {
    "bulk_write": bulk_write,
    "small_flushes": small_flushes,
    "concurrency": concurrency,
    "scores_query": scores_query,
    "partition_pruning": partition_pruning,
    "snapshot_load": snapshot_load,
    "memory": memory,
}


def iter_cases(names: Sequence[str] | None = None) -> Iterator[tuple[str, Callable[[Context], CaseResult]]]:
    for name, fn in CASES.items():
        if not names or name in names:
            yield name, fn


def fail_loudly(results: Sequence[CaseResult]) -> None:
    """Raise CheckFailed naming every failed check (and every case that crashed)."""
    bad = [f"case {r.id} {r.name}: {c.name}: {c.detail}" for r in results for c in r.checks if not c.ok]
    bad += [f"case {r.id} {r.name} crashed: {r.error}" for r in results if r.error]
    if bad:
        raise CheckFailed("benchmark correctness checks failed:\n  " + "\n  ".join(bad))
