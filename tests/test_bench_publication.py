"""The publication benchmark (`python -m benchmarks.publication`, part of `make bench`) at a tiny size:
its JSON has every part's figures, publication wrote no data (only files under `_delta_log/`),
automatic publication caught up, and the long log has its checkpoints. No timing is asserted."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's benchmarks/

from benchmarks import publication  # noqa: E402

# Runs the benchmark end to end (writer processes, many seconds): outside `make check`.
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_the_publication_benchmark_writes_no_data_and_reports_every_part(tmp_path: Path) -> None:
    out = tmp_path / "bench-publication.json"
    argv = ["--executions", "360", "--flushes", "36", "--small-flushes", "6", "--flush-size", "5"]
    argv += ["--commits", "101", "--reps", "1", "--out", str(out), "--workdir", str(tmp_path)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        publication.main(argv)
    doc = json.loads(out.read_text())
    assert doc["checks"] and all(c["ok"] for c in doc["checks"].values()), doc["checks"]

    p1 = doc["publish_vs_export"]
    assert p1["warehouse_version"] == 36
    assert p1["publish"]["data_bytes"] == p1["publish"]["data_files"] == p1["publish"]["changed_files"] == 0
    assert p1["publish"]["derived_bytes"] == 0
    assert p1["publish"]["log_files"] >= 2 and p1["publish"]["log_bytes"] > 0  # a log per table at least
    assert p1["export"]["bytes"] > 0 and p1["publish"]["seconds"] > 0 and p1["export"]["seconds"] > 0
    assert p1["rows"]["warehouse"] == {"executions": 360, "messages": 3600}

    p2 = doc["automatic"]
    assert set(p2["runs"]) == {"without publication", 'publish=["delta"]'}
    on = p2["runs"]['publish=["delta"]']
    assert on["warehouse_version"] == on["published_version"] == [6]
    assert all(r["flush_p50_ms"] > 0 and r["flush_p90_ms"] >= r["flush_p50_ms"] for r in p2["runs"].values())
    assert p2["ratio_p50"] > 0 and len(on["catch_up_s"]) == 1

    p3 = doc["long_log"]
    assert (p3["delta_version"], p3["checkpoints"], p3["rows"]) == (100, 1, 101)
    assert set(p3["times"]) == {"DeltaTable(uri)", "polars scan_delta count"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-publication.json"]  # the data is deleted


def test_the_long_log_benchmark_counts_every_commit_once_before_and_after_compaction(tmp_path: Path) -> None:
    from benchmarks import publication_long_log

    doc = publication_long_log.run(str(tmp_path / "wh"), 120, reps=1)
    assert doc["rows_in_view"] == doc["log"]["rows"] == doc["log_after_compaction"]["rows"] == 120
    assert doc["log"]["txn"] == 120 and doc["log"]["files"] == 120  # caught up: every flush's file, once
    assert 1 <= doc["log"]["delta_versions"] <= 121  # automatic mode may coalesce commits
    assert doc["log_after_compaction"]["files"] == 1 and doc["log_after_compaction"]["txn"] == 121
