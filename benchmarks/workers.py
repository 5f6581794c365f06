"""Subprocess entry points of the benchmarks (run as `python -m benchmarks.workers ...`).

concurrent COMPETITOR ROOT INDEX FLUSHES PER_FLUSH SEED
    One of the concurrent writers of case 3. Generates its records first, prints `ready`, waits
    for a line on stdin (the start signal, sent to every writer at once), then writes FLUSHES
    flushes of PER_FLUSH executions and prints one JSON line with what it did.
memory ROOT MESSAGES FLUSH_BYTES SEED
    Case 7: a warehouse writer ingesting MESSAGES messages (10 per execution, generated on the
    fly) with the given flush_bytes, in a process forked from this fresh one; prints one JSON
    line with its peak RSS (getrusage's ru_maxrss, and VmHWM as a cross-check).
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Sequence
    from pathlib import Path

# Only the standard library at module level, and little of it: the memory probe forks before
# anything heavy is imported (the launcher's helpers import what they need when called).


def spawn(args: Sequence[str], stderr: Path) -> subprocess.Popen[str]:
    """Start `python -m benchmarks.workers ARGS` (the launcher's side of this module) with pipes for
    stdin/stdout and stderr to the file `stderr`."""
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    with open(stderr, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.workers", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=repo,
        )


def tail(path: Path) -> str:
    """The last 2,000 characters of a worker's stderr file, for an error message."""
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def grid_config(index: int) -> tuple[dict, dict, dict | None]:
    from warehouse.cli import demo

    grid = list(demo.configs())
    return grid[index % len(grid)]


def _records(index: int, n: int, seed: int) -> list[dict[str, Any]]:
    from warehouse.cli import demo

    d, a, k = grid_config(index)
    rng = random.Random(f"{seed}:concurrent:{index}")
    return [demo.execution(rng, d["type"], a["type"], k["type"] if k else None, t) for t in range(n)]


def concurrent(competitor: str, root: str, index: int, flushes: int, per_flush: int, seed: int) -> dict[str, Any]:
    records = _records(index, flushes * per_flush, seed)
    batches = [records[i * per_flush : (i + 1) * per_flush] for i in range(flushes)]
    d, a, k = grid_config(index)
    # everything a writer needs is imported before the start signal
    import warehouse

    if competitor == "legacy":
        from . import legacy
    elif competitor == "delta":
        import deltalake  # noqa: F401

        from . import delta, raw_pyarrow
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    commits = executions = errors = 0
    error_text = None
    if competitor == "warehouse":
        wh = warehouse.open(root)
        with wh.writer(dataset=d, agent=a, attack=k) as w:
            for batch in batches:
                for e in batch:
                    w.add_execution(**e)
                if w.flush() is not None:
                    commits += 1
                executions += len(batch)
    elif competitor == "legacy":
        p = legacy.LegacyPersistence(root, d, a, k)
        for batch in batches:
            for e in batch:
                p.save(e)
                commits += 1  # every save is one locked append to index.jsonl
            executions += len(batch)
    elif competitor == "delta":
        import warehouse

        partition = warehouse.RunConfig.of(d, a, k).partition
        for batch in batches:
            try:
                commits += delta.write(root, raw_pyarrow.to_arrow(batch, partition))
                executions += len(batch)
            except Exception as exc:  # reported: a failed append is a flush the caller would have to retry
                errors += 1
                error_text = f"{type(exc).__name__}: {exc}"[:500]
    else:
        raise SystemExit(f"unknown competitor {competitor!r}")
    return {
        "commits": commits,
        "executions": executions,
        "errors": errors,
        "error": error_text,
        "seconds": time.perf_counter() - started,
    }


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _vm_hwm() -> int:
    """The peak RSS of this process's address space (VmHWM, /proc/self/status), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def memory(root: str, messages: int, flush_bytes: int, seed: int) -> dict[str, Any]:
    import warehouse
    from warehouse.cli import demo

    wh = warehouse.open(root, create=True)
    d, a, k = grid_config(1)
    rng = random.Random(f"{seed}:memory")
    baseline_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    baseline_rss = _rss_now()
    started = time.perf_counter()
    n_msgs = n_exec = 0
    with wh.writer(dataset=d, agent=a, attack=k, flush_bytes=flush_bytes, flush_rows=10**9, flush_interval=None) as w:
        while n_msgs < messages:
            e = demo.execution(rng, d["type"], a["type"], k["type"] if k else None, n_exec)
            w.add_execution(**e)
            n_msgs += len(e["messages"])
            n_exec += 1
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    hwm = _vm_hwm()
    wh.refresh()
    return {
        "peak_rss": peak,
        "vm_hwm": hwm,
        "baseline_peak_rss": baseline_peak,
        "baseline_rss": baseline_rss,
        "messages": n_msgs,
        "executions": n_exec,
        "commits": wh.version,
        "seconds": seconds,
    }


def main(argv: list[str]) -> None:
    cmd, *args = argv
    if cmd == "concurrent":
        comp, root, index, flushes, per_flush, seed = args
        out = concurrent(comp, root, int(index), int(flushes), int(per_flush), int(seed))
    elif cmd == "memory":
        # Linux keeps the largest RSS ever seen across exec(): a process started by a big parent (the
        # benchmark runner) reports the parent's peak from getrusage. A child forked from this small,
        # fresh process (nothing imported yet) starts from its own RSS, so the measurement runs there.
        root, messages, flush_bytes, seed = args
        pid = os.fork()
        if pid == 0:
            try:
                print(json.dumps(memory(root, int(messages), int(flush_bytes), int(seed))), flush=True)
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        raise SystemExit(os.waitstatus_to_exitcode(status))
    else:
        raise SystemExit(f"unknown worker {cmd!r}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
