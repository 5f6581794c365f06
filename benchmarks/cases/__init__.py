"""The seven cases of `warehouse bench`, in the order they run and are reported.

Every case generates its records once (with the demo generator `warehouse.demo.execution`, see
`workload`), outside any timed region, and gives the same records to every competitor. Competitors
run interleaved (rep 1 of each, then rep 2 of each, ...) in fresh directories, so that drift of the
machine hits them alike; the median of the repetitions is reported. Correctness checks (counts,
equal answers, nothing lost) are recorded with the case and never timed.

    workload.py     scales, the Context a case is given, the generated records
    writes.py       1 bulk write, 2 small flushes
    concurrency.py  3 concurrent writer processes on one store
    queries.py      4 scores by agent x attack, 5 partition pruning
    snapshot.py     6 opening and refreshing a warehouse with many commits
    memory.py       7 peak RSS of a writer
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from ..harness import CaseResult
from .concurrency import concurrency
from .memory import memory
from .queries import partition_pruning, scores_query
from .snapshot import snapshot_load
from .workload import SCALES, Context, Scale
from .writes import bulk_write, small_flushes

__all__ = ["CASES", "SCALES", "Context", "Scale", "iter_cases"]

CASES: dict[str, Callable[[Context], CaseResult]] = {
    "bulk_write": bulk_write,
    "small_flushes": small_flushes,
    "concurrency": concurrency,
    "scores_query": scores_query,
    "partition_pruning": partition_pruning,
    "snapshot_load": snapshot_load,
    "memory": memory,
}


def iter_cases(names: Sequence[str] | None = None) -> Iterator[tuple[str, Callable[[Context], CaseResult]]]:
    """(name, case) of every case, or of those in `names`, in the suite's order."""
    for name, fn in CASES.items():
        if not names or name in names:
            yield name, fn
