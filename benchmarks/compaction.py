"""Compaction benchmark: query speed over 10,000 small files before and after `wh.compact()`,
the compaction itself, and `wh.vacuum()` deleting the 10,000 replaced files.

The warehouse: one partition (one run configuration) of `executions`, FILES data files of PER_FILE
rows each, as FILES flushes of a small campaign would leave them. To build it in seconds rather than
the ~20 ms a real flush costs, the files are written with `writer.write_data_file` (the writer's own
Parquet encoding and stats) by WORKERS processes, and committed COMMIT_FILES files per commit (100 commits of 100 files at
the defaults), so the manifest is short and the figures are about data files. Rows carry realistic
scores, usage and metadata; execution ids are time-ordered, as the writer makes them, but the
files are written in shuffled order, so that a file's ids are not a contiguous range before compaction.

Page checksums, side by side in the same run: one file of the compacted partition's rows
written with the writer's PARQUET_OPTIONS (page checksums) and without checksums, then read with
pyarrow verifying them and not, and by DuckDB (which ignores them); `wh.doctor()` against
`wh.doctor(deep=True)` (every page read by pyarrow and DuckDB) on the small files and on the
compacted file; and the share of the compaction spent reading every page of its inputs first.

Measured (each query: median of REPS runs on the same open Warehouse, after a first `count(*)`
that defines the views and reads every file once, reported on its own):
- `wh.scores(by=["agent", "attack"])` (every row, grouped),
- a filtered query (`task_id = ...`: a non-partition column, every file is opened),
- a point lookup (`execution_id = ...`: row-group min/max can skip data once files are sorted),
before and after `wh.compact()`; the compaction's time, files in and out, and peak RSS; then
`wh.vacuum(retain=0)`'s time to delete the replaced files, and a second vacuum's (listing only).

    python -m benchmarks.compaction [--files 10000] [--per-file 10] [--checksum-rows 100000] [--out FILE] [--workdir DIR]

Prints a Markdown table and one JSON document, also written to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import warehouse
from warehouse.core.schemas import catalog
from warehouse.engine.datafiles import PARQUET_OPTIONS, check_pages, write_data_file
from warehouse.manifest import DataFile, writer_info

from .harness import load_average, median_time, peak_rss_mib, publish, source_line, source_state

DATASET = {"type": "bench_compaction", "config": {"suite": "workspace"}}
AGENT = {"type": "tool_agent", "config": {"model": "gpt-4o-2024-08-06"}}
ATTACK = {"type": "important_instructions", "config": {"position": "end"}}
COMMIT_FILES = 100
REPS = 3
#: Repetitions of each page-checksum figure (single reads and writes of one file: short, so noisier).
CHECKSUM_REPS = 7
CHECKSUM_ROWS = 100_000
WORKERS = 2
TASKS = 200


def _rows(partition: dict[str, str], ids: list[str], rng: random.Random, start: datetime) -> pa.Table:
    """PER_FILE rows of `executions` in the table's schema."""
    schema = catalog().table("executions")
    rows = []
    for i, eid in enumerate(ids):
        t0 = start + timedelta(seconds=i)
        tokens = rng.randint(500, 20_000)
        rows.append(
            {
                **partition,
                "execution_id": eid,
                "task_id": f"task-{rng.randrange(TASKS):04d}",
                "run_id": "run-1",
                "sample": 0,
                "status": "completed" if rng.random() > 0.05 else "failed",
                "revision": 0,
                "started_at": t0,
                "finished_at": t0 + timedelta(seconds=rng.uniform(5, 120)),
                "duration_ms": rng.uniform(5_000, 120_000),
                "model": "gpt-4o-2024-08-06",
                "input_tokens": tokens,
                "output_tokens": tokens // 5,
                "total_tokens": tokens + tokens // 5,
                "requests": rng.randint(1, 12),
                "tool_calls": rng.randint(0, 10),
                "cost": tokens * 2.5e-6,
                "benign_score": float(rng.random() > 0.3),
                "attack_score": float(rng.random() > 0.8),
                "scores": {"steps": float(rng.randint(1, 12))},
                "metadata": json.dumps({"difficulty": rng.choice(("easy", "medium", "hard")), "seed": i}),
            }
        )
    return pa.Table.from_pylist(rows, schema=schema.arrow)


def _write_files(root: str, partition: dict[str, str], chunks: list[list[str]], seed: int) -> list[DataFile]:
    """Write one data file per chunk of ids (uncommitted); run in a worker process."""
    wh = warehouse.open(root)
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [write_data_file(wh, "executions", partition, _rows(partition, c, rng, start)) for c in chunks]


def build(root: Path, files: int, per_file: int, seed: int = 7) -> tuple[warehouse.Warehouse, list[str]]:
    """A warehouse of `files` small files of `executions` in one partition; returns it and every id.
    The files are written by WORKERS processes, then committed COMMIT_FILES at a time."""
    wh = warehouse.open(str(root), create=True)
    with wh.writer(dataset=DATASET, agent=AGENT, attack=ATTACK, flush_interval=None) as w:
        partition = dict(w.partition)  # registers the config (configs/<hash>.yaml and its row)
    rng = random.Random(seed)
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    ids = [
        f"{base + n:012x}{rng.getrandbits(80):020x}" for n in range(files * per_file)
    ]  # time-ordered, as the writer's
    chunks = [ids[i * per_file : (i + 1) * per_file] for i in range(files)]
    rng.shuffle(chunks)  # flushes of concurrent jobs: a file's ids are not a contiguous range
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(
            pool.map(
                _write_files,
                [str(root)] * WORKERS,
                [partition] * WORKERS,
                [chunks[k::WORKERS] for k in range(WORKERS)],
                range(WORKERS),
            )
        )
    written = [f for part in parts for f in part]
    for i in range(0, len(written), COMMIT_FILES):
        wh.engine.commit(
            operation="append", writer=writer_info("bench-compaction"), token=None, add=written[i : i + COMMIT_FILES]
        )
    return wh, ids


def _answer(rows: list[tuple]) -> list[list[Any]]:
    """Rows as lists of values, compared by `_same`."""
    return [list(r) for r in rows]


def _same(*answers: dict[str, list[list[Any]]]) -> bool:
    """The answers agree, floats within a relative 1e-9: sums over other file orders differ in the
    last bits (rounding each to 9 digits was not enough: 515.4352575 rounds either way)."""

    def close(a: Any, b: Any) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        return a == b

    first = answers[0]
    return all(
        other.keys() == first.keys()
        and all(
            len(other[k]) == len(first[k])
            and all(len(r) == len(q) and all(map(close, r, q)) for r, q in zip(other[k], first[k]))
            for k in first
        )
        for other in answers[1:]
    )


def _checksum_costs(tmp: Path, rows: int) -> dict[str, Any]:
    """One file of `rows` executions written with and without page checksums and read back every
    way, each figure the median of REPS, the two variants alternating."""
    partition = {"dataset": "bench", "agent": "a", "attack": "none", "config_hash": "00000000"}
    rng = random.Random(11)
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    table = _rows(
        partition,
        [f"{base + n:012x}{rng.getrandbits(80):020x}" for n in range(rows)],
        rng,
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    plain_options = {**PARQUET_OPTIONS, "write_page_checksum": False}
    paths = {"checksums": tmp / "checksums.parquet", "plain": tmp / "plain.parquet"}
    options = {"checksums": PARQUET_OPTIONS, "plain": plain_options}
    out: dict[str, Any] = {"rows": rows}
    for figure, fn in (
        ("write_ms", lambda k: pq.write_table(table, paths[k], **options[k])),
        ("read_pyarrow_ms", lambda k: pq.ParquetFile(paths[k]).read()),
        ("read_pyarrow_verified_ms", lambda k: pq.ParquetFile(paths[k], page_checksum_verification=True).read()),
        ("read_duckdb_ms", lambda k: duckdb.sql(f"select * from read_parquet('{paths[k]}')").arrow()),
    ):
        times: dict[str, list[float]] = {"checksums": [], "plain": []}
        for rep in range(CHECKSUM_REPS):
            for k in ("checksums", "plain") if rep % 2 == 0 else ("plain", "checksums"):
                t0 = time.perf_counter()
                fn(k)
                times[k].append(time.perf_counter() - t0)
        out[figure] = {k: round(statistics.median(v) * 1000, 1) for k, v in times.items()}
    out["bytes"] = {k: p.stat().st_size for k, p in paths.items()}
    return out


def _doctor_costs(wh: warehouse.Warehouse) -> dict[str, Any]:
    """`wh.doctor()` against `wh.doctor(deep=True)`, and pyarrow's check of every page alone."""
    t0 = time.perf_counter()
    plain = wh.doctor()
    doctor_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    deep = wh.doctor(deep=True)
    deep_s = time.perf_counter() - t0
    files = wh.files("executions")
    t0 = time.perf_counter()
    for f in files:
        check_pages(wh.store, f)
    pages_s = time.perf_counter() - t0
    return {
        "files": len(files),
        "doctor_s": round(doctor_s, 2),
        "deep_s": round(deep_s, 2),
        "check_pages_s": round(pages_s, 2),
        "healthy": plain.healthy and deep.healthy,
    }


def _queries(wh: warehouse.Warehouse, probe_id: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    # Defines the views over the snapshot's files, and reads every file once: the warm-up of what follows.
    wh.sql("select count(*) from executions").fetchall()
    first_s = time.perf_counter() - t0
    scores_s, scores = median_time(lambda: wh.scores(by=["agent", "attack"]).fetchall(), REPS)
    filtered_s, filtered = median_time(
        lambda: wh.sql(
            "select count(*), avg(benign_score), sum(total_tokens) from executions where task_id = 'task-0042'"
        ).fetchall(),
        REPS,
    )
    lookup_s, lookup = median_time(
        lambda: wh.sql("select task_id, benign_score from executions where execution_id = ?", [probe_id]).fetchall(),
        REPS,
    )
    return {
        "first_query_ms": round(first_s * 1000, 2),
        "scores_ms": round(scores_s * 1000, 2),
        "filtered_ms": round(filtered_s * 1000, 2),
        "lookup_ms": round(lookup_s * 1000, 2),
        "answers": {"scores": _answer(scores), "filtered": _answer(filtered), "lookup": _answer(lookup)},
    }


def run(files: int, per_file: int, workdir: str | None = None, checksum_rows: int = CHECKSUM_ROWS) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-compaction-", dir=workdir))
    try:
        load0, t_start = load_average(), time.perf_counter()
        t0 = time.perf_counter()
        wh, ids = build(tmp / "wh", files, per_file)
        build_s = time.perf_counter() - t0
        n_files = len(wh.files("executions"))
        bytes_before = sum(f.bytes for f in wh.files("executions"))
        probe = ids[len(ids) // 3]

        load_q0 = load_average()
        before = _queries(wh, probe)
        doctor_before = _doctor_costs(wh)  # includes what compaction now spends checking its inputs' pages
        rss_before = peak_rss_mib()

        load_c0 = load_average()
        t0 = time.perf_counter()
        result = wh.compact()
        compact_s = time.perf_counter() - t0
        load_c1, rss_after = load_average(), peak_rss_mib()
        after_files = wh.files("executions")

        after = _queries(wh, probe)
        doctor_after = _doctor_costs(wh)
        checksums = _checksum_costs(tmp, checksum_rows)
        reopened = warehouse.open(str(tmp / "wh"))
        same = _same(before["answers"], after["answers"], _queries(reopened, probe)["answers"])

        t0 = time.perf_counter()
        vac = wh.vacuum(retain=timedelta(0))
        vacuum_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        vac2 = wh.vacuum(retain=timedelta(0))
        vacuum_again_s = time.perf_counter() - t0
        after_vacuum = _queries(warehouse.open(str(tmp / "wh")), probe)

        [part] = [p for p in result.partitions if p.table == "executions"]
        return {
            "params": {
                "files": files,
                "per_file": per_file,
                "rows": files * per_file,
                "commit_files": COMMIT_FILES,
                "reps": REPS,
                "cpu_count": os.cpu_count(),
            },
            "source": source_state(),
            "build_s": round(build_s, 2),
            "before": {"files": n_files, "bytes": bytes_before, **{k: v for k, v in before.items() if k != "answers"}},
            "compact": {
                "seconds": round(compact_s, 2),
                "files_in": part.files_in,
                "files_out": part.files_out,
                "rows": part.rows,
                "bytes_in": part.bytes_in,
                "bytes_out": part.bytes_out,
                "commits": len(result.versions),
                "peak_rss_mib_before": rss_before,
                "peak_rss_mib_after": rss_after,
                "load_average_1min": [load_c0, load_c1],
            },
            "after": {
                "files": len(after_files),
                "bytes": sum(f.bytes for f in after_files),
                **{k: v for k, v in after.items() if k != "answers"},
            },
            "vacuum": {
                "seconds": round(vacuum_s, 2),
                "files_deleted": vac.files,
                "bytes_deleted": vac.bytes,
                "second_run_seconds": round(vacuum_again_s, 3),
                "second_run_files": vac2.files,
            },
            "after_vacuum": {k: v for k, v in after_vacuum.items() if k != "answers"},
            "checksums": {**checksums, "doctor_before": doctor_before, "doctor_after": doctor_after},
            "checks": {
                "answers_equal": same and _same(before["answers"], after_vacuum["answers"]),
                "doctor_healthy": doctor_before["healthy"] and doctor_after["healthy"],
                "rows_after": part.rows == files * per_file,
                "files_deleted": vac.files == n_files,
            },
            "load_average_1min": [load0, load_q0, load_average()],
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b else "-"


def checksum_lines(k: dict[str, Any]) -> list[str]:
    """The page-checksum table: the same file with and without, every way of reading it, and doctor."""

    def pair(figure: str) -> str:
        a, b = k[figure]["checksums"], k[figure]["plain"]
        return f"{a} ms | {b} ms | {a / b:.2f}x" if b else f"{a} ms | {b} ms | -"

    db, da = k["doctor_before"], k["doctor_after"]
    return [
        f"**Page checksums** (one file of {k['rows']:,} executions, median of {CHECKSUM_REPS}, alternating)",
        "",
        "| figure | with page checksums | without | ratio |",
        "|---|---:|---:|---:|",
        f"| `pq.write_table` (the writer's PARQUET_OPTIONS) | {pair('write_ms')} |",
        f"| file size | {k['bytes']['checksums']:,} B | {k['bytes']['plain']:,} B | "
        f"{k['bytes']['checksums'] / k['bytes']['plain']:.4f}x |",
        f"| pyarrow read, not verifying | {pair('read_pyarrow_ms')} |",
        f"| pyarrow read, verifying (`page_checksum_verification=True`; plain: nothing to verify) | "
        f"{pair('read_pyarrow_verified_ms')} |",
        f"| DuckDB `select *` (ignores checksums) | {pair('read_duckdb_ms')} |",
        "",
        "| doctor | small files | after compaction |",
        "|---|---:|---:|",
        f"| data files of `executions` | {db['files']:,} | {da['files']:,} |",
        f"| `wh.doctor()` (footers) | {db['doctor_s']} s | {da['doctor_s']} s |",
        f"| `wh.doctor(deep=True)` (every page: pyarrow with checksums, then DuckDB) | {db['deep_s']} s | {da['deep_s']} s |",
        f"| pyarrow's check of every page alone (what compaction adds per input) | {db['check_pages_s']} s | "
        f"{da['check_pages_s']} s |",
    ]


def markdown(doc: dict[str, Any]) -> str:
    b, a, c, v, av = doc["before"], doc["after"], doc["compact"], doc["vacuum"], doc["after_vacuum"]
    p = doc["params"]
    lines = [
        f"**Compaction of {p['files']:,} files of {p['per_file']} executions** (one partition; "
        f"{p['files'] // p['commit_files']} commits of {p['commit_files']} files; built in {doc['build_s']} s)",
        "",
        "| figure | before (small files) | after compact | before ÷ after |",
        "|---|---:|---:|---:|",
        f"| data files | {b['files']:,} | {a['files']:,} | |",
        f"| bytes | {b['bytes'] / 2**20:.1f} MiB | {a['bytes'] / 2**20:.1f} MiB | {_ratio(b['bytes'], a['bytes'])} |",
        f"| first query on a fresh handle (`count(*)`, defines the views) | {b['first_query_ms']} ms | "
        f"{a['first_query_ms']} ms | {_ratio(b['first_query_ms'], a['first_query_ms'])} |",
        f'| `wh.scores(by=["agent", "attack"])` | {b["scores_ms"]} ms | {a["scores_ms"]} ms | '
        f"{_ratio(b['scores_ms'], a['scores_ms'])} |",
        f"| filtered query (`task_id = ...`) | {b['filtered_ms']} ms | {a['filtered_ms']} ms | "
        f"{_ratio(b['filtered_ms'], a['filtered_ms'])} |",
        f"| point lookup (`execution_id = ...`) | {b['lookup_ms']} ms | {a['lookup_ms']} ms | "
        f"{_ratio(b['lookup_ms'], a['lookup_ms'])} |",
        "",
        "| maintenance | figure |",
        "|---|---:|",
        f"| `wh.compact()` | {c['seconds']} s ({c['files_in']:,} files → {c['files_out']}, {c['rows']:,} rows, "
        f"{c['commits']} commit; peak RSS {c['peak_rss_mib_before']} → {c['peak_rss_mib_after']} MiB) |",
        f"| `wh.vacuum(retain=0)` deleting the replaced files | {v['seconds']} s ({v['files_deleted']:,} files, "
        f"{v['bytes_deleted'] / 2**20:.1f} MiB) |",
        f"| `wh.vacuum()` again (nothing to delete) | {v['second_run_seconds'] * 1000:.0f} ms |",
        f"| queries after vacuum (scores / filtered / lookup) | {av['scores_ms']} / {av['filtered_ms']} / "
        f"{av['lookup_ms']} ms |",
        "",
        *checksum_lines(doc["checksums"]),
        "",
        f"Checks: answers equal before, after compaction and after vacuum: {doc['checks']['answers_equal']}; "
        f"rows kept: {doc['checks']['rows_after']}; every replaced file deleted: {doc['checks']['files_deleted']}. "
        f"{doc['seconds']} s in all; load average {' → '.join(map(str, doc['load_average_1min']))}; "
        f"{source_line(doc['source'])}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000, help="small data files to compact")
    ap.add_argument("--per-file", type=int, default=10, help="executions per file")
    ap.add_argument("--workdir", default=None, help="where the temporary directory goes (default: the system's)")
    ap.add_argument(
        "--checksum-rows",
        type=int,
        default=CHECKSUM_ROWS,
        help="executions in the file written with and without page checksums",
    )
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    if a.files < 2 or a.per_file < 1:
        ap.error("--files must be at least 2 and --per-file at least 1")
    doc = run(a.files, a.per_file, workdir=a.workdir, checksum_rows=a.checksum_rows)
    publish("compaction", doc, markdown(doc), a.out, None if all(doc["checks"].values()) else doc["checks"])
    return doc


if __name__ == "__main__":
    main()
