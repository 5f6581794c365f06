"""Agent-state benchmarks: logs, checkpoints and simulation snapshots against the reference's ways.

Each operation is measured next to the same operation done the reference's way, side by side in
one run, each competitor in a fresh temporary directory:

1. logging: the cost of `Execution.log(...)` on the caller's thread (a writer with
   `flush_interval=1.0`), against appending one JSON line per log to a file with flush() and against
   Python's `logging` with a FileHandler and a JSON formatter (the reference inserts one Postgres row
   per log; there is no Postgres here). Also: events committed in the end, events dropped.
2. checkpoints: `Execution.checkpoint(state, step=i)` (committed when it returns) against the
   rollouts FileCheckpointStore way, one `turn_{i}.json` per checkpoint written atomically (temp file
   + os.replace), with and without fsync; and loading the newest one back.
3. simulation snapshots: `Warehouse.run_recorder(scenario, save_frequency=1)` + `step(...)` against
   the reference's `state.json`, read whole, appended to and rewritten (temp file + rename) at every
   save: the k-th save's time for k = 1..N, bytes on disk, and loading every snapshot back.

    python -m benchmarks.agent_state [--logs 200000] [--checkpoints 300] [--snapshots 1000] [--out FILE]

Prints the tables (Markdown) and one JSON document, also written to --out. Ratios are
warehouse / reference: below 1 the warehouse is faster.

    logs.py         part 1        checkpoints.py  part 2        snapshots.py  part 3
    inputs.py       the run configuration and filler text the parts share
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..harness import load_average, machine, publish, source_line, source_state, versions
from .checkpoints import bench_checkpoints
from .logs import bench_logs
from .snapshots import bench_snapshots


def run(
    logs: int = 200_000, checkpoints: int = 300, snapshots: int = 1000, workdir: str | Path | None = None
) -> dict[str, Any]:
    """Run the three parts in fresh temporary directories (removed afterwards); the results document."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-state-", dir=workdir))
    try:
        out: dict[str, Any] = {
            "benchmark": "agent_state",
            "started_at": started.isoformat(timespec="seconds"),
            "params": {"logs": logs, "checkpoints": checkpoints, "snapshots": snapshots},
            "load_average_1min_before": load_average(),
        }
        for part, fn, n in (
            ("logs", bench_logs, logs),
            ("checkpoints", bench_checkpoints, checkpoints),
            ("snapshots", bench_snapshots, snapshots),
        ):
            t1 = time.perf_counter()
            out[part] = fn(tmp, n)
            out[part]["seconds"] = round(time.perf_counter() - t1, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_average_1min_after"] = load_average()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    lg = out["logs"]["warehouse"]
    out["goals"] = [
        {
            "goal": "ex.log median < 5 us on the caller's thread (no attributes)",
            "measured_us": lg["no_attrs"]["median_us"],
            "met": lg["no_attrs"]["median_us"] < 5.0,
        }
    ]
    out["checks"] = {
        "logs_committed_equal_logged": all(
            out["logs"][c][v]["committed"] == out["logs"][c][v]["logged"]
            for c in ("warehouse", "jsonl", "logging")
            for v in ("no_attrs", "attrs")
        ),
        "logs_dropped": sum(v["dropped"] for v in lg.values()),
        "checkpoints_loaded_ok": all(
            out["checkpoints"][c]["loaded_ok"] for c in ("warehouse", "files_no_fsync", "files_fsync")
        ),
        "snapshots_loaded_ok": out["snapshots"]["warehouse"]["loaded_ok"]
        and out["snapshots"]["state_json"]["loaded_ok"],
    }
    out["machine"] = {**machine(), "versions": versions()}
    out["source"] = source_state()
    return out


def _ratio(ours: float, ref: float) -> str:
    return f"{ours / ref:.2f}" if ref else ""


def _num(x: float, unit: str) -> str:
    return f"{x:,.2f} {unit}" if x < 100 else f"{x:,.0f} {unit}"


def _size(b: int) -> str:
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.1f} {unit}"
    return f"{b} B"


def markdown(doc: dict[str, Any]) -> str:
    """The results document as Markdown tables (what BENCHMARKS.md shows)."""
    lines: list[str] = []
    lg = doc["logs"]
    n = lg["n"]
    lines += [
        f"**1. Logging: {n:,} calls on the caller's thread** (load average "
        f"{lg['load_average_1min'][0]} → {lg['load_average_1min'][1]}; per-call times include a "
        f"perf_counter_ns pair, {lg['timer_overhead_ns']:.0f} ns)",
        "",
        "| metric | warehouse `ex.log` | JSONL + flush() | `logging` FileHandler + JSON | warehouse ÷ JSONL | warehouse ÷ logging |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant, label in (("no_attrs", "no attributes"), ("attrs", "with attributes")):
        w, j, lo = lg["warehouse"][variant], lg["jsonl"][variant], lg["logging"][variant]
        for key, name, unit in (
            ("median_us", "median", "µs"),
            ("p90_us", "p90", "µs"),
            ("p99_us", "p99", "µs"),
            ("p999_us", "p99.9", "µs"),
            ("mean_us", "mean", "µs"),
            ("max_ms", "max", "ms"),
        ):
            lines.append(
                f"| {name}, {label} | {_num(w[key], unit)} | {_num(j[key], unit)} | {_num(lo[key], unit)} "
                f"| {_ratio(w[key], j[key])} | {_ratio(w[key], lo[key])} |"
            )
        lines.append(
            f"| calls ≥ 1 ms, {label} (share of the time) | {w['calls_over_1ms']} "
            f"({w['share_of_time_in_calls_over_1ms']:.1%}) | {j['calls_over_1ms']} "
            f"({j['share_of_time_in_calls_over_1ms']:.1%}) | {lo['calls_over_1ms']} "
            f"({lo['share_of_time_in_calls_over_1ms']:.1%}) | | |"
        )
        lines.append(
            f"| committed / logged / dropped, {label} | {w['committed']:,} / {w['logged']:,} / {w['dropped']} "
            f"| {j['committed']:,} / {j['logged']:,} / 0 | {lo['committed']:,} / {lo['logged']:,} / 0 | | |"
        )
        lines.append(
            f"| bytes on disk, {label} | {_size(w['disk']['bytes'])} (commits: {w['commits']}) "
            f"| {_size(j['disk']['bytes'])} | {_size(lo['disk']['bytes'])} "
            f"| {_ratio(w['disk']['bytes'], j['disk']['bytes'])} | {_ratio(w['disk']['bytes'], lo['disk']['bytes'])} |"
        )
    fe = lg["first_events_of_the_process"]
    lines += [
        "",
        f"`close()` after the last log (the final flush, not in the figures above): "
        f"{lg['warehouse']['no_attrs']['close_ms']:.1f} ms without attributes, "
        f"{lg['warehouse']['attrs']['close_ms']:.1f} ms with. Slowest of the process's first 8,200 "
        f"`ex.log` calls (untimed warm-up; pandas {'already' if fe['pandas_imported_before'] else 'not yet'} "
        f"imported): {fe['max_ms']:.1f} ms.",
        "",
    ]

    cp = doc["checkpoints"]
    w, a, b = cp["warehouse"], cp["files_no_fsync"], cp["files_fsync"]
    lines += [
        f"**2. Checkpoints: {cp['n']} of a {cp['state_bytes'] / 1024:.1f} KiB agent state** (load average "
        f"{cp['load_average_1min'][0]} → {cp['load_average_1min'][1]})",
        "",
        "| metric | warehouse `ex.checkpoint` | `turn_N.json`, no fsync | `turn_N.json`, fsync "
        "| warehouse ÷ no fsync | warehouse ÷ fsync |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, name in (
        ("p50_ms", "save p50"),
        ("p90_ms", "save p90"),
        ("p99_ms", "save p99"),
        ("mean_ms", "save mean"),
        ("first_10pct_p50_ms", "save p50, first 10%"),
        ("last_10pct_p50_ms", "save p50, last 10%"),
        ("load_latest_ms", "load the newest"),
    ):
        lines.append(
            f"| {name} | {_num(w[key], 'ms')} | {_num(a[key], 'ms')} | {_num(b[key], 'ms')} "
            f"| {_ratio(w[key], a[key])} | {_ratio(w[key], b[key])} |"
        )
    lines.append(
        f"| open + load the newest (a new process resuming) | {_num(w['open_and_load_latest_ms'], 'ms')} "
        f"| {_num(a['load_latest_ms'], 'ms')} | {_num(b['load_latest_ms'], 'ms')} "
        f"| {_ratio(w['open_and_load_latest_ms'], a['load_latest_ms'])} "
        f"| {_ratio(w['open_and_load_latest_ms'], b['load_latest_ms'])} |"
    )
    lines.append(
        f"| bytes on disk (files) | {_size(w['disk']['bytes'])} ({w['disk']['files']}) "
        f"| {_size(a['disk']['bytes'])} ({a['disk']['files']}) | {_size(b['disk']['bytes'])} ({b['disk']['files']}) "
        f"| {_ratio(w['disk']['bytes'], a['disk']['bytes'])} | {_ratio(w['disk']['bytes'], b['disk']['bytes'])} |"
    )
    lines.append("")

    sn = doc["snapshots"]
    w, r, r2 = sn["warehouse"], sn["state_json"], sn["state_json_indent2"]
    lines += [
        f"**3. Simulation snapshots: {sn['n']:,} saves of a {sn['snapshot_bytes'] / 1024:.1f} KiB snapshot** "
        f"(load average {sn['load_average_1min'][0]} → {sn['load_average_1min'][1]}; the k-th save is the median "
        f"of saves k-{sn['curve_window']}..k+{sn['curve_window']}; indent=2 is measured at these k only, "
        f"{r2['saves_per_point']} saves each)",
        "",
        "| k-th save | warehouse `rec.step` | `state.json` rewritten (compact) | `state.json` rewritten (indent=2) "
        "| warehouse ÷ compact | warehouse ÷ indent=2 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in sn["curve_at"]:
        k = str(k)
        lines.append(
            f"| {int(k):,} | {_num(w['curve_ms'][k], 'ms')} | {_num(r['curve_ms'][k], 'ms')} "
            f"| {_num(r2['curve_ms'][k], 'ms')} | {_ratio(w['curve_ms'][k], r['curve_ms'][k])} "
            f"| {_ratio(w['curve_ms'][k], r2['curve_ms'][k])} |"
        )
    lines += [
        f"| total, {sn['n']:,} saves | {w['total_s']:.2f} s | {r['total_s']:.2f} s | | "
        f"{_ratio(w['total_s'], r['total_s'])} | |",
        f"| start a run (recorder / state.json) | {_num(w['start_ms'], 'ms')} | {_num(r['start_ms'], 'ms')} | | "
        f"{_ratio(w['start_ms'], r['start_ms'])} | |",
        f"| load every snapshot (`wh.snapshots` / json.load) | {_num(w['load_all_ms'], 'ms')} "
        f"| {_num(r['load_all_ms'], 'ms')} | | {_ratio(w['load_all_ms'], r['load_all_ms'])} | |",
        f"| bytes on disk at the end (files) | {_size(w['disk']['bytes'])} ({w['disk']['files']}) "
        f"| {_size(r['disk']['bytes'])} ({r['disk']['files']}) | | {_ratio(w['disk']['bytes'], r['disk']['bytes'])} | |",
        f"| allocated blocks at the end | {_size(w['disk']['allocated_bytes'])} | {_size(r['disk']['allocated_bytes'])} "
        f"| | {_ratio(w['disk']['allocated_bytes'], r['disk']['allocated_bytes'])} | |",
        f"| bytes written in total | {_size(w['bytes_written'])} | {_size(r['bytes_written'])} | | "
        f"{_ratio(w['bytes_written'], r['bytes_written'])} | |",
        "",
    ]

    g = doc["goals"][0]
    c = doc["checks"]
    lines += [
        "| goal | measured | met |",
        "|---|---|---|",
        f"| {g['goal']} | {g['measured_us']:.2f} µs | {'yes' if g['met'] else 'no'} |",
        "",
        f"Checks: logs committed = logged: {c['logs_committed_equal_logged']}; dropped: {c['logs_dropped']}; "
        f"checkpoints read back equal: {c['checkpoints_loaded_ok']}; snapshots read back equal: "
        f"{c['snapshots_loaded_ok']}. {doc['seconds']} s in all, load average {doc['load_average_1min_before']} "
        f"→ {doc['load_average_1min_after']}; {source_line(doc['source'])}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.agent_state", description=__doc__.splitlines()[0])
    ap.add_argument("--logs", type=int, default=200_000, help="ex.log calls per competitor and variant")
    ap.add_argument("--checkpoints", type=int, default=300)
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--workdir", default=None, help="where the temporary directories go (default: the system's)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    for name in ("logs", "checkpoints", "snapshots"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} must be at least 1")
    doc = run(a.logs, a.checkpoints, a.snapshots, workdir=a.workdir)
    c = doc["checks"]
    ok = (
        c["logs_committed_equal_logged"]
        and c["logs_dropped"] == 0
        and c["checkpoints_loaded_ok"]
        and c["snapshots_loaded_ok"]
    )
    publish("agent_state", doc, markdown(doc), a.out, None if ok else c)
    return doc


if __name__ == "__main__":
    main()
