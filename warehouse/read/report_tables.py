"""How a report's numbers read: cell and label formatting, and the HTML tables next to each chart
(every value escaped; numeric cells carry their exact value in `data-value`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from warehouse.core.literal import escape_controls


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
