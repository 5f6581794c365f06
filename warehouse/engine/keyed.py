"""Commits that keep execution ids keys: a flush holding ids that may be stored already commits, with
its rows, the `superseded` rows of the earlier adds of those ids (see `warehouse.engine.keys` for the
rule and how readers apply it), and looks again when a concurrent commit added one of them."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from warehouse.core.errors import CommitConflict
from warehouse.core.schemas import catalog
from warehouse.engine.engine import Engine
from warehouse.engine.keys import SUPERSEDED, KeysMoved, _matching, _may_hold, _pairs
from warehouse.manifest import Commit, DataFile, Snapshot

log = logging.getLogger("warehouse")


def earlier_adds(
    wh: Engine, snapshot: Snapshot, batch: Sequence[tuple[Mapping[str, str], pa.Table]]
) -> dict[tuple[str, ...], set[tuple[str, int | None]]]:
    """The adds that a commit's rows replace, by partition. `batch`: per partition, (execution_id,
    write_id) of its rows whose ids may be stored already, in add order (a later partition's rows
    count as added later). Replaced: the earlier adds of the same ids in `snapshot` that are not
    superseded yet, and all but the last add of an id within the batch."""
    pcols = catalog().partition_columns
    out: dict[tuple[str, ...], set[tuple[str, int | None]]] = defaultdict(set)
    last: dict[str, tuple[tuple[str, ...], int]] = {}
    mine: set[tuple[str, int | None]] = set()
    for partition, keys in batch:
        own = tuple(partition[c] for c in pcols)
        mine |= _pairs(keys)
        for eid, wid in zip(keys.column("execution_id").to_pylist(), keys.column("write_id").to_pylist()):
            prev = last.get(eid)
            if prev is not None:
                out[prev[0]].add((eid, prev[1]))
            last[eid] = (own, wid)
    if not last:
        return {}
    wh.engine.keys.forget_except(snapshot.files)  # (files compacted or expired away are not read again)
    sorted_ids = sorted(last)
    id_set = pa.array(sorted_ids, pa.string())
    found = _matching(wh.engine.keys, wh.store, snapshot.table_files("executions"), id_set, sorted_ids)
    if found:
        gone = set()
        for f in snapshot.table_files(SUPERSEDED):
            if _may_hold(f, sorted_ids):
                gone |= _pairs(wh.engine.keys.keys(wh.store, f))
        for part, t in found:
            # (the batch's own rows, found when a retry's earlier attempt landed, replace nothing)
            out[part] |= _pairs(t) - gone - mine
    return {p: s for p, s in out.items() if s}


def _superseded_table(
    part: Mapping[str, str], pairs: Iterable[tuple[str, int | None]], by: Mapping[str, int], now: datetime
) -> pa.Table:
    rows = sorted(pairs, key=lambda p: (p[0], -1 if p[1] is None else p[1]))
    schema = catalog().table(SUPERSEDED).arrow
    n = len(rows)
    cols = {c: pa.array([part[c]] * n, pa.string()) for c in catalog().partition_columns}
    cols.update(
        execution_id=pa.array([r[0] for r in rows], pa.string()),
        write_id=pa.array([r[1] for r in rows], pa.int64()),
        by_write_id=pa.array([by.get(r[0]) for r in rows], pa.int64()),
        superseded_at=pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    )
    return pa.Table.from_pydict(cols, schema=schema)


# -- committing ----------------------------------------------------------------------------------
def commit(
    wh: Engine,
    *,
    keys: Sequence[tuple[Mapping[str, str], pa.Table | None]],
    add: Sequence[DataFile],
    write: Callable[[str, Mapping[str, str], pa.Table], DataFile],
    conflict: Callable[[Commit], str | None] | None = None,
    already: Container[tuple[str, int | None]] = frozenset(),
    **commit_args: Any,
) -> Commit:
    """`wh.engine.commit(add=add, conflict=conflict, ...)` of rows whose executions include, per partition,
    `keys` (execution_id, write_id of the rows whose ids may be stored already, in add order; None
    or empty: none), together with the `superseded` rows of the adds they replace (written with
    `write(table, partition, rows)`), except the adds `already` lists (`add` holds their superseded
    rows, or the same rows again: a sync). Looks again and retries when a commit that landed
    meanwhile added one of the ids."""
    batch = [(p, t) for p, t in keys if t is not None and t.num_rows]
    if not batch:
        return wh.engine.commit(add=add, conflict=conflict, **commit_args)
    by: dict[str, int] = {}
    ours: set[tuple[str, int | None]] = set()
    for _, t in batch:
        by.update(zip(t.column("execution_id").to_pylist(), t.column("write_id").to_pylist()))
        ours |= _pairs(t)
    sorted_ids = sorted(by)
    id_set = pa.array(sorted_ids, pa.string())
    pcols = catalog().partition_columns
    # From a fresh snapshot: the commits after it are the ones `check` sees on the way (a snapshot
    # older than a vacuum fold would let the log skip the folded commits).
    _catch_up(wh, conflict)
    while True:
        replaced = {
            p: left
            for p, pairs in earlier_adds(wh, wh.snapshot, batch).items()
            if (left := {x for x in pairs if x not in already})
        }
        now = datetime.now(UTC)
        extra = []
        try:
            for part, pairs in sorted(replaced.items()):
                partition = dict(zip(pcols, part))
                extra.append(write(SUPERSEDED, partition, _superseded_table(partition, pairs, by, now)))
        except BaseException:
            _discard(wh, extra)
            raise
        known = set().union(*replaced.values()) | ours

        def check(other: Commit) -> str | None:
            if conflict is not None and (why := conflict(other)):
                return why
            for _, t in _matching(wh.engine.keys, wh.store, other.add, id_set, sorted_ids):
                if _pairs(t) - known:  # noqa: B023 - the commit below calls check within this iteration
                    raise KeysMoved()
            return None

        try:
            done = wh.engine.commit(add=[*add, *extra], conflict=check, **commit_args)
        except KeysMoved:
            _discard(wh, extra)
            _catch_up(wh, conflict)
            continue
        except BaseException:
            _discard(wh, extra)
            raise
        landed = {f.path for f in done.add}
        _discard(wh, [f for f in extra if f.path not in landed])  # a retry found its commit already landed
        return done


def _catch_up(wh: Engine, conflict: Callable[[Commit], str | None] | None) -> None:
    """Refresh `wh`, asking the caller's `conflict` about every commit read on the way (which the
    commit would otherwise no longer meet)."""
    _, new = wh.engine.refresh_commits()
    for other in new:
        if conflict is not None and (why := conflict(other)):
            raise CommitConflict(why)


def _discard(wh: Engine, files: Iterable[DataFile]) -> None:
    """Delete data files of ours that no commit took (best effort: vacuum removes what stays)."""
    for f in files:
        try:
            wh.store.remove(f.path)
        except Exception as exc:  # noqa: BLE001 - an orphan is harmless and vacuum collects it
            log.debug("could not remove uncommitted %s: %s", f.path, exc)
