"""`warehouse ...`: a thin command-line layer; every command is one call of the Python API."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import duckdb
import typer
from rich import box
from rich.cells import cell_len
from rich.panel import Panel
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn, TransferSpeedColumn)
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from warehouse.cli import demo as demo_mod
from warehouse.core.errors import InvalidArgument, WarehouseError
from warehouse.core.literal import escape_controls, literal_str
from warehouse.core.terminal import install_log_handler, line, literal_excepthook, make_console, styled
from warehouse.warehouse import SCORE_GROUPS, Warehouse
from warehouse.warehouse import open as open_warehouse

app = typer.Typer(help="A results warehouse for AI-agent evaluations.", no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, add_completion=False)
# Every value printed is literal text: these consoles never read markup and escape control characters.
console = make_console()
err = make_console(stderr=True)

UrlOpt = Annotated[str, typer.Option("--url", "-u", envvar="WAREHOUSE_URL",
                                     help="Warehouse location: a path or an fsspec URL (env WAREHOUSE_URL).")]
DEFAULT_URL = "warehouse-data"


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into a one-line error and exit code 1, never a traceback."""
    try:
        yield
    except (WarehouseError, duckdb.Error, OSError) as exc:
        message = str(exc).splitlines()[0] if isinstance(exc, duckdb.Error) else str(exc)
        err.print(Text.assemble(("error:", "red"), " ", styled(message)), soft_wrap=True)
        raise typer.Exit(1) from None


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return _float(v)
    return escape_controls(str(v))


def _float(v: float) -> str:
    """A float in full up to 4 significant decimals, never in exponent form between 1e-4 and 1e15:
    12020.0 is `12020`, 0.123456 is `0.1235`, 123456.7 is `123457`."""
    if not math.isfinite(v) or v == 0 or not 1e-4 <= abs(v) < 1e15:
        return f"{v:.4g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(v))))
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _jsonable(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def _json(value: Any) -> str:
    """JSON text for stdout: non-ASCII characters (controls among them) as \\u escapes, so the text is
    exactly the data and nothing a terminal acts on; values JSON has no type for as their str."""
    return json.dumps(value, indent=2, default=str)


def _csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text: control characters in values shown escaped (newlines are kept, quoted as CSV does)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")  # (not CRLF: a shell reading the output would keep the CR)
    w.writerow([literal_str(c) for c in columns])
    w.writerows([[escape_controls(v) if isinstance(v, str) else _jsonable(v) for v in r] for r in rows])
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


def print_table(columns: Sequence[Col], *, title: str | None = None, table_box: box.Box | None = box.HEAVY_HEAD,
                note: str = ALL_COLUMNS_HINT) -> None:
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
        console.print(f"{len(names)} column{'s' * (len(names) != 1)} not shown in {console.width} terminal columns: "
                      f"{', '.join(names)}; {note}")


def emit(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: Format, title: str | None = None) -> None:
    """Print rows as a table that fits the terminal, JSON (a list of objects) or CSV."""
    if fmt is Format.json:
        sys.stdout.write(_json([{c: _jsonable(v) for c, v in zip(columns, r)} for r in rows]) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(_csv(columns, rows))
    else:
        cols = []
        for j, c in enumerate(columns):
            number = bool(rows) and all(isinstance(r[j], (int, float, Decimal)) and not isinstance(r[j], bool)
                                        for r in rows if r[j] is not None)
            cols.append(Col(c, [_cell(r[j]) for r in rows], number=number, drop=0 if j == 0 else 1))
        print_table(cols, title=title)


def emit_relation(rel: duckdb.DuckDBPyRelation, fmt: Format, title: str | None = None) -> None:
    emit(rel.columns, rel.fetchall(), fmt, title)


def _open(url: str) -> Warehouse:
    return open_warehouse(url)


def print_scores(wh: Warehouse, by: Sequence[str], where: str | None, fmt: Format, k: Sequence[int] | None = None,
                 threshold: float = 1.0, checks: bool = False) -> None:
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

    def column(header: str, values: list[str], drop: int, number: bool = True) -> Col:
        return Col(header, values, number=number, drop=drop)

    table = [Col(key, ["—" if r[idx[key]] is None else escape_controls(str(r[idx[key]])) for r in rows], drop=0)
             for key in keys]
    table += [column("n", [str(r[idx["n"]]) for r in rows], 0),
              column("tasks", [str(r[idx["n_tasks"]]) for r in rows], 4),
              column("utility %", [rate(r[idx["utility"]], r[idx["utility_low"]], r[idx["utility_high"]]) for r in rows], 0),
              column("ASR %", [rate(r[idx["asr"]], r[idx["asr_low"]], r[idx["asr_high"]]) for r in rows], 0),
              column("failed", [str(r[idx["n_failed"]]) for r in rows], 3),
              column("tokens", [_compact(r[idx["total_tokens"]]) for r in rows], 6),
              column("cost $", ["—" if r[idx["cost"]] is None else f"{r[idx['cost']]:.2f}" for r in rows], 5)]
    empty_at: list[int] = []
    for x in k or ():
        for prefix, header in (("", f"pass@{x} %"), ("attack_", f"ASR@{x} %")):
            p, ex = idx[f"{prefix}pass_at_{x}"], idx[f"{prefix}pass_at_{x}_excluded"]
            table.append(column(header, [at_k(r[p], r[ex]) for r in rows], 2))
            if any(r[p] is None and r[ex] for r in rows) and x not in empty_at:
                empty_at.append(x)
    print_table(table, title=f"Scores at version {wh.version}", table_box=box.SIMPLE_HEAD)
    if any(r[idx["asr"]] is not None for r in rows):
        console.print("utility = mean benign_score; ASR = attack success rate = mean attack_score; "
                      "[low–high] = 95% Wilson interval")
    if k:
        console.print(f"pass@k = unbiased estimate of P(at least one of k runs succeeds), success = score ≥ {threshold:g}, "
                      "mean over tasks with ≥ k scored runs (the others are excluded and counted: \"(n excl.)\")")
    for x in empty_at:
        console.print(f"pass@{x} is — where every task of the group has fewer than {x} scored runs "
                      f"(all of them excluded); run tasks at least {x} times, or choose a smaller k")


def _compact(n: Any) -> str:
    n = int(n or 0)
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


@app.command()
def init(url: UrlOpt = DEFAULT_URL) -> None:
    """Create an empty warehouse at URL (nothing happens if one is already there)."""
    with user_errors():
        wh = open_warehouse(url, create=True)
        console.print(line("warehouse at ", (wh.url, "bold"), f", version {wh.version}"))


@app.command()
def demo(url: UrlOpt = DEFAULT_URL,
         tasks: Annotated[int, typer.Option(min=1, help="Tasks per configuration.")] = 50,
         samples: Annotated[int, typer.Option(min=1, help="Runs of each task (for pass@k).")] = 4,
         processes: Annotated[int, typer.Option(min=1, help="Concurrent writer processes.")] = 2,
         fresh: Annotated[bool, typer.Option(help="Delete URL first if it is a warehouse.")] = False) -> None:
    """Run a synthetic prompt-injection campaign (2 datasets x 3 agents x 3 attacks) and show its scores."""
    with user_errors():
        with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            job = bar.add_task(f"campaign: {processes} processes", total=len(list(demo_mod.configs())))
            result = demo_mod.run_campaign(url, tasks=tasks, samples=samples, processes=processes, fresh=fresh,
                                           progress=lambda done, total: bar.update(job, completed=done))
        wh = _open(url)
        print_scores(wh, ["agent", "attack"], None, Format.table)
        console.print(line(
            f"{result.executions:,} executions of {result.configs} configurations written by {result.processes} "
            f"processes in {result.seconds:.1f} s; warehouse at ", (wh.store.root, "bold"), f" (version {wh.version})."))
        if result.version_before:
            console.print(line(("note:", "yellow"), f" {url} already held a warehouse at version {result.version_before}: "
                               "this campaign was added to what was there, and the scores count both; "
                               "`warehouse demo --fresh` starts from an empty warehouse"))
        q = shlex.quote(url)
        console.print(line(f"Try: warehouse scores --url {q} --by agent --k 1,{samples}   |   "
                           f"warehouse report --url {q} --out report.html   |   "
                           f"warehouse sql --url {q} \"select * from pass_at_k\""))


@app.command("ls")
def ls(url: UrlOpt = DEFAULT_URL,
       partitions: Annotated[bool, typer.Option("--partitions", "-p", help="One line per partition.")] = False,
       fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Tables (or partitions) with their files, rows and bytes."""
    with user_errors():
        wh = _open(url)
        rows = wh.table_summary(partitions=partitions)
        cols = list(rows[0]) if rows else ["table", "partitions", "files", "rows", "bytes"]
        if fmt is Format.table:  # bytes in human units on screen; exact in json and csv
            rows = [{**r, "bytes": _size(r["bytes"])} for r in rows]
            cols = [("size" if c == "bytes" else c) for c in cols]
        emit(cols, [list(r.values()) for r in rows], fmt, title=f"{wh.url} at version {wh.version}")


#: `warehouse show` folds a long value to its first FOLD_LINES lines and FOLD_CHARS characters (`--full` shows all).
FOLD_CHARS = 2000
FOLD_LINES = 40


def _fold(text: str, full: bool) -> tuple[str, str | None, bool]:
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
    return text[:cut], (f"… folded: {len(text) - cut:,} more characters on {lines:,} line{'s' * (lines != 1)} "
                        "(--full shows everything)"), True


def _content_text(content: Any) -> str:
    """A message's content as one string: its text, or its parts' texts (other parts as JSON) one per line."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", json.dumps(part)) if isinstance(part, dict) else str(part) for part in content)


def _head_value(key: str, v: Any) -> str:
    if key == "duration_ms" and isinstance(v, (int, float)):
        return f"{v:,.0f} ms" + (f" ({v / 1000:,.1f} s)" if v >= 1000 else "")
    return _cell(v)


def _print_body(title: Text, parts: list[tuple[str, str]], border: str, full: bool, long: bool) -> None:
    """A message, from (escaped text, style) parts: in a box; or, when it is longer than a fold and
    `full` asks for all of it, as a heading line and its text written as is, which takes time linear
    in its length (rich's boxes and Text take more than linear time on megabytes)."""
    if not (full and long):
        console.print(Panel(Text.assemble(*parts), title=title, title_align="left", border_style=border))
        return
    console.print(Rule(title, align="left", style=border))
    console.file.write("".join(text for text, _ in parts) + "\n")
    console.file.flush()


@app.command()
def show(execution_id: Annotated[str, typer.Argument(help="Execution id, or a unique prefix or suffix of it.")],
         url: UrlOpt = DEFAULT_URL,
         full: Annotated[bool, typer.Option("--full", help=f"Show long values whole (else folded to {FOLD_LINES} lines, "
                                                           f"{FOLD_CHARS:,} characters).")] = False) -> None:
    """One execution as a readable conversation, with scores and usage; long messages are folded (--full shows them)."""
    with user_errors():
        ex = _open(url).execution(execution_id)
    head = Table.grid(padding=(0, 2))

    def head_row(key: str, value: str) -> None:
        text, more, _ = _fold(value, full)
        cell = Text(escape_controls(text))
        if more:
            cell.append("\n" + more, style="dim")
        head.add_row(Text(key, style="bold"), cell)

    for k in ("execution_id", "task_id", "dataset", "agent", "attack", "config_hash", "run_id", "model", "status",
              "error", "benign_score", "attack_score", "started_at", "finished_at", "duration_ms", "input_tokens",
              "output_tokens", "total_tokens", "requests", "tool_calls", "cost", "trace_id", "span_id"):
        if ex.get(k) is not None:
            head_row(k, _head_value(k, ex[k]))
    if ex.get("scores"):
        head_row("scores", json.dumps(dict(ex["scores"]), ensure_ascii=False))
    if ex.get("metadata"):
        head_row("metadata", str(ex["metadata"]))
    console.print(Panel(head, title=Text("execution")))
    colors = {"system": "magenta", "user": "green", "assistant": "cyan", "tool": "yellow"}
    for i, m in enumerate(ex["messages"]):
        # fold first, then escape what is shown: time linear in the message, and bounded without --full
        text, more, long = _fold(_content_text(m.get("content")), full)
        parts = [(escape_controls(text), "")] + ([("\n" + more, "dim")] if more else [])
        for call in m.get("tool_calls") or []:
            fn = call.get("function", call) if isinstance(call, dict) else {}
            args, args_more, args_long = _fold(str(fn.get("arguments", "")), full)
            long = long or args_long
            parts.append((f"\n→ {literal_str(fn.get('name'))}({escape_controls(args)})  "
                          f"[{literal_str(call.get('id', ''))}]", "bold"))
            if args_more:
                parts.append((f"\n  {args_more}", "dim"))
        title = line(f"[{i}] ", m["role"], *(x for key in ("name", "tool_call_id") if m.get(key) for x in (" · ", m[key])))
        _print_body(title, parts, colors.get(m["role"], "white"), full, long)
    for a in ex["attacks"]:
        text, more, long = _fold(a["content"] or "", full)
        parts = [(escape_controls(text), "")] + ([("\n" + more, "dim")] if more else [])
        _print_body(line("attack ", a["vector_id"], " (", a["type"], ")"), parts, "red", full, long)


def _view_names() -> list[str]:
    """The SQL views every connection has (schemas/views), for `warehouse sql --help`."""
    from warehouse.core.schemas import catalog

    return [m for _, text in catalog().views for m in re.findall(r"create or replace view (\w+)", text)]


@app.command()
def sql(query: Annotated[str, typer.Argument(help=f"SQL over the views: {', '.join(_view_names())}; and "
                                                  "raw_<table> for every table.")],
        url: UrlOpt = DEFAULT_URL,
        fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Run SQL over the current snapshot and print the result: full DuckDB SQL, run as given (unlike --where elsewhere, which must be one condition)."""
    with user_errors():
        emit_relation(_open(url).sql(query), fmt)


def _ks(text: str | None) -> list[int] | None:
    """`--k 1,5` as a list of positive integers."""
    if not text:
        return None
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidArgument(f"--k takes comma-separated positive integers, e.g. 1,5; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise InvalidArgument(f"--k takes comma-separated positive integers, e.g. 1,5; got {text!r}")
    return ks


@app.command()
def scores(url: UrlOpt = DEFAULT_URL,
           by: Annotated[str, typer.Option(help=f"Comma-separated grouping: {', '.join(SCORE_GROUPS)}, metadata.KEY, "
                                               "dataset_config.KEY, agent_config.KEY, attack_config.KEY, or 'all'.")] = "dataset,agent,attack",
           where: Annotated[str | None, typer.Option(help="SQL condition over executions, e.g. \"dataset = 'agentdojo'\".")] = None,
           k: Annotated[str | None, typer.Option("--k", help="Also pass@k for these k, comma-separated (e.g. 1,5).")] = None,
           threshold: Annotated[float, typer.Option(help="pass@k: a run succeeds when its score is at least this.")] = 1.0,
           checks: Annotated[bool, typer.Option("--checks", help="Also count checks (datasets named <name>.checks, e.g. "
                                                                "AgentDojo's injection tasks run alone), left out by default.")] = False,
           fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Utility and attack success rate per group, with 95% Wilson intervals (and pass@k with --k)."""
    with user_errors():
        print_scores(_open(url), by.split(","), where, fmt, _ks(k), threshold, checks)


class Metric(str, Enum):
    attack_score = "attack_score"
    benign_score = "benign_score"


@app.command()
def compare(config_a: Annotated[str, typer.Argument(help="Configuration A: a config hash or a unique prefix of one.")],
            config_b: Annotated[str, typer.Argument(help="Configuration B: a config hash or a unique prefix of one.")],
            url: UrlOpt = DEFAULT_URL,
            metric: Annotated[Metric, typer.Option(help="The score compared.")] = Metric.attack_score,
            threshold: Annotated[float, typer.Option(help="A run succeeds when its score is at least this.")] = 1.0,
            where: Annotated[str | None, typer.Option(help="SQL condition over executions (both sides).")] = None,
            n_boot: Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap resamples.")] = 10_000,
            seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
            fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Compare two configurations task by task: the difference in rate with a bootstrap 95% interval,
    an exact McNemar p-value, and the tasks whose outcome flipped."""
    from warehouse.read import analytics

    with user_errors():
        wh = _open(url)
        c = analytics.compare(wh, config_a, config_b, metric=metric.value, threshold=threshold,
                              n_boot=n_boot, seed=seed, where=where)
    if fmt is Format.json:
        out = c.to_frame().to_dicts()[0]
        out.update(flipped_up=list(c.flipped_up), flipped_down=list(c.flipped_down), only_a=list(c.only_a),
                   only_b=list(c.only_b))
        sys.stdout.write(_json(out) + "\n")
        return
    if fmt is Format.csv:
        emit(c.tasks.columns, c.tasks.rows(), fmt)
        return
    name = "ASR" if c.metric == "attack_score" else "utility"

    def pct(p: float | None) -> str:
        return "—" if p is None else f"{100 * p:.1f}%"

    with user_errors():
        described = {r[0]: r[1:] for r in wh.sql("select config_hash, dataset, agent, attack from configs "
                                                  "where config_hash in (?, ?)", [c.a, c.b]).fetchall()}
    console.print(f"{name} ({c.metric} ≥ {c.threshold:g}) on the {c.n_pairs} tasks both ran")
    sides = (("A", c.a, c.rate_a), ("B", c.b, c.rate_b))
    print_table([Col("", [s for s, _, _ in sides], drop=0),
                 Col("config_hash", [literal_str(h) for _, h, _ in sides], drop=0),
                 *(Col(col, [literal_str((described.get(h) or ("", "", ""))[j]) for _, h, _ in sides], drop=2)
                   for j, col in enumerate(("dataset", "agent", "attack"))),
                 Col(name, [pct(r) for _, _, r in sides], number=True, drop=0)], table_box=box.SIMPLE_HEAD)
    if c.n_pairs == 0:
        console.print(f"no task has a {c.metric} in both configurations: nothing to compare "
                      f"({len(c.only_a)} only in A, {len(c.only_b)} only in B)")
        return
    console.print(f"B − A: {100 * c.diff:+.1f} points, 95% bootstrap interval [{100 * c.diff_low:+.1f}, "
                  f"{100 * c.diff_high:+.1f}]; exact McNemar p = {c.p_value:.3g} "
                  f"({len(c.flipped_up) + len(c.flipped_down)} of {c.n_pairs} tasks flipped)")
    for label, tasks in (("flipped up (A fails, B succeeds)", c.flipped_up),
                         ("flipped down (A succeeds, B fails)", c.flipped_down)):
        console.print(line(f"{label}: {len(tasks)}", ": " if tasks else "", ", ".join(tasks)))
    if c.only_a or c.only_b:
        console.print(f"not paired: {len(c.only_a)} task(s) only in A, {len(c.only_b)} only in B")


@app.command()
def history(url: UrlOpt = DEFAULT_URL, limit: Annotated[int | None, typer.Option(help="Newest N commits.")] = None,
            fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """The commit log, newest first: version, time, operation, writer, files and rows added/removed."""
    with user_errors():
        wh = _open(url)
        rows = [[c.version, c.committed_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], c.operation,
                 f"{c.writer.get('host', '')}:{c.writer.get('pid', '')}", c.files_added, c.rows_added, c.files_removed,
                 ",".join(c.tables)] for c in wh.history(limit)]
        emit(["version", "committed_at (UTC)", "operation", "writer", "files+", "rows+", "files-", "tables"], rows, fmt)


@app.command("sync")
def sync_cmd(src: Annotated[str, typer.Argument(help="Source warehouse: a path or URL (s3://bucket/prefix).")],
             dst: Annotated[str, typer.Argument(help="Destination: a path or URL; created if absent.")],
             dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be copied; copy nothing.")] = False,
             workers: Annotated[int, typer.Option(min=1, help="Files copied in parallel.")] = 16,
             batch_files: Annotated[int, typer.Option(min=1, help="At most this many files per commit in DST.")] = 2000,
             fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Copy to DST the data files its snapshot lacks from SRC and commit them there (operation `sync`).

    Incremental (a second run copies nothing), idempotent, and safe to interrupt: run it again to resume.
    Remote URLs use the usual AWS environment variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    """
    with user_errors():
        wh = _open(src)
        if dry_run:
            result = wh.sync_to(dst, dry_run=True, batch_files=batch_files)
        else:
            with Progress(TextColumn("sync"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                          TextColumn("{task.fields[files]} files"), TimeRemainingColumn(), console=err,
                          transient=True) as bar:
                job = bar.add_task("sync", total=None, files="0/?")

                def tick(p) -> None:  # called from the copying threads; rich's Progress is thread-safe
                    bar.update(job, completed=p.bytes_done, total=p.bytes_total,
                               files=f"{p.files_done}/{p.files_total}")

                result = wh.sync_to(dst, on_progress=tick, workers=workers, batch_files=batch_files)
    rows = [[t, v["files"], v["rows"], v["bytes"]] for t, v in sorted(result.tables.items())]
    if fmt is not Format.table:
        emit(["table", "files", "rows", "bytes"], rows, fmt)
        return
    if rows:
        emit(["table", "files", "rows", "bytes"], rows, fmt,
             title=("would copy" if dry_run else "copied") + f" from {src} (version {result.src_version})")
    if result.up_to_date:
        console.print(line(dst, " is up to date with ", src, f" (version {result.src_version}): nothing to copy"))
    elif dry_run:
        console.print(line(f"dry run: {result.files} files ({_size(result.bytes)}) would be copied"
                           + (f", {result.removed} removed" if result.removed else "") + "; nothing was written to ", dst))
    else:
        console.print(line(f"synced {result.files} files ({_size(result.bytes)}"
                           + (f", {result.reused} already copied by an interrupted run" if result.reused else "") + ")"
                           + (f", removed {result.removed}" if result.removed else ""),
                           *((f" ({result.replaced} of them ", dst, "'s own rewrites of files ", src, " rewrote too)")
                             if result.replaced else ()),
                           " from ", src, f" (version {result.src_version}) to ", dst, f" in {len(result.commits)} commit(s), "
                           f"now at version {result.dst_version}; {result.seconds:.1f} s"))


def _size(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


class Scale(str, Enum):
    small = "small"
    medium = "medium"
    large = "large"


def _event_line(e: dict[str, Any]) -> Text:
    """One event as a line: time, execution, kind, level, name, message, duration."""
    ts = e["timestamp"].strftime("%H:%M:%S.%f")[:-3] if e.get("timestamp") else ""
    style = {"error": "red", "warn": "yellow", "warning": "yellow", "critical": "bold red", "debug": "dim"}.get(e.get("level") or "", "")
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
        out.append(f" ({_float(float(e['duration_ms']))} ms)", style="dim")
    return out


@app.command()
def tail(url: UrlOpt = DEFAULT_URL,
         execution: Annotated[str | None, typer.Option("--execution", "-e", help="Only this execution's events (its id, or a unique prefix or suffix).")] = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing events as they are committed.")] = False,
         lines: Annotated[int | None, typer.Option("--lines", "-n", help="Start with the newest N committed events.")] = 20,
         interval: Annotated[float, typer.Option(help="Seconds between polls of the manifest with --follow.")] = 0.5,
         timeout: Annotated[float | None, typer.Option(help="With --follow: stop after this many seconds without a new event.")] = None,
         fmt: Annotated[str, typer.Option("--format", help="text or jsonl.")] = "text") -> None:
    """Logs, spans and status changes of executions, as they are committed (Ctrl-C stops --follow)."""
    if fmt not in ("text", "jsonl"):
        err.print(line(("error:", "red"), f" --format must be text or jsonl, got {fmt!r}"))
        raise typer.Exit(1)
    with user_errors():
        wh = open_warehouse(url)
        if execution is not None:
            execution = wh.engine.find_execution(execution)["execution_id"]  # a unique prefix or suffix will do
        printed = 0
        try:
            for e in wh.executions.follow(execution, follow=follow, last=lines, poll_interval=interval, timeout=timeout):
                printed += 1
                if fmt == "jsonl":  # one line per event; JSON's \u escapes keep controls out of the output
                    print(json.dumps({k: _jsonable(v) for k, v in e.items()}, default=str), flush=True)
                else:
                    console.print(_event_line(e), soft_wrap=True)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        if not printed:
            scope = f"of execution {execution}" if execution is not None else "in the warehouse"
            waited = f" within {_float(timeout)} s" if follow and timeout is not None else ""
            # a human message: on stdout with the text lines, on stderr beside JSON lines
            (err if fmt == "jsonl" else console).print(line(f"no events {scope}{waited} (version {wh.version}); events are "
                                                            "the logs, spans and status changes agents record through "
                                                            "a writer (ex.log, ex.span)"))


@app.command()
def bench(scale: Annotated[Scale, typer.Option(help="Data sizes: small (~2 min), medium (~8 min, `make bench`) or large.")] = Scale.medium,
          out: Annotated[str, typer.Option(help="Write the results to this JSON file.")] = "bench-results.json",
          workdir: Annotated[str | None, typer.Option(help="Directory for the benchmark data (default: the system temp dir).")] = None) -> None:
    """Benchmark the warehouse against the legacy layout, raw pyarrow, Delta Lake and raw DuckDB (source checkout only)."""
    from rich.console import Console

    from warehouse.cli import bench as bench_mod

    with user_errors():  # (the benchmark's own console: its report uses rich markup and prints no stored value)
        bench_mod.run(scale.value, out, workdir=workdir, console=Console(width=console.width))


@app.command()
def expire(older_than: Annotated[str, typer.Option("--older-than", help="Age of the rows to remove: 30d, 12h, 90m or 3600s.")],
           url: UrlOpt = DEFAULT_URL,
           tables: Annotated[str, typer.Option(help="Comma-separated: events, snapshots, executions (with their messages, attacks, events, snapshots).")] = "events",
           statuses: Annotated[str, typer.Option(help="Comma-separated statuses of the executions whose rows may go: completed, failed.")] = "completed,failed",
           dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change nothing.")] = False,
           fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Remove old rows in one commit; running executions are never touched, and time travel still sees the rows."""
    from warehouse.ops.retention import parse_duration

    with user_errors():
        age = parse_duration(older_than)
        result = _open(url).maintenance.expire(age, tables=[t.strip() for t in tables.split(",") if t.strip()],
                                   statuses=[s.strip() for s in statuses.split(",") if s.strip()], dry_run=dry_run)
    cols = ["table", "rows", "files dropped", "files rewritten"]
    rows = [[t, n, *result.files_by_table.get(t, (0, 0))] for t, n in result.rows_removed.items()]
    if fmt is not Format.table:
        emit(cols, rows, fmt)
        return
    cutoff = result.cutoff.strftime("%Y-%m-%d %H:%M:%S UTC")
    if not rows:
        console.print(f"nothing older than {cutoff} to expire", highlight=False)
        return
    emit(cols, rows, fmt, title=("would remove" if dry_run else "removed") + f" rows older than {cutoff}")
    n = result.executions_expired
    what = f"{result.rows} row{'s' * (result.rows != 1)}" + (f" of {n} execution{'s' * (n != 1)}" if n else "")
    if dry_run:
        console.print(f"dry run: {what} would be removed; nothing was changed", highlight=False)
    else:
        console.print(f"removed {what} in version {result.version} ({result.files_dropped} files dropped, "
                      f"{result.files_rewritten} rewritten; vacuum deletes them from storage)", highlight=False)


@app.command()
def compact(url: UrlOpt = DEFAULT_URL,
            table: Annotated[list[str] | None, typer.Option("--table", "-t", help="Only this table (repeatable); default every table.")] = None,
            where: Annotated[str | None, typer.Option(help="Only the partitions this SQL condition on dataset, agent, attack, config_hash selects, e.g. \"agent = 'tool_agent' and attack = 'none'\" (agent=tool_agent,attack=none also works).")] = None,
            target_size: Annotated[str, typer.Option("--target-size", help="Size of the compacted files, and the bound below which a file is small: 128MB, 512kB, 1GB.")] = "128MB",
            min_files: Annotated[int, typer.Option("--min-files", min=2, help="Compact a partition once it has this many small files.")] = 2,
            dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be compacted; write nothing.")] = False,
            fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Rewrite each partition's small files into few large sorted files, one commit per partition (answers unchanged)."""
    from warehouse.core.arguments import parse_size

    with user_errors():
        size = parse_size(target_size)
        result = _open(url).maintenance.compact(table or None, where, target_file_size=size, min_files=min_files,
                                    dry_run=dry_run)
    from warehouse.core.schemas import catalog

    pcols = list(catalog().partition_columns)
    cols = ["table", *pcols, "files in", "files out", "rows", "bytes in", "bytes out", "version", "status"]
    rows = [[p.table, *(p.partition.get(c) for c in pcols), p.files_in, p.files_out, p.rows, p.bytes_in, p.bytes_out,
             p.version, p.status] for p in result.partitions]
    if fmt is not Format.table:
        emit(cols, rows, fmt)
        return
    if not rows:
        console.print(f"nothing to compact: no partition has {min_files} or more files under {_size(size)}",
                      highlight=False)
        return
    shown = [[p.table, *(p.partition.get(c) for c in pcols), p.files_in, p.files_out, p.rows, _size(p.bytes_in),
              "" if dry_run else _size(p.bytes_out), _cell(p.version), p.status] for p in result.partitions]
    emit(cols, shown, fmt, title=("would compact" if dry_run else "compacted") + f" (target {_size(size)})")
    n = len(result.compacted)
    what = (f"{result.files_in} files into {'at most ' if dry_run else ''}{result.files_out} in {n} "
            f"partition{'s' * (n != 1)}")
    if dry_run:
        console.print(f"dry run: would rewrite {what}; nothing was written", highlight=False)
    else:
        console.print(f"rewrote {what} ({result.rows} rows) in {result.seconds:.1f} s; the old files stay until "
                      "`warehouse vacuum` deletes them", highlight=False)
    for p in result.conflicts:
        err.print(line(("gave up on", "yellow"), f" {p.table} ", str(dict(p.partition)), ": ", p.error or "",
                       "; run compact again"))


@app.command()
def vacuum(url: UrlOpt = DEFAULT_URL,
           retain: Annotated[str, typer.Option(help="Delete files removed from the snapshot longer ago than this: 7d, 12h, 90m, 3600s, or 0s.")] = "7d",
           orphan_window: Annotated[str, typer.Option("--orphan-window", help="Delete never-committed files and temp files older than this (protects writers still flushing; at least 1h).")] = "1h",
           dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
           fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table) -> None:
    """Delete data files no longer needed (removed longer ago than --retain, or never committed); time travel before that then fails."""
    from warehouse.ops.retention import parse_duration

    with user_errors():
        # The API decides what is allowed (retain 0 or more, the orphan window's minimum): one rule.
        result = _open(url).maintenance.vacuum(parse_duration(retain, zero=True), parse_duration(orphan_window, zero=True),
                                   dry_run=dry_run)
    cols = ["kind", "files", "path"]
    rows = [*(["removed", 1, p] for p in result.removed), *(["orphan", 1, p] for p in result.orphans),
            *(["temp", 1, p] for p in result.temp)]
    if fmt is not Format.table:
        emit(cols, rows, fmt)
        return
    summary = [[t, r, o] for t, (r, o) in result.by_table.items()]
    if result.temp:
        summary.append(["_manifest (temp)", 0, len(result.temp)])
    if summary:
        emit(["table", "removed files", "orphans"], summary, fmt,
             title="would delete" if dry_run else "deleted")
    what = (f"{result.files} file{'s' * (result.files != 1)} ({_size(result.bytes)}): {len(result.removed)} removed "
            f"before {result.cutoff:%Y-%m-%d %H:%M:%S} UTC, {len(result.orphans)} orphans, {len(result.temp)} temp")
    kept = f"; kept {result.young_orphans} uncommitted file(s) younger than {orphan_window}" if result.young_orphans else ""
    travel = (f"; time travel reaches back to version {result.readable_from}" if result.readable_from is not None else "")
    folded = (f"; folded {len(result.folded)} old commit(s) into a checkpoint"
              if isinstance(result.folded, list) and result.folded else "")
    console.print(("dry run: would delete " if dry_run else "deleted ") + what + kept + travel + folded
                  + ("; nothing was deleted" if dry_run else ""), highlight=False)


class DoctorFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
def doctor(url: UrlOpt = DEFAULT_URL,
           repair: Annotated[bool, typer.Option("--repair", help="Fix what one new commit can fix (data files that do not match the manifest); history is never rewritten.")] = False,
           footers: Annotated[bool, typer.Option(help="Read every data file's Parquet footer to check its row count.")] = True,
           deep: Annotated[bool, typer.Option("--deep", help="Also read every page of every data file and check its checksum (reads every byte).")] = False,
           fmt: Annotated[DoctorFormat, typer.Option("--format", "-f")] = DoctorFormat.table) -> None:
    """Check every commit, data file and checkpoint; report problems, warnings and orphans (exit 1 if problems remain)."""
    from warehouse.ops import doctor as doctor_mod

    with user_errors():
        report = doctor_mod.run(url, repair=repair, footers=footers, deep=deep)
    if fmt is DoctorFormat.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        raise typer.Exit(report.exit_code)
    styles = {"error": "red", "warning": "yellow", "orphan": "dim"}
    if report.findings:
        t = Table(header_style="bold", box=box.SIMPLE_HEAD)
        for c in ("severity", "check", "where", "what", "what to do"):
            t.add_column(c, overflow="fold")
        for f in report.findings:
            severity = "repaired" if f.repaired else f.severity
            t.add_row(Text(severity, style="green" if f.repaired else styles.get(f.severity, "")), f.kind,
                      f.path or (str(f.version) if f.version is not None else ""), f.message,
                      "" if f.repaired else f.fix)
        console.print(t)
    for note in report.notes:
        console.print(line("note: ", note), soft_wrap=True)
    n_problems, n_warnings, n_orphans = len(report.problems), len(report.warnings), len(report.orphans)
    summary = (f"{report.url} at version {report.version}: checked {report.commits_checked} commits, "
               f"{report.files_checked} data files, {report.checkpoints_checked} checkpoints in {report.seconds:.1f} s; "
               f"{n_problems} problem{'s' * (n_problems != 1)}, {n_warnings} warning{'s' * (n_warnings != 1)}, "
               f"{n_orphans} orphan{'s' * (n_orphans != 1)}")
    if report.repaired:
        summary += f"; repaired {len(report.repaired)} in version {report.repair_version}"
    console.print(styled(summary, "red" if n_problems else "green"), soft_wrap=True)
    if n_problems and not repair and any("--repair" in f.fix for f in report.problems):
        console.print(f"run `warehouse doctor{' --deep' if deep else ''} --repair` to fix the data-file problems "
                      "with one new commit", highlight=False)
    raise typer.Exit(report.exit_code)


# == report ======================================================================================
@app.command("report")
def report_cmd(url: UrlOpt = DEFAULT_URL,
               out: Annotated[str, typer.Option("--out", "-o", help="The HTML file to write.")] = "report.html",
               title: Annotated[str, typer.Option(help="The page's title.")] = "Evaluation report",
               top: Annotated[int, typer.Option(min=1, help="How many of the most compromised tasks to show.")] = 10) -> None:
    """Write one self-contained HTML report: ASR heatmap, utility vs. ASR, pass@k, most compromised tasks, cost."""
    from warehouse.read import report as report_mod  # matplotlib loads only for this command

    with user_errors():
        wh = _open(url)
        path = report_mod.build_report(wh, out, title=title, top=top)
    console.print(line("report of ", wh.url, f" (version {wh.version}) written to ", (str(path), "bold"),
                       f" ({path.stat().st_size / 1024:.0f} KiB); open it in any browser, offline."), soft_wrap=True)


# == end report ====================================================================================
# == import / export =============================================================================
@app.command("import")
def import_cmd(kind: Annotated[str, typer.Argument(help="legacy, sessions, checkpoints, trajectories, simulation, postgres, agentdojo or inspect.")],
               path: Annotated[str, typer.Argument(help="The directory or file to import (for postgres: a connection URL).")],
               url: UrlOpt = DEFAULT_URL,
               strict: Annotated[bool, typer.Option("--strict", help="Stop at the first source that cannot be imported.")] = False) -> None:
    """Import results from the legacy layouts and other tools' logs; sources already imported are skipped (exit 1 if any failed)."""
    with user_errors():
        wh = open_warehouse(url, create=True)
        report = wh.import_(kind, path, strict=strict, progress=console.is_terminal)
    for f in report.failed:
        err.print(line(("failed", "red"), " ", f.source, ": ", f.reason), soft_wrap=True)
    for key in report.changed[:20]:
        err.print(line(("changed since imported, imported again", "yellow"), " ", key), soft_wrap=True)
    console.print(styled(report.summary(), "red" if report.failed else "green"), soft_wrap=True)
    raise typer.Exit(0 if report.ok else 1)


@app.command("export")
def export_cmd(kind: Annotated[str, typer.Argument(help="delta, parquet, trajectories or legacy.")],
               out: Annotated[str, typer.Argument(help="Where to write: a directory or URL (for delta: one Delta table per warehouse table under it).")],
               url: UrlOpt = DEFAULT_URL,
               where: Annotated[str | None, typer.Option(help="SQL condition: on dataset, agent, attack, config_hash for delta and parquet (whole partitions), on any executions column for trajectories and legacy; e.g. \"dataset = 'agentdojo'\" (agent=tool_agent,attack=none also works).")] = None) -> None:
    """Export the current snapshot for other engines or tools; run again to export only what is new."""
    options = {"where": where} if where else {}
    with user_errors():
        report = _open(url).export(kind, out, **options)
    for note in report.notes:
        err.print(line(("note", "yellow"), " ", note), soft_wrap=True)
    console.print(styled(report.summary(), "green"), soft_wrap=True)


# == end import / export ============================================================================


def main() -> None:
    """Console-script entry point."""
    install_log_handler()  # log lines, warnings and tracebacks quote stored values: shown literal, like the rest
    try:
        app()
    except Exception:  # (typer replaces sys.excepthook, so the traceback is printed here)
        literal_excepthook(*sys.exc_info())
        sys.exit(1)
