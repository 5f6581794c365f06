"""The suite's workload: the scales, what a case is given (`Context`), and the generated records
every competitor of a case receives alike (generated once per run, outside every timed region)."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import warehouse
from warehouse.cli import demo

from .. import raw_pyarrow
from ..harness import settle, split


# -- scales ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """How big every case runs: `warehouse bench --scale small|medium|large`."""

    name: str
    bulk_executions: int  # case 1 (10 messages each)
    flushes: int  # case 2
    flush_size: int
    processes: int  # case 3
    process_flushes: int
    process_flush_size: int
    query_executions: int  # cases 4 and 5 (no messages)
    legacy_query_cap: int | None  # at most this many legacy JSON files in case 4 (None: all)
    configs: int  # cases 4 and 5: configurations (partitions)
    commits: int  # case 6
    memory_messages: int  # case 7
    concurrency_competitors: tuple[str, ...] = ("warehouse", "legacy")  # delta takes ~110 s a repetition at medium
    reps: int = 3


SCALES = {
    "small": Scale(
        "small",
        bulk_executions=2_000,
        flushes=50,
        flush_size=20,
        processes=8,
        process_flushes=10,
        process_flush_size=10,
        query_executions=5_000,
        legacy_query_cap=None,
        configs=100,
        commits=500,
        memory_messages=20_000,
        concurrency_competitors=("warehouse", "legacy", "delta"),
    ),
    "medium": Scale(
        "medium",
        bulk_executions=20_000,
        flushes=200,
        flush_size=100,
        processes=8,
        process_flushes=100,
        process_flush_size=10,
        query_executions=100_000,
        legacy_query_cap=None,
        configs=100,
        commits=10_000,
        memory_messages=200_000,
    ),
    "large": Scale(
        "large",
        bulk_executions=200_000,
        flushes=200,
        flush_size=100,
        processes=8,
        process_flushes=100,
        process_flush_size=10,
        query_executions=1_000_000,
        legacy_query_cap=100_000,
        configs=100,
        commits=10_000,
        memory_messages=1_000_000,
    ),
}


@dataclass
class Context:
    """What a case is given: its scale, a work directory, a progress line printer, and a cache of
    the generated records shared by the cases of one run."""

    scale: Scale
    workdir: Path
    say: Callable[[str], None] = lambda s: None
    seed: int = 0
    repetitions: int | None = None  # overrides the scale's (tests use 1)
    cache: dict[str, Any] = field(default_factory=dict)

    def dir(self, *parts: str) -> Path:
        """A fresh, empty directory under the work directory."""
        p = self.workdir.joinpath(*parts)
        if p.exists():
            shutil.rmtree(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def reps(self) -> int:
        return self.repetitions or max(3, self.scale.reps)


# -- generated records -----------------------------------------------------------------------------
Batch = tuple[dict, dict, "dict | None", list[dict[str, Any]]]


def grid_batches(ctx: Context, n: int) -> list[Batch]:
    """`n` demo executions (10 messages each) spread over the 18 configurations of the demo grid."""
    key = f"grid:{n}"
    if key not in ctx.cache:
        grid = list(demo.configs())
        out = []
        for (d, a, k), count in zip(grid, split(n, len(grid))):
            rng = random.Random(f"{ctx.seed}:{d['type']}:{a['type']}:{k['type'] if k else None}")
            out.append(
                (
                    d,
                    a,
                    k,
                    [demo.execution(rng, d["type"], a["type"], k["type"] if k else None, t) for t in range(count)],
                )
            )
        ctx.cache[key] = out
        settle()
    return ctx.cache[key]


def query_configs(n: int) -> list[tuple[dict, dict, dict | None]]:
    """`n` configurations: the demo grid, cycled, with an agent `variant` so that each hash differs."""
    grid = list(demo.configs())
    out = []
    for i in range(n):
        d, a, k = grid[i % len(grid)]
        out.append((d, {"type": a["type"], "config": {**a["config"], "variant": i // len(grid)}}, k))
    return out


def query_batches(ctx: Context) -> list[Batch]:
    """Case 4/5 data: `query_executions` executions without messages over `configs` configurations.

    Each configuration draws a pool of up to 50 demo executions (messages dropped) and repeats it
    with fresh task ids: generating a million full executions would take many minutes.
    """
    key = "query"
    if key not in ctx.cache:
        sc = ctx.scale
        out = []
        for i, ((d, a, k), count) in enumerate(zip(query_configs(sc.configs), split(sc.query_executions, sc.configs))):
            rng = random.Random(f"{ctx.seed}:query:{i}")
            pool = []
            for t in range(min(count, 50)):
                e = demo.execution(rng, d["type"], a["type"], k["type"] if k else None, t)
                del e["messages"]
                pool.append(e)
            out.append((d, a, k, [{**pool[t % len(pool)], "task_id": f"user_task_{t}"} for t in range(count)]))
        ctx.cache[key] = out
        settle()
    return ctx.cache[key]


def wh_write(root: Path, batches: Sequence[Batch], **writer_kw: Any) -> warehouse.Warehouse:
    """Every batch through the public writer (one writer per configuration)."""
    wh = warehouse.open(str(root), create=True)
    for d, a, k, executions in batches:
        with wh.writer(dataset=d, agent=a, attack=k, **writer_kw) as w:
            for e in executions:
                w.add_execution(**e)
    return wh


def arrow_write(root: Path, batches: Sequence[Batch], write: Callable, chunk: int = 10_000) -> None:
    """Every batch through `raw_pyarrow.to_arrow` and `write` (pyarrow or delta), `chunk` executions a flush."""
    for d, a, k, executions in batches:
        partition = warehouse.RunConfig.of(d, a, k).partition
        for i in range(0, len(executions), chunk):
            write(root, raw_pyarrow.to_arrow(executions[i : i + chunk], partition))


def wh_counts(wh: warehouse.Warehouse) -> tuple[int, int, int]:
    """(executions, distinct execution ids, messages) in the warehouse's current snapshot."""
    wh.refresh()
    ((n, ids),) = wh.sql("select count(*), count(distinct execution_id) from executions").fetchall()
    ((m,),) = wh.sql("select count(*) from messages").fetchall()
    return n, ids, m
