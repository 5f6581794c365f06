"""The agent-state benchmark (`python -m benchmarks.agent_state`, part of `make bench`) at a tiny size,
in-process: every figure is in its JSON, every log is committed once and none dropped, every
checkpoint and snapshot reads back equal. No timing is asserted."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's benchmarks/

from benchmarks import agent_state  # noqa: E402

# Each runs a benchmark end to end (many seconds): outside `make check`.
pytestmark = pytest.mark.slow

LOG_FIGURES = (
    "median_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "mean_us",
    "max_ms",
    "calls_over_1ms",
    "share_of_time_in_calls_over_1ms",
    "logged",
    "committed",
    "dropped",
    "disk",
)
SAVE_FIGURES = (
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "first_10pct_p50_ms",
    "last_10pct_p50_ms",
    "total_s",
    "load_latest_ms",
    "loaded_ok",
    "disk",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    tmp = tmp_path_factory.mktemp("agent-state")
    out = tmp / "bench-agent-state.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        agent_state.main(
            ["--logs", "2000", "--checkpoints", "10", "--snapshots", "20", "--out", str(out), "--workdir", str(tmp)]
        )
    return json.loads(out.read_text()), printed.getvalue()


def test_every_log_is_committed_once_and_none_dropped(run: tuple[dict[str, Any], str]) -> None:
    doc, _ = run
    logs = doc["logs"]
    for competitor in ("warehouse", "jsonl", "logging"):
        for variant in ("no_attrs", "attrs"):
            r = logs[competitor][variant]
            for key in LOG_FIGURES:
                assert r[key] is not None, (competitor, variant, key)
            assert r["logged"] == 2000 and r["committed"] == 2000 and r["dropped"] == 0, (competitor, variant)
    assert logs["warehouse"]["no_attrs"]["dropped_by_reason"] == {}
    assert logs["warehouse"]["attrs"]["close_ms"] >= 0
    assert doc["checks"]["logs_committed_equal_logged"] and doc["checks"]["logs_dropped"] == 0


def test_checkpoints_have_every_figure_and_read_back_equal(run: tuple[dict[str, Any], str]) -> None:
    cp = run[0]["checkpoints"]
    assert cp["n"] == 10 and cp["state_bytes"] > 1000
    for competitor in ("warehouse", "files_no_fsync", "files_fsync"):
        for key in SAVE_FIGURES:
            assert cp[competitor][key] is not None, (competitor, key)
        assert cp[competitor]["loaded_ok"] is True, competitor
        assert cp[competitor]["n"] == 10
    assert cp["warehouse"]["open_and_load_latest_ms"] > 0
    assert cp["files_no_fsync"]["disk"]["files"] == 10


def test_snapshot_curve_has_every_point_for_both_and_reads_back_every_snapshot(run: tuple[dict[str, Any], str]) -> None:
    sn = run[0]["snapshots"]
    assert sn["curve_at"] == [1, 10, 20]
    for competitor in ("warehouse", "state_json", "state_json_indent2"):
        assert set(sn[competitor]["curve_ms"]) == {"1", "10", "20"}, competitor
    for competitor in ("warehouse", "state_json"):
        r = sn[competitor]
        for key in ("total_s", "start_ms", "load_all_ms", "bytes_written", "disk"):
            assert r[key] is not None, (competitor, key)
        assert r["loaded"] == 20 and r["loaded_ok"] is True, competitor
    assert sn["state_json"]["disk"]["files"] == 1


def test_prints_the_tables_with_ratios_and_the_goal(run: tuple[dict[str, Any], str]) -> None:
    doc, printed = run
    for title in ("**1. Logging", "**2. Checkpoints", "**3. Simulation snapshots", "| goal | measured | met |"):
        assert title in printed
    assert "warehouse ÷ JSONL" in printed and "warehouse ÷ fsync" in printed and "warehouse ÷ compact" in printed
    assert doc["goals"][0]["met"] in (True, False) and doc["source"]["commit"] is not None
    assert json.loads(printed[printed.index("\n{") + 1 :]) == doc  # the same document on stdout
