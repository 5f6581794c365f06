"""The machinery every benchmark shares: timing, repetitions, statistics, result records, answer
comparison, and the facts and output of a run (machine, versions, source, JSON).

Only the standard library at module level (psutil is imported where it is used): the standalone
benchmarks import this without pulling in pandas or rich, and the suite's subprocess workers stay light.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import CheckFailed

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
LIBRARIES = ("warehouse", "pyarrow", "duckdb", "polars", "deltalake", "pandas", "numpy", "filelock", "fsspec")


# -- timing ----------------------------------------------------------------------------------------
def settle() -> None:
    """Collect, then move every live object (the generated records above all) out of the collector's
    sight, so that a competitor's garbage collections do not pay for scanning the harness's data.
    The objects stay frozen until `gc.unfreeze()` (the suite's runner calls it at the end)."""
    gc.collect()
    gc.freeze()


@contextmanager
def frozen_gc() -> Iterator[None]:
    """`settle()` for the duration of the block, then unfreeze; the collector itself stays on, as
    users have it."""
    settle()
    try:
        yield
    finally:
        gc.unfreeze()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of `fn()`; garbage collected first so that earlier garbage is not billed to it."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def repeat(fn: Callable[[], Any], reps: int) -> tuple[list[float], Any]:
    """The seconds of each of `reps` calls of `fn` (back to back, no collection between them), and
    `fn`'s last result."""
    times: list[float] = []
    result = None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def median_time(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Median seconds of `reps` calls of `fn` (see `repeat`), and `fn`'s last result."""
    times, result = repeat(fn, reps)
    return statistics.median(times), result


def interleaved(
    runs: Sequence[tuple[str, Callable[[], Any], int]], reps: int, say: Callable[[str], None]
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Time every (name, fn, its reps) once per repetition, in order, until each has its reps, so
    that drift of the machine hits every competitor alike; returns the seconds per name and each
    fn's last answer."""
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    answers: dict[str, Any] = {}
    for rep in range(reps):
        for name, fn, n in runs:
            if rep >= n:
                continue
            t0 = time.perf_counter()
            answers[name] = fn()
            times[name].append(time.perf_counter() - t0)
        say(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in times.items() if len(v) > rep))
    return times, answers


# -- statistics and units --------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; nan if empty."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The q-th quantile (0..1) of already sorted values by nearest rank: always a measured value,
    which is what the tail of many short calls (p99, p99.9) should report."""
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def ms(seconds: float, digits: int = 3) -> float:
    """`seconds` in milliseconds, rounded to `digits` decimals."""
    return round(seconds * 1000.0, digits)


def split(n: int, parts: int) -> list[int]:
    """`n` as `parts` near-equal integers (the first ones one larger)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def load_average() -> float:
    """The 1-minute load average, rounded to 2 decimals: recorded around timed regions."""
    return round(os.getloadavg()[0], 2)


def disk_usage(root: Path) -> dict[str, int]:
    """Every file under `root`: `bytes` (the sum of file sizes), `allocated_bytes` (the blocks on
    disk), `files`, and `manifest_bytes` (the sizes of the files in `_manifest` directories)."""
    size = blocks = files = manifest = 0
    for dirpath, _, names in os.walk(root):
        in_manifest = Path(dirpath).name == "_manifest"
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            size += st.st_size
            blocks += st.st_blocks * 512
            files += 1
            manifest += st.st_size if in_manifest else 0
    return {"bytes": size, "allocated_bytes": blocks, "files": files, "manifest_bytes": manifest}


def peak_rss_mib() -> float:
    """This process's peak RSS so far (getrusage ru_maxrss), in MiB to one decimal."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -- answers ---------------------------------------------------------------------------------------
def same(a: Any, b: Any) -> bool:
    """Equal values, floats within a relative 1e-9 (sums in another order differ in the last bits);
    None and NaN both mean 'no value' and equal each other."""
    if a is None or b is None or (isinstance(a, float) and a != a) or (isinstance(b, float) and b != b):
        return (a is None or a != a) and (b is None or b != b)
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def keyed(rows: Sequence[Sequence[Any]], columns: Sequence[str], nkeys: int) -> dict[tuple, dict[str, Any]]:
    """Rows as {their first `nkeys` values: {column: value}}."""
    return {tuple(r[:nkeys]): dict(zip(columns, r)) for r in rows}


def diff(ref: dict[tuple, dict[str, Any]], other: dict[tuple, dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """What differs between two answers keyed by group: missing groups, then unequal cells (`same`)."""
    out = []
    if set(ref) != set(other):
        out.append(f"groups differ: {sorted(set(ref) ^ set(other), key=str)[:4]}")
    for key in sorted(set(ref) & set(other), key=str):
        out += [f"{key} {c}: {ref[key][c]} vs {other[key][c]}" for c in columns if not same(ref[key][c], other[key][c])]
    return out


# -- result records of the suite -------------------------------------------------------------------
@dataclass
class Measurement:
    """One metric of one competitor: every repetition's value; the median is what is reported."""

    competitor: str
    metric: str
    unit: str  # "s", "ms", "bytes", "/s", ...
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
    met: bool | None  # None: cannot be judged at this scale


@dataclass
class Check:
    """A correctness check (counts, equal answers, nothing lost): recorded, never timed."""

    name: str
    ok: bool
    detail: str


@dataclass
class CaseResult:
    """What one case of the suite measured, checked and aimed at; `to_json()` is its results record."""

    id: int
    name: str
    title: str
    baseline: str = "warehouse"  # ratios are value / value of this competitor, per metric
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
        """The median of `competitor`'s `metric`; KeyError if it was not measured."""
        for m in self.measurements:
            if m.competitor == competitor and m.metric == metric:
                return m.median
        raise KeyError((competitor, metric))

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))

    def compare(
        self, name: str, ref: dict[tuple, dict[str, Any]], other: dict[tuple, dict[str, Any]], columns: Sequence[str]
    ) -> None:
        """Check that two keyed answers agree on `columns` (see `diff`)."""
        d = diff(ref, other, columns)
        self.check(name, not d, "; ".join(d[:3]) if d else "equal " + ", ".join(columns) + f" in {len(ref)} groups")

    def goal(self, text: str, measured: str, met: bool | None) -> None:
        self.goals.append(Goal(text, measured, met))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for m, md in zip(self.measurements, d["measurements"]):
            md["median"] = m.median
            md["ratio_to_baseline"] = self.ratio(m)
        return d

    def ratio(self, m: Measurement) -> float | None:
        """`m`'s median divided by the baseline competitor's median of the same metric."""
        for b in self.measurements:
            if b.competitor == self.baseline and b.metric == m.metric and b.median:
                return m.median / b.median
        return None


def fail_loudly(results: Sequence[CaseResult]) -> None:
    """Raise CheckFailed naming every failed check (and every case that crashed)."""
    bad = [f"case {r.id} {r.name}: {c.name}: {c.detail}" for r in results for c in r.checks if not c.ok]
    bad += [f"case {r.id} {r.name} crashed: {r.error}" for r in results if r.error]
    if bad:
        raise CheckFailed("benchmark correctness checks failed:\n  " + "\n  ".join(bad))


# -- facts and output of a run ---------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and Python of this machine."""
    import psutil

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    """The installed version of every library the benchmarks measure or compare against."""
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def source_state() -> dict[str, Any]:
    """The checkout's commit and its uncommitted changes (numbers of a dirty tree say so)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line[3:].startswith("warehouse/") and line[3:] != "warehouse/bench.py"
    ]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_package_files": changed}


def source_line(src: dict[str, Any]) -> str:
    """`source <commit>` plus, for a dirty tree, the uncommitted package files it measured."""
    files = src.get("uncommitted_package_files")
    return f"source {src['commit']}" + (f" with uncommitted {', '.join(files)}" if files else "")


def publish(name: str, doc: dict[str, Any], markdown: str | None, out: str | None, failed: Any = None) -> None:
    """The end of a standalone benchmark: print its Markdown tables (if any) and JSON, write the JSON
    to `out`, and exit non-zero naming `failed` (the failed checks) if any correctness check failed."""
    text = json.dumps(doc, indent=2, default=str)
    if markdown is not None:
        print(markdown)
        print()
    print(text)
    if out:
        Path(out).write_text(text + "\n")
    if failed:
        sys.exit(f"{name}: a correctness check failed: {failed}")
