"""The import/export benchmark (`python -m benchmarks.imports`, part of `make bench`) at a tiny size,
in-process: every figure is in its JSON, every legacy file is imported once, the Delta export holds
the warehouse's rows, the incremental export only the new ones. No timing is asserted."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's benchmarks/ and tests/

from benchmarks import imports  # noqa: E402

# Each runs a benchmark end to end (many seconds): outside `make check`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    tmp = tmp_path_factory.mktemp("bench-imports")
    out = tmp / "bench-imports.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        imports.main(["--files", "40", "--out", str(out), "--workdir", str(tmp)])
    return json.loads(out.read_text()), printed.getvalue()


def test_every_legacy_file_is_imported_once_and_the_rates_are_reported(run: tuple[dict[str, Any], str]) -> None:
    doc, _ = run
    lw, im = doc["legacy_write"], doc["import"]
    assert lw["configs"] == 18 and lw["disk"]["files"] == 40 + 18 + 2  # files, config.yaml each, index + lock
    assert lw["seconds"] > lw["generate_only_s"] > 0
    assert im["imported"] == 40 and im["failed"] == 0 and im["rows"]["executions"] == 40
    assert im["rows"]["messages"] == lw["messages"] and im["rows"]["attacks"] == lw["attacks"]
    assert im["again_imported"] == 0 and im["again_skipped"] == 40
    assert im["executions_per_s"] > 0 and im["rows_per_s"] > im["executions_per_s"]


def test_delta_export_matches_the_direct_write_and_stays_incremental(run: tuple[dict[str, Any], str]) -> None:
    ex = run[0]["export"]
    assert ex["delta_rows"] == ex["direct"]["rows"] and ex["delta_rows"]["executions"] == 40
    assert ex["direct"]["read_s"] > 0 and ex["direct"]["write_s"] > 0 and ex["delta_s"] > 0
    assert ex["noop_files"] == 0
    assert ex["incremental_rows"]["executions"] == imports.INCREMENT
    assert ex["compact"]["files_in"] > ex["compact"]["files_out"]
    assert ex["parquet_files"] > 0 and all(run[0]["checks"].values()), run[0]["checks"]


def test_prints_both_tables_and_the_same_document(run: tuple[dict[str, Any], str]) -> None:
    doc, printed = run
    assert (
        "**1. Importing 40 legacy task files**" in printed and "**2. Exporting the warehouse to Delta Lake**" in printed
    )
    assert "`write_deltalake` directly" in printed and doc["source"]["commit"] is not None
    assert json.loads(printed[printed.index("\n{") + 1 :]) == doc
