"""Commands that keep a warehouse small and sound: expire, compact, vacuum, doctor."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from warehouse.cli.app import DEFAULT_URL, UrlOpt, user_errors
from warehouse.cli.output import Format, cell_text, console, emit, err, human_size
from warehouse.core.terminal import line, styled
from warehouse.warehouse import open as open_warehouse


def expire(
    older_than: Annotated[str, typer.Option("--older-than", help="Age of the rows to remove: 30d, 12h, 90m or 3600s.")],
    url: UrlOpt = DEFAULT_URL,
    tables: Annotated[
        str,
        typer.Option(
            help="Comma-separated: events, snapshots, executions (with their messages, attacks, events, snapshots)."
        ),
    ] = "events",
    statuses: Annotated[
        str, typer.Option(help="Comma-separated statuses of the executions whose rows may go: completed, failed.")
    ] = "completed,failed",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change nothing.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Remove old rows in one commit; running executions are never touched, and time travel still sees the rows."""
    from warehouse.ops.retention import parse_duration

    with user_errors():
        age = parse_duration(older_than)
        result = open_warehouse(url).maintenance.expire(
            age,
            tables=[t.strip() for t in tables.split(",") if t.strip()],
            statuses=[s.strip() for s in statuses.split(",") if s.strip()],
            dry_run=dry_run,
        )
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
        console.print(
            f"removed {what} in version {result.version} ({result.files_dropped} files dropped, "
            f"{result.files_rewritten} rewritten; vacuum deletes them from storage)",
            highlight=False,
        )


def compact(
    url: UrlOpt = DEFAULT_URL,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Only this table (repeatable); default every table.")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="Only the partitions this SQL condition on dataset, agent, attack, config_hash selects, "
            "e.g. \"agent = 'tool_agent' and attack = 'none'\" (agent=tool_agent,attack=none also works)."
        ),
    ] = None,
    target_size: Annotated[
        str,
        typer.Option(
            "--target-size",
            help="Size of the compacted files, and the bound below which a file is small: 128MB, 512kB, 1GB.",
        ),
    ] = "128MB",
    min_files: Annotated[
        int, typer.Option("--min-files", min=2, help="Compact a partition once it has this many small files.")
    ] = 2,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be compacted; write nothing.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Rewrite each partition's small files into few large sorted files, one commit per partition (answers unchanged)."""
    from warehouse.ops.maintenance import parse_size

    with user_errors():
        size = parse_size(target_size)
        result = open_warehouse(url).maintenance.compact(
            table or None, where, target_file_size=size, min_files=min_files, dry_run=dry_run
        )
    from warehouse.core.schemas import catalog

    pcols = list(catalog().partition_columns)
    cols = ["table", *pcols, "files in", "files out", "rows", "bytes in", "bytes out", "version", "status"]
    rows = [
        [
            p.table,
            *(p.partition.get(c) for c in pcols),
            p.files_in,
            p.files_out,
            p.rows,
            p.bytes_in,
            p.bytes_out,
            p.version,
            p.status,
        ]
        for p in result.partitions
    ]
    if fmt is not Format.table:
        emit(cols, rows, fmt)
        return
    if not rows:
        console.print(
            f"nothing to compact: no partition has {min_files} or more files under {human_size(size)}", highlight=False
        )
        return
    shown = [
        [
            p.table,
            *(p.partition.get(c) for c in pcols),
            p.files_in,
            p.files_out,
            p.rows,
            human_size(p.bytes_in),
            "" if dry_run else human_size(p.bytes_out),
            cell_text(p.version),
            p.status,
        ]
        for p in result.partitions
    ]
    emit(cols, shown, fmt, title=("would compact" if dry_run else "compacted") + f" (target {human_size(size)})")
    n = len(result.compacted)
    what = (
        f"{result.files_in} files into {'at most ' if dry_run else ''}{result.files_out} in {n} "
        f"partition{'s' * (n != 1)}"
    )
    if dry_run:
        console.print(f"dry run: would rewrite {what}; nothing was written", highlight=False)
    else:
        console.print(
            f"rewrote {what} ({result.rows} rows) in {result.seconds:.1f} s; the old files stay until "
            "`warehouse vacuum` deletes them",
            highlight=False,
        )
    for p in result.conflicts:
        err.print(
            line(
                ("gave up on", "yellow"),
                f" {p.table} ",
                str(dict(p.partition)),
                ": ",
                p.error or "",
                "; run compact again",
            )
        )


def vacuum(
    url: UrlOpt = DEFAULT_URL,
    retain: Annotated[
        str,
        typer.Option(help="Delete files removed from the snapshot longer ago than this: 7d, 12h, 90m, 3600s, or 0s."),
    ] = "7d",
    orphan_window: Annotated[
        str,
        typer.Option(
            "--orphan-window",
            help="Delete never-committed files and temp files older than this (protects writers still flushing; at least 1h).",
        ),
    ] = "1h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Delete data files no longer needed (removed longer ago than --retain, or never committed); time travel before that then fails."""
    from warehouse.ops.retention import parse_duration

    with user_errors():
        # The API decides what is allowed (retain 0 or more, the orphan window's minimum): one rule.
        result = open_warehouse(url).maintenance.vacuum(
            parse_duration(retain, zero=True), parse_duration(orphan_window, zero=True), dry_run=dry_run
        )
    cols = ["kind", "files", "path"]
    rows = [
        *(["removed", 1, p] for p in result.removed),
        *(["orphan", 1, p] for p in result.orphans),
        *(["temp", 1, p] for p in result.temp),
        *(["derived", 1, p] for p in result.derived),
    ]
    if fmt is not Format.table:
        emit(cols, rows, fmt)
        return
    summary = [[t, r, o] for t, (r, o) in result.by_table.items()]
    if result.temp:
        summary.append(["_manifest (temp)", 0, len(result.temp)])
    if summary:
        emit(["table", "removed files", "orphans"], summary, fmt, title="would delete" if dry_run else "deleted")
    what = (
        f"{result.files} file{'s' * (result.files != 1)} ({human_size(result.bytes)}): {len(result.removed)} removed "
        f"before {result.cutoff:%Y-%m-%d %H:%M:%S} UTC, {len(result.orphans)} orphans, {len(result.temp)} temp"
        + (f", {len(result.derived)} Delta derived" if result.derived else "")
    )
    kept = (
        f"; kept {result.young_orphans} uncommitted file(s) younger than {orphan_window}"
        if result.young_orphans
        else ""
    ) + (
        f"; kept {len(result.kept_for_delta)} removed file(s) the latest Delta versions still name "
        "(`warehouse publish delta` first)"
        if result.kept_for_delta
        else ""
    )
    travel = f"; time travel reaches back to version {result.readable_from}" if result.readable_from is not None else ""
    folded = (
        f"; folded {len(result.folded)} old commit(s) into a checkpoint"
        if isinstance(result.folded, list) and result.folded
        else ""
    )
    console.print(
        ("dry run: would delete " if dry_run else "deleted ")
        + what
        + kept
        + travel
        + folded
        + ("; nothing was deleted" if dry_run else ""),
        highlight=False,
    )


class DoctorFormat(str, Enum):
    table = "table"
    json = "json"


def doctor(
    url: UrlOpt = DEFAULT_URL,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Fix what one new commit can fix (data files that do not match the manifest); history is never rewritten.",
        ),
    ] = False,
    footers: Annotated[bool, typer.Option(help="Read every data file's Parquet footer to check its row count.")] = True,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep", help="Also read every page of every data file and check its checksum (reads every byte)."
        ),
    ] = False,
    fmt: Annotated[DoctorFormat, typer.Option("--format", "-f")] = DoctorFormat.table,
) -> None:
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
            t.add_row(
                Text(severity, style="green" if f.repaired else styles.get(f.severity, "")),
                f.kind,
                f.path or (str(f.version) if f.version is not None else ""),
                f.message,
                "" if f.repaired else f.fix,
            )
        console.print(t)
    for note in report.notes:
        console.print(line("note: ", note), soft_wrap=True)
    n_problems, n_warnings, n_orphans = len(report.problems), len(report.warnings), len(report.orphans)
    summary = (
        f"{report.url} at version {report.version}: checked {report.commits_checked} commits, "
        f"{report.files_checked} data files, {report.checkpoints_checked} checkpoints in {report.seconds:.1f} s; "
        f"{n_problems} problem{'s' * (n_problems != 1)}, {n_warnings} warning{'s' * (n_warnings != 1)}, "
        f"{n_orphans} orphan{'s' * (n_orphans != 1)}"
    )
    if report.repaired:
        summary += f"; repaired {len(report.repaired)} in version {report.repair_version}"
    console.print(styled(summary, "red" if n_problems else "green"), soft_wrap=True)
    if n_problems and not repair and any("--repair" in f.fix for f in report.problems):
        console.print(
            f"run `warehouse doctor{' --deep' if deep else ''} --repair` to fix the data-file problems "
            "with one new commit",
            highlight=False,
        )
    raise typer.Exit(report.exit_code)
