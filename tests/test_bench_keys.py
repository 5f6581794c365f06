"""The execution-id key benchmark (`python -m benchmarks.keys`, part of `make bench`) at a tiny size:
every warehouse holds each id once after the retries, the retried warehouse answers like raw DuckDB
over its own rows, and the retries did supersede what they replaced. No timing is asserted."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's benchmarks/

from benchmarks import keys  # noqa: E402

# Each runs a benchmark end to end (many seconds): outside `make check`.
pytestmark = pytest.mark.slow


def test_the_key_benchmark_checks_its_answers(tmp_path: Path) -> None:
    out = tmp_path / "bench-keys.json"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        keys.main(["--executions", "1800", "--reps", "1", "--out", str(out), "--workdir", str(tmp_path)])
    doc = json.loads(out.read_text())
    assert doc["checks"] and all(c["ok"] for c in doc["checks"].values()), doc["checks"]
    assert doc["superseded_rows"] == {
        "generated": 0,
        "given, 1% retried in one config": 18,
        "given, 1% retried everywhere": 18,
        "given, 1% retried everywhere, then compacted": 18,
    }
    assert set(doc["ratios"]) == {f"scores: {n} / raw duckdb" for n in doc["superseded_rows"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-keys.json"]  # the data is deleted
