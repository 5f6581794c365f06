"""`warehouse ...`: a thin command-line layer; every command is one call of the Python API.

This module puts the commands together, in the order `warehouse --help` lists them, and is the
console-script entry point. The commands live by concern in `commands_*`, what they print in
`output`, the typer app and the shared options in `app`."""

from __future__ import annotations

import sys

from warehouse.cli import commands_analytics, commands_bench, commands_data, commands_interop, commands_maintenance
from warehouse.cli.app import DEFAULT_URL, UrlOpt, app, user_errors
from warehouse.cli.output import Col, Format, console, emit, emit_relation, err, print_scores, print_table
from warehouse.core.terminal import install_log_handler, literal_excepthook

__all__ = [
    "DEFAULT_URL",
    "Col",
    "Format",
    "UrlOpt",
    "app",
    "console",
    "emit",
    "emit_relation",
    "err",
    "main",
    "print_scores",
    "print_table",
    "user_errors",
]

# typer lists commands in the order they are added: this is the order of `warehouse --help`.
app.command("init")(commands_data.init)
app.command("demo")(commands_data.demo)
app.command("ls")(commands_data.ls)
app.command("show")(commands_data.show)
app.command("sql")(commands_data.sql)
app.command("scores")(commands_analytics.scores)
app.command("compare")(commands_analytics.compare)
app.command("history")(commands_data.history)
app.command("sync")(commands_interop.sync_cmd)
app.command("tail")(commands_data.tail)
app.command("bench")(commands_bench.bench)
app.command("expire")(commands_maintenance.expire)
app.command("compact")(commands_maintenance.compact)
app.command("vacuum")(commands_maintenance.vacuum)
app.command("doctor")(commands_maintenance.doctor)
app.command("report")(commands_analytics.report_cmd)
app.command("import")(commands_interop.import_cmd)
app.command("export")(commands_interop.export_cmd)
app.command("publish")(commands_interop.publish_cmd)


def main() -> None:
    """Console-script entry point."""
    install_log_handler()  # log lines, warnings and tracebacks quote stored values: shown literal, like the rest
    try:
        app()
    except Exception:  # (typer replaces sys.excepthook, so the traceback is printed here)
        literal_excepthook(*sys.exc_info())
        sys.exit(1)
