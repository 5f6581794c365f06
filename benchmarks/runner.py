"""Run the benchmark cases at one scale: machine facts, the results JSON, the terminal tables."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from .cases import SCALES, Context, iter_cases
from .harness import CaseResult, Measurement, fail_loudly, machine, source_state, versions


def fmt(value: float, unit: str) -> str:
    """`value` in `unit` as the tables show it (seconds as s or ms, bytes as KiB/MiB/GiB, rates)."""
    if value != value:
        return "nan"
    if unit == "s":
        return (
            f"{value:.2f} s" if value >= 1 else f"{value * 1000:.1f} ms" if value >= 0.01 else f"{value * 1000:.2f} ms"
        )
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "bytes":
        for u, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(value) >= size:
                return f"{value / size:,.1f} {u}"
        return f"{value:,.0f} B"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:,.4g} {unit}"


def _spread(m: Measurement) -> str:
    if len(m.values) < 2:
        return ""
    return f"{fmt(min(m.values), m.unit)} – {fmt(max(m.values), m.unit)}"


def print_report(report: dict[str, Any], results: Sequence[CaseResult], console: Console) -> None:
    """One table per case (median, spread of the repetitions, ratio to the baseline), then the goals."""
    mach = report["machine"]
    src = report["source"]
    dirty = f" + uncommitted {', '.join(src['uncommitted_package_files'])}" if src["uncommitted_package_files"] else ""
    if src.get("changed_during_run"):
        dirty += " [yellow](the source changed during the run)[/yellow]"
    console.print(
        f"[bold]warehouse bench --scale {report['scale']}[/bold]: {mach['cores']} cores, "
        f"{mach['memory_bytes'] / (1 << 30):.0f} GiB, {mach['cpu']}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + f"; source {src['commit'] or '?'}{dirty}",
        highlight=False,
    )
    for r in results:
        t = Table(title=f"{r.id}. {r.title}", title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
        t.add_column("metric")
        t.add_column("competitor")
        t.add_column("median", justify="right")
        t.add_column("min – max", justify="right")
        t.add_column(f"÷ {r.baseline}", justify="right")
        last = None
        for m in r.measurements:
            ratio = r.ratio(m)
            t.add_row(
                m.metric if m.metric != last else "",
                m.competitor,
                fmt(m.median, m.unit),
                _spread(m),
                "" if ratio is None else f"{ratio:.2f}",
                end_section=False,
            )
            last = m.metric
        if r.error:
            t.add_row("[red]crashed[/red]", r.error.splitlines()[-1][:100], "", "", "")
        console.print(t)
    g = Table(title="Goals", title_justify="left", box=box.SIMPLE_HEAD, header_style="bold")
    g.add_column("case")
    g.add_column("goal")
    g.add_column("measured")
    g.add_column("met")
    for r in results:
        for goal in r.goals:
            met = "[green]yes[/green]" if goal.met else "[red]no[/red]" if goal.met is False else "n/a"
            g.add_row(str(r.id), goal.text, goal.measured, met)
    console.print(g)
    failed = [(r, c) for r in results for c in r.checks if not c.ok]
    n_checks = sum(len(r.checks) for r in results)
    if failed:
        for r, c in failed:
            console.print(f"[bold red]CHECK FAILED[/bold red] case {r.id}: {c.name}: {c.detail}", highlight=False)
    else:
        console.print(
            f"[green]all {n_checks} correctness checks passed[/green] "
            f"(counts, equal answers across competitors, nothing lost or duplicated)"
        )


def run(
    scale: str = "small",
    out: str | Path | None = "bench-results.json",
    *,
    workdir: str | Path | None = None,
    cases: Sequence[str] | None = None,
    console: Console | None = None,
    progress: Console | None = None,
    raise_on_failure: bool = True,
    keep: bool = False,
    reps: int | None = None,
) -> dict[str, Any]:
    """Run the cases (default: all) at `scale`; write the report to `out` (JSON) and print its tables.

    Data goes to a temporary directory under `workdir` (default: the system's), removed at the end
    unless `keep`. `reps` overrides the scale's repetitions (at least 3 for reported numbers; the
    tests use 1). Raises CheckFailed after reporting if any correctness check failed or a case crashed.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    console = console or Console()
    progress = progress or Console(stderr=True)
    base = Path(tempfile.mkdtemp(prefix="warehouse-bench-", dir=str(workdir) if workdir else None))
    started_at = datetime.now(UTC).isoformat()
    source = source_state()
    ctx = Context(
        SCALES[scale], base, say=lambda s: progress.print(f"[dim]{s}[/dim]", highlight=False), repetitions=reps
    )
    started = time.perf_counter()
    results: list[CaseResult] = []
    try:
        for name, fn in iter_cases(cases):
            progress.print(f"[bold]case {name}[/bold] ({scale})", highlight=False)
            t0 = time.perf_counter()
            load_before = os.getloadavg()[0]
            try:
                res = fn(ctx)
            except Exception as exc:  # reported with the others, then raised by fail_loudly
                res = CaseResult(len(results) + 1, name, name, error="".join(traceback.format_exception(exc))[-4000:])
                progress.print(f"[red]case {name} crashed:[/red] {exc}", highlight=False)
            res.seconds = time.perf_counter() - t0
            res.params["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            results.append(res)
    finally:
        ctx.cache.clear()
        gc.unfreeze()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    report = {
        "suite": "warehouse bench",
        "scale": scale,
        "params": SCALES[scale].__dict__,
        "started_at": started_at,
        "seconds": time.perf_counter() - started,
        "argv": sys.argv,
        "machine": machine(),
        "source": {**source, "changed_during_run": source_state() != source},
        "versions": versions(),
        "cases": [r.to_json() for r in results],
        "ok": all(c.ok for r in results for c in r.checks) and not any(r.error for r in results),
    }
    if out:
        Path(out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_report(report, results, console)
    if out:
        console.print(f"results: {out} ({report['seconds']:.0f} s)")
    if raise_on_failure:
        fail_loudly(results)
    return report


def markdown(report: dict[str, Any]) -> str:
    """The results JSON as the Markdown tables of BENCHMARKS.md (`python -m benchmarks.runner markdown FILE`)."""
    mach, src = report["machine"], report.get("source", {})
    out = [
        f"Scale `{report['scale']}`, {report['started_at'][:16].replace('T', ' ')} UTC, {report['seconds']:.0f} s; "
        f"{mach['cores']} cores ({mach.get('physical_cores')} physical), {mach['memory_bytes'] / (1 << 30):.0f} GiB, "
        f"{mach['cpu']}, {mach['os']}, Python {mach['python']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()) + ".",
        f"Source: {src.get('commit', '?')}"
        + (
            f" with uncommitted changes in {', '.join(src['uncommitted_package_files'])}"
            if src.get("uncommitted_package_files")
            else ""
        )
        + (" (it changed during the run)" if src.get("changed_during_run") else "")
        + ".",
        "",
    ]
    for c in report["cases"]:
        load = c["params"].get("load_average_1min")
        out.append(f"**{c['id']}. {c['title']}**" + (f" (load average {load[0]} → {load[1]})" if load else ""))
        out.append("")
        out.append(f"| metric | competitor | median | min – max | ÷ {c['baseline']} |")
        out.append("|---|---|---:|---:|---:|")
        for m in c["measurements"]:
            spread = (
                f"{fmt(min(m['values']), m['unit'])} – {fmt(max(m['values']), m['unit'])}"
                if len(m["values"]) > 1
                else ""
            )
            ratio = "" if m.get("ratio_to_baseline") is None else f"{m['ratio_to_baseline']:.2f}"
            out.append(f"| {m['metric']} | {m['competitor']} | {fmt(m['median'], m['unit'])} | {spread} | {ratio} |")
        if c.get("error"):
            out.append(f"| crashed | {c['error'].strip().splitlines()[-1]} | | | |")
        out.append("")
    out.append("| case | goal | measured | met |")
    out.append("|---|---|---|---|")
    for c in report["cases"]:
        for g in c["goals"]:
            out.append(
                f"| {c['id']} | {g['text']} | {g['measured']} | "
                f"{'yes' if g['met'] else 'no' if g['met'] is False else 'n/a'} |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "markdown":
        raise SystemExit("usage: python -m benchmarks.runner markdown bench-results.json")
    sys.stdout.write(markdown(json.loads(Path(sys.argv[2]).read_text())))
