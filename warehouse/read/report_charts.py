"""The charts of a report: matplotlib figures rendered to inline SVG (no XML prolog or metadata, ids
unique on the page, text kept as text). Imported with `warehouse.read.report` only, so matplotlib
loads only when a report is built.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
import polars as pl
from matplotlib.figure import Figure

from warehouse.read.report_data import BENIGN
from warehouse.read.report_tables import _esc, _interval, _label, _max_k, _pct

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.typing import RcKeyType

#: Okabe–Ito: a categorical palette that stays distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Sequential, colour-blind safe (ColorBrewer); fixed to [0, 1] so the same rate is the same colour in every report.
HEATMAP_CMAP = "YlOrRd"
#: Chart settings: labels are data (an agent called "$x$" is not TeX), SVG text stays text (small, searchable).
RC: dict[RcKeyType, Any] = {"text.parse_math": False, "svg.fonttype": "none", "font.size": 10}


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
