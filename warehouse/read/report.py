"""`warehouse report`: one self-contained HTML page of a warehouse's results.

Sections: attack success rate (ASR) per agent x attack as a heatmap with 95% Wilson intervals,
utility against ASR per agent, pass@k curves, the tasks most often compromised, and tokens and
cost per configuration. Every chart is matplotlib rendered to inline SVG next to a table of the
numbers it draws; the page loads nothing from anywhere (no scripts, fonts or images to fetch).
"""

from __future__ import annotations

import html
import io
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import polars as pl
from matplotlib.figure import Figure

from warehouse.core import arguments
from warehouse.core.errors import InvalidArgumentType
from warehouse.core.version import VERSION as package_version
from warehouse.engine.engine import HasEngine, of
from warehouse.read import analytics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.typing import RcKeyType

from warehouse.core.literal import escape_controls

#: Okabe–Ito: a categorical palette that stays distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Sequential, colour-blind safe (ColorBrewer); fixed to [0, 1] so the same rate is the same colour in every report.
HEATMAP_CMAP = "YlOrRd"
#: Chart settings: labels are data (an agent called "$x$" is not TeX), SVG text stays text (small, searchable).
RC: dict[RcKeyType, Any] = {"text.parse_math": False, "svg.fonttype": "none", "font.size": 10}
BENIGN = "none"  # the attack partition value of benign runs


# -- data: every number on the page comes from these frames ------------------------------------------
@dataclass(frozen=True)
class ReportData:
    """The frames a report draws (Polars DataFrames, one per section)."""

    #: agent, attack, n, n_tasks, utility(+_low/_high), asr(+_low/_high): every attack, benign ("none") included.
    scores: pl.DataFrame
    #: agent, metric ('benign_score'/'attack_score'), k, pass_at_k, n_tasks, n_excluded.
    pass_at_k: pl.DataFrame
    #: dataset, task_id, runs, compromised (attack_score >= 1), asr(+_low/_high), agents compromised on it:
    #: attacked runs only, highest mean attack_score first.
    top_tasks: pl.DataFrame
    #: `analytics.usage` per dataset, agent, attack, config_hash, model: n, tokens, requests, cost, mean_cost, ...
    usage: pl.DataFrame
    #: executions, configs, tasks (dataset, task_id), max_runs (the largest k of pass@k).
    totals: dict[str, int]


ATTACKED = "attack <> 'none'"


def collect(wh: HasEngine, *, top: int = 10) -> ReportData:
    """Read everything a report shows from `wh`'s current snapshot (finished executions only), through
    `warehouse.analytics`. Raises WarehouseError for `top` < 1."""
    top = arguments.integer("top", top, minimum=1, maximum=(1 << 31) - 1)
    wh = of(wh)
    scores = analytics.attack_success_rates(wh, by=("agent", "attack"))
    # pass@k: a task is a task_id within one configuration; utility from benign runs, ASR from attacked runs.
    pass_at_k = pl.concat(
        [
            analytics.pass_at_k(wh, by=("agent",), where="attack = 'none'").filter(pl.col("metric") == "benign_score"),
            analytics.pass_at_k(wh, by=("agent",), where=ATTACKED).filter(pl.col("metric") == "attack_score"),
        ]
    ).sort("metric", "agent", "k")
    # Most compromised tasks: counts (success = attack_score >= 1) from task_scores, rate and interval from the rates.
    counts = analytics.task_scores(wh, by=("dataset",), where=ATTACKED).filter(pl.col("attack_runs") > 0)
    rates = analytics.attack_success_rates(wh, by=("dataset", "task_id"), where=ATTACKED)
    agents = (
        analytics.task_scores(wh, by=("dataset", "agent"), where=ATTACKED)
        .filter(pl.col("attack_successes") > 0)
        .group_by("dataset", "task_id")
        .agg(pl.col("agent").unique().sort().str.join(", ").alias("agents"))
    )
    top_tasks = (
        counts.select("dataset", "task_id", runs="attack_runs", compromised="attack_successes")
        .join(rates.select("dataset", "task_id", "asr", "asr_low", "asr_high"), on=["dataset", "task_id"])
        .sort(["asr", "compromised", "dataset", "task_id"], descending=[True, True, False, False])
        .head(top)
        .join(agents, on=["dataset", "task_id"], how="left", maintain_order="left")
        .select("dataset", "task_id", "runs", "compromised", "asr", "asr_low", "asr_high", "agents")
    )
    usage = analytics.usage(wh, by=("dataset", "agent", "attack", "config_hash", "model"))
    tasks = int(analytics.attack_success_rates(wh, by="all")["n_tasks"][0] or 0)  # n_tasks of `scores`: one definition
    totals = {
        "executions": int(usage["n"].sum()),
        "configs": usage["config_hash"].n_unique(),
        "tasks": tasks,
        "max_runs": int(pass_at_k["k"].max() or 0),
    }
    return ReportData(scores, pass_at_k, top_tasks, usage, totals)


# -- formatting -----------------------------------------------------------------------------------
def _pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _interval(lo: float | None, hi: float | None) -> str:
    return "" if lo is None or hi is None else f"[{100 * lo:.0f}, {100 * hi:.0f}]"


def _num(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _usd(v: float | None) -> str:
    return "–" if v is None else f"${v:,.4f}"


def _esc(v: Any) -> str:
    """Text for HTML: markup escaped, control characters shown as escapes (`warehouse.literal`)."""
    return html.escape(escape_controls(str(v)), quote=True)


def _label(v: Any) -> str:
    """A stored value as a chart label: literal, on one line (matplotlib's math parsing is off, see RC)."""
    return escape_controls(str(v), newlines=False)


@dataclass(frozen=True)
class Col:
    """One table column: a frame column, its header and how its cells read."""

    name: str
    header: str
    fmt: str = "num"  # num | pct | usd | text


def _table(df: pl.DataFrame, cols: Sequence[Col], caption: str, *, interval: str | None = None) -> str:
    """An HTML table of `df`; numeric cells carry their exact value in `data-value`.

    `interval="asr"` adds the column's Wilson interval (asr_low/asr_high) after the rate.
    """
    head = "".join(f'<th scope="col">{_esc(c.header)}</th>' for c in cols)
    body = []
    for row in df.iter_rows(named=True):
        cells = []
        for c in cols:
            v = row[c.name]
            if c.fmt == "text":
                cells.append(f'<td data-col="{c.name}">{_esc("–" if v is None else v)}</td>')
                continue
            text = _pct(v) if c.fmt == "pct" else _usd(v) if c.fmt == "usd" else _num(v)
            lo, hi = row.get(f"{c.name}_low"), row.get(f"{c.name}_high")
            if c.fmt == "pct" and lo is not None and hi is not None:
                text += f' <span class="ci">{_interval(lo, hi)}</span>'
            value = "" if v is None else f' data-value="{v!r}"'
            cells.append(f'<td class="n" data-col="{c.name}"{value}>{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(cols)}" class="empty">no rows</td></tr>')
    return (
        f'<div class="table-wrap"><table><caption>{_esc(caption)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def shown_ks(max_k: int) -> list[int]:
    """The k columns of the pass@k table: every k up to 8, beyond that 1, 2, 3, 5, 10, 20, 50, ... and the largest."""
    if max_k <= 8:
        return list(range(1, max_k + 1))
    ks = [k for k in (1, 2, 3, 5) if k <= max_k]
    step = 10
    while step < max_k:
        ks += [k for k in (step, 2 * step, 5 * step) if k < max_k]
        step *= 10
    return sorted(set(ks + [max_k]))


def _max_k(passk: pl.DataFrame) -> int:
    """The largest k of a pass@k frame (0 if it has none)."""
    top = passk["k"].max()
    return int(top) if isinstance(top, int) else 0


def _pass_at_k_table(passk: pl.DataFrame) -> str:
    """pass@k per metric and agent, one column per k (see `shown_ks`), with the tasks counted at k = 1
    and the most excluded at any k."""
    max_k = _max_k(passk)
    ks = shown_ks(max_k)
    if passk.is_empty():
        wide = pl.DataFrame(
            schema={"metric": pl.String, "agent": pl.String, "n_tasks": pl.Int64, "n_excluded": pl.Int64}
        )
    else:
        wide = (
            passk.filter(pl.col("k").is_in(ks))
            .pivot(on="k", index=["metric", "agent"], values="pass_at_k", sort_columns=True)
            .rename({str(k): f"pass_at_{k}" for k in ks})
            .join(
                passk.group_by("metric", "agent").agg(
                    pl.col("n_tasks").filter(pl.col("k") == 1).first(), pl.col("n_excluded").max()
                ),
                on=["metric", "agent"],
            )
            .sort(pl.col("metric") == "attack_score", "agent")
        )
    cols = [
        Col("metric", "metric", "text"),
        Col("agent", "agent", "text"),
        Col("n_tasks", "tasks"),
        *(Col(f"pass_at_{k}", f"pass@{k}", "pct") for k in ks),
        Col("n_excluded", "excluded (max)"),
    ]
    return _table(wide, cols, "pass@k per agent")


# -- charts ---------------------------------------------------------------------------------------
_SVG_IDS = re.compile(r'\bid="([^"]+)"')


def _svg(fig: Figure, name: str, label: str) -> str:
    """`fig` as an inline <svg> element: no XML prolog or metadata, ids prefixed with `name` so that
    several charts on one page never share an id, text kept as text (small, searchable)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": name}):
        fig.savefig(
            buf,
            format="svg",
            bbox_inches="tight",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->\s*", "", svg, flags=re.S)
    for old in set(_SVG_IDS.findall(svg)):
        new = f"{name}-{old}"
        svg = (
            svg.replace(f'id="{old}"', f'id="{new}"')
            .replace(f'"#{old}"', f'"#{new}"')
            .replace(f"(#{old})", f"(#{new})")
        )
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_esc(label)}" ', 1).strip()


def _style(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _colours(names: Iterable[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(set(names)))}


def heatmap_svg(scores: pl.DataFrame) -> str | None:
    """ASR per agent (rows) x attack (columns), each cell annotated with its rate, interval and n."""
    attacked = scores.filter((pl.col("attack") != BENIGN) & pl.col("asr").is_not_null())
    if attacked.is_empty():
        return None
    agents = sorted(attacked["agent"].unique().to_list())
    attacks = sorted(attacked["attack"].unique().to_list())
    cells = {(r["agent"], r["attack"]): r for r in attacked.iter_rows(named=True)}
    grid = [[cells[(a, k)]["asr"] if (a, k) in cells else float("nan") for k in attacks] for a in agents]
    fig = Figure(figsize=(1.6 + 2.2 * len(attacks), 0.7 + 0.8 * len(agents)))
    ax = fig.subplots()
    # Ten 10-point bands: cells read against the colour bar, and everything stays vector (no embedded bitmap).
    cmap = matplotlib.colormaps[HEATMAP_CMAP].resampled(10)
    im = ax.pcolormesh(grid, cmap=cmap, vmin=0.0, vmax=1.0, edgecolors="white", linewidth=2)
    ax.set_xlim(0, len(attacks))
    ax.set_ylim(len(agents), 0)
    for i, a in enumerate(agents):
        for j, k in enumerate(attacks):
            r = cells.get((a, k))
            if r is None:
                ax.text(j + 0.5, i + 0.5, "no runs", ha="center", va="center", fontsize=9, color="#555555")
                continue
            rgb = cmap(r["asr"])[:3]
            dark = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] < 0.5
            ax.text(
                j + 0.5,
                i + 0.5,
                f"{_pct(r['asr'], 0)}\n{_interval(r['asr_low'], r['asr_high'])}  n={r['n']}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else "black",
            )
    ax.set_xticks([j + 0.5 for j in range(len(attacks))], [_label(k) for k in attacks])
    ax.set_yticks([i + 0.5 for i in range(len(agents))], [_label(a) for a in agents])
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_xlabel("attack")
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("attack success rate")
    bar.ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    return _svg(fig, "heatmap", "Heatmap of attack success rate per agent and attack")


def _error_bar(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    """Matplotlib's (minus, plus) error of an estimate and its interval: none where there is no
    interval (a mean of scores outside [0, 1] has no Wilson interval)."""
    if low is None or high is None:
        return 0.0, 0.0
    return max(0.0, value - low), max(0.0, high - value)


def scatter_svg(scores: pl.DataFrame) -> str | None:
    """Utility under attack (y) against ASR (x), one point per agent x attack with 95% intervals on both axes."""
    attacked = scores.filter(
        (pl.col("attack") != BENIGN) & pl.col("asr").is_not_null() & pl.col("utility").is_not_null()
    )
    if attacked.is_empty():
        return None
    colour = _colours(attacked["agent"])
    marker = {k: MARKERS[i % len(MARKERS)] for i, k in enumerate(sorted(attacked["attack"].unique()))}
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    for r in attacked.sort("agent", "attack").iter_rows(named=True):
        xerr = _error_bar(r["asr"], r["asr_low"], r["asr_high"])
        yerr = _error_bar(r["utility"], r["utility_low"], r["utility_high"])
        ax.errorbar(
            r["asr"],
            r["utility"],
            xerr=[[xerr[0]], [xerr[1]]],
            yerr=[[yerr[0]], [yerr[1]]],
            fmt=marker[r["attack"]],
            color=colour[r["agent"]],
            ecolor=colour[r["agent"]],
            elinewidth=0.9,
            capsize=2,
            markersize=7,
            alpha=0.9,
        )
    benign = [
        r
        for r in scores.filter((pl.col("attack") == BENIGN) & pl.col("agent").is_in(list(colour))).iter_rows(named=True)
        if r["utility"] is not None
    ]
    for r in benign:
        ax.axhline(r["utility"], color=colour[r["agent"]], linestyle="--", linewidth=1, alpha=0.7)
    # Axes span the points with their intervals (and the dashed lines), not all of [0, 1]: rates that
    # sit in 5-60 % would otherwise leave half the plot empty.
    ax.set_xlim(*axis_range([*attacked["asr"], *attacked["asr_low"], *attacked["asr_high"]]))
    ax.set_ylim(
        *axis_range(
            [*attacked["utility"], *attacked["utility_low"], *attacked["utility_high"], *(r["utility"] for r in benign)]
        )
    )
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel("attack success rate (lower is better)")
    ax.set_ylabel("utility under attack (higher is better)")
    ax.annotate("better", xy=(0.03, 0.97), xycoords="axes fraction", ha="left", va="top", color="#555555")
    _style(ax)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    agents = ax.legend(
        handles=[Patch(color=c, label=_label(a)) for a, c in colour.items()],
        title="agent",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    ax.add_artist(agents)
    ax.legend(
        handles=[
            *(Line2D([], [], color="#555555", marker=m, linestyle="", label=_label(k)) for k, m in marker.items()),
            Line2D([], [], color="#555555", linestyle="--", label="utility without attack"),
        ],
        title="attack",
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        frameon=False,
    )
    return _svg(fig, "scatter", "Scatter of utility under attack against attack success rate per agent")


def axis_range(values: Sequence[float | None], *, min_span: float = 0.2) -> tuple[float, float]:
    """The limits of a rate axis showing `values` (None, an interval a mean outside [0, 1] does not
    have, is left out): their range widened by 8 % of it on each side (at least `min_span` in all),
    kept within [-0.02, 1.02] (a little beyond [0, 1], so that points at 0 or 1 are not cut) when
    every value is a rate."""
    shown = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = (min(shown), max(shown)) if shown else (0.0, 1.0)
    rates = lo >= 0.0 and hi <= 1.0
    pad = 0.08 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    if not rates:
        return lo, hi
    if lo < -0.02:
        lo, hi = -0.02, min(1.02, hi + (-0.02 - lo))
    if hi > 1.02:
        lo, hi = max(-0.02, lo - (hi - 1.02)), 1.02
    return lo, hi


def pass_at_k_svg(passk: pl.DataFrame) -> str | None:
    """pass@k against k per agent: utility (benign_score) and attack success (attack_score) side by side."""
    if passk.is_empty():
        return None
    colour = _colours(passk["agent"])
    metrics = [
        ("benign_score", "utility: pass@k (task solved in ≥1 of k runs)"),
        ("attack_score", "attack: pass@k (compromised in ≥1 of k runs)"),
    ]
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    max_k = _max_k(passk)
    for ax, (metric, title) in zip(axes, metrics):
        sub = passk.filter(pl.col("metric") == metric)
        for i, agent in enumerate(sorted(sub["agent"].unique())):
            g = sub.filter(pl.col("agent") == agent).sort("k")
            ax.plot(
                g["k"].to_list(),
                g["pass_at_k"].to_list(),
                marker=MARKERS[i % len(MARKERS)],
                color=colour[agent],
                label=_label(agent),
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("k (runs per task)")
        ax.set_xticks(range(1, max_k + 1))
        ax.set_xlim(0.5, max_k + 0.5)
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
        _style(ax)
        if sub.is_empty():
            ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", color="#555555")
    axes[0].set_ylabel("pass@k")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="agent")
    return _svg(fig, "passk", "Line chart of pass@k against k per agent")


def top_tasks_svg(tasks: pl.DataFrame) -> str | None:
    """Horizontal bars: the compromise rate of the most compromised tasks, with 95% intervals."""
    if tasks.is_empty():
        return None
    labels = [_label(f"{d} / {t}") for d, t in zip(tasks["dataset"], tasks["task_id"])][::-1]
    asr = tasks["asr"].to_list()[::-1]
    bars = [
        _error_bar(a, lo, hi)
        for a, lo, hi in zip(asr, tasks["asr_low"].to_list()[::-1], tasks["asr_high"].to_list()[::-1])
    ]
    lo, hi = [b[0] for b in bars], [b[1] for b in bars]
    fig = Figure(figsize=(6.4, 0.9 + 0.32 * len(labels)))
    ax = fig.subplots()
    ax.barh(range(len(labels)), asr, xerr=[lo, hi], color=PALETTE[5], ecolor="#333333", capsize=2, height=0.6)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_xlabel("share of attacked runs compromised")
    _style(ax)
    ax.grid(False, axis="y")
    return _svg(fig, "tasks", "Bar chart of the tasks most often compromised")


def cost_svg(usage: pl.DataFrame) -> str | None:
    """Horizontal bars: total cost per configuration, coloured by agent."""
    if usage.is_empty() or usage["cost"].is_null().all():
        return None
    colour = _colours(usage["agent"])
    rows = list(usage.iter_rows(named=True))[::-1]
    fig = Figure(figsize=(6.4, 0.9 + 0.28 * len(rows)))
    ax = fig.subplots()
    ax.barh(range(len(rows)), [r["cost"] or 0.0 for r in rows], color=[colour[r["agent"]] for r in rows], height=0.65)
    ax.set_yticks(
        range(len(rows)), [_label(f"{r['dataset']} · {r['agent']} · {r['attack']}") for r in rows], fontsize=8
    )
    ax.set_xlabel("total cost (USD)")
    _style(ax)
    ax.grid(False, axis="y")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=c, label=_label(a)) for a, c in colour.items()],
        frameon=False,
        loc="lower right",
        title="agent",
    )
    return _svg(fig, "cost", "Bar chart of total cost per configuration")


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
