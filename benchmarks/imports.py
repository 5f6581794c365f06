"""Import / export benchmark: a legacy result tree into the warehouse, the warehouse out to Delta.

1. Import: FILES per-task JSON files of the legacy layout (config.yaml per configuration, a locked
   `index.jsonl`), written by the reference's own persistence class (`tests/legacy_fixtures.py`:
   `write_legacy_tree`, over the demo grid's 18 configurations, multi-turn conversations with tool
   calls) and timed: that is what the legacy layout costs to write. Of it, generating the executions
   in Python is timed on its own (`demo.execution` for the same grid), so the layout's own share is
   visible. Then `wh.import_("legacy", root)` into a fresh warehouse: executions and rows per
   second; and the same import again (every source already imported: nothing to do).
2. Export: `wh.export("delta", out)` of the imported warehouse (every table, one Delta commit each)
   next to writing the same rows with `write_deltalake` directly (same partitioning, same zstd level
   3; the rows already in memory as Arrow, so that line is the floor: what delta-rs alone costs).
   Reading those rows from the warehouse's files is timed on its own. Then: an export with nothing
   new, an incremental export after one more flush of INCREMENT executions, the incremental export
   after `wh.compact()` (old rows replaced in the same Delta commits), and `wh.export("parquet", out)`
   (files copied as they are).

    python -m benchmarks.imports [--files 20000] [--out FILE] [--workdir DIR]

Prints a Markdown table and one JSON document, also written to --out.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

import warehouse
from warehouse.cli import demo
from warehouse.core.schemas import catalog

from .harness import disk_usage, load_average, publish, source_line, source_state

INCREMENT = 100


def _disk(root: Path) -> dict[str, int]:
    """The number of files under `root` and the sum of their sizes."""
    u = disk_usage(root)
    return {"files": u["files"], "bytes": u["bytes"]}


def _generate_only(n: int, seed: int) -> float:
    """Seconds to build `n` executions' dicts the way `write_legacy_tree` does, without saving them."""
    grid = list(demo.configs())[: max(1, min(18, n))]
    rng = random.Random(f"legacy-tree:{seed}")
    t0 = time.perf_counter()
    for i in range(n):
        d, a, k = grid[i % len(grid)]
        task = i // len(grid)
        demo.execution(
            rng, d["type"], a["type"], k["type"] if k else None, task, difficulty=demo.task_difficulty(task, seed)
        )
    return time.perf_counter() - t0


def _rows(wh: warehouse.Warehouse) -> dict[str, int]:
    return {t: sum(f.rows for f in wh.files(t)) for t in wh.tables if wh.files(t)}


def _delta_rows(out: Path, tables: Sequence[str]) -> dict[str, int]:
    from deltalake import DeltaTable

    return {t: DeltaTable(str(out / t)).count() for t in tables}


def _direct_delta(wh: warehouse.Warehouse, out: Path) -> dict[str, Any]:
    """The snapshot's rows read into Arrow (timed on its own), then written with write_deltalake (timed)."""
    from deltalake import WriterProperties, write_deltalake

    from warehouse.engine.datafiles import read_data_file

    t0 = time.perf_counter()
    tables: dict[str, pa.Table] = {}
    for t in wh.tables:
        files = wh.files(t)
        if files:
            tables[t] = pa.concat_tables([read_data_file(wh, f) for f in files])
    read_s = time.perf_counter() - t0
    props = WriterProperties(compression="ZSTD", compression_level=3)
    t0 = time.perf_counter()
    for name, table in tables.items():
        plain = table.cast(pa.schema([pa.field(f.name, f.type, f.nullable) for f in table.schema]))  # no field ids
        write_deltalake(
            str(out / name),
            plain,
            partition_by=list(catalog().partition_columns),
            mode="error",
            writer_properties=props,
        )
    write_s = time.perf_counter() - t0
    return {
        "read_s": round(read_s, 2),
        "write_s": round(write_s, 2),
        "rows": {n: t.num_rows for n, t in tables.items()},
        "disk": _disk(out),
    }


def _timed_export(wh: warehouse.Warehouse, kind: str, out: Path) -> tuple[float, Any]:
    t0 = time.perf_counter()
    report = wh.export(kind, str(out))
    return time.perf_counter() - t0, report


def _add_flush(wh: warehouse.Warehouse, n: int) -> None:
    d, a, k = next(iter(demo.configs()))
    rng = random.Random(99)
    with wh.writer(dataset=d, agent=a, attack=k, run_id="bench-increment", flush_interval=None) as w:
        for i in range(n):
            w.add_execution(**demo.execution(rng, d["type"], a["type"], k["type"] if k else None, 10_000 + i))


def run(files: int, workdir: str | None = None, seed: int = 0) -> dict[str, Any]:
    from tests.legacy_fixtures import write_legacy_tree  # the checkout's tests/ (run from the repository root)

    tmp = Path(tempfile.mkdtemp(prefix="bench-imports-", dir=workdir))
    try:
        t_start, load0 = time.perf_counter(), load_average()
        legacy = tmp / "legacy"
        t0 = time.perf_counter()
        tree = write_legacy_tree(legacy, files, seed=seed)
        legacy_s = time.perf_counter() - t0
        gen_s = _generate_only(files, seed)
        legacy_disk = _disk(legacy)

        wh = warehouse.open(str(tmp / "wh"), create=True)
        load1 = load_average()
        t0 = time.perf_counter()
        rep = wh.import_("legacy", str(legacy))
        import_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = wh.import_("legacy", str(legacy))
        again_s = time.perf_counter() - t0
        executions = wh.sql("select count(*) from executions").fetchall()[0][0]
        wh_disk = _disk(tmp / "wh")

        load2 = load_average()
        export_s, exp = _timed_export(wh, "delta", tmp / "delta")
        direct = _direct_delta(wh, tmp / "delta-direct")
        noop_s, noop = _timed_export(wh, "delta", tmp / "delta")
        _add_flush(wh, INCREMENT)
        incr_s, incr = _timed_export(wh, "delta", tmp / "delta")
        compacted = wh.compact()
        after_compact_s, after_compact = _timed_export(wh, "delta", tmp / "delta")
        parquet_s, pq_rep = _timed_export(wh, "parquet", tmp / "parquet")
        final_rows = _rows(wh)
        delta_rows = _delta_rows(tmp / "delta", list(final_rows))

        imported_rows = sum(rep.records.values())
        return {
            "params": {"files": files, "seed": seed, "increment": INCREMENT, "cpu_count": os.cpu_count()},
            "source": source_state(),
            "legacy_write": {
                "seconds": round(legacy_s, 2),
                "generate_only_s": round(gen_s, 2),
                "files_per_s": round(files / legacy_s, 1),
                "configs": tree["configs"],
                "messages": tree["messages"],
                "attacks": tree["attacks"],
                "disk": legacy_disk,
            },
            "import": {
                "seconds": round(import_s, 2),
                "sources": rep.sources,
                "imported": rep.imported,
                "failed": len(rep.failed),
                "commits": len(rep.versions),
                "rows": dict(rep.records),
                "executions_per_s": round(executions / import_s, 1),
                "rows_per_s": round(imported_rows / import_s, 1),
                "disk": wh_disk,
                "again_s": round(again_s, 2),
                "again_imported": again.imported,
                "again_skipped": again.skipped,
            },
            "export": {
                "delta_s": round(export_s, 2),
                "delta_files": exp.files,
                "delta_rows": exp.rows,
                "delta_rows_per_s": round(sum(exp.rows.values()) / export_s, 1),
                "delta_disk": _disk(tmp / "delta"),
                "direct": direct,
                "noop_s": round(noop_s, 3),
                "noop_files": noop.files,
                "incremental_s": round(incr_s, 2),
                "incremental_rows": incr.rows,
                "compact": {"files_in": compacted.files_in, "files_out": compacted.files_out},
                "after_compact_s": round(after_compact_s, 2),
                "after_compact_rows": after_compact.rows,
                "parquet_s": round(parquet_s, 2),
                "parquet_files": pq_rep.files,
                "parquet_disk": _disk(tmp / "parquet"),
            },
            "checks": {
                "imported_every_file": rep.imported == files and not rep.failed and executions == files,
                "reimport_added_nothing": again.imported == 0 and again.skipped == files,
                "export_rows_equal_direct": exp.rows == direct["rows"],
                "delta_equals_warehouse": delta_rows == final_rows,
                "incremental_only_new": incr.rows.get("executions") == INCREMENT,
            },
            "load_average_1min": [load0, load1, load2, load_average()],
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def markdown(doc: dict[str, Any]) -> str:
    lw, im, ex = doc["legacy_write"], doc["import"], doc["export"]
    d = ex["direct"]
    n = doc["params"]["files"]
    rows = sum(im["rows"].values())
    lines = [
        f"**1. Importing {n:,} legacy task files** ({lw['configs']} configurations, {lw['messages']:,} messages, "
        f"{lw['attacks']:,} attack vectors)",
        "",
        "| step | seconds | rate | on disk |",
        "|---|---:|---:|---:|",
        f"| legacy layout writes them (`ExecutionPersistence.save`: JSON indent=2 + locked index.jsonl) | "
        f"{lw['seconds']} (of which generating the executions: {lw['generate_only_s']}) | {lw['files_per_s']:,} files/s | "
        f"{lw['disk']['files']:,} files, {_mib(lw['disk']['bytes'])} |",
        f'| `wh.import_("legacy", root)` | {im["seconds"]} | {im["executions_per_s"]:,} executions/s, '
        f"{im['rows_per_s']:,} rows/s | {im['disk']['files']:,} files, {_mib(im['disk']['bytes'])} |",
        f"| the same import again (all {n:,} already imported) | {im['again_s']} | | |",
        "",
        f"Import ÷ legacy write: {im['seconds'] / lw['seconds']:.2f}x the time; {rows:,} rows in "
        f"{im['commits']} commit{'s' * (im['commits'] != 1)}.",
        "",
        f"**2. Exporting the warehouse to Delta Lake** ({sum(ex['delta_rows'].values()):,} rows in "
        f"{len(ex['delta_rows'])} tables, {ex['delta_files']:,} data files)",
        "",
        "| step | seconds | note |",
        "|---|---:|---|",
        f'| `wh.export("delta", out)` | {ex["delta_s"]} | {ex["delta_rows_per_s"]:,} rows/s, '
        f"{_mib(ex['delta_disk']['bytes'])} |",
        f"| same rows: read into Arrow from the warehouse files | {d['read_s']} | |",
        f"| same rows: `write_deltalake` directly (Arrow in memory) | {d['write_s']} | "
        f"{_mib(d['disk']['bytes'])}; export ÷ (read + write) = "
        f"{ex['delta_s'] / max(d['read_s'] + d['write_s'], 1e-9):.2f}x |",
        f"| export again, nothing new | {ex['noop_s']} | {ex['noop_files']} files |",
        f"| export after one flush of {doc['params']['increment']} executions | {ex['incremental_s']} | "
        f"{ex['incremental_rows'].get('executions', 0)} executions, "
        f"{ex['incremental_rows'].get('messages', 0):,} messages appended |",
        f"| export after `wh.compact()` ({ex['compact']['files_in']} files → {ex['compact']['files_out']}) | "
        f"{ex['after_compact_s']} | rows of the replaced files replaced in the same commit |",
        f'| `wh.export("parquet", out)` (files copied as they are) | {ex["parquet_s"]} | '
        f"{ex['parquet_files']} files, {_mib(ex['parquet_disk']['bytes'])} |",
        "",
        f"Checks: {', '.join(f'{k}: {v}' for k, v in doc['checks'].items())}. {doc['seconds']} s in all; "
        f"load average {' → '.join(map(str, doc['load_average_1min']))}; {source_line(doc['source'])}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20_000, help="legacy task files to write and import")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where the temporary directory goes (default: the system's)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    if a.files < 1:
        ap.error("--files must be at least 1")
    doc = run(a.files, workdir=a.workdir, seed=a.seed)
    publish("imports", doc, markdown(doc), a.out, None if all(doc["checks"].values()) else doc["checks"])
    return doc


if __name__ == "__main__":
    main()
