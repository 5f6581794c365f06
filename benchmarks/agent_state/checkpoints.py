"""Part 2 of the agent-state benchmark, checkpoints: `Execution.checkpoint(state, step=i)` (committed
when it returns) against the rollouts FileCheckpointStore way, one `turn_{i}.json` per checkpoint
written atomically (temp file + os.replace), with and without fsync; and loading the newest one back."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import warehouse

from ..harness import disk_usage, frozen_gc, load_average, median_time, ms, nearest_rank
from .inputs import AGENT, DATASET, text


def checkpoint_state(i: int, rng: random.Random) -> dict[str, Any]:
    """An agent state like the rollouts checkpoint JSON (without its _metadata): the actor's endpoint,
    ~10 messages of a few hundred characters with tool calls, tools, the environment's state, pending
    tool calls. About 6 KB of JSON."""
    tool_names = ("search_emails", "send_email", "read_file", "create_calendar_event")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": text(rng, 400)},
        {"role": "user", "content": text(rng, 250)},
    ]
    for t in range(4):
        call = {"id": f"tc{i}_{t}", "name": rng.choice(tool_names), "args": {"query": text(rng, 30), "limit": 10}}
        messages.append({"role": "assistant", "content": text(rng, 200), "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": text(rng, 350)})
    tools = [
        {
            "type": "function",
            "function": {
                "name": n,
                "description": text(rng, 80),
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["query"],
                },
            },
        }
        for n in tool_names
    ]
    env = {
        "class_name": "WorkspaceEnvironment",
        "data": {
            "state": {
                "inbox": [
                    {"id": k, "from": f"user{k}@example.com", "subject": text(rng, 40), "read": rng.random() > 0.5}
                    for k in range(5)
                ],
                "calendar": [{"day": f"2025-01-{10 + k:02d}", "title": text(rng, 25)} for k in range(3)],
                "cwd": "/home/agent",
                "budget_left": round(rng.uniform(0, 5), 2),
            }
        },
    }
    pending = [{"id": f"tc{i}_p", "name": rng.choice(tool_names), "args": {"query": text(rng, 30)}}]
    return {
        "actor": {
            "endpoint": {
                "base_url": "https://api.openai.com/v1",
                "model": "gpt-4o",
                "max_tokens": 2000,
                "temperature": 0.7,
            },
            "messages": messages,
            "tools": tools,
        },
        "environment": env,
        "turn_idx": i,
        "max_turns": 50,
        "stop": None,
        "pending_tool_calls": pending,
        "next_tool_idx": 0,
    }


class FileCheckpointStore:
    """The reference's checkpoint store (rollouts/checkpoints.py): one `<checkpoint_id>.json` per
    checkpoint in a directory, written to a temp file and renamed into place (os.replace)."""

    def __init__(self, directory: Path, *, fsync: bool) -> None:
        self.directory, self.fsync = directory, fsync
        directory.mkdir(parents=True, exist_ok=True)

    def save(self, checkpoint_id: str, state: dict[str, Any]) -> None:
        now = time.time()
        doc = {
            "_metadata": {
                "checkpoint_id": checkpoint_id,
                "timestamp": now,
                "iso_time": datetime.fromtimestamp(now).isoformat(),
            },
            **state,
        }
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
    return {
        "n": len(s),
        "p50_ms": ms(nearest_rank(s, 0.5)),
        "p90_ms": ms(nearest_rank(s, 0.9)),
        "p99_ms": ms(nearest_rank(s, 0.99)),
        "mean_ms": ms(sum(s) / len(s)),
        "first_10pct_p50_ms": ms(statistics.median(seconds[:k])),
        "last_10pct_p50_ms": ms(statistics.median(seconds[-k:])),
        "total_s": round(sum(s), 3),
    }


def bench_checkpoints(tmp: Path, n: int) -> dict[str, Any]:
    rng = random.Random(2)
    states = [checkpoint_state(i, rng) for i in range(n)]
    out: dict[str, Any] = {"n": n, "state_bytes": len(json.dumps(states[0])), "load_average_1min": [load_average()]}
    with frozen_gc():
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
        load_s, cp = median_time(lambda: wh.latest_checkpoint(ex.execution_id), 5)
        ok = cp is not None and cp.step == n - 1 and cp.state == states[-1]
        open_load_s, cp2 = median_time(lambda: warehouse.open(str(root)).latest_checkpoint(ex.execution_id), 3)
        ok = ok and cp2 is not None and cp2.step == n - 1
        w.close()
        res.update(
            {
                "load_latest_ms": ms(load_s),
                "open_and_load_latest_ms": ms(open_load_s),
                "loaded_ok": ok,
                "commits": wh.version,
                "disk": disk_usage(root),
            }
        )
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
            load_s, doc = median_time(store.latest, 20)
            doc.pop("_metadata")
            res.update({"load_latest_ms": ms(load_s), "loaded_ok": doc == states[-1], "disk": disk_usage(root)})
            out[name] = res
    out["load_average_1min"].append(load_average())
    return out
