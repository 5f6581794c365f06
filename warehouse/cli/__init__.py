"""The command line: a thin layer over the public Python API (`warehouse --help`)."""

from warehouse.cli.main import app, main

__all__ = ["app", "main"]
