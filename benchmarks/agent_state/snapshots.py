"""Part 3 of the agent-state benchmark, simulation snapshots: `Warehouse.run_recorder(scenario,
save_frequency=1)` + `step(...)` against the reference's `state.json`, read whole, appended to and
rewritten (temp file + rename) at every save: the k-th save's time for k = 1..N, bytes on disk, and
loading every snapshot back."""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import warehouse

from ..harness import disk_usage, frozen_gc, load_average, median_time, ms
from .inputs import text

#: Where the k-th save of the snapshot curve is reported (those <= N, and N itself).
CURVE_AT = (1, 10, 100, 250, 500, 1000)
#: The curve at k is the median of the saves k-W..k+W (clipped to 1..N): one save is one sample.
CURVE_WINDOW = 5
#: The indent=2 variant of state.json is measured at the curve's points only, this many saves each.
SPOT_SAVES = 3


def sim_snapshot(step: int, rng: random.Random) -> dict[str, Any]:
    """One simulation snapshot as in the reference's state.json: game_state, global_vars, agent_vars
    of 2-4 agents, and the step's messages (one to and one from each agent). About 1.3-2 KB."""
    names = ("Agent Alpha", "Agent Beta", "Agent Gamma", "Agent Delta")[: rng.randint(2, 4)]
    agents = {
        a: {
            "economic_strength": round(rng.uniform(500, 5000), 2),
            "risk_tolerance": round(rng.random(), 2),
            "action_count": step,
            "inventory": {"food": rng.randint(0, 99), "gold": rng.randint(0, 999)},
            "last_action": rng.choice(("trade", "invest", "hold", "negotiate")),
        }
        for a in names
    }
    messages = []
    for a in names[:2]:
        messages.append({"from": "Orchestrator", "to": a, "content": f"Round {step}: " + text(rng, 120)})
        messages.append({"from": a, "to": "Orchestrator", "content": text(rng, 100)})
    return {
        "game_state": {
            "resources": rng.randint(0, 500),
            "difficulty": "normal",
            "round": step,
            "market": {"food": round(rng.uniform(1, 3), 2), "gold": round(rng.uniform(10, 30), 2)},
            "events": ["drought"] if rng.random() < 0.1 else [],
        },
        "global_vars": {
            "interest_rate": 0.05,
            "market_volatility": round(rng.random() / 5, 3),
            "simulation_active": True,
        },
        "agent_vars": agents,
        "messages": messages,
    }


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
        return {
            "run_id": self.run_id,
            "scenario": self.scenario,
            "started_at": self.started_at.isoformat(),
            "snapshots": [],
        }

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
        doc["snapshots"].append(
            {
                "step": step,
                "game_state": game_state,
                "global_vars": global_vars,
                "agent_vars": agent_vars,
                "messages": messages,
            }
        )
        self._write(doc)

    def load(self) -> dict[str, Any]:
        with open(self.path, encoding="utf-8") as f:
            return json.load(f)


def _curve(seconds: list[float], ks: Sequence[int]) -> dict[str, float]:
    """ms of the k-th save (1-based), as the median of saves k-W..k+W clipped to 1..N."""
    n = len(seconds)
    return {str(k): ms(statistics.median(seconds[max(0, k - 1 - CURVE_WINDOW) : min(n, k + CURVE_WINDOW)])) for k in ks}


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
        out[str(k)] = ms(statistics.median(times))
        shutil.rmtree(tmp / f"spot-{k}")
    return out


def bench_snapshots(tmp: Path, n: int) -> dict[str, Any]:
    rng = random.Random(3)
    snaps = [sim_snapshot(s, rng) for s in range(n)]
    ks = sorted({k for k in CURVE_AT if k <= n} | {n})
    out: dict[str, Any] = {
        "n": n,
        "snapshot_bytes": len(json.dumps(snaps[0])),
        "curve_at": ks,
        "curve_window": CURVE_WINDOW,
        "load_average_1min": [load_average()],
    }
    with frozen_gc():
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
        load_s, loaded = median_time(lambda: wh.snapshots(rec.run_id), 3)
        ok = (
            len(loaded) == n
            and [x["step"] for x in loaded] == list(range(n))
            and {k: loaded[-1][k] for k in snaps[-1]} == snaps[-1]
        )
        disk = disk_usage(root)
        out["warehouse"] = {
            "api": "Warehouse.run_recorder + RunRecorder.step",
            "start_ms": ms(start_s),
            "curve_ms": _curve(times, ks),
            "total_s": round(sum(times), 3),
            "load_all_ms": ms(load_s),
            "loaded": len(loaded),
            "loaded_ok": ok,
            "commits": wh.version,
            "disk": disk,
            "bytes_written": disk["bytes"],
        }

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
        load_s, doc = median_time(rp.load, 3)
        ok = len(doc["snapshots"]) == n and doc["snapshots"][-1] == {"step": n - 1, **snaps[-1]}
        out["state_json"] = {
            "api": "RunPersistence.save_snapshot, json.dumps compact",
            "start_ms": ms(start_s),
            "curve_ms": _curve(times, ks),
            "total_s": round(sum(times), 3),
            "load_all_ms": ms(load_s),
            "loaded": len(doc["snapshots"]),
            "loaded_ok": ok,
            "disk": disk_usage(results),
            "bytes_written": written,
        }
        out["state_json_indent2"] = {
            "api": "RunPersistence.save_snapshot, json.dumps(indent=2)",
            "curve_ms": _spot_saves(tmp, snaps, ks, indent=2),
            "saves_per_point": SPOT_SAVES,
        }
    out["load_average_1min"].append(load_average())
    return out
