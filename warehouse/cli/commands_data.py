"""Commands that create a warehouse and look into it: init, demo, ls, show, sql, history, tail."""

from __future__ import annotations

import json
import re
import shlex
import sys
from typing import Annotated

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from warehouse.cli import demo as demo_mod
from warehouse.cli.app import DEFAULT_URL, UrlOpt, user_errors
from warehouse.cli.output import (
    FOLD_CHARS,
    FOLD_LINES,
    Format,
    console,
    content_text,
    emit,
    emit_relation,
    err,
    event_line,
    fold,
    format_float,
    head_value,
    human_size,
    jsonable,
    print_body,
    print_scores,
)
from warehouse.core.literal import escape_controls, literal_str
from warehouse.core.terminal import line
from warehouse.warehouse import open as open_warehouse


def init(url: UrlOpt = DEFAULT_URL) -> None:
    """Create an empty warehouse at URL (nothing happens if one is already there)."""
    with user_errors():
        wh = open_warehouse(url, create=True)
        console.print(line("warehouse at ", (wh.url, "bold"), f", version {wh.version}"))


def demo(
    url: UrlOpt = DEFAULT_URL,
    tasks: Annotated[int, typer.Option(min=1, help="Tasks per configuration.")] = 50,
    samples: Annotated[int, typer.Option(min=1, help="Runs of each task (for pass@k).")] = 4,
    processes: Annotated[int, typer.Option(min=1, help="Concurrent writer processes.")] = 2,
    fresh: Annotated[bool, typer.Option(help="Delete URL first if it is a warehouse.")] = False,
) -> None:
    """Run a synthetic prompt-injection campaign (2 datasets x 3 agents x 3 attacks) and show its scores."""
    with user_errors():
        with Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            job = bar.add_task(f"campaign: {processes} processes", total=len(list(demo_mod.configs())))
            result = demo_mod.run_campaign(
                url,
                tasks=tasks,
                samples=samples,
                processes=processes,
                fresh=fresh,
                progress=lambda done, total: bar.update(job, completed=done),
            )
        wh = open_warehouse(url)
        print_scores(wh, ["agent", "attack"], None, Format.table)
        console.print(
            line(
                f"{result.executions:,} executions of {result.configs} configurations written by {result.processes} "
                f"processes in {result.seconds:.1f} s; warehouse at ",
                (wh.store.root, "bold"),
                f" (version {wh.version}).",
            )
        )
        if result.version_before:
            console.print(
                line(
                    ("note:", "yellow"),
                    f" {url} already held a warehouse at version {result.version_before}: "
                    "this campaign was added to what was there, and the scores count both; "
                    "`warehouse demo --fresh` starts from an empty warehouse",
                )
            )
        q = shlex.quote(url)
        console.print(
            line(
                f"Try: warehouse scores --url {q} --by agent --k 1,{samples}   |   "
                f"warehouse report --url {q} --out report.html   |   "
                f'warehouse sql --url {q} "select * from pass_at_k"'
            )
        )


def ls(
    url: UrlOpt = DEFAULT_URL,
    partitions: Annotated[bool, typer.Option("--partitions", "-p", help="One line per partition.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Tables (or partitions) with their files, rows and bytes."""
    with user_errors():
        wh = open_warehouse(url)
        rows = wh.table_summary(partitions=partitions)
        cols = list(rows[0]) if rows else ["table", "partitions", "files", "rows", "bytes"]
        if fmt is Format.table:  # bytes in human units on screen; exact in json and csv
            rows = [{**r, "bytes": human_size(r["bytes"])} for r in rows]
            cols = [("size" if c == "bytes" else c) for c in cols]
        emit(cols, [list(r.values()) for r in rows], fmt, title=f"{wh.url} at version {wh.version}")


def show(
    execution_id: Annotated[str, typer.Argument(help="Execution id, or a unique prefix or suffix of it.")],
    url: UrlOpt = DEFAULT_URL,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help=f"Show long values whole (else folded to {FOLD_LINES} lines, {FOLD_CHARS:,} characters)."
        ),
    ] = False,
) -> None:
    """One execution as a readable conversation, with scores and usage; long messages are folded (--full shows them)."""
    with user_errors():
        ex = open_warehouse(url).execution(execution_id)
    head = Table.grid(padding=(0, 2))

    def head_row(key: str, value: str) -> None:
        text, more, _ = fold(value, full)
        cell = Text(escape_controls(text))
        if more:
            cell.append("\n" + more, style="dim")
        head.add_row(Text(key, style="bold"), cell)

    for k in (
        "execution_id",
        "task_id",
        "dataset",
        "agent",
        "attack",
        "config_hash",
        "run_id",
        "model",
        "status",
        "error",
        "benign_score",
        "attack_score",
        "started_at",
        "finished_at",
        "duration_ms",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "requests",
        "tool_calls",
        "cost",
        "trace_id",
        "span_id",
    ):
        if ex.get(k) is not None:
            head_row(k, head_value(k, ex[k]))
    if ex.get("scores"):
        head_row("scores", json.dumps(dict(ex["scores"]), ensure_ascii=False))
    if ex.get("metadata"):
        head_row("metadata", str(ex["metadata"]))
    console.print(Panel(head, title=Text("execution")))
    colors = {"system": "magenta", "user": "green", "assistant": "cyan", "tool": "yellow"}
    for i, m in enumerate(ex["messages"]):
        # fold first, then escape what is shown: time linear in the message, and bounded without --full
        text, more, long = fold(content_text(m.get("content")), full)
        parts = [(escape_controls(text), "")] + ([("\n" + more, "dim")] if more else [])
        for call in m.get("tool_calls") or []:
            fn = call.get("function", call) if isinstance(call, dict) else {}
            args, args_more, args_long = fold(str(fn.get("arguments", "")), full)
            long = long or args_long
            parts.append(
                (
                    f"\n→ {literal_str(fn.get('name'))}({escape_controls(args)})  [{literal_str(call.get('id', ''))}]",
                    "bold",
                )
            )
            if args_more:
                parts.append((f"\n  {args_more}", "dim"))
        title = line(
            f"[{i}] ", m["role"], *(x for key in ("name", "tool_call_id") if m.get(key) for x in (" · ", m[key]))
        )
        print_body(title, parts, colors.get(m["role"], "white"), full, long)
    for a in ex["attacks"]:
        text, more, long = fold(a["content"] or "", full)
        parts = [(escape_controls(text), "")] + ([("\n" + more, "dim")] if more else [])
        print_body(line("attack ", a["vector_id"], " (", a["type"], ")"), parts, "red", full, long)


def _view_names() -> list[str]:
    """The SQL views every connection has (schemas/views), for `warehouse sql --help`."""
    from warehouse.core.schemas import catalog

    return [m for _, text in catalog().views for m in re.findall(r"create or replace view (\w+)", text)]


def sql(
    query: Annotated[
        str, typer.Argument(help=f"SQL over the views: {', '.join(_view_names())}; and raw_<table> for every table.")
    ],
    url: UrlOpt = DEFAULT_URL,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Run SQL over the current snapshot and print the result: full DuckDB SQL, run as given (unlike
    --where elsewhere, which must be one condition)."""
    with user_errors():
        emit_relation(open_warehouse(url).sql(query), fmt)


def history(
    url: UrlOpt = DEFAULT_URL,
    limit: Annotated[int | None, typer.Option(help="Newest N commits.")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The commit log, newest first: version, time, operation, writer, files and rows added/removed."""
    with user_errors():
        wh = open_warehouse(url)
        rows = [
            [
                c.version,
                c.committed_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                c.operation,
                f"{c.writer.get('host', '')}:{c.writer.get('pid', '')}",
                c.files_added,
                c.rows_added,
                c.files_removed,
                ",".join(c.tables),
            ]
            for c in wh.history(limit)
        ]
        emit(["version", "committed_at (UTC)", "operation", "writer", "files+", "rows+", "files-", "tables"], rows, fmt)


def tail(
    url: UrlOpt = DEFAULT_URL,
    execution: Annotated[
        str | None,
        typer.Option("--execution", "-e", help="Only this execution's events (its id, or a unique prefix or suffix)."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing events as they are committed.")] = False,
    lines: Annotated[int | None, typer.Option("--lines", "-n", help="Start with the newest N committed events.")] = 20,
    interval: Annotated[float, typer.Option(help="Seconds between polls of the manifest with --follow.")] = 0.5,
    timeout: Annotated[
        float | None, typer.Option(help="With --follow: stop after this many seconds without a new event.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="text or jsonl.")] = "text",
) -> None:
    """Logs, spans and status changes of executions, as they are committed (Ctrl-C stops --follow)."""
    if fmt not in ("text", "jsonl"):
        err.print(line(("error:", "red"), f" --format must be text or jsonl, got {fmt!r}"))
        raise typer.Exit(1)
    with user_errors():
        wh = open_warehouse(url)
        if execution is not None:
            execution = wh.execution(execution)["execution_id"]  # a unique prefix or suffix will do
        printed = 0
        try:
            for e in wh.executions.follow(
                execution, follow=follow, last=lines, poll_interval=interval, timeout=timeout
            ):
                printed += 1
                if fmt == "jsonl":  # one line per event; JSON's \u escapes keep controls out of the output
                    print(json.dumps({k: jsonable(v) for k, v in e.items()}, default=str), flush=True)
                else:
                    console.print(event_line(e), soft_wrap=True)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        if not printed:
            scope = f"of execution {execution}" if execution is not None else "in the warehouse"
            waited = f" within {format_float(timeout)} s" if follow and timeout is not None else ""
            # a human message: on stdout with the text lines, on stderr beside JSON lines
            (err if fmt == "jsonl" else console).print(
                line(
                    f"no events {scope}{waited} (version {wh.version}); events are "
                    "the logs, spans and status changes agents record through "
                    "a writer (ex.log, ex.span)"
                )
            )
