"""Interop: importers of other tools' files and databases, exporters to Delta, Parquet and legacy layouts."""
