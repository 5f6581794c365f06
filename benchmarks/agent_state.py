"""Agent-state benchmarks (issue 6): logs, checkpoints and simulation snapshots against the reference's ways.

Each operation is measured next to the same operation done the reference's way, side by side in
one run, each competitor in a fresh temporary directory:

1. logging: the cost of `Execution.log(...)` on the caller's thread (a writer with
   `flush_interval=1.0`), against appending one JSON line per log to a file with flush() and against
   Python's `logging` with a FileHandler and a JSON formatter (the reference inserts one Postgres row
   per log; there is no Postgres here). Also: events committed in the end, events dropped.
2. checkpoints: `Execution.checkpoint(state, step=i)` (committed when it returns) against the
   rollouts FileCheckpointStore way, one `turn_{i}.json` per checkpoint written atomically (temp file
   + os.replace), with and without fsync; and loading the newest one back.
3. simulation snapshots: `Warehouse.run_recorder(scenario, save_frequency=1)` + `step(...)` against
   the reference's `state.json`, read whole, appended to and rewritten (temp file + rename) at every
   save: the k-th save's time for k = 1..N, bytes on disk, and loading every snapshot back.

    python -m benchmarks.agent_state [--logs 200000] [--checkpoints 300] [--snapshots 1000] [--out FILE]

Prints the tables (Markdown) and one JSON document, also written to --out. Ratios are
warehouse / reference: below 1 the warehouse is faster.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import warehouse

DATASET = {"type": "bench_agent_state", "config": {"suite": "workspace"}}
AGENT = {"type": "tool_agent", "config": {"model": "gpt-4o-2024-08-06", "max_turns": 50}}
#: Where the k-th save of the snapshot curve is reported (those <= N, and N itself).
CURVE_AT = (1, 10, 100, 250, 500, 1000)
#: The curve at k is the median of the saves k-W..k+W (clipped to 1..N): one save is one sample.
CURVE_WINDOW = 5
#: The indent=2 variant of state.json is measured at the curve's points only, this many saves each.
SPOT_SAVES = 3
#: Calls at least this long are counted separately in the logging figures.
SLOW_NS = 1_000_000

_WORDS = ("the agent calls search_emails with query invoice and finds three matching messages from "
          "accounting about the quarterly report which is due on friday so it drafts a reply asking for "
          "the revised figures before scheduling a meeting in the shared calendar with alice and bob "
          "then reads the attached spreadsheet summarises totals per region flags an outlier in emea "
          "and waits for the tool result before deciding whether to send the message or ask the user").split()


def _text(rng: random.Random, n_chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)


# -- measuring ---------------------------------------------------------------------------------------
def _pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


@contextmanager
def _frozen_gc() -> Iterator[None]:
    """Collect, then freeze the generated data out of the collector's way (as the main suite does);
    the collector itself stays on, as users have it."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _disk(root: Path) -> dict[str, int]:
    """Sum of file sizes and of allocated blocks under `root`, the number of files, and the bytes of
    the warehouse's manifest commits among them."""
    size = blocks = files = manifest = 0
    for dirpath, _, names in os.walk(root):
        in_manifest = Path(dirpath).name == "_manifest"
        for n in names:
            st = os.stat(os.path.join(dirpath, n))
            size += st.st_size
            blocks += st.st_blocks * 512
            files += 1
            manifest += st.st_size if in_manifest else 0
    return {"bytes": size, "allocated_bytes": blocks, "files": files, "manifest_bytes": manifest}


def _median_of(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Median seconds of `reps` calls of fn, and fn's last result."""
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


# -- 1. logging --------------------------------------------------------------------------------------
def _log_inputs(n: int, seed: int = 1) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Messages (30-150 characters), levels and attribute dicts, cycled through by the n calls."""
    rng = random.Random(seed)
    pool = min(n, 1000) or 1
    messages = [_text(rng, rng.randint(30, 150)) for _ in range(pool)]
    levels = [rng.choice(("info", "info", "info", "debug", "warn", "error")) for _ in range(pool)]
    attrs = [{"tool": rng.choice(("search_emails", "send_email", "read_file", "calendar")), "step": i,
              "tokens": rng.randint(50, 4000), "latency_ms": round(rng.uniform(5, 900), 1), "ok": rng.random() > 0.1}
             for i in range(pool)]
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
    return {"n": len(s), "median_us": round(_pct(s, 0.5) / 1000, 3), "p90_us": round(_pct(s, 0.9) / 1000, 3),
            "p99_us": round(_pct(s, 0.99) / 1000, 3), "p999_us": round(_pct(s, 0.999) / 1000, 3),
            "max_ms": round(s[-1] / 1e6, 3), "mean_us": round(sum(s) / len(s) / 1000, 3),
            "calls_over_1ms": len(slow), "share_of_time_in_calls_over_1ms": round(sum(slow) / max(1, sum(s)), 4)}


def _timer_overhead_ns(n: int = 100_000) -> float:
    pc = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = pc()
        out[i] = pc() - t0
    return statistics.median(out)


def _warehouse_logs(root: Path, n: int, messages: list[str], levels: list[str],
                    attrs: list[dict[str, Any]] | None) -> dict[str, Any]:
    wh = warehouse.open(str(root), create=True)
    w = wh.writer(dataset=DATASET, agent=AGENT, flush_interval=1.0)
    ex = w.start_execution("log-task")
    pool = len(messages)
    log = ex.log
    if attrs is None:
        ns = _time_calls(n, lambda i: log(levels[i % pool], messages[i % pool], source="agent-callback"))
    else:
        ns = _time_calls(n, lambda i: log(levels[i % pool], messages[i % pool], source="agent-callback",
                                          attrs=attrs[i % pool]))
    t0 = time.perf_counter()
    w.close()
    close_s = time.perf_counter() - t0
    committed = wh.sql("select count(*) from events where execution_id = ? and kind = 'log'",
                       [ex.execution_id]).fetchall()[0][0]
    return {**_call_stats(ns), "close_ms": _ms(close_s), "logged": n, "committed": committed,
            "dropped": sum(w.dropped_events.values()), "dropped_by_reason": w.dropped_events,
            "commits": wh.version, "disk": _disk(root)}


def _jsonl_logs(root: Path, n: int, messages: list[str], levels: list[str],
                attrs: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One JSON line per log appended to a file, flushed at once (what a JSONL logger does)."""
    root.mkdir(parents=True)
    path = root / "logs.jsonl"
    pool, dumps, now, utc = len(messages), json.dumps, datetime.now, timezone.utc
    with open(path, "a", encoding="utf-8") as f:
        write, flush = f.write, f.flush

        def call(i: int) -> None:
            rec = {"executionId": "exec-1", "timestamp": now(utc).isoformat(), "level": levels[i % pool],
                   "message": messages[i % pool], "source": "agent-callback"}
            if attrs is not None:
                rec["attributes"] = attrs[i % pool]
            write(dumps(rec) + "\n")
            flush()

        ns = _time_calls(n, call)
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    return {**_call_stats(ns), "logged": n, "committed": lines, "dropped": 0, "disk": _disk(root)}


class _JsonFormatter(logging.Formatter):
    """One JSON object per record, with the fields the results service stores."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"executionId": getattr(record, "execution_id", None),
               "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
               "level": record.levelname.lower(), "message": record.getMessage(),
               "source": getattr(record, "source", None)}
        a = getattr(record, "attributes", None)
        if a is not None:
            doc["attributes"] = a
        return json.dumps(doc)


_LOGGING_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _logging_logs(root: Path, n: int, messages: list[str], levels: list[str],
                  attrs: list[dict[str, Any]] | None) -> dict[str, Any]:
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
            ns = _time_calls(n, lambda i: logger.log(lv[i % pool], messages[i % pool],
                                                     extra={"execution_id": "exec-1", "source": "agent-callback"}))
        else:
            ns = _time_calls(n, lambda i: logger.log(lv[i % pool], messages[i % pool],
                                                     extra={"execution_id": "exec-1", "source": "agent-callback",
                                                            "attributes": attrs[i % pool]}))
    finally:
        logger.removeHandler(handler)
        handler.close()
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    return {**_call_stats(ns), "logged": n, "committed": lines, "dropped": 0, "disk": _disk(root)}


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
    out: dict[str, Any] = {"n": n, "load_average_1min": [_load()]}
    out["first_events_of_the_process"] = _first_chunk_ms(tmp / "warm-up")
    out["timer_overhead_ns"] = _timer_overhead_ns()
    competitors = {"warehouse": _warehouse_logs, "jsonl": _jsonl_logs, "logging": _logging_logs}
    with _frozen_gc():
        for variant, a in (("no_attrs", None), ("attrs", attrs)):
            for name, fn in competitors.items():
                out.setdefault(name, {})[variant] = fn(tmp / f"logs-{name}-{variant}", n, messages, levels, a)
    out["load_average_1min"].append(_load())
    return out


# -- 2. checkpoints ----------------------------------------------------------------------------------
def checkpoint_state(i: int, rng: random.Random) -> dict[str, Any]:
    """An agent state like the rollouts checkpoint JSON (without its _metadata): the actor's endpoint,
    ~10 messages of a few hundred characters with tool calls, tools, the environment's state, pending
    tool calls. About 6 KB of JSON."""
    tool_names = ("search_emails", "send_email", "read_file", "create_calendar_event")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": _text(rng, 400)},
        {"role": "user", "content": _text(rng, 250)},
    ]
    for t in range(4):
        call = {"id": f"tc{i}_{t}", "name": rng.choice(tool_names), "args": {"query": _text(rng, 30), "limit": 10}}
        messages.append({"role": "assistant", "content": _text(rng, 200), "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": _text(rng, 350)})
    tools = [{"type": "function", "function": {"name": n, "description": _text(rng, 80), "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query"]}}} for n in tool_names]
    env = {"class_name": "WorkspaceEnvironment", "data": {"state": {
        "inbox": [{"id": k, "from": f"user{k}@example.com", "subject": _text(rng, 40), "read": rng.random() > 0.5}
                  for k in range(5)],
        "calendar": [{"day": f"2025-01-{10 + k:02d}", "title": _text(rng, 25)} for k in range(3)],
        "cwd": "/home/agent", "budget_left": round(rng.uniform(0, 5), 2)}}}
    pending = [{"id": f"tc{i}_p", "name": rng.choice(tool_names), "args": {"query": _text(rng, 30)}}]
    return {"actor": {"endpoint": {"base_url": "https://api.openai.com/v1", "model": "gpt-4o", "max_tokens": 2000,
                                   "temperature": 0.7},
                      "messages": messages, "tools": tools},
            "environment": env, "turn_idx": i, "max_turns": 50, "stop": None, "pending_tool_calls": pending,
            "next_tool_idx": 0}


class FileCheckpointStore:
    """The reference's checkpoint store (rollouts/checkpoints.py): one `<checkpoint_id>.json` per
    checkpoint in a directory, written to a temp file and renamed into place (os.replace)."""

    def __init__(self, directory: Path, *, fsync: bool) -> None:
        self.directory, self.fsync = directory, fsync
        directory.mkdir(parents=True, exist_ok=True)

    def save(self, checkpoint_id: str, state: dict[str, Any]) -> None:
        now = time.time()
        doc = {"_metadata": {"checkpoint_id": checkpoint_id, "timestamp": now,
                             "iso_time": datetime.fromtimestamp(now).isoformat()}, **state}
        path = self.directory / f"{checkpoint_id}.json"
        tmp = self.directory / f".{checkpoint_id}.json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc))
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)

    def load(self, checkpoint_id: str) -> dict[str, Any]:
        with open(self.directory / f"{checkpoint_id}.json", encoding="utf-8") as f:
            return json.load(f)

    def latest(self) -> dict[str, Any]:
        """The newest `turn_N.json` (largest N)."""
        turns = [int(n[5:-5]) for n in os.listdir(self.directory) if n.startswith("turn_") and n.endswith(".json")]
        return self.load(f"turn_{max(turns)}")


def _save_stats(seconds: list[float]) -> dict[str, Any]:
    s = sorted(seconds)
    k = max(1, len(seconds) // 10)
    return {"n": len(s), "p50_ms": _ms(_pct(s, 0.5)), "p90_ms": _ms(_pct(s, 0.9)), "p99_ms": _ms(_pct(s, 0.99)),
            "mean_ms": _ms(sum(s) / len(s)), "first_10pct_p50_ms": _ms(statistics.median(seconds[:k])),
            "last_10pct_p50_ms": _ms(statistics.median(seconds[-k:])), "total_s": round(sum(s), 3)}


def bench_checkpoints(tmp: Path, n: int) -> dict[str, Any]:
    rng = random.Random(2)
    states = [checkpoint_state(i, rng) for i in range(n)]
    out: dict[str, Any] = {"n": n, "state_bytes": len(json.dumps(states[0])), "load_average_1min": [_load()]}
    with _frozen_gc():
        # warehouse: one commit per checkpoint (a Parquet file of one row + a manifest commit)
        root = tmp / "ckpt-warehouse"
        wh = warehouse.open(str(root), create=True)
        w = wh.writer(dataset=DATASET, agent=AGENT, flush_interval=1.0)
        ex = w.start_execution("checkpoint-task")
        w.flush()  # the running revision and its status event: committed before timing
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            ex.checkpoint(states[i], step=i)
            times.append(time.perf_counter() - t0)
        res = _save_stats(times)
        load_s, cp = _median_of(lambda: wh.latest_checkpoint(ex.execution_id), 5)
        ok = cp is not None and cp.step == n - 1 and cp.state == states[-1]
        open_load_s, cp2 = _median_of(lambda: warehouse.open(str(root)).latest_checkpoint(ex.execution_id), 3)
        ok = ok and cp2 is not None and cp2.step == n - 1
        w.close()
        res.update({"load_latest_ms": _ms(load_s), "open_and_load_latest_ms": _ms(open_load_s), "loaded_ok": ok,
                    "commits": wh.version, "disk": _disk(root)})
        out["warehouse"] = res

        # the reference: turn_{i}.json, atomically, without and with fsync
        for name, fsync in (("files_no_fsync", False), ("files_fsync", True)):
            root = tmp / f"ckpt-{name}"
            store = FileCheckpointStore(root, fsync=fsync)
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                store.save(f"turn_{i}", states[i])
                times.append(time.perf_counter() - t0)
            res = _save_stats(times)
            load_s, doc = _median_of(store.latest, 20)
            doc.pop("_metadata")
            res.update({"load_latest_ms": _ms(load_s), "loaded_ok": doc == states[-1], "disk": _disk(root)})
            out[name] = res
    out["load_average_1min"].append(_load())
    return out


# -- 3. simulation snapshots -------------------------------------------------------------------------
def sim_snapshot(step: int, rng: random.Random) -> dict[str, Any]:
    """One simulation snapshot as in the reference's state.json: game_state, global_vars, agent_vars
    of 2-4 agents, and the step's messages (one to and one from each agent). About 1.3-2 KB."""
    names = ("Agent Alpha", "Agent Beta", "Agent Gamma", "Agent Delta")[:rng.randint(2, 4)]
    agents = {a: {"economic_strength": round(rng.uniform(500, 5000), 2), "risk_tolerance": round(rng.random(), 2),
                  "action_count": step, "inventory": {"food": rng.randint(0, 99), "gold": rng.randint(0, 999)},
                  "last_action": rng.choice(("trade", "invest", "hold", "negotiate"))} for a in names}
    messages = []
    for a in names[:2]:
        messages.append({"from": "Orchestrator", "to": a, "content": f"Round {step}: " + _text(rng, 120)})
        messages.append({"from": a, "to": "Orchestrator", "content": _text(rng, 100)})
    return {"game_state": {"resources": rng.randint(0, 500), "difficulty": "normal", "round": step,
                           "market": {"food": round(rng.uniform(1, 3), 2), "gold": round(rng.uniform(10, 30), 2)},
                           "events": ["drought"] if rng.random() < 0.1 else []},
            "global_vars": {"interest_rate": 0.05, "market_volatility": round(rng.random() / 5, 3),
                            "simulation_active": True},
            "agent_vars": agents, "messages": messages}


class RunPersistence:
    """The reference's simulation persistence (src/persistence.py): one `state.json` per run,
    holding every snapshot; each save reads it, appends the snapshot and writes the whole document
    to a temp file renamed into place. `indent=2` writes it as the reference shows it."""

    def __init__(self, results: Path, scenario: str, *, indent: int | None = None) -> None:
        self.started_at = datetime.now().replace(microsecond=0)
        self.run_id = f"run_{scenario}_{self.started_at.strftime('%Y-%m-%d_%H-%M-%S')}"
        self.dir = results / self.run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "state.json"
        self.scenario, self.indent = scenario, indent
        self._write(self._new())

    def _new(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "scenario": self.scenario, "started_at": self.started_at.isoformat(),
                "snapshots": []}

    def _write(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=self.indent))
        os.replace(tmp, self.path)

    def save_snapshot(self, step: int, game_state: Any, global_vars: Any, agent_vars: Any, messages: Any) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = self._new()
        doc["snapshots"].append({"step": step, "game_state": game_state, "global_vars": global_vars,
                                 "agent_vars": agent_vars, "messages": messages})
        self._write(doc)

    def load(self) -> dict[str, Any]:
        with open(self.path, encoding="utf-8") as f:
            return json.load(f)


def _curve(seconds: list[float], ks: Sequence[int]) -> dict[str, float]:
    """ms of the k-th save (1-based), as the median of saves k-W..k+W clipped to 1..N."""
    n = len(seconds)
    return {str(k): _ms(statistics.median(seconds[max(0, k - 1 - CURVE_WINDOW):min(n, k + CURVE_WINDOW)]))
            for k in ks}


def _spot_saves(tmp: Path, snaps: list[dict[str, Any]], ks: Sequence[int], indent: int) -> dict[str, float]:
    """The k-th save of state.json written with `indent`, measured at the curve's points only:
    state.json is first written holding k-1 snapshots (untimed), then SPOT_SAVES saves are timed."""
    out = {}
    for k in ks:
        rp = RunPersistence(tmp / f"spot-{k}", "bench_scenario", indent=indent)
        doc = rp._new()
        doc["snapshots"] = [{"step": s, **snaps[s % len(snaps)]} for s in range(k - 1)]
        rp._write(doc)
        times = []
        for j in range(SPOT_SAVES):
            s = k - 1 + j
            t0 = time.perf_counter()
            rp.save_snapshot(s, **snaps[s % len(snaps)])
            times.append(time.perf_counter() - t0)
        out[str(k)] = _ms(statistics.median(times))
        shutil.rmtree(tmp / f"spot-{k}")
    return out


def bench_snapshots(tmp: Path, n: int) -> dict[str, Any]:
    rng = random.Random(3)
    snaps = [sim_snapshot(s, rng) for s in range(n)]
    ks = sorted({k for k in CURVE_AT if k <= n} | {n})
    out: dict[str, Any] = {"n": n, "snapshot_bytes": len(json.dumps(snaps[0])), "curve_at": ks,
                           "curve_window": CURVE_WINDOW, "load_average_1min": [_load()]}
    with _frozen_gc():
        # warehouse: one row of `snapshots` per save, committed before step() returns
        root = tmp / "sim-warehouse"
        wh = warehouse.open(str(root), create=True)
        t0 = time.perf_counter()
        rec = wh.run_recorder("bench_scenario", save_frequency=1)
        start_s = time.perf_counter() - t0
        times = []
        for s in range(n):
            t0 = time.perf_counter()
            saved = rec.step(s, **snaps[s])
            times.append(time.perf_counter() - t0)
            assert saved
        rec.close()
        load_s, loaded = _median_of(lambda: wh.snapshots(rec.run_id), 3)
        ok = len(loaded) == n and [x["step"] for x in loaded] == list(range(n)) and \
            {k: loaded[-1][k] for k in snaps[-1]} == snaps[-1]
        disk = _disk(root)
        out["warehouse"] = {"api": "Warehouse.run_recorder + RunRecorder.step", "start_ms": _ms(start_s),
                            "curve_ms": _curve(times, ks), "total_s": round(sum(times), 3),
                            "load_all_ms": _ms(load_s), "loaded": len(loaded), "loaded_ok": ok,
                            "commits": wh.version, "disk": disk, "bytes_written": disk["bytes"]}

        # the reference: state.json rewritten whole at every save (compact JSON: its fastest form)
        results = tmp / "sim-state-json"
        t0 = time.perf_counter()
        rp = RunPersistence(results, "bench_scenario")
        start_s = time.perf_counter() - t0
        times, written = [], 0
        for s in range(n):
            t0 = time.perf_counter()
            rp.save_snapshot(s, **snaps[s])
            times.append(time.perf_counter() - t0)
            written += rp.path.stat().st_size
        load_s, doc = _median_of(rp.load, 3)
        ok = len(doc["snapshots"]) == n and doc["snapshots"][-1] == {"step": n - 1, **snaps[-1]}
        out["state_json"] = {"api": "RunPersistence.save_snapshot, json.dumps compact", "start_ms": _ms(start_s),
                             "curve_ms": _curve(times, ks), "total_s": round(sum(times), 3),
                             "load_all_ms": _ms(load_s), "loaded": len(doc["snapshots"]), "loaded_ok": ok,
                             "disk": _disk(results), "bytes_written": written}
        out["state_json_indent2"] = {"api": "RunPersistence.save_snapshot, json.dumps(indent=2)",
                                     "curve_ms": _spot_saves(tmp, snaps, ks, indent=2),
                                     "saves_per_point": SPOT_SAVES}
    out["load_average_1min"].append(_load())
    return out


# -- the report --------------------------------------------------------------------------------------
def run(logs: int = 200_000, checkpoints: int = 300, snapshots: int = 1000,
        workdir: str | Path | None = None) -> dict[str, Any]:
    """Run the three parts in fresh temporary directories (removed afterwards); the results document."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-state-", dir=workdir))
    try:
        out: dict[str, Any] = {"benchmark": "agent_state", "started_at": started.isoformat(timespec="seconds"),
                               "params": {"logs": logs, "checkpoints": checkpoints, "snapshots": snapshots},
                               "load_average_1min_before": _load()}
        for part, fn, n in (("logs", bench_logs, logs), ("checkpoints", bench_checkpoints, checkpoints),
                            ("snapshots", bench_snapshots, snapshots)):
            t1 = time.perf_counter()
            out[part] = fn(tmp, n)
            out[part]["seconds"] = round(time.perf_counter() - t1, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_average_1min_after"] = _load()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    lg = out["logs"]["warehouse"]
    out["goals"] = [{
        "goal": "ex.log median < 5 us on the caller's thread (no attributes)",
        "measured_us": lg["no_attrs"]["median_us"],
        "met": lg["no_attrs"]["median_us"] < 5.0,
    }]
    out["checks"] = {
        "logs_committed_equal_logged": all(out["logs"][c][v]["committed"] == out["logs"][c][v]["logged"]
                                           for c in ("warehouse", "jsonl", "logging") for v in ("no_attrs", "attrs")),
        "logs_dropped": sum(v["dropped"] for v in lg.values()),
        "checkpoints_loaded_ok": all(out["checkpoints"][c]["loaded_ok"]
                                     for c in ("warehouse", "files_no_fsync", "files_fsync")),
        "snapshots_loaded_ok": out["snapshots"]["warehouse"]["loaded_ok"] and out["snapshots"]["state_json"]["loaded_ok"],
    }
    from .runner import machine, source_state, versions  # imported late: it pulls in pandas and rich

    out["machine"] = {**machine(), "versions": versions()}
    out["source"] = source_state()
    return out


def _ratio(ours: float, ref: float) -> str:
    return f"{ours / ref:.2f}" if ref else ""


def _num(x: float, unit: str) -> str:
    return f"{x:,.2f} {unit}" if x < 100 else f"{x:,.0f} {unit}"


def _size(b: int) -> str:
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.1f} {unit}"
    return f"{b} B"


def markdown(doc: dict[str, Any]) -> str:
    """The results document as Markdown tables (what BENCHMARKS.md shows)."""
    from .runner import source_line as _source_line  # late: runner pulls in pandas and rich

    lines: list[str] = []
    lg = doc["logs"]
    n = lg["n"]
    lines += [f"**1. Logging: {n:,} calls on the caller's thread** (load average "
              f"{lg['load_average_1min'][0]} → {lg['load_average_1min'][1]}; per-call times include a "
              f"perf_counter_ns pair, {lg['timer_overhead_ns']:.0f} ns)", "",
              "| metric | warehouse `ex.log` | JSONL + flush() | `logging` FileHandler + JSON | warehouse ÷ JSONL | warehouse ÷ logging |",
              "|---|---:|---:|---:|---:|---:|"]
    for variant, label in (("no_attrs", "no attributes"), ("attrs", "with attributes")):
        w, j, l = lg["warehouse"][variant], lg["jsonl"][variant], lg["logging"][variant]
        for key, name, unit in (("median_us", "median", "µs"), ("p90_us", "p90", "µs"), ("p99_us", "p99", "µs"),
                                ("p999_us", "p99.9", "µs"), ("mean_us", "mean", "µs"), ("max_ms", "max", "ms")):
            lines.append(f"| {name}, {label} | {_num(w[key], unit)} | {_num(j[key], unit)} | {_num(l[key], unit)} "
                         f"| {_ratio(w[key], j[key])} | {_ratio(w[key], l[key])} |")
        lines.append(f"| calls ≥ 1 ms, {label} (share of the time) | {w['calls_over_1ms']} "
                     f"({w['share_of_time_in_calls_over_1ms']:.1%}) | {j['calls_over_1ms']} "
                     f"({j['share_of_time_in_calls_over_1ms']:.1%}) | {l['calls_over_1ms']} "
                     f"({l['share_of_time_in_calls_over_1ms']:.1%}) | | |")
        lines.append(f"| committed / logged / dropped, {label} | {w['committed']:,} / {w['logged']:,} / {w['dropped']} "
                     f"| {j['committed']:,} / {j['logged']:,} / 0 | {l['committed']:,} / {l['logged']:,} / 0 | | |")
        lines.append(f"| bytes on disk, {label} | {_size(w['disk']['bytes'])} (commits: {w['commits']}) "
                     f"| {_size(j['disk']['bytes'])} | {_size(l['disk']['bytes'])} "
                     f"| {_ratio(w['disk']['bytes'], j['disk']['bytes'])} | {_ratio(w['disk']['bytes'], l['disk']['bytes'])} |")
    fe = lg["first_events_of_the_process"]
    lines += ["", f"`close()` after the last log (the final flush, not in the figures above): "
              f"{lg['warehouse']['no_attrs']['close_ms']:.1f} ms without attributes, "
              f"{lg['warehouse']['attrs']['close_ms']:.1f} ms with. Slowest of the process's first 8,200 "
              f"`ex.log` calls (untimed warm-up; pandas {'already' if fe['pandas_imported_before'] else 'not yet'} "
              f"imported): {fe['max_ms']:.1f} ms.", ""]

    cp = doc["checkpoints"]
    w, a, b = cp["warehouse"], cp["files_no_fsync"], cp["files_fsync"]
    lines += [f"**2. Checkpoints: {cp['n']} of a {cp['state_bytes'] / 1024:.1f} KiB agent state** (load average "
              f"{cp['load_average_1min'][0]} → {cp['load_average_1min'][1]})", "",
              "| metric | warehouse `ex.checkpoint` | `turn_N.json`, no fsync | `turn_N.json`, fsync | warehouse ÷ no fsync | warehouse ÷ fsync |",
              "|---|---:|---:|---:|---:|---:|"]
    for key, name in (("p50_ms", "save p50"), ("p90_ms", "save p90"), ("p99_ms", "save p99"), ("mean_ms", "save mean"),
                      ("first_10pct_p50_ms", "save p50, first 10%"), ("last_10pct_p50_ms", "save p50, last 10%"),
                      ("load_latest_ms", "load the newest")):
        lines.append(f"| {name} | {_num(w[key], 'ms')} | {_num(a[key], 'ms')} | {_num(b[key], 'ms')} "
                     f"| {_ratio(w[key], a[key])} | {_ratio(w[key], b[key])} |")
    lines.append(f"| open + load the newest (a new process resuming) | {_num(w['open_and_load_latest_ms'], 'ms')} "
                 f"| {_num(a['load_latest_ms'], 'ms')} | {_num(b['load_latest_ms'], 'ms')} "
                 f"| {_ratio(w['open_and_load_latest_ms'], a['load_latest_ms'])} "
                 f"| {_ratio(w['open_and_load_latest_ms'], b['load_latest_ms'])} |")
    lines.append(f"| bytes on disk (files) | {_size(w['disk']['bytes'])} ({w['disk']['files']}) "
                 f"| {_size(a['disk']['bytes'])} ({a['disk']['files']}) | {_size(b['disk']['bytes'])} ({b['disk']['files']}) "
                 f"| {_ratio(w['disk']['bytes'], a['disk']['bytes'])} | {_ratio(w['disk']['bytes'], b['disk']['bytes'])} |")
    lines.append("")

    sn = doc["snapshots"]
    w, r, r2 = sn["warehouse"], sn["state_json"], sn["state_json_indent2"]
    lines += [f"**3. Simulation snapshots: {sn['n']:,} saves of a {sn['snapshot_bytes'] / 1024:.1f} KiB snapshot** "
              f"(load average {sn['load_average_1min'][0]} → {sn['load_average_1min'][1]}; the k-th save is the median "
              f"of saves k-{sn['curve_window']}..k+{sn['curve_window']}; indent=2 is measured at these k only, "
              f"{r2['saves_per_point']} saves each)", "",
              "| k-th save | warehouse `rec.step` | `state.json` rewritten (compact) | `state.json` rewritten (indent=2) "
              "| warehouse ÷ compact | warehouse ÷ indent=2 |",
              "|---|---:|---:|---:|---:|---:|"]
    for k in sn["curve_at"]:
        k = str(k)
        lines.append(f"| {int(k):,} | {_num(w['curve_ms'][k], 'ms')} | {_num(r['curve_ms'][k], 'ms')} "
                     f"| {_num(r2['curve_ms'][k], 'ms')} | {_ratio(w['curve_ms'][k], r['curve_ms'][k])} "
                     f"| {_ratio(w['curve_ms'][k], r2['curve_ms'][k])} |")
    lines += [f"| total, {sn['n']:,} saves | {w['total_s']:.2f} s | {r['total_s']:.2f} s | | "
              f"{_ratio(w['total_s'], r['total_s'])} | |",
              f"| start a run (recorder / state.json) | {_num(w['start_ms'], 'ms')} | {_num(r['start_ms'], 'ms')} | | "
              f"{_ratio(w['start_ms'], r['start_ms'])} | |",
              f"| load every snapshot (`wh.snapshots` / json.load) | {_num(w['load_all_ms'], 'ms')} "
              f"| {_num(r['load_all_ms'], 'ms')} | | {_ratio(w['load_all_ms'], r['load_all_ms'])} | |",
              f"| bytes on disk at the end (files) | {_size(w['disk']['bytes'])} ({w['disk']['files']}) "
              f"| {_size(r['disk']['bytes'])} ({r['disk']['files']}) | | {_ratio(w['disk']['bytes'], r['disk']['bytes'])} | |",
              f"| allocated blocks at the end | {_size(w['disk']['allocated_bytes'])} | {_size(r['disk']['allocated_bytes'])} "
              f"| | {_ratio(w['disk']['allocated_bytes'], r['disk']['allocated_bytes'])} | |",
              f"| bytes written in total | {_size(w['bytes_written'])} | {_size(r['bytes_written'])} | | "
              f"{_ratio(w['bytes_written'], r['bytes_written'])} | |", ""]

    g = doc["goals"][0]
    c = doc["checks"]
    lines += ["| goal | measured | met |", "|---|---|---|",
              f"| {g['goal']} | {g['measured_us']:.2f} µs | {'yes' if g['met'] else 'no'} |", "",
              f"Checks: logs committed = logged: {c['logs_committed_equal_logged']}; dropped: {c['logs_dropped']}; "
              f"checkpoints read back equal: {c['checkpoints_loaded_ok']}; snapshots read back equal: "
              f"{c['snapshots_loaded_ok']}. {doc['seconds']} s in all, load average {doc['load_average_1min_before']} "
              f"→ {doc['load_average_1min_after']}; {_source_line(doc['source'])}."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", type=int, default=200_000, help="ex.log calls per competitor and variant")
    ap.add_argument("--checkpoints", type=int, default=300)
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--workdir", default=None, help="where the temporary directories go (default: the system's)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    for name in ("logs", "checkpoints", "snapshots"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} must be at least 1")
    doc = run(a.logs, a.checkpoints, a.snapshots, workdir=a.workdir)
    c = doc["checks"]
    ok = (c["logs_committed_equal_logged"] and c["logs_dropped"] == 0 and c["checkpoints_loaded_ok"]
          and c["snapshots_loaded_ok"])
    from .runner import publish  # late: runner pulls in pandas and rich

    publish("agent_state", doc, markdown(doc), a.out, None if ok else c)
    return doc


if __name__ == "__main__":
    main()
