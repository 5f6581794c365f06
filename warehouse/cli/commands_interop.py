"""Commands that move results in and out: import, export, sync."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from warehouse.cli.app import DEFAULT_URL, UrlOpt, user_errors
from warehouse.cli.output import Format, console, emit, err, human_size
from warehouse.core.terminal import line, styled
from warehouse.warehouse import open as open_warehouse


def import_cmd(
    kind: Annotated[
        str,
        typer.Argument(help="legacy, sessions, checkpoints, trajectories, simulation, postgres, agentdojo or inspect."),
    ],
    path: Annotated[str, typer.Argument(help="The directory or file to import (for postgres: a connection URL).")],
    url: UrlOpt = DEFAULT_URL,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first source that cannot be imported.")] = False,
) -> None:
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


def export_cmd(
    kind: Annotated[str, typer.Argument(help="delta, parquet, trajectories or legacy.")],
    out: Annotated[
        str,
        typer.Argument(
            help="Where to write: a directory or URL (for delta: one Delta table per warehouse table under it)."
        ),
    ],
    url: UrlOpt = DEFAULT_URL,
    where: Annotated[
        str | None,
        typer.Option(
            help="SQL condition: on dataset, agent, attack, config_hash for delta and parquet (whole partitions), "
            "on any executions column for trajectories and legacy; e.g. \"dataset = 'agentdojo'\" "
            "(agent=tool_agent,attack=none also works)."
        ),
    ] = None,
) -> None:
    """Export the current snapshot for other engines or tools; run again to export only what is new."""
    options = {"where": where} if where else {}
    with user_errors():
        report = open_warehouse(url).export(kind, out, **options)
    for note in report.notes:
        err.print(line(("note", "yellow"), " ", note), soft_wrap=True)
    console.print(styled(report.summary(), "green"), soft_wrap=True)


def sync_cmd(
    src: Annotated[str, typer.Argument(help="Source warehouse: a path or URL (s3://bucket/prefix).")],
    dst: Annotated[str, typer.Argument(help="Destination: a path or URL; created if absent.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be copied; copy nothing.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Files copied in parallel.")] = 16,
    batch_files: Annotated[int, typer.Option(min=1, help="At most this many files per commit in DST.")] = 2000,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Copy to DST the data files its snapshot lacks from SRC and commit them there (operation `sync`).

    Incremental (a second run copies nothing), idempotent, and safe to interrupt: run it again to resume.
    Remote URLs use the usual AWS environment variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    """
    with user_errors():
        wh = open_warehouse(src)
        if dry_run:
            result = wh.sync_to(dst, dry_run=True, batch_files=batch_files)
        else:
            with Progress(
                TextColumn("sync"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[files]} files"),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                job = bar.add_task("sync", total=None, files="0/?")

                def tick(p) -> None:  # called from the copying threads; rich's Progress is thread-safe
                    bar.update(
                        job, completed=p.bytes_done, total=p.bytes_total, files=f"{p.files_done}/{p.files_total}"
                    )

                result = wh.sync_to(dst, on_progress=tick, workers=workers, batch_files=batch_files)
    rows = [[t, v["files"], v["rows"], v["bytes"]] for t, v in sorted(result.tables.items())]
    if fmt is not Format.table:
        emit(["table", "files", "rows", "bytes"], rows, fmt)
        return
    if rows:
        emit(
            ["table", "files", "rows", "bytes"],
            rows,
            fmt,
            title=("would copy" if dry_run else "copied") + f" from {src} (version {result.src_version})",
        )
    if result.up_to_date:
        console.print(line(dst, " is up to date with ", src, f" (version {result.src_version}): nothing to copy"))
    elif dry_run:
        console.print(
            line(
                f"dry run: {result.files} files ({human_size(result.bytes)}) would be copied"
                + (f", {result.removed} removed" if result.removed else "")
                + "; nothing was written to ",
                dst,
            )
        )
    else:
        console.print(
            line(
                f"synced {result.files} files ({human_size(result.bytes)}"
                + (f", {result.reused} already copied by an interrupted run" if result.reused else "")
                + ")"
                + (f", removed {result.removed}" if result.removed else ""),
                *(
                    (f" ({result.replaced} of them ", dst, "'s own rewrites of files ", src, " rewrote too)")
                    if result.replaced
                    else ()
                ),
                " from ",
                src,
                f" (version {result.src_version}) to ",
                dst,
                f" in {len(result.commits)} commit(s), now at version {result.dst_version}; {result.seconds:.1f} s",
            )
        )


def publish_cmd(
    fmt_name: Annotated[str, typer.Argument(metavar="FORMAT", help="The open format: delta or iceberg.")],
    url: UrlOpt = DEFAULT_URL,
    catalog: Annotated[
        str | None,
        typer.Option(
            "--catalog",
            help="iceberg: the catalog's SQLAlchemy URL (pyiceberg SqlCatalog), e.g. sqlite:////abs/path/catalog.db.",
        ),
    ] = None,
    table: Annotated[
        list[str] | None, typer.Option("--table", "-t", help="Publish only this table (repeatable).")
    ] = None,
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Delete each table's log and write it again (a damaged or foreign log)."),
    ] = False,
    auto: Annotated[
        bool | None,
        typer.Option(
            "--auto/--no-auto",
            help="Also keep the logs current after every commit from now on (a setting stored in the warehouse), "
            "or stop doing so.",
        ),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Publish every table in place as an open-format table (Delta: `<url>/<table>/_delta_log`), no data copied.

    Spark, Trino, Databricks, DataFusion, Polars and DuckDB then read `<url>/<table>` as a Delta table.
    `iceberg --catalog URI`: every table as the Iceberg table `warehouse.<table>` of that SqlCatalog
    (metadata under `<url>/_iceberg/`; local warehouses; no --auto).
    Incremental and idempotent: each run commits only what changed since the last one.
    """
    with user_errors():
        # --auto/--no-auto change the stored setting; neither keeps it as it is.
        wh = open_warehouse(url) if auto is None else open_warehouse(url, publish=[fmt_name] if auto else [])
        report = wh.publish(fmt_name, tables=table, rebuild=rebuild, catalog=catalog)
    # Iceberg tables have snapshot ids where Delta tables have versions.
    version_col = "snapshot_id" if report.format == "iceberg" else "delta_version"
    rows = [
        [t.table, t.warehouse_version, getattr(t, version_col), t.added, t.removed, t.derived_files, t.committed]
        for t in report.tables.values()
    ]
    emit(
        ["table", "warehouse_version", version_col, "added", "removed", "derived_files", "committed"],
        rows,
        fmt,
        title=f"published {fmt_name} at warehouse version {report.version}",
    )
    if fmt is Format.table:
        console.print(
            styled(
                f"{report.commits} {'Iceberg' if report.format == 'iceberg' else 'Delta'} commit(s), "
                f"{human_size(report.derived_bytes)} of data written, "
                f"{report.seconds:.2f} s",
                "green",
            ),
            soft_wrap=True,
        )
