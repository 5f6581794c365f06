"""The engine layer: the `Engine` (store, log, snapshot, commit, row queries, id lookup: `engine.py`),
data-file I/O (`datafiles.py`), the execution-id key rule (`keys.py`, `keyed.py`), DuckDB views and
Polars scans over a snapshot (`reader.py`), and row rewrites (`rewrite.py`). Features above take an
`Engine`; the `Warehouse` facade owns one."""
