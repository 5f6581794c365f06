"""Part 1 of the agent-state benchmark, logging: the cost of `Execution.log(...)` on the caller's
thread (a writer with `flush_interval=1.0`), against appending one JSON line per log to a file with
flush() and against Python's `logging` with a FileHandler and a JSON formatter; events committed in
the end, events dropped."""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import warehouse

from ..harness import disk_usage, frozen_gc, load_average, ms, nearest_rank
from .inputs import AGENT, DATASET, text

#: Calls at least this long are counted separately in the logging figures.
SLOW_NS = 1_000_000


def _log_inputs(n: int, seed: int = 1) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Messages (30-150 characters), levels and attribute dicts, cycled through by the n calls."""
    rng = random.Random(seed)
    pool = min(n, 1000) or 1
    messages = [text(rng, rng.randint(30, 150)) for _ in range(pool)]
    levels = [rng.choice(("info", "info", "info", "debug", "warn", "error")) for _ in range(pool)]
    attrs = [
        {
            "tool": rng.choice(("search_emails", "send_email", "read_file", "calendar")),
            "step": i,
            "tokens": rng.randint(50, 4000),
            "latency_ms": round(rng.uniform(5, 900), 1),
            "ok": rng.random() > 0.1,
        }
        for i in range(pool)
    ]
    return messages, levels, attrs


def _time_calls(n: int, call: Callable[[int], Any]) -> list[int]:
    """ns of each of n calls `call(i)`, one perf_counter_ns pair around each."""
    pc = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = pc()
        call(i)
        out[i] = pc() - t0
    return out


def _call_stats(ns: list[int]) -> dict[str, Any]:
    s = sorted(ns)
    slow = [t for t in s if t >= SLOW_NS]
    return {
        "n": len(s),
        "median_us": round(nearest_rank(s, 0.5) / 1000, 3),
        "p90_us": round(nearest_rank(s, 0.9) / 1000, 3),
        "p99_us": round(nearest_rank(s, 0.99) / 1000, 3),
        "p999_us": round(nearest_rank(s, 0.999) / 1000, 3),
        "max_ms": round(s[-1] / 1e6, 3),
        "mean_us": round(sum(s) / len(s) / 1000, 3),
        "calls_over_1ms": len(slow),
        "share_of_time_in_calls_over_1ms": round(sum(slow) / max(1, sum(s)), 4),
    }


def _timer_overhead_ns(n: int = 100_000) -> float:
    pc = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = pc()
        out[i] = pc() - t0
    return statistics.median(out)


def _warehouse_logs(
    root: Path, n: int, messages: list[str], levels: list[str], attrs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    wh = warehouse.open(str(root), create=True)
    w = wh.writer(dataset=DATASET, agent=AGENT, flush_interval=1.0)
    ex = w.start_execution("log-task")
    pool = len(messages)
    log = ex.log
    if attrs is None:
        ns = _time_calls(n, lambda i: log(levels[i % pool], messages[i % pool], source="agent-callback"))
    else:
        ns = _time_calls(
            n, lambda i: log(levels[i % pool], messages[i % pool], source="agent-callback", attrs=attrs[i % pool])
        )
    t0 = time.perf_counter()
    w.close()
    close_s = time.perf_counter() - t0
    committed = wh.sql(
        "select count(*) from events where execution_id = ? and kind = 'log'", [ex.execution_id]
    ).fetchall()[0][0]
    return {
        **_call_stats(ns),
        "close_ms": ms(close_s),
        "logged": n,
        "committed": committed,
        "dropped": sum(w.dropped_events.values()),
        "dropped_by_reason": w.dropped_events,
        "commits": wh.version,
        "disk": disk_usage(root),
    }


def _jsonl_logs(
    root: Path, n: int, messages: list[str], levels: list[str], attrs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """One JSON line per log appended to a file, flushed at once (what a JSONL logger does)."""
    root.mkdir(parents=True)
    path = root / "logs.jsonl"
    pool, dumps, now, utc = len(messages), json.dumps, datetime.now, UTC
    with open(path, "a", encoding="utf-8") as f:
        write, flush = f.write, f.flush

        def call(i: int) -> None:
            rec = {
                "executionId": "exec-1",
                "timestamp": now(utc).isoformat(),
                "level": levels[i % pool],
                "message": messages[i % pool],
                "source": "agent-callback",
            }
            if attrs is not None:
                rec["attributes"] = attrs[i % pool]
            write(dumps(rec) + "\n")
            flush()

        ns = _time_calls(n, call)
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    return {**_call_stats(ns), "logged": n, "committed": lines, "dropped": 0, "disk": disk_usage(root)}


class _JsonFormatter(logging.Formatter):
    """One JSON object per record, with the fields the results service stores."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "executionId": getattr(record, "execution_id", None),
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            "source": getattr(record, "source", None),
        }
        a = getattr(record, "attributes", None)
        if a is not None:
            doc["attributes"] = a
        return json.dumps(doc)


_LOGGING_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _logging_logs(
    root: Path, n: int, messages: list[str], levels: list[str], attrs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """`logging` with a FileHandler (which flushes after every record) and a JSON formatter."""
    root.mkdir(parents=True)
    path = root / "agent.log"
    logger = logging.getLogger(f"bench.agent_state.{os.getpid()}.{root.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_JsonFormatter())
    logger.addHandler(handler)
    pool = len(messages)
    lv = [_LOGGING_LEVELS[x] for x in levels]
    try:
        if attrs is None:
            ns = _time_calls(
                n,
                lambda i: logger.log(
                    lv[i % pool], messages[i % pool], extra={"execution_id": "exec-1", "source": "agent-callback"}
                ),
            )
        else:
            ns = _time_calls(
                n,
                lambda i: logger.log(
                    lv[i % pool],
                    messages[i % pool],
                    extra={"execution_id": "exec-1", "source": "agent-callback", "attributes": attrs[i % pool]},
                ),
            )
    finally:
        logger.removeHandler(handler)
        handler.close()
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    return {**_call_stats(ns), "logged": n, "committed": lines, "dropped": 0, "disk": disk_usage(root)}


def _first_chunk_ms(root: Path) -> dict[str, Any]:
    """The slowest of the first 8,200 `ex.log` calls of this process: the first 8,192 buffered
    events are converted to Arrow on the caller's thread, and pyarrow's first conversion of a
    timezone-aware timestamp imports pandas when it is installed."""
    pandas_loaded = "pandas" in sys.modules
    wh = warehouse.open(str(root), create=True)
    w = wh.writer(dataset=DATASET, agent=AGENT, flush_interval=1.0)
    ex = w.start_execution("warm-up")
    ns = _time_calls(8200, lambda i: ex.log("info", "warm-up"))
    w.close()
    return {"max_ms": round(max(ns) / 1e6, 3), "pandas_imported_before": pandas_loaded}


def bench_logs(tmp: Path, n: int) -> dict[str, Any]:
    messages, levels, attrs = _log_inputs(n)
    out: dict[str, Any] = {"n": n, "load_average_1min": [load_average()]}
    out["first_events_of_the_process"] = _first_chunk_ms(tmp / "warm-up")
    out["timer_overhead_ns"] = _timer_overhead_ns()
    competitors = {"warehouse": _warehouse_logs, "jsonl": _jsonl_logs, "logging": _logging_logs}
    with frozen_gc():
        for variant, a in (("no_attrs", None), ("attrs", attrs)):
            for name, fn in competitors.items():
                out.setdefault(name, {})[variant] = fn(tmp / f"logs-{name}-{variant}", n, messages, levels, a)
    out["load_average_1min"].append(load_average())
    return out
