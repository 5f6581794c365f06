"""The benchmark suite of the warehouse: the warehouse against faithful competitors, on the same data.

Not part of the installed package: `warehouse bench` finds this directory in a source checkout.

    runner.py       scales, repetitions, machine facts, the results JSON and the terminal table
    cases.py        the seven cases (data generated once per case, outside the timed regions)
    workers.py      subprocess entry points (concurrent writers, peak-RSS probe)
    legacy.py       the reference layout: per-task JSON files + `index.jsonl` under a FileLock, pandas analysis
    raw_pyarrow.py  pyarrow's own bulk conversion + `pyarrow.dataset.write_dataset` (writer lower bound)
    delta.py        `deltalake.write_deltalake(..., mode="append", partition_by=...)`, one append per flush
    raw_duckdb.py   the same aggregation over one pre-written Parquet file (query lower bound)
    analytics.py    scores and pass@k at 1M executions vs legacy pandas and raw DuckDB (standalone)
    imports.py      importing 20k legacy files; exporting to Delta next to write_deltalake (standalone)
"""


class CheckFailed(AssertionError):
    """A correctness check of a benchmark failed: rows lost or duplicated, answers that differ."""
