"""`warehouse report`: one self-contained HTML page of a warehouse's results.

Sections: attack success rate (ASR) per agent x attack as a heatmap with 95% Wilson intervals,
utility against ASR per agent, pass@k curves, the tasks most often compromised, and tokens and
cost per configuration. Every chart is matplotlib rendered to inline SVG next to a table of the
numbers it draws; the page loads nothing from anywhere (no scripts, fonts or images to fetch).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import matplotlib
import polars as pl

from warehouse.core.errors import InvalidArgumentType
from warehouse.core.version import VERSION as package_version
from warehouse.engine.engine import HasEngine, of

# The public names of the report modules, importable from here as they always were.
from warehouse.read.report_charts import (
    HEATMAP_CMAP,
    MARKERS,
    PALETTE,
    RC,
    axis_range,
    cost_svg,
    heatmap_svg,
    pass_at_k_svg,
    scatter_svg,
    top_tasks_svg,
)
from warehouse.read.report_data import ATTACKED, BENIGN, ReportData, collect
from warehouse.read.report_tables import Col, _esc, _pass_at_k_table, _table, shown_ks

__all__ = [
    "ATTACKED",
    "BENIGN",
    "CSS",
    "HEATMAP_CMAP",
    "MARKERS",
    "PALETTE",
    "RC",
    "SECTIONS",
    "Col",
    "ReportData",
    "axis_range",
    "build_report",
    "collect",
    "cost_svg",
    "heatmap_svg",
    "pass_at_k_svg",
    "render",
    "scatter_svg",
    "shown_ks",
    "top_tasks_svg",
]


# -- page -----------------------------------------------------------------------------------------
CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a1a1a;
       margin: 0 auto; max-width: 1240px; padding: 0 24px 48px; }
header { border-bottom: 1px solid #ccc; margin-bottom: 8px; }
h1 { margin: 24px 0 4px; font-size: 26px; }
h2 { margin: 32px 0 6px; font-size: 20px; border-bottom: 1px solid #e4e4e4; padding-bottom: 4px; }
.meta { color: #444; margin: 0 0 8px; }
nav a { margin-right: 14px; color: #0b5cad; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f3f3; padding: 1px 4px; border-radius: 3px; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; flex: 1 1 520px; min-width: 0; }
figure svg { max-width: 100%; height: auto; }
.wide figure { flex-basis: 100%; }
figcaption, .note { color: #555; font-size: 13px; }
.table-wrap { flex: 0 1 auto; max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; text-align: left; overflow-wrap: anywhere; }
th { background: #f5f5f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.ci { color: #666; }
.empty { color: #777; font-style: italic; }
"""


def _section(
    anchor: str, title: str, intro: str, svg: str | None, table: str, empty: str, *, wide: bool = False
) -> str:
    """One section: heading, a sentence on what it shows, the chart and its table side by side
    (`wide`: the chart on a line of its own, the table under it)."""
    figure = f"<figure>{svg}</figure>" if svg else f'<p class="empty">{_esc(empty)}</p>'
    return (
        f'<section id="{anchor}"><h2>{_esc(title)}</h2><p class="note">{intro}</p>'
        f'<div class="row{" wide" if wide else ""}">{figure}{table}</div></section>'
    )


SECTIONS = (
    ("asr", "Attack success rate"),
    ("utility", "Utility vs. ASR"),
    ("pass-at-k", "pass@k"),
    ("tasks", "Most compromised tasks"),
    ("cost", "Tokens and cost"),
)


def render(
    data: ReportData, *, url: str, version: int, title: str = "Evaluation report", generated_at: datetime | None = None
) -> str:
    """The report page for `data` as an HTML string."""
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    t = data.totals
    attacked = data.scores.filter(pl.col("attack") != BENIGN)
    benign = data.scores.filter(pl.col("attack") == BENIGN)
    rate_cols = [
        Col("agent", "agent", "text"),
        Col("attack", "attack", "text"),
        Col("n", "runs"),
        Col("asr", "ASR [95% CI]", "pct"),
        Col("utility", "utility [95% CI]", "pct"),
    ]
    single_run = t["max_runs"] <= 1
    passk_note = (
        "Unbiased estimator 1 − C(n−c, k) / C(n, k) per task (n runs, c successes, success = score ≥ 1), "
        "averaged over tasks; tasks with fewer than k runs are left out of that k (<em>excluded</em>)."
    )
    if single_run:
        passk_note += (
            " <strong>Every task ran once per configuration here, so only k = 1 exists</strong> "
            "(pass@1 is the plain success rate); run tasks several times for longer curves."
        )
    with matplotlib.rc_context(RC):
        charts = {
            "asr": heatmap_svg(data.scores),
            "utility": scatter_svg(data.scores),
            "pass-at-k": pass_at_k_svg(data.pass_at_k),
            "tasks": top_tasks_svg(data.top_tasks),
            "cost": cost_svg(data.usage),
        }
    sections = [
        _section(
            "asr",
            "Attack success rate by agent × attack",
            "Share of attacked runs in which the injected goal was carried out (mean <code>attack_score</code>), "
            "with 95% Wilson intervals and the number of runs; darker is worse.",
            charts["asr"],
            _table(attacked, rate_cols, "ASR and utility per agent × attack"),
            "No attacked executions yet.",
        ),
        _section(
            "utility",
            "Utility vs. attack success rate",
            "Each point is one agent under one attack: utility under attack (mean <code>benign_score</code>) "
            "against ASR, with 95% intervals on both axes; dashed lines mark each agent's utility without attack "
            "(the table). Top left is best.",
            charts["utility"],
            _table(
                benign,
                [Col("agent", "agent", "text"), Col("n", "runs"), Col("utility", "utility [95% CI]", "pct")],
                "Utility without attack",
            ),
            "No attacked executions with both scores yet.",
        ),
        _section(
            "pass-at-k",
            "pass@k",
            passk_note,
            charts["pass-at-k"],
            _pass_at_k_table(data.pass_at_k),
            "No scored executions yet.",
            wide=True,
        ),
        _section(
            "tasks",
            f"The {len(data.top_tasks)} tasks most often compromised",
            "Over every attacked run of a task (all agents and attacks), the share that was compromised, "
            "with 95% Wilson intervals, and the agents that were compromised on it.",
            charts["tasks"],
            _table(
                data.top_tasks,
                [
                    Col("dataset", "dataset", "text"),
                    Col("task_id", "task", "text"),
                    Col("runs", "runs"),
                    Col("compromised", "compromised"),
                    Col("asr", "rate [95% CI]", "pct"),
                    Col("agents", "agents", "text"),
                ],
                "Most compromised tasks",
            ),
            "No attacked executions yet.",
        ),
        _section(
            "cost",
            "Tokens and cost per configuration",
            "Sums over finished executions of each configuration (<code>config_hash</code>); cost in USD as recorded.",
            charts["cost"],
            _table(
                data.usage,
                [
                    Col("config_hash", "config", "text"),
                    Col("dataset", "dataset", "text"),
                    Col("agent", "agent", "text"),
                    Col("attack", "attack", "text"),
                    Col("model", "model", "text"),
                    Col("n", "runs"),
                    Col("input_tokens", "input tokens"),
                    Col("output_tokens", "output tokens"),
                    Col("total_tokens", "total tokens"),
                    Col("cost", "cost", "usd"),
                    Col("mean_cost", "cost / run", "usd"),
                ],
                "Tokens and cost per configuration",
            ),
            "No executions yet.",
        ),
    ]
    nav = "".join(f'<a href="#{a}">{_esc(n)}</a>' for a, n in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="warehouse {_esc(package_version)}">
<title>{_esc(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_esc(title)}</h1>
<p class="meta">Warehouse <code>{_esc(url)}</code> at version {version} · generated {when} by warehouse {_esc(package_version)}
· {t["executions"]:,} finished executions of {t["configs"]:,} configurations over {t["tasks"]:,} tasks</p>
<nav>{nav}</nav>
</header>
<main>
{chr(10).join(sections)}
</main>
</body>
</html>
"""


def build_report(
    wh: HasEngine, out_path: str | os.PathLike[str] = "report.html", *, title: str = "Evaluation report", top: int = 10
) -> Path:
    """Write the report of `wh`'s current snapshot to `out_path` (one self-contained HTML file); returns its path.

    Raises InvalidArgument for `top` < 1 or a `title` that is not a string, StorageError naming the
    file if the disk is full, read-only or not writable, OSError for other failures to write it.
    """
    from warehouse.core.store_failures import disk_errors

    if not isinstance(title, str):
        raise InvalidArgumentType(f"title must be a string, got {type(title).__name__} {title!r:.80}")
    eng = of(wh)
    data = collect(eng, top=top)
    page = render(data, url=eng.url, version=eng.version, title=title)
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp")
    with disk_errors(str(out)):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    return out
