"""What the command line prints: the consoles, and rows as a table that fits the terminal, JSON or
CSV. Every value printed is literal text: no markup is read, control characters are escaped."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import duckdb
from rich import box
from rich.cells import cell_len
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from warehouse.core.literal import escape_controls, literal_str
from warehouse.core.terminal import make_console
from warehouse.warehouse import Warehouse

# Every value printed is literal text: these consoles never read markup and escape control characters.
console = make_console()
err = make_console(stderr=True)


class Format(str, Enum):
    """`--format`: a table fitted to the terminal, JSON (a list of objects) or CSV."""

    table = "table"
    json = "json"
    csv = "csv"


def cell_text(v: Any) -> str:
    """A value as table-cell text: empty for None, floats shortened, control characters escaped."""
    if v is None:
        return ""
    if isinstance(v, float):
        return format_float(v)
    return escape_controls(str(v))


def format_float(v: float) -> str:
    """A float in full up to 4 significant decimals, never in exponent form between 1e-4 and 1e15:
    12020.0 is `12020`, 0.123456 is `0.1235`, 123456.7 is `123457`."""
    if not math.isfinite(v) or v == 0 or not 1e-4 <= abs(v) < 1e15:
        return f"{v:.4g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(v))))
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def jsonable(v: Any) -> Any:
    """`v` as a JSON-ready value: dates in ISO form, decimals as int or float."""
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def to_json(value: Any) -> str:
    """JSON text for stdout: non-ASCII characters (controls among them) as \\u escapes, so the text is
    exactly the data and nothing a terminal acts on; values JSON has no type for as their str."""
    return json.dumps(value, indent=2, default=str)


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text: control characters in values shown escaped (newlines are kept, quoted as CSV does)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # (not CRLF: a shell reading the output would keep the CR)
    w.writerow([literal_str(c) for c in columns])
    w.writerows([[escape_controls(v) if isinstance(v, str) else jsonable(v) for v in r] for r in rows])
    return buf.getvalue()


ALL_COLUMNS_HINT = "--format csv (or json) prints every column"


@dataclass(eq=False)
class Col:
    """A column of a table printed to the terminal: `number` columns are never cut or wrapped (a
    number is shown whole or not at all); text columns wrap. When the table is too wide, columns
    are left out by `drop` (highest first, then rightmost; 0 = always shown) and the table says so."""

    header: str
    cells: list[Text | str]
    number: bool = False
    drop: int = 1


def print_table(
    columns: Sequence[Col],
    *,
    title: str | None = None,
    table_box: box.Box | None = box.HEAVY_HEAD,
    note: str = ALL_COLUMNS_HINT,
) -> None:
    """Print `columns` as a table that fits the console: text columns wrap down to 10 characters,
    number columns keep their width; what still does not fit is left out and named under the table."""
    kept = list(columns)

    def width(c: Col, minimum: bool) -> int:
        natural = max([cell_len(c.header), *(max(map(cell_len, str(x).split("\n")), default=0) for x in c.cells)])
        return 2 + (natural if c.number or not minimum else min(natural, 10))

    def needed(cols: Sequence[Col]) -> int:
        return sum(width(c, True) for c in cols) + (len(cols) + 1 if table_box else 0)

    dropped: list[Col] = []
    while needed(kept) > console.width:
        candidates = [(c.drop, i) for i, c in enumerate(kept) if c.drop > 0]
        if not candidates:
            break
        dropped.append(kept.pop(max(candidates)[1]))
    t = Table(title=title, header_style="bold", box=table_box)
    for c in kept:
        if c.number:
            t.add_column(c.header, justify="right", no_wrap=True, min_width=width(c, True) - 2)
        else:
            t.add_column(c.header, overflow="fold")
    for i in range(max((len(c.cells) for c in kept), default=0)):
        t.add_row(*(c.cells[i] for c in kept))
    console.print(t)
    if dropped:
        names = [c.header for c in columns if any(c is d for d in dropped)]
        console.print(
            f"{len(names)} column{'s' * (len(names) != 1)} not shown in {console.width} terminal columns: "
            f"{', '.join(names)}; {note}"
        )


def emit(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: Format, title: str | None = None) -> None:
    """Print rows as a table that fits the terminal, JSON (a list of objects) or CSV."""
    if fmt is Format.json:
        sys.stdout.write(to_json([{c: jsonable(v) for c, v in zip(columns, r)} for r in rows]) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(to_csv(columns, rows))
    else:
        cols = []
        for j, c in enumerate(columns):
            number = bool(rows) and all(
                isinstance(r[j], (int, float, Decimal)) and not isinstance(r[j], bool) for r in rows if r[j] is not None
            )
            cols.append(Col(c, [cell_text(r[j]) for r in rows], number=number, drop=0 if j == 0 else 1))
        print_table(cols, title=title)


def emit_relation(rel: duckdb.DuckDBPyRelation, fmt: Format, title: str | None = None) -> None:
    """Print a DuckDB relation's rows as `emit` does."""
    emit(rel.columns, rel.fetchall(), fmt, title)


def print_scores(
    wh: Warehouse,
    by: Sequence[str],
    where: str | None,
    fmt: Format,
    k: Sequence[int] | None = None,
    threshold: float = 1.0,
    checks: bool = False,
) -> None:
    """The scores table: utility and attack success rate with 95% Wilson intervals (and pass@k with `k`)."""
    from warehouse.read.analytics import groups

    rel = wh.scores(by=by, where=where, k=list(k) if k else None, threshold=threshold, checks=checks)
    cols = rel.columns
    rows = rel.fetchall()
    if fmt is not Format.table:
        emit(cols, rows, fmt)
        return
    idx = {c: i for i, c in enumerate(cols)}
    keys = [g.name for g in groups(by)]

    def rate(p: Any, lo: Any, hi: Any) -> str:
        return "—" if p is None else f"{100 * p:.1f} [{100 * lo:.0f}–{100 * hi:.0f}]"

    def at_k(p: Any, excluded: Any) -> str:
        # every task of the group has fewer than k scored runs: say how many were left out
        return ("—" if p is None else f"{100 * p:.1f}") + (f" ({excluded} excl.)" if excluded else "")

    def column(header: str, values: list[Text | str], drop: int, number: bool = True) -> Col:
        return Col(header, values, number=number, drop=drop)

    table = [
        Col(key, ["—" if r[idx[key]] is None else escape_controls(str(r[idx[key]])) for r in rows], drop=0)
        for key in keys
    ]
    table += [
        column("n", [str(r[idx["n"]]) for r in rows], 0),
        column("tasks", [str(r[idx["n_tasks"]]) for r in rows], 4),
        column("utility %", [rate(r[idx["utility"]], r[idx["utility_low"]], r[idx["utility_high"]]) for r in rows], 0),
        column("ASR %", [rate(r[idx["asr"]], r[idx["asr_low"]], r[idx["asr_high"]]) for r in rows], 0),
        column("failed", [str(r[idx["n_failed"]]) for r in rows], 3),
        column("tokens", [compact_count(r[idx["total_tokens"]]) for r in rows], 6),
        column("cost $", ["—" if r[idx["cost"]] is None else f"{r[idx['cost']]:.2f}" for r in rows], 5),
    ]
    empty_at: list[int] = []
    for x in k or ():
        for prefix, header in (("", f"pass@{x} %"), ("attack_", f"ASR@{x} %")):
            p, ex = idx[f"{prefix}pass_at_{x}"], idx[f"{prefix}pass_at_{x}_excluded"]
            table.append(column(header, [at_k(r[p], r[ex]) for r in rows], 2))
            if any(r[p] is None and r[ex] for r in rows) and x not in empty_at:
                empty_at.append(x)
    print_table(table, title=f"Scores at version {wh.version}", table_box=box.SIMPLE_HEAD)
    if any(r[idx["asr"]] is not None for r in rows):
        console.print(
            "utility = mean benign_score; ASR = attack success rate = mean attack_score; "
            "[low–high] = 95% Wilson interval"
        )
    if k:
        console.print(
            f"pass@k = unbiased estimate of P(at least one of k runs succeeds), success = score ≥ {threshold:g}, "
            'mean over tasks with ≥ k scored runs (the others are excluded and counted: "(n excl.)")'
        )
    for x in empty_at:
        console.print(
            f"pass@{x} is — where every task of the group has fewer than {x} scored runs "
            f"(all of them excluded); run tasks at least {x} times, or choose a smaller k"
        )


def compact_count(n: Any) -> str:
    """A count in short form: 1234567 is `1.2M`, None is `0`."""
    n = int(n or 0)
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def human_size(n: int) -> str:
    """A byte count in binary units: 1536 is `1.5 kB`."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


#: `warehouse show` folds a long value to its first FOLD_LINES lines and FOLD_CHARS characters (`--full` shows all).
FOLD_CHARS = 2000
FOLD_LINES = 40


def fold(text: str, full: bool) -> tuple[str, str | None, bool]:
    """`text` cut to FOLD_LINES lines and FOLD_CHARS characters (whole with `full`), a note of what
    was left out (None if nothing was), and whether it is longer than that. Linear in len(text)."""
    cut = min(len(text), FOLD_CHARS)
    pos = -1
    for _ in range(FOLD_LINES):
        pos = text.find("\n", pos + 1, cut)
        if pos < 0:
            break
    else:
        cut = pos
    if cut >= len(text):
        return text, None, False
    if full:
        return text, None, True
    lines = text.count("\n", cut) + 1
    return (
        text[:cut],
        (
            f"… folded: {len(text) - cut:,} more characters on {lines:,} line{'s' * (lines != 1)} "
            "(--full shows everything)"
        ),
        True,
    )


def content_text(content: Any) -> str:
    """A message's content as one string: its text, or its parts' texts (other parts as JSON) one per line."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", json.dumps(part)) if isinstance(part, dict) else str(part) for part in content)


def head_value(key: str, v: Any) -> str:
    """A value of an execution's header in `warehouse show` (durations also in seconds)."""
    if key == "duration_ms" and isinstance(v, (int, float)):
        return f"{v:,.0f} ms" + (f" ({v / 1000:,.1f} s)" if v >= 1000 else "")
    return cell_text(v)


def print_body(title: Text, parts: list[tuple[str, str]], border: str, full: bool, long: bool) -> None:
    """A message, from (escaped text, style) parts: in a box; or, when it is longer than a fold and
    `full` asks for all of it, as a heading line and its text written as is, which takes time linear
    in its length (rich's boxes and Text take more than linear time on megabytes)."""
    if not (full and long):
        console.print(Panel(Text.assemble(*parts), title=title, title_align="left", border_style=border))
        return
    console.print(Rule(title, align="left", style=border))
    console.file.write("".join(text for text, _ in parts) + "\n")
    console.file.flush()


def event_line(e: dict[str, Any]) -> Text:
    """One event as a line: time, execution, kind, level, name, message, duration."""
    ts = e["timestamp"].strftime("%H:%M:%S.%f")[:-3] if e.get("timestamp") else ""
    style = {"error": "red", "warn": "yellow", "warning": "yellow", "critical": "bold red", "debug": "dim"}.get(
        e.get("level") or "", ""
    )

    # every stored value on one line, literal (an event's message is whatever the agent logged)
    def lit(v: Any) -> str:
        return literal_str(v, newlines=False)

    out = Text(f"{ts} {lit((e.get('execution_id') or '-')[-8:]):>8} ")
    out.append(f"{lit(e['kind']):<10}", style="bold cyan" if e["kind"] == "status" else "cyan")
    out.append(f" {lit(e.get('level') or ''):<5}", style=style)
    if e.get("name"):
        out.append(f" {lit(e['name'])}", style="bold")
    if e.get("message"):
        out.append(f" {lit(e['message'])}", style=style)
    if e.get("duration_ms") is not None:
        out.append(f" ({format_float(float(e['duration_ms']))} ms)", style="dim")
    return out
