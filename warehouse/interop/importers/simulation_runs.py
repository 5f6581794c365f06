"""Import simulation runs (`results/run_<scenario>_<timestamp>/state.json`) as `wh.simulations.runs()` shows them.

Each state.json is one source: {run_id, scenario, started_at, snapshots: [{step, game_state,
global_vars, agent_vars, messages}, ...]}. Its snapshots become rows of `snapshots` exactly as
`RunRecorder` writes them (same partition, ids `<run_id>:<kind>:<step>`, state JSON, metadata
{scenario, started_at}), so `wh.simulations.snapshots(run_id)` and `wh.simulations.runs()` read them like recorded runs.
run_id defaults to the directory name, scenario and started_at to what the run id spells;
created_at (the legacy file has no per-snapshot time) is the run's start. Keys beyond the format
are kept in the rows' metadata: top-level ones under "extra", a snapshot's own under
"snapshot_extra".

Final or not: the legacy file does not say whether its last snapshot was the final save, so the
importer reads it from the steps. The last snapshot is the final one when it repeats the previous
step (the final save after an intermediate save of the same step, as with save frequency 1), or
comes sooner than the save frequency the earlier snapshots show (steps 0, 5, 10, 13: 13 can only be
the final save); an explicit `"kind": "final"` on a snapshot is honoured. Otherwise the run is
imported unfinished (`finished` false in `wh.simulations.runs()`): a run that crashed before its final save
reads as exactly that, and so, unavoidably, does a finished run whose final step fell on its save
frequency without a preceding save of that step.

A state.json truncated mid-write (not valid JSON) is reported as failed, with its path, and
nothing of it is imported: the legacy writer replaced the file atomically, so a truncated file is
damage after the fact (a partial copy), not a crash; recovering the snapshots before the cut would
import a run that never looked like that. Copy the file again. A run whose state.json grew since it
was imported (imported while running) adds its new snapshots only; a snapshot stored before with
other content fails the file.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warehouse.agent import simulation
from warehouse.core import records
from warehouse.core.errors import ImportFailed, InvalidRecord
from warehouse.interop.importers.base import FileImporter, Source, SourceRecorder
from warehouse.interop.importers.session_dirs import _loads, tag, untag
from warehouse.write.live import SNAPSHOT_ROW

TOP_FIELDS = ("run_id", "scenario", "started_at", "snapshots")
SNAPSHOT_FIELDS = ("step", "kind", *simulation.STATE_FIELDS)
_RUN_ID = re.compile(r"run_(?P<scenario>.+)_(?P<ts>\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})(?:_\d+)?")


def last_is_final(steps: list[int]) -> bool:
    """Whether the last of a legacy run's snapshot steps was its final save (see the module doc)."""
    if len(steps) >= 2 and steps[-1] == steps[-2]:
        return True
    if len(steps) >= 3:
        every = steps[1] - steps[0]
        regular = all(b - a == every for a, b in zip(steps[:-2], steps[1:-1]))
        return every > 0 and regular and 0 < steps[-1] - steps[-2] < every
    return False


def _started_at(doc: dict[str, Any], run_id: str, path: str) -> datetime:
    value = doc.get("started_at")
    if value is None:
        m = _RUN_ID.fullmatch(run_id)
        if m:
            value = datetime.strptime(m["ts"], "%Y-%m-%d_%H-%M-%S")
    ts = records.timestamp("started_at", value)
    return (ts or datetime.fromtimestamp(os.stat(path).st_mtime, UTC)).astimezone(UTC)


class SimulationRunImporter(FileImporter):
    """Sources: every state.json under the path (or the path itself)."""

    kind = "simulation"
    patterns = ("**/state.json",)

    def load(self, source: Source) -> bytes:
        """The file's content, tagged with its run directory's name (the run id when the file has none)."""
        return tag(Path(source.path).parent.name, super().load(source))  # type: ignore[arg-type]

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """The run's snapshots not yet stored."""
        dirname, data = untag(data)
        if not data.strip():
            raise ImportFailed("state.json is empty")
        if not data.rstrip().endswith(b"}"):
            raise ImportFailed(
                f"state.json is truncated: it ends mid-JSON after {len(data):,} bytes (a partial copy "
                "or an interrupted write); nothing of it was imported. The legacy writer replaced "
                "state.json atomically, so copy it again from the run"
            )
        doc = _loads(data, "state.json")
        if not isinstance(doc, dict):
            raise ImportFailed(f"state.json must hold a JSON object, got {type(doc).__name__}")
        if not isinstance(doc.get("snapshots"), list):
            raise ImportFailed(f"state.json has no 'snapshots' list (keys: {sorted(doc)[:12]})")
        run_id = doc.get("run_id") or dirname
        if not isinstance(run_id, str) or not simulation._RUN_ID.fullmatch(run_id):
            raise InvalidRecord(f"run_id must be made of A-Z, a-z, 0-9, _ and -, got {run_id!r:.80}")
        scenario = doc.get("scenario")
        if scenario is None:
            m = _RUN_ID.fullmatch(run_id)
            scenario = m["scenario"] if m else run_id
        scenario = records.text("scenario", scenario)
        if not scenario:
            raise InvalidRecord("scenario must be a non-empty string")
        started = _started_at(doc, run_id, source.path)  # type: ignore[arg-type]
        meta: dict[str, Any] = {"scenario": scenario, "started_at": records.iso_utc(started)}
        extra = {k: v for k, v in doc.items() if k not in TOP_FIELDS}
        if extra:
            meta["extra"] = extra

        snaps = doc["snapshots"]
        for i, s in enumerate(snaps):
            if not isinstance(s, dict):
                raise InvalidRecord(f"snapshots[{i}] must be an object, got {type(s).__name__}")
        steps = []
        for i, s in enumerate(snaps):
            step = records.integer(f"snapshots[{i}].step", s.get("step"))
            if step is None or step < 0:
                raise InvalidRecord(f"snapshots[{i}].step must be an integer >= 0, got {s.get('step')!r:.80}")
            steps.append(step)
        kinds = ["snapshot"] * len(snaps)
        if snaps and last_is_final(steps):
            kinds[-1] = "final"
        rows = []
        for i, s in enumerate(snaps):
            kind = s.get("kind", kinds[i])
            if kind not in simulation.KINDS:
                raise InvalidRecord(f"snapshots[{i}].kind must be one of {simulation.KINDS}, got {kind!r:.80}")
            own = {k: v for k, v in s.items() if k not in SNAPSHOT_FIELDS}
            row_meta = {**meta, "snapshot_extra": own} if own else meta
            try:
                row, size = simulation.snapshot_row(
                    run_id,
                    kind,
                    steps[i],
                    s.get("game_state"),
                    s.get("global_vars"),
                    s.get("agent_vars"),
                    s.get("messages"),
                    started,
                    records.json_text("metadata", row_meta),
                )
            except InvalidRecord as exc:
                raise InvalidRecord(f"snapshots[{i}] (step {steps[i]}): {exc}") from None
            rows.append((row, size))
        ids = [r[0][0] for r in rows]
        dupes = sorted({x for x in ids if ids.count(x) > 1})
        if dupes:
            raise ImportFailed(
                f"step(s) saved twice as the same kind: {dupes[:5]}; a run saves each step once "
                "(and once more as its final snapshot)"
            )
        stored = _stored(out, run_id)
        new = []
        for row, size in rows:
            if row[0] in stored:
                if stored[row[0]] != row[7]:
                    raise ImportFailed(
                        f"snapshot {row[0]} was imported before with another state; the run's file "
                        "was rewritten, not extended"
                    )
                continue
            new.append((row, size))
        w = out.writer(simulation.dataset_config(scenario), simulation.AGENT)
        out.rows(w, SNAPSHOT_ROW, [r for r, _ in new], sum(n for _, n in new))


def _stored(out: SourceRecorder, run_id: str) -> dict[str, str]:
    """snapshot_id -> state of the run's snapshots already in the warehouse."""
    wh = out.warehouse  # the warehouse being imported into (read-only use)
    wh.refresh()
    if not wh.snapshot.table_files("snapshots"):
        return {}
    rows = wh.engine.lookup(
        "snapshots",
        "run_id",
        run_id,
        "select snapshot_id, state from t where dataset = 'simulation' and run_id = ?",
        [run_id],
    )
    return {r["snapshot_id"]: r["state"] for r in rows}


IMPORTER = SimulationRunImporter()
