"""The benchmark suite of the warehouse: the warehouse against faithful competitors, on the same data.

Not part of the installed package: `warehouse bench` finds this directory in a source checkout.

    harness.py      what every benchmark shares: timing, repetitions, statistics, result records and
                    checks, answer comparison, machine/source facts, the JSON output
    runner.py       runs the cases at one scale: the results JSON, the terminal and Markdown tables
    cases/          the seven cases (data generated once per case, outside the timed regions)
    workers.py      subprocess entry points and their launcher (concurrent writers, peak-RSS probe)
    legacy.py       the reference layout: per-task JSON files + `index.jsonl` under a FileLock, pandas analysis
    raw_pyarrow.py  pyarrow's own bulk conversion + `pyarrow.dataset.write_dataset` (writer lower bound)
    delta.py        `deltalake.write_deltalake(..., mode="append", partition_by=...)`, one append per flush
    raw_duckdb.py   the same aggregation over one pre-written Parquet file (query lower bound)

Standalone (`python -m benchmarks.NAME`, each part of `make bench`):

    agent_state/    logs, checkpoints and simulation snapshots next to the reference's ways
    analytics.py    scores and pass@k at 1M executions vs legacy pandas and raw DuckDB
    keys.py         scores over warehouses with given execution ids and retried adds
    imports.py      importing 20k legacy files; exporting to Delta next to write_deltalake
    compaction.py   10k small files before and after compact() and vacuum()
    manifest.py     open and refresh at 10k commits with checkpoints
    s3.py           commit latency and sync throughput against an S3-API server
"""


class CheckFailed(AssertionError):
    """A correctness check of a benchmark failed: rows lost or duplicated, answers that differ."""
