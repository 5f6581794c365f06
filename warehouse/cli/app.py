"""The typer application every command is added to, the options commands share, and how an
expected failure ends a command (one line on stderr, exit code 1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import duckdb
import typer
from rich.text import Text

from warehouse.cli.output import err
from warehouse.core.errors import WarehouseError
from warehouse.core.terminal import styled

app = typer.Typer(
    help="A results warehouse for AI-agent evaluations.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)

UrlOpt = Annotated[
    str,
    typer.Option(
        "--url", "-u", envvar="WAREHOUSE_URL", help="Warehouse location: a path or an fsspec URL (env WAREHOUSE_URL)."
    ),
]
DEFAULT_URL = "warehouse-data"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into a one-line error and exit code 1, never a traceback."""
    try:
        yield
    except (WarehouseError, duckdb.Error, OSError) as exc:
        message = str(exc).splitlines()[0] if isinstance(exc, duckdb.Error) else str(exc)
        err.print(Text.assemble(("error:", "red"), " ", styled(message)), soft_wrap=True)
        raise typer.Exit(1) from None
